"""What is installed, what is waiting and which daemons run, for ``cdc-sio status`` (read-only)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from cdc_sio.capture import LEADER_LOCK, backlog
from cdc_sio.catalog import capture_triggers, describe_tables
from cdc_sio.config import Config, TableName
from cdc_sio.pg import sql_file
from cdc_sio.triggers import drift

_DAEMONS = sql_file("daemons.sql")


@dataclass(frozen=True, slots=True)
class DaemonState:
    host: str
    pid: int
    state: str  # "leader" | "standby" | "gone"
    started_at: datetime
    seen_ago_s: float
    published: int
    lag_ms: float | None
    last_error: str | None
    last_error_at: datetime | None

    def render(self) -> str:
        text = f"  {self.state:<8} {self.host} pid {self.pid}, started {self.started_at:%Y-%m-%d %H:%M:%S %Z}"
        if self.state == "gone":
            return text + f", last seen {self.seen_ago_s:.0f} s ago"
        if self.state == "leader":
            lag = "" if self.lag_ms is None else f", lag {self.lag_ms:.0f} ms"
            text += f": published {self.published}{lag}"
        if self.last_error is not None and self.last_error_at is not None:
            text += f"\n           last error at {self.last_error_at:%Y-%m-%d %H:%M:%S %Z}: {self.last_error}"
        return text


@dataclass(frozen=True, slots=True)
class Status:
    applied_migrations: list[str]
    tables: dict[str, str]  # "schema.table" -> "up to date" | "differs from the config or ..." | ...
    waiting: int
    oldest_age_s: float | None
    dead_letters: int
    daemons: list[DaemonState] = field(default_factory=list)

    def render(self) -> str:
        lines = ["migrations applied: " + (", ".join(self.applied_migrations) or "none")]
        lines.append("capture triggers:")
        lines += [f"  {table}: {state}" for table, state in sorted(self.tables.items())]
        age = "" if self.oldest_age_s is None else f", oldest {self.oldest_age_s:.1f} s old"
        lines.append(f"changes waiting: {self.waiting}{age}")
        lines.append(f"dead letters: {self.dead_letters}")
        lines.append("daemons:" if self.daemons else "daemons: none running")
        lines += [daemon.render() for daemon in self.daemons]
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
    waiting = await backlog(connection)
    dead = await connection.fetchval("SELECT count(*) FROM cdc_sio.dead_letters")
    daemons = []
    if await connection.fetchval("SELECT to_regclass('cdc_sio.daemons') IS NOT NULL"):
        stale_after = max(60.0, 3 * config.daemon.probe_interval)  # a daemon that stopped updating its row
        daemons = [_daemon_state(row, stale_after) for row in await connection.fetch(_DAEMONS, LEADER_LOCK)]
    return Status(applied, tables, waiting.waiting, waiting.oldest_age, dead, daemons)


def _daemon_state(row: asyncpg.Record, stale_after: float) -> DaemonState:
    if row["connected"] and row["seen_ago"] <= stale_after:
        state = "leader" if row["holds_lock"] else "standby"
    else:
        state = "gone"
    return DaemonState(
        host=row["host"],
        pid=row["pid"],
        state=state,
        started_at=row["started_at"],
        seen_ago_s=row["seen_ago"],
        published=row["published"],
        lag_ms=row["lag_ms"],
        last_error=row["last_error"],
        last_error_at=row["last_error_at"],
    )
