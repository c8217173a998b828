"""The PostgreSQL side of the daemon: wake-ups (LISTEN), the change log (read, park), the leader lock,
the health probe and the daemon's own row for ``cdc-sio status``."""

from __future__ import annotations

import asyncio
import functools
import itertools
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from cdc_sio.pg import sql_file
from cdc_sio.routing import Change
from cdc_sio.triggers import IDLE_LOCK
from cdc_sio.values import decode_row

WAKE_CHANNEL = "cdc_sio_v1"
LEADER_LOCK = 0x63646373696F01  # held by the one daemon that publishes
_READ_BATCH = sql_file("read_batch.sql")
_PARK_CHANGE = sql_file("park_change.sql")
_BACKLOG = sql_file("backlog.sql")
_RECORD_DAEMON = sql_file("record_daemon.sql")


async def listen(connection: asyncpg.Connection, wake: asyncio.Event) -> None:
    """Set *wake* on every notification; the notification itself carries nothing we trust."""
    await connection.add_listener(WAKE_CHANNEL, lambda *_: wake.set())


async def commit_timestamps_enabled(connection: asyncpg.Connection) -> bool:
    return await connection.fetchval("SELECT current_setting('track_commit_timestamp')::boolean") is True


async def read_batch(
    connection: asyncpg.Connection,
    limit: int,
    *,
    commit_timestamps: bool,
    pass_over: Sequence[int] = (),
    delete: Sequence[int] = (),
    floor: int = 0,
) -> list[Any]:
    """Delete the published changes *delete*, and return the oldest waiting changes above *floor* but
    *pass_over*."""
    return await connection.fetch(_READ_BATCH, limit, commit_timestamps, pass_over, delete, floor)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Horizon:
    """A look at the change log's ids (see migration 0004): once a later look finds every transaction
    older than *xact* ended, no change with an id up to *last_id* can appear any more."""

    last_id: int
    xact: int | None  # None: no id was handed out since the look the daemon knew
    oldest_running: int
    filenode: int  # changes when the ids start over


async def id_horizon(connection: asyncpg.Connection, known_last_id: int | None) -> Horizon:
    row = await connection.fetchrow(
        "SELECT last_id, xact::text, oldest_running::text, filenode::bigint FROM cdc_sio.id_horizon($1)",
        known_last_id,
    )
    assert row is not None
    return Horizon(row[0], None if row[1] is None else int(row[1]), int(row[2]), row[3])


async def delete_changes(connection: asyncpg.Connection, ids: Sequence[int]) -> None:
    """Delete changes that Redis accepted."""
    if ids:
        await connection.execute("DELETE FROM cdc_sio.changes WHERE id = ANY ($1::bigint[])", ids)


def to_change(record: Any, binary_columns: Collection[str] = (), excluded: Collection[str] = ()) -> Change:
    old, routes = record["old"], record["routes"]
    return Change(
        record["id"],
        record["table_name"],
        record["op"],
        decode_row(record["data"], binary_columns, excluded),
        _isoformat(record["committed_at"]),
        None if old is None else decode_row(old, binary_columns, excluded),
        None if routes is None else tuple(routes),
    )


@functools.lru_cache(maxsize=64)
def _isoformat(moment: str) -> str:
    """The changes of one statement share their time: each is formatted once (from PostgreSQL's
    text, which hashes faster than a datetime), as ``datetime.isoformat`` writes it in UTC."""
    return commit_time(moment).astimezone(UTC).isoformat()


def commit_time(text: str) -> datetime:
    """A change record's ``committed_at``."""
    return datetime.fromisoformat(text)


async def park(connection: asyncpg.Connection, record: Any, reason: str) -> None:
    """Keep a change that cannot be published in the dead-letter table, with the reason."""
    await connection.execute(
        _PARK_CHANGE,
        record["id"],
        record["captured_at"],
        record["table_name"],
        record["op"],
        record["data"],
        record["old"],
        record["routes"],
        reason,
    )


async def try_lead(connection: asyncpg.Connection) -> bool:
    return await connection.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK) is True


async def next_epoch(connection: asyncpg.Connection) -> tuple[str, int]:
    """The fencing token for a daemon that just took the leader lock: (deployment, a new, higher epoch)."""
    row = await connection.fetchrow("UPDATE cdc_sio.leader SET epoch = epoch + 1 RETURNING deployment::text, epoch")
    return row["deployment"], row["epoch"]


class NotifyProbe:
    """A NOTIFY sent through the LISTEN connection that must come back through it."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.channel = f"cdc_sio_probe_{secrets.token_hex(8)}"
        self._waiting: dict[str, asyncio.Future[None]] = {}
        self._tokens = itertools.count()

    async def start(self) -> None:
        await self.connection.add_listener(self.channel, self._received)

    def _received(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        waiter = self._waiting.pop(payload, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def round_trip(self) -> None:
        token = str(next(self._tokens))
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[token] = waiter
        try:
            await self.connection.execute("SELECT pg_notify($1, $2)", self.channel, token)
            await waiter
        finally:
            self._waiting.pop(token, None)


@dataclass(frozen=True, slots=True)
class Backlog:
    waiting: int
    oldest_age: float | None
    queue_usage: float


async def backlog(connection: asyncpg.Connection) -> Backlog:
    row = await connection.fetchrow(_BACKLOG)
    return Backlog(row["waiting"], row["oldest_age"], row["queue_usage"])


@dataclass(frozen=True, slots=True)
class DaemonRecord:
    host: str
    pid: int
    backend_pid: int
    role: str
    started_at: datetime
    published: int
    lag_ms: float | None
    last_error: str | None
    last_error_at: datetime | None


async def record_daemon(connection: asyncpg.Connection, record: DaemonRecord) -> None:
    await connection.execute(
        _RECORD_DAEMON,
        record.host,
        record.pid,
        record.backend_pid,
        record.role,
        record.started_at,
        record.published,
        record.lag_ms,
        record.last_error,
        record.last_error_at,
    )


async def forget_daemons(connection: asyncpg.Connection, host: str, pid: int) -> None:
    """Delete this daemon's row, and the rows of daemons not seen for a day."""
    await connection.execute(
        "DELETE FROM cdc_sio.daemons WHERE (host = $1 AND pid = $2) OR updated_at < now() - interval '1 day'",
        host,
        pid,
    )


async def enter_idle(connection: asyncpg.Connection) -> bool:
    """Take the idle lock, so that writers notify; False while a writer that did not notify is open."""
    return await connection.fetchval("SELECT pg_try_advisory_lock($1)", IDLE_LOCK) is True


async def leave_idle(connection: asyncpg.Connection) -> None:
    await connection.execute("SELECT pg_advisory_unlock($1)", IDLE_LOCK)
