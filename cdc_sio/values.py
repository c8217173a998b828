"""Decode the change log's JSON into values that reach a browser without losing anything.

PostgreSQL's ``row_to_json`` already gives JSON-friendly values (ISO 8601 dates, nested objects,
lists). Two things need care on the way to JavaScript: numbers a JavaScript number cannot hold
exactly travel as strings with every digit, and bytea columns travel as binary.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from decimal import Decimal
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1


def decode_row(text: str, binary_columns: Collection[str] = (), excluded: Collection[str] = ()) -> dict[str, Any]:
    """*text* is a JSON object whose *excluded* columns the capture may have set to null."""
    row = _decoder.raw_decode(text)[0]  # PostgreSQL's JSON has no surrounding whitespace to skip
    for column in excluded:
        row.pop(column, None)
    _exact_integers(row)
    for column in binary_columns:
        value = row.get(column)
        if isinstance(value, str) and value.startswith("\\x"):
            row[column] = bytes.fromhex(value[2:])
    return row  # type: ignore[no-any-return]


def _exact_integers(container: dict[str, Any] | list[Any]) -> None:
    """Integers a JavaScript number cannot hold become strings with every digit (in place: the
    json module parses integers much faster by itself than through a callback). The decoder makes
    plain dicts and lists only, so comparing types is exact (and faster than isinstance)."""
    items = container.items() if type(container) is dict else enumerate(container)
    for key, value in items:
        kind = type(value)
        if kind is int:
            if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
                container[key] = str(value)  # type: ignore[index]
        elif kind is dict or kind is list:
            _exact_integers(value)


def _float(text: str) -> float | str:
    value = float(text)
    return value if Decimal(repr(value)) == Decimal(text) else text


_decoder = json.JSONDecoder(parse_float=_float)
