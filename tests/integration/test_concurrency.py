"""Many writers, rollbacks, a long transaction and a daemon killed with SIGKILL: nothing is lost."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
from pathlib import Path

import asyncpg

from cdc_sio.config import load_config
from tests.reliability.workload import CONFIG_TABLE, Arrival, Ledger, check, seed, writer
from tests.support import REDIS_URL, Subscriber, meta_of, migrate_database, row_of

WRITERS = 8
TOTAL_CHANGES = 12_500  # committed and rolled back; about 10 % are rolled back
OPERATIONS = {"c": "insert", "u": "update", "d": "delete"}


async def start_daemon(config_path: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdc_sio", "run", "--config", str(config_path), stderr=asyncio.subprocess.DEVNULL
    )


async def test_ten_thousand_changes_with_rollbacks_and_sigkill_lose_nothing_and_keep_row_order(
    dsn: str, key: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    """8 writers, random transaction lengths, rollbacks and savepoints, a transaction held open, and
    the daemon killed with SIGKILL twice: every committed change arrives, nothing rolled back does,
    and per-row order holds."""
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        f'[postgres]\ndsn = "{dsn}"\n[redis]\nurl = "{REDIS_URL}"\n[socketio]\nkey = "{key}"\n'
        f"[daemon]\npoll_interval = 0.2\nbatch_size = 500\n{CONFIG_TABLE}"
    )
    await migrate_database(load_config(config_path, {}))
    setup = await asyncpg.connect(dsn)
    await seed(setup)
    ledger = Ledger()
    rng = random.Random(20261128)

    long_running = await asyncpg.connect(dsn)
    long_transaction = long_running.transaction()
    await long_transaction.start()
    await long_running.execute("INSERT INTO things (id, token) VALUES (999, 'long')")

    daemon = await start_daemon(config_path)
    writers = asyncio.gather(
        *(writer(dsn, n, ledger, TOTAL_CHANGES, random.Random(rng.random())) for n in range(WRITERS))
    )
    kills = 0
    arrivals: list[Arrival] = []
    try:
        for fraction in (0.3, 0.6):
            await ledger.reached(TOTAL_CHANGES * fraction, timeout=120)
            daemon.send_signal(signal.SIGKILL)
            await daemon.wait()
            kills += 1
            await ledger.reached(TOTAL_CHANGES * (fraction + 0.05), timeout=120)
            daemon = await start_daemon(config_path)
        await long_transaction.commit()
        ledger.committed["insert", 999, "long"] = time.monotonic()
        await asyncio.wait_for(writers, timeout=180)

        missing = set(ledger.committed)
        async with asyncio.timeout(120):
            while missing:
                _, emission = await subscriber.next(timeout=60)
                row = row_of(emission)
                item = Arrival(
                    (OPERATIONS[emission.event], row["id"], row["token"]), row["v"], meta_of(emission)["id"], 0
                )
                arrivals.append(item)
                missing.discard(item.key)
    finally:
        if daemon.returncode is None:
            daemon.send_signal(signal.SIGTERM)
            await asyncio.wait_for(daemon.wait(), 30)
        await long_running.close()
        await setup.close()

    report = check(ledger, arrivals)
    print(report.render("sigkill-twice"))
    assert kills == 2 and daemon.returncode == 0
    assert report.committed >= 10_000
    assert (report.lost, report.published_rolled_back, report.order_violations) == (0, 0, 0)
