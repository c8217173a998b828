"""Bounded resources: draining a backlog takes memory that does not grow with the backlog.

The full measurement (1,000,000 changes, RSS over time, change-log size) is bench/backlog_memory.py.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

from tests.support import make_config, migrate_database, write_config_file


async def peak_rss_kib_of_run_once(config_path: Path) -> int:
    process = subprocess.Popen(  # noqa: ASYNC220 (os.wait4 below needs the child, not an asyncio transport)
        [sys.executable, "-m", "cdc_sio", "run", "--once", "--config", str(config_path)], stderr=subprocess.DEVNULL
    )
    _, status, usage = await asyncio.wait_for(asyncio.to_thread(os.wait4, process.pid, 0), 120)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0
    return int(usage.ru_maxrss)


async def test_memory_stays_flat_draining_a_backlog_five_times_larger(dsn: str, key: str, tmp_path: Path) -> None:
    """The peak RSS of ``run --once`` draining 60,000 changes is within 10 % of draining 12,000."""
    await migrate_database(make_config(dsn, key))
    config_path = write_config_file(tmp_path / "config.toml", dsn, key)
    db = await asyncpg.connect(dsn)
    peaks = []
    try:
        for first, count in ((1, 12_000), (100_001, 60_000)):
            await db.execute(
                "INSERT INTO things (id, name) SELECT g, 'thing ' || g FROM generate_series($1::int, $2::int) g",
                first,
                first + count - 1,
            )
            peaks.append(await peak_rss_kib_of_run_once(config_path))
            assert await db.fetchval("SELECT count(*) FROM cdc_sio.changes") == 0
    finally:
        await db.close()
    small, large = peaks
    print(f"peak RSS: {small / 1024:.1f} MiB for 12,000 changes, {large / 1024:.1f} MiB for 60,000")
    assert large <= small * 1.10, f"peak RSS grew from {small} KiB to {large} KiB"
