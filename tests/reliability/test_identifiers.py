"""Hostile schema, table and column names are quoted everywhere: property-based, against real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdc_sio import migrate
from cdc_sio.config import parse_config
from cdc_sio.triggers import quote_ident
from tests.support import ADMIN_DSN, database_dsn

TRICKY = [
    "select",
    "table",
    "user",
    'a"b',
    "a;b",
    "a b",
    "Mixed",
    "ünï",
    "$cdc_sio$",
    "x'y",
    "--",
    "/*",
    "a\\b",
    "new",
    "old",
]


def identifier() -> st.SearchStrategy[str]:
    """Any PostgreSQL identifier cdc-sio can be configured with (no NUL, no dot, at most 63 bytes)."""
    text = st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00."), min_size=1, max_size=20
    ).filter(lambda name: len(name.encode()) <= 63)
    return st.one_of(st.sampled_from(TRICKY), text)


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    name = f"cdc_sio_test_{secrets.token_hex(5)}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(ADMIN_DSN)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield database_dsn(name)
    asyncio.run(admin(f'DROP DATABASE "{name}" WITH (FORCE)'))


async def capture_round_trip(dsn: str, schema: str, table: str, key: str, hidden: str, column: str) -> None:
    connection = await asyncpg.connect(dsn)
    qualified = f"{quote_ident(schema)}.{quote_ident(table)}"
    try:
        await connection.execute("DROP SCHEMA IF EXISTS cdc_sio CASCADE")
        await connection.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
        await connection.execute(f"CREATE SCHEMA {quote_ident(schema)}")
        await connection.execute(
            f"CREATE TABLE {qualified} ({quote_ident(key)} int PRIMARY KEY, "
            f"{quote_ident(hidden)} text, {quote_ident(column)} text)"
        )
        entry = {"table": f"{schema}.{table}", "exclude_columns": [hidden], "events": {"insert": "i", "update": "u"}}
        if "{" not in column and "}" not in column:
            entry["rooms"] = [f"r:{{{column}}}"]
        config = parse_config({"postgres": {"dsn": dsn}, "tables": [entry]}, "t.toml", {})
        await migrate.migrate(connection, config)
        await connection.execute(f"INSERT INTO {qualified} VALUES (1, 'secret', 'v')")
        await connection.execute(f"UPDATE {qualified} SET {quote_ident(column)} = 'w'")
        rows = await connection.fetch("SELECT op, data FROM cdc_sio.changes ORDER BY id")
        assert [r["op"] for r in rows] == ["insert", "update"]
        assert "secret" not in rows[1]["data"]
        assert json.loads(rows[1]["data"]) == {key: 1, hidden: None, column: "w"}  # the daemon drops hidden
        await migrate.uninstall(connection)
        await connection.execute(f"DROP SCHEMA {quote_ident(schema)} CASCADE")
    finally:
        await connection.close()


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schema=identifier(), table=identifier(), names=st.lists(identifier(), min_size=3, max_size=3, unique=True))
def test_any_names_are_migrated_and_captured(dsn: str, schema: str, table: str, names: list[str]) -> None:
    key, hidden, column = names
    asyncio.run(capture_round_trip(dsn, schema, table, key, hidden, column))
