"""PostgreSQL connections and the SQL files of cdc_sio/sql, shared by every I/O shell."""

from __future__ import annotations

from importlib import resources

import asyncpg


async def connect(dsn: str, role: str) -> asyncpg.Connection:
    """A connection that operators can find in pg_stat_activity as ``cdc-sio:<role>``."""
    return await asyncpg.connect(dsn, server_settings={"application_name": f"cdc-sio:{role}"}, statement_cache_size=16)


def sql_file(name: str) -> str:
    return resources.files("cdc_sio.sql").joinpath(name).read_text()
