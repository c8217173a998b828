"""PostgreSQL connections and the SQL files of cdc_sio/sql, shared by every I/O shell."""

from __future__ import annotations

from importlib import resources

import asyncpg


async def connect(dsn: str, role: str, *, synchronous_commit: bool = True) -> asyncpg.Connection:
    """A connection that operators can find in pg_stat_activity as ``cdc-sio:<role>``.

    The daemon's deletes commit with ``synchronous_commit = off``: a delete that a server crash
    loses only publishes its batch again, and none of them waits for a WAL flush.
    """
    settings = {"application_name": f"cdc-sio:{role}", "DateStyle": "ISO"}  # times read as text parse as ISO 8601
    if not synchronous_commit:
        settings["synchronous_commit"] = "off"
    return await asyncpg.connect(dsn, server_settings=settings, statement_cache_size=16)


def sql_file(name: str) -> str:
    return resources.files("cdc_sio.sql").joinpath(name).read_text()
