"""The PostgreSQL side of the daemon: wake-ups (LISTEN) and the change log (claim, park)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

import asyncpg

from cdc_sio.pg import sql_file
from cdc_sio.routing import Change
from cdc_sio.values import decode_row

WAKE_CHANNEL = "cdc_sio_v1"
LEADER_LOCK = 0x63646373696F01  # held by the one daemon that publishes
_CLAIM_BATCH = sql_file("claim_batch.sql")
_PARK_CHANGE = sql_file("park_change.sql")


async def listen(connection: asyncpg.Connection, wake: asyncio.Event) -> None:
    """Set *wake* on every notification; the notification itself carries nothing we trust."""
    await connection.add_listener(WAKE_CHANNEL, lambda *_: wake.set())


async def commit_timestamps_enabled(connection: asyncpg.Connection) -> bool:
    return await connection.fetchval("SELECT current_setting('track_commit_timestamp')::boolean") is True


async def claim_batch(connection: asyncpg.Connection, limit: int, *, commit_timestamps: bool) -> list[Any]:
    """Delete and return the oldest waiting changes; call inside the transaction that publishes them."""
    return await connection.fetch(_CLAIM_BATCH, limit, commit_timestamps)  # type: ignore[no-any-return]


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
