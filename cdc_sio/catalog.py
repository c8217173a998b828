"""Read what the database says about the watched tables, and check the config against it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from cdc_sio.config import Config, TableName


@dataclass(frozen=True, slots=True)
class TableInfo:
    columns: tuple[str, ...]
    primary_key: tuple[str, ...]


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
        columns = tuple(column["name"] for column in inspector.get_columns(table.name, schema=table.schema))
        primary_key = inspector.get_pk_constraint(table.name, schema=table.schema)["constrained_columns"]
        result[table] = TableInfo(columns, tuple(primary_key))
    return result


def config_problems(config: Config, infos: dict[TableName, TableInfo | None]) -> list[str]:
    """Everything in *config* that does not fit the live tables, one message each."""
    problems = []
    for i, table in enumerate(config.tables):
        key = f"{config.source}: tables[{i}]"
        info = infos.get(table.table)
        if info is None:
            problems.append(f"{key}.table: table {table.table} does not exist")
            continue
        if not info.primary_key:
            problems.append(
                f"{key}.table: table {table.table} has no primary key (clients need one to tell rows apart)"
            )
        for template in table.rooms:
            for column in template.columns:
                if column not in info.columns:
                    problems.append(
                        f"{key}.rooms: template {template.text!r} names column {column!r}, "
                        f"which table {table.table} does not have"
                    )
        for column in table.exclude_columns:
            if column not in info.columns:
                problems.append(f"{key}.exclude_columns: table {table.table} has no column {column!r}")
    return problems
