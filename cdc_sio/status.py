"""What is installed and what is waiting, for ``cdc-sio status`` (read-only)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from cdc_sio.catalog import capture_triggers, describe_tables
from cdc_sio.config import Config, TableName
from cdc_sio.pg import sql_file
from cdc_sio.triggers import drift


@dataclass(frozen=True, slots=True)
class Status:
    applied_migrations: list[str]
    tables: dict[str, str]  # "schema.table" -> "up to date" | "differs from config" | ...
    waiting: int
    oldest_age_s: float | None
    dead_letters: int

    def render(self) -> str:
        lines = ["migrations applied: " + (", ".join(self.applied_migrations) or "none")]
        lines.append("capture triggers:")
        lines += [f"  {table}: {state}" for table, state in sorted(self.tables.items())]
        age = "" if self.oldest_age_s is None else f", oldest {self.oldest_age_s:.1f} s old"
        lines.append(f"changes waiting: {self.waiting}{age}")
        lines.append(f"dead letters: {self.dead_letters}")
        return "\n".join(lines)


UP_TO_DATE = "up to date"
NOT_INSTALLED = "not installed (run cdc-sio migrate)"


async def capture_states(connection: asyncpg.Connection, config: Config) -> dict[str, str]:
    """For each configured or installed table: is its capture what the config asks for?"""
    installed = {
        TableName(r["schema_name"], r["table_name"]): r
        for r in await connection.fetch(sql_file("installed_capture.sql"))
    }
    infos = await describe_tables(config.postgres.dsn, [t.table for t in config.tables])
    configured = capture_triggers(config, infos)
    states = {}
    for table_config in config.tables:
        record = installed.pop(table_config.table, None)
        name = str(table_config.table)
        if infos.get(table_config.table) is None:
            states[name] = "table does not exist"
        elif record is None:
            states[name] = NOT_INSTALLED
        else:
            problem = drift(configured[table_config.table], record)
            states[name] = UP_TO_DATE if problem is None else f"{problem} (run cdc-sio migrate)"
    for table in installed:
        states[str(table)] = "installed but not configured (run cdc-sio migrate to remove)"
    return states


async def read_status(connection: asyncpg.Connection, config: Config) -> Status:
    if not await connection.fetchval("SELECT to_regclass('cdc_sio.schema_migrations') IS NOT NULL"):
        return Status([], {str(t.table): "not installed" for t in config.tables}, 0, None, 0)
    applied = [
        f"{r['version']:04d}_{r['name']}"
        for r in await connection.fetch("SELECT version, name FROM cdc_sio.schema_migrations ORDER BY version")
    ]
    tables = await capture_states(connection, config)
    row = await connection.fetchrow(
        "SELECT count(*) AS waiting, extract(epoch FROM now() - min(captured_at))::float8 AS age FROM cdc_sio.changes"
    )
    dead = await connection.fetchval("SELECT count(*) FROM cdc_sio.dead_letters")
    return Status(applied, tables, row["waiting"], row["age"], dead)
