"""Read what the database says about the watched tables, and check the config against it."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import exc, inspect, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from cdc_sio.config import Config, TableConfig, TableName
from cdc_sio.pg import sql_file
from cdc_sio.triggers import RowType, TableTriggers, quote_table, table_triggers

_ROW_TYPE = text(sql_file("row_type.sql"))


@dataclass(frozen=True, slots=True)
class TableInfo:
    row_type: RowType
    primary_key: tuple[str, ...]
    binary_columns: frozenset[str] = frozenset()  # bytea columns, sent to browsers as binary

    @property
    def columns(self) -> tuple[str, ...]:
        return self.row_type.columns


def sqlalchemy_url(dsn: str) -> str:
    scheme, sep, rest = dsn.partition("://")
    if not sep or scheme not in ("postgres", "postgresql"):
        return dsn
    return f"postgresql+asyncpg://{rest}"


async def describe_tables(dsn: str, tables: Sequence[TableName]) -> dict[TableName, TableInfo | None]:
    """Reflect *tables* (None for a table that does not exist)."""
    engine = create_async_engine(
        sqlalchemy_url(dsn),
        poolclass=NullPool,
        connect_args={"server_settings": {"application_name": "cdc-sio:catalog"}},
    )
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_reflect, tables)
    finally:
        await engine.dispose()


def _reflect(connection: Connection, tables: Sequence[TableName]) -> dict[TableName, TableInfo | None]:
    inspector = inspect(connection)
    result: dict[TableName, TableInfo | None] = {}
    for table in tables:
        if not inspector.has_table(table.name, schema=table.schema):
            result[table] = None
            continue
        with warnings.catch_warnings():  # composite and other custom types: only names matter here
            warnings.filterwarnings("ignore", "Did not recognize type", exc.SAWarning)
            columns = inspector.get_columns(table.name, schema=table.schema)
        primary_key = inspector.get_pk_constraint(table.name, schema=table.schema)["constrained_columns"]
        binary = frozenset(c["name"] for c in columns if isinstance(c["type"], postgresql.BYTEA))
        facts = connection.execute(_ROW_TYPE, {"table": quote_table(table)}).one()
        row_type = RowType(tuple(c["name"] for c in columns), facts.has_json, facts.has_domain)
        result[table] = TableInfo(row_type, tuple(primary_key), binary)
    return result


def capture_triggers(config: Config, infos: Mapping[TableName, TableInfo | None]) -> dict[TableName, TableTriggers]:
    """The capture DDL of every configured table that exists."""
    return {
        t.table: table_triggers(t, info.row_type) for t in config.tables if (info := infos.get(t.table)) is not None
    }


def primary_key(table: TableConfig, info: TableInfo) -> tuple[str, ...]:
    return table.primary_key or info.primary_key


def config_problems(config: Config, infos: Mapping[TableName, TableInfo | None]) -> list[str]:
    """Everything in *config* that does not fit the live tables, one message each."""
    problems = []
    for i, table in enumerate(config.tables):
        key = f"{config.source}: tables[{i}]"
        info = infos.get(table.table)
        if info is None:
            problems.append(f"{key}.table: table {table.table} does not exist")
            continue
        if not primary_key(table, info):
            problems.append(
                f"{key}.table: table {table.table} has no primary key: add one, or name the columns "
                "that identify a row with primary_key = [...]"
            )
        for column in table.primary_key:
            if column not in info.columns:
                problems.append(f"{key}.primary_key: table {table.table} has no column {column!r}")
        for column in table.exclude_columns:
            if column not in info.columns:
                problems.append(f"{key}.exclude_columns: table {table.table} has no column {column!r}")
        reported: set[tuple[str, str]] = set()
        for route in table.routes:
            for template in (route.event, route.left_event, *route.rooms, *route.except_rooms):
                for column in template.columns:
                    if (
                        column not in info.columns
                        and column not in ("$table", "$op")
                        and ((template.text, column) not in reported)
                    ):
                        reported.add((template.text, column))
                        problems.append(
                            f"{key}: route {route.name!r}: template {template.text!r} names column {column!r}, "
                            f"which table {table.table} does not have"
                        )
            for column in route.only_when_changed:
                if column not in info.columns:
                    problems.append(
                        f"{key}: route {route.name!r}: only_when_changed names column {column!r}, "
                        f"which table {table.table} does not have"
                    )
    return problems


@dataclass(frozen=True, slots=True)
class TableShapes:
    """What the daemon needs to know of each watched table ("schema.table" -> ...)."""

    keys: dict[str, tuple[str, ...]]
    binary_columns: dict[str, frozenset[str]]
    excluded: dict[str, tuple[str, ...]]


def table_shapes(config: Config, infos: Mapping[TableName, TableInfo]) -> TableShapes:
    binary = {str(t.table): info.binary_columns for t in config.tables if (info := infos.get(t.table)) is not None}
    excluded = {str(t.table): t.exclude_columns for t in config.tables if t.exclude_columns}
    return TableShapes(primary_keys(config, infos), binary, excluded)


def primary_keys(config: Config, infos: Mapping[TableName, TableInfo | None]) -> dict[str, tuple[str, ...]]:
    """Each configured table's key columns ("schema.table" -> columns), for tables that exist."""
    return {str(t.table): primary_key(t, info) for t in config.tables if (info := infos.get(t.table)) is not None}
