"""Install, update and remove cdc-sio's schema and capture triggers.

``migrate`` brings the database to what the config asks for, in one transaction: the pending
versioned migrations from ``migrations/``, then exactly the trigger changes that differ from
what is installed. ``plan`` returns the same SQL without running it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg

from cdc_sio.catalog import TableInfo, capture_triggers, config_problems, describe_tables
from cdc_sio.config import Config, TableName
from cdc_sio.errors import ConfigError
from cdc_sio.pg import connect, sql_file
from cdc_sio.triggers import (
    TableTriggers,
    drift,
    drop_trigger_statements,
    filter_check_sql,
    quote_literal,
    uninstall_sql,
)

MIGRATE_LOCK = 0x63646373696F  # "cdcsio": one migrate at a time
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@dataclass(frozen=True, slots=True)
class Step:
    description: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("cdc_sio.migrations").iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
        elif entry.name.endswith(".sql"):
            raise RuntimeError(f"migration file {entry.name!r} is not named NNNN_slug.sql")
    return sorted(found, key=lambda m: m.version)


def migration_step(migration: Migration) -> Step:
    record = (
        "INSERT INTO cdc_sio.schema_migrations (version, name) "
        f"VALUES ({migration.version}, {quote_literal(migration.name)});\n"
    )
    return Step(f"apply migration {migration.version:04d}_{migration.name}", migration.sql + record)


async def validate(config: Config, *, check_filters: bool = True) -> dict[TableName, TableInfo]:
    """What the database says of the watched tables; ConfigError naming everything that does not fit.

    Checking the route filters plans a query on each table, which needs SELECT on it: the daemon,
    which may not read the application's tables, leaves that to check and migrate.
    """
    infos = await describe_tables(config.postgres.dsn, [t.table for t in config.tables])
    problems = config_problems(config, infos) or (await _filter_problems(config) if check_filters else [])
    if problems:
        raise ConfigError("\n".join(problems))
    return {table: info for table, info in infos.items() if info is not None}


async def _filter_problems(config: Config) -> list[str]:
    """Let PostgreSQL judge every route filter, so its own message reaches the user."""
    checks = [
        (i, route, op)
        for i, table in enumerate(config.tables)
        for route in table.routes
        if route.when is not None
        for op in route.operations
    ]
    if not checks:
        return []
    problems = []
    connection = await connect(config.postgres.dsn, "check")
    try:
        for i, route, op in checks:
            try:
                await connection.prepare(filter_check_sql(config.tables[i].table, route, op))
            except asyncpg.PostgresError as error:
                problems.append(
                    f"{config.source}: tables[{i}]: route {route.name!r}: filter {route.when!r} "
                    f"is not valid for {op}: {error}"
                )
    finally:
        await connection.close()
    return problems


async def plan(connection: asyncpg.Connection, configured: Mapping[TableName, TableTriggers]) -> list[Step]:
    """The steps that bring the database to *config*; empty when it is already there."""
    steps = [Step("create schema cdc_sio and its version table", sql_file("bootstrap.sql"))]
    applied: set[int] = set()
    installed: dict[TableName, Any] = {}
    if await connection.fetchval("SELECT to_regclass('cdc_sio.schema_migrations') IS NOT NULL"):
        steps = []
        applied = {row["version"] for row in await connection.fetch("SELECT version FROM cdc_sio.schema_migrations")}
        if await connection.fetchval("SELECT to_regclass('cdc_sio.watched_tables') IS NOT NULL"):
            rows = await connection.fetch(sql_file("installed_capture.sql"))
            installed = {TableName(r["schema_name"], r["table_name"]): r for r in rows}
    steps += [migration_step(m) for m in migrations() if m.version not in applied]

    for table, record in sorted(installed.items(), key=lambda item: str(item[0])):
        if table not in configured:
            sql = uninstall_sql(table, record["function_name"], table_exists=record["table_exists"])
            steps.append(Step(f"remove capture from {table}", sql + _unregister(table)))
    for table, triggers in configured.items():
        current = installed.get(table)
        problem = None if current is None else drift(triggers, current)
        if current is not None and problem is None:
            continue
        what = f"install capture on {table}" if current is None else f"update capture on {table} ({problem})"
        steps.append(_install_step(what, triggers))
    return steps


def install_steps(configured: Mapping[TableName, TableTriggers]) -> list[Step]:
    """Everything that installs cdc-sio for *config* on a database that has none of it."""
    steps = [Step("create schema cdc_sio and its version table", sql_file("bootstrap.sql"))]
    steps += [migration_step(m) for m in migrations()]
    for table, triggers in configured.items():
        steps.append(_install_step(f"install capture on {table}", triggers))
    return steps


def removal_steps(config: Config) -> list[Step]:
    """Everything that removes what install_steps installed."""
    steps = [
        Step(f"remove capture from {t.table}", ";\n".join(drop_trigger_statements(t.table)) + ";\n")
        for t in config.tables
    ]
    return [*steps, Step("drop schema cdc_sio", "DROP SCHEMA IF EXISTS cdc_sio CASCADE;\n")]


def _install_step(description: str, triggers: TableTriggers) -> Step:
    table = triggers.table
    register = (
        "INSERT INTO cdc_sio.watched_tables (schema_name, table_name, function_name, fingerprint) "
        f"VALUES ({quote_literal(table.schema)}, {quote_literal(table.name)}, "
        f"{quote_literal(triggers.function_name)}, {quote_literal(triggers.fingerprint)})\n"
        "    ON CONFLICT (schema_name, table_name) DO UPDATE\n"
        "    SET function_name = excluded.function_name, fingerprint = excluded.fingerprint,\n"
        "        installed_at = now();\n"
    )
    return Step(description, triggers.install_sql + register)


async def migrate(connection: asyncpg.Connection, config: Config, *, dry_run: bool = False) -> list[Step]:
    """Apply (or with *dry_run*, only compute) the plan in one transaction; return its steps."""
    configured = capture_triggers(config, await validate(config))
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
        steps = await plan(connection, configured)
        if not dry_run:
            for step in steps:
                await connection.execute(step.sql)
    return steps


async def uninstall_steps(connection: asyncpg.Connection) -> list[Step]:
    if not await connection.fetchval("SELECT to_regclass('cdc_sio.watched_tables') IS NOT NULL"):
        return [Step("drop schema cdc_sio", "DROP SCHEMA IF EXISTS cdc_sio CASCADE;\n")]
    steps = []
    for row in await connection.fetch("SELECT schema_name, table_name, function_name FROM cdc_sio.watched_tables"):
        table = TableName(row["schema_name"], row["table_name"])
        exists = await _table_exists(connection, table)
        steps.append(
            Step(f"remove capture from {table}", uninstall_sql(table, row["function_name"], table_exists=exists))
        )
    steps.append(Step("drop schema cdc_sio", "DROP SCHEMA IF EXISTS cdc_sio CASCADE;\n"))
    return steps


async def uninstall(connection: asyncpg.Connection, *, dry_run: bool = False) -> list[Step]:
    """Remove every capture trigger and the cdc_sio schema (with any changes not yet published)."""
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", MIGRATE_LOCK)
        steps = await uninstall_steps(connection)
        if not dry_run:
            for step in steps:
                await connection.execute(step.sql)
    return steps


def render_steps(steps: list[Step]) -> str:
    if not steps:
        return "-- cdc-sio: nothing to do, the database matches the configuration\n"
    body = "".join(f"\n-- {step.description}\n{step.sql}" for step in steps)
    return f"BEGIN;\n{body}\nCOMMIT;\n"


def _unregister(table: TableName) -> str:
    return (
        "DELETE FROM cdc_sio.watched_tables "
        f"WHERE schema_name = {quote_literal(table.schema)} AND table_name = {quote_literal(table.name)};\n"
    )


async def _table_exists(connection: asyncpg.Connection, table: TableName) -> bool:
    return bool(
        await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relname = $2)",
            table.schema,
            table.name,
        )
    )
