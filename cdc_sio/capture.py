"""The PostgreSQL side of the daemon: wake-ups (LISTEN) and the change log (claim, park)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import asyncpg

from cdc_sio.pg import sql_file
from cdc_sio.routing import Change
from cdc_sio.triggers import IDLE_LOCK
from cdc_sio.values import decode_row

WAKE_CHANNEL = "cdc_sio_v1"
LEADER_LOCK = 0x63646373696F01  # held by the one daemon that publishes
_CLAIM_BATCH = sql_file("claim_batch.sql")
# The claim made while the batch before it is still being published passes over that batch's rows
# (locked by its DELETE); every older change is in that batch or published, so id order holds.
_CLAIM_NEXT_BATCH = _CLAIM_BATCH.replace("ORDER BY id LIMIT $1)", "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)")
assert _CLAIM_NEXT_BATCH != _CLAIM_BATCH
_PARK_CHANGE = sql_file("park_change.sql")


async def listen(connection: asyncpg.Connection, wake: asyncio.Event) -> None:
    """Set *wake* on every notification; the notification itself carries nothing we trust."""
    await connection.add_listener(WAKE_CHANNEL, lambda *_: wake.set())


async def commit_timestamps_enabled(connection: asyncpg.Connection) -> bool:
    return await connection.fetchval("SELECT current_setting('track_commit_timestamp')::boolean") is True


async def claim_batch(
    connection: asyncpg.Connection, limit: int, *, commit_timestamps: bool, skip_locked: bool = False
) -> list[Any]:
    """Delete and return the oldest waiting changes; call inside the transaction that publishes them.

    *skip_locked*: pass over the changes of a batch claimed on another connection and not yet
    committed (this needs the UPDATE privilege on cdc_sio.changes, as every row lock does).
    """
    sql = _CLAIM_NEXT_BATCH if skip_locked else _CLAIM_BATCH
    return await connection.fetch(sql, limit, commit_timestamps)  # type: ignore[no-any-return]


async def can_skip_locked(connection: asyncpg.Connection) -> bool:
    return await connection.fetchval("SELECT has_table_privilege('cdc_sio.changes', 'UPDATE')") is True


def to_change(record: Any, binary_columns: Collection[str] = ()) -> Change:
    old, routes = record["old"], record["routes"]
    return Change(
        id=record["id"],
        table=record["table_name"],
        op=record["op"],
        row=decode_row(record["data"], binary_columns),
        committed_at=record["committed_at"].isoformat(),
        old=None if old is None else decode_row(old, binary_columns),
        routes=None if routes is None else tuple(routes),
    )


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


async def enter_idle(connection: asyncpg.Connection) -> bool:
    """Take the idle lock, so that writers notify; False while a writer that did not notify is open."""
    return await connection.fetchval("SELECT pg_try_advisory_lock($1)", IDLE_LOCK) is True


async def leave_idle(connection: asyncpg.Connection) -> None:
    await connection.execute("SELECT pg_advisory_unlock($1)", IDLE_LOCK)
