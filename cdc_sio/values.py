"""Decode the change log's JSON into values that reach a browser without losing anything.

PostgreSQL's ``to_jsonb`` already gives JSON-friendly values (ISO 8601 dates, nested objects,
lists). Two things need care on the way to JavaScript: numbers a JavaScript number cannot hold
exactly travel as strings with every digit, and bytea columns travel as binary.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from decimal import Decimal
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1


def decode_row(text: str, binary_columns: Collection[str] = ()) -> dict[str, Any]:
    """*text* is a JSON object, or (for tables holding the json type) a JSON string of one."""
    row = json.loads(text, parse_int=_integer, parse_float=_float)
    if isinstance(row, str):
        row = json.loads(row, parse_int=_integer, parse_float=_float)
    for column in binary_columns:
        value = row.get(column)
        if isinstance(value, str) and value.startswith("\\x"):
            row[column] = bytes.fromhex(value[2:])
    return row  # type: ignore[no-any-return]


def _integer(text: str) -> int | str:
    value = int(text)
    return value if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else text


def _float(text: str) -> float | str:
    value = float(text)
    return value if Decimal(repr(value)) == Decimal(text) else text
