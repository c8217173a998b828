"""Drain a large backlog: is memory flat, do new changes get through, how big is the change log after?

    .venv/bin/python bench/backlog_memory.py --changes 1000000 [--baseline 100000]

Creates its own database on the local PostgreSQL (127.0.0.1:5432, role postgres), captures
--changes row changes with the daemon stopped, then starts ``cdc-sio run`` and samples its RSS
(/proc/PID/status) while it drains them; a writer meanwhile commits one new change every 50 ms
and records when each one is published (it is gone from the change log). With --baseline, the same
is run first with that many changes, and the peak RSS of the two runs is compared as a ratio
(flat memory: about 1.0). Prints one JSON object per run. Stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import ADMIN_DSN, database_dsn, make_config, migrate_database, write_config_file  # noqa: E402

SIZES = """
SELECT pg_relation_size('cdc_sio.changes') AS heap,
       pg_indexes_size('cdc_sio.changes') AS indexes,
       pg_total_relation_size('cdc_sio.changes') AS total
"""


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for process {pid}")


async def wait_for_autovacuum(db: asyncpg.Connection, timeout: float) -> bool:
    """Whether autovacuum processed the change log within *timeout* seconds (with the daemon running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await db.fetchval(
            "SELECT last_autovacuum IS NOT NULL FROM pg_stat_user_tables WHERE relid = 'cdc_sio.changes'::regclass"
        ):
            return True
        await asyncio.sleep(1)
    return False


async def run_once(changes: int, batch_size: int, autovacuum_wait: float) -> dict[str, Any]:
    name = f"cdc_sio_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = database_dsn(name)
    daemon = None
    try:
        db = await asyncpg.connect(dsn)
        await db.execute("CREATE TABLE things (id bigint PRIMARY KEY, org_id integer, name text, v integer DEFAULT 0)")
        key = f"cdc-sio-bench-{secrets.token_hex(4)}"
        table = {"table": "things", "rooms": ["thing:{id}"], "events": {"insert": "c"}}
        await migrate_database(make_config(dsn, key, table))
        started = time.monotonic()
        await db.execute(
            "INSERT INTO things (id, org_id, name) SELECT g, g % 100, 'thing ' || g FROM generate_series(1, $1) g",
            changes,
        )
        capture_s = time.monotonic() - started
        backlog_end = await db.fetchval("SELECT max(id) FROM cdc_sio.changes")
        before = dict(await db.fetchrow(SIZES))

        with tempfile.TemporaryDirectory() as directory:
            config = write_config_file(Path(directory) / "config.toml", dsn, key, batch_size=batch_size)
            daemon = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cdc_sio", "run", "--config", str(config),
                stderr=asyncio.subprocess.DEVNULL, env={**os.environ, "CDC_SIO_LOG_LEVEL": "WARNING"},
            )  # fmt: skip
            started = time.monotonic()
            samples: list[tuple[float, int]] = []
            new_changes: dict[int, float] = {}  # id -> commit time
            delays: list[float] = []
            next_id = changes + 1
            while True:
                await db.execute("INSERT INTO things (id) VALUES ($1)", next_id)
                new_changes[next_id] = time.monotonic()
                next_id += 1
                samples.append((time.monotonic() - started, status_kib(daemon.pid, "VmRSS")))
                waiting = await db.fetch(
                    "SELECT (data->>'id')::bigint AS id FROM cdc_sio.changes WHERE id > $1", backlog_end
                )
                present = {row["id"] for row in waiting}
                for change_id in [c for c in new_changes if c not in present]:
                    delays.append(time.monotonic() - new_changes.pop(change_id))
                if not new_changes and await db.fetchval("SELECT NOT EXISTS (SELECT FROM cdc_sio.changes)"):
                    break
                await asyncio.sleep(0.05)
            drain_s = time.monotonic() - started
            peak_kib = status_kib(daemon.pid, "VmHWM")
            after = dict(await db.fetchrow(SIZES))
            autovacuumed = await wait_for_autovacuum(db, autovacuum_wait)
            after_autovacuum = dict(await db.fetchrow(SIZES))
        await db.execute("VACUUM cdc_sio.changes")
        after_vacuum = dict(await db.fetchrow(SIZES))
        await db.close()
        rss = [kib for _, kib in samples]
        warm = rss[len(rss) // 10 :] or rss
        delays.sort()
        return {
            "changes": changes,
            "batch_size": batch_size,
            "capture_s": round(capture_s, 1),
            "drain_s": round(drain_s, 1),
            "changes_per_s": round(changes / drain_s),
            "peak_rss_mib": round(peak_kib / 1024, 1),
            "rss_mib_first_tenth_max": round(max(rss[: max(1, len(rss) // 10)]) / 1024, 1),
            "rss_mib_rest_min_max": [round(min(warm) / 1024, 1), round(max(warm) / 1024, 1)],
            "new_changes_during_drain": len(delays),
            "new_change_delay_s_p50_max": [round(delays[len(delays) // 2], 1), round(delays[-1], 1)],
            "change_log_mib_before": round(before["total"] / 2**20, 1),
            "change_log_mib_after_drain": round(after["total"] / 2**20, 1),
            "autovacuum_ran_within_s": autovacuum_wait if autovacuumed else None,
            "change_log_mib_after_autovacuum_wait": round(after_autovacuum["total"] / 2**20, 1),
            "change_log_mib_after_vacuum": round(after_vacuum["total"] / 2**20, 1),
            "heap_mib_before_after_vacuum": [round(before["heap"] / 2**20, 1), round(after_vacuum["heap"] / 2**20, 1)],
        }
    finally:
        if daemon is not None and daemon.returncode is None:
            daemon.terminate()
            await asyncio.wait_for(daemon.wait(), 60)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=1_000_000)
    parser.add_argument("--baseline", type=int, default=0, help="run this many changes first and compare")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--autovacuum-wait", type=float, default=90.0, help="seconds to wait for autovacuum")
    args = parser.parse_args()
    results = []
    for changes in [n for n in (args.baseline, args.changes) if n]:
        results.append(await run_once(changes, args.batch_size, args.autovacuum_wait))
        print(json.dumps(results[-1]), flush=True)
    if len(results) == 2:
        ratio = results[1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
        print(json.dumps({"peak_rss_ratio": round(ratio, 2), "changes_ratio": args.changes / args.baseline}))


if __name__ == "__main__":
    asyncio.run(main())
