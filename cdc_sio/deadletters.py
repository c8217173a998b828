"""``cdc-sio dead-letters``: list the changes that could not be published, and retry them."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from cdc_sio.pg import sql_file


async def list_dead_letters(connection: asyncpg.Connection) -> list[str]:
    rows = await connection.fetch(
        "SELECT change_id, table_name, op, reason, failed_at FROM cdc_sio.dead_letters ORDER BY change_id"
    )
    return [
        f"{r['change_id']}\t{r['table_name']}\t{r['op']}\t{r['failed_at'].isoformat()}\t{r['reason']}" for r in rows
    ]


async def retry_dead_letters(connection: asyncpg.Connection, change_ids: Sequence[int] | None) -> int:
    """Move parked changes (all, or those of *change_ids*) back to the change log; return how many."""
    async with connection.transaction():
        count: int = await connection.fetchval(sql_file("retry_dead_letters.sql"), change_ids)
        await connection.execute("SELECT cdc_sio.wake_v1()")
    return count
