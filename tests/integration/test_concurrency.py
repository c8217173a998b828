"""Many writers, rollbacks, a long transaction and a daemon killed with SIGKILL: nothing is lost."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from pathlib import Path

import asyncpg

from tests.support import REDIS_URL, Subscriber, make_config, meta_of, migrate_database, row_of

WRITERS = 8
TOTAL_CHANGES = 12_500  # committed and rolled back; about 10 % are rolled back
SHARED_ROWS = 300

Key = tuple[str, int, str]  # (operation, row id, token)


class Ledger:
    def __init__(self) -> None:
        self.committed: set[Key] = set()
        self.rolled_back: set[Key] = set()
        self.changes = 0
        self.progress = asyncio.Condition()

    async def count(self, changes: int) -> None:
        async with self.progress:
            self.changes += changes
            self.progress.notify_all()

    async def reached(self, changes: float, timeout: float) -> None:
        async with asyncio.timeout(timeout), self.progress:
            await self.progress.wait_for(lambda: self.changes >= changes)


async def writer(dsn: str, number: int, ledger: Ledger, rng: random.Random) -> None:
    connection = await asyncpg.connect(dsn)
    next_insert = 1_000_000 * (number + 1)
    counter = 0
    try:
        while ledger.changes < TOTAL_CHANGES:
            keys: list[Key] = []
            discarded: list[Key] = []
            transaction = connection.transaction()
            await transaction.start()
            savepoint_at = rng.randrange(8) if rng.random() < 0.1 else -1
            for i, row in enumerate(sorted(rng.sample(range(1, SHARED_ROWS + 1), rng.randint(1, 8)))):
                counter += 1
                token = f"w{number}-{counter}"
                savepoint = connection.transaction() if i == savepoint_at else None
                if savepoint is not None:
                    await savepoint.start()
                choice = rng.random()
                if choice < 0.1:
                    next_insert += 1
                    await connection.execute("INSERT INTO things (id, token) VALUES ($1, $2)", next_insert, token)
                    done: list[Key] = [("insert", next_insert, token)]
                elif choice < 0.13:  # delete the row, and insert it again so that it lives on
                    old = await connection.fetchrow("DELETE FROM things WHERE id = $1 RETURNING token, v", row)
                    done = []
                    if old is not None:  # None: a concurrent writer replaced the row first
                        await connection.execute(
                            "INSERT INTO things (id, token, v) VALUES ($1, $2, $3)", row, token, old["v"] + 1
                        )
                        done = [("delete", row, old["token"]), ("insert", row, token)]
                else:
                    hit = await connection.fetchval(
                        "UPDATE things SET v = v + 1, token = $2 WHERE id = $1 RETURNING id", row, token
                    )
                    done = [("update", row, token)] if hit is not None else []
                await ledger.count(len(done))
                if savepoint is not None:
                    await savepoint.rollback()
                    discarded += [k for k in done if k[0] != "delete"]
                else:
                    keys += done
            await asyncio.sleep(rng.random() * 0.002)  # a transaction of random length
            if rng.random() < 0.1:
                await transaction.rollback()
                ledger.rolled_back.update(k for k in keys if k[0] != "delete")
            else:
                await transaction.commit()
                ledger.committed.update(keys)
            ledger.rolled_back.update(discarded)
    finally:
        await connection.close()


async def start_daemon(config_path: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cdc_sio", "run", "--config", str(config_path), stderr=asyncio.subprocess.DEVNULL
    )


async def test_ten_thousand_changes_with_rollbacks_and_sigkill_lose_nothing_and_keep_row_order(
    dsn: str, key: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    config = make_config(dsn, key, batch_size=500)
    await migrate_database(config)
    setup = await asyncpg.connect(dsn)
    await setup.executemany(
        "INSERT INTO things (id, token) VALUES ($1, 'seed')", [(i,) for i in range(1, SHARED_ROWS + 1)]
    )
    await setup.execute("DELETE FROM cdc_sio.changes")
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        f'[postgres]\ndsn = "{dsn}"\n[redis]\nurl = "{REDIS_URL}"\n[socketio]\nkey = "{key}"\n'
        "[daemon]\npoll_interval = 0.2\nbatch_size = 500\n"
        '[[tables]]\ntable = "things"\nrooms = ["thing:{id}"]\n'
        '[tables.events]\ninsert = "c"\nupdate = "u"\ndelete = "d"\n'
    )
    ledger = Ledger()
    rng = random.Random(20261128)

    long_running = await asyncpg.connect(dsn)
    long_transaction = long_running.transaction()
    await long_transaction.start()
    await long_running.execute("INSERT INTO things (id, token) VALUES (999, 'long')")

    daemon = await start_daemon(config_path)
    writers = asyncio.gather(*(writer(dsn, n, ledger, random.Random(rng.random())) for n in range(WRITERS)))
    kills = 0
    try:
        for fraction in (0.3, 0.6):
            await ledger.reached(TOTAL_CHANGES * fraction, timeout=120)
            daemon.send_signal(signal.SIGKILL)
            await daemon.wait()
            kills += 1
            await ledger.reached(TOTAL_CHANGES * (fraction + 0.05), timeout=120)
            daemon = await start_daemon(config_path)
        await long_transaction.commit()
        ledger.committed.add(("insert", 999, "long"))
        await asyncio.wait_for(writers, timeout=180)

        arrived: list[tuple[Key, int, int]] = []  # (key, v, change id)
        missing = set(ledger.committed)
        async with asyncio.timeout(120):
            while missing:
                _, emission = await subscriber.next(timeout=60)
                row = row_of(emission)
                key_ = ({"c": "insert", "u": "update", "d": "delete"}[emission.event], row["id"], row["token"])
                arrived.append((key_, row["v"], meta_of(emission)["id"]))
                missing.discard(key_)
    finally:
        if daemon.returncode is None:
            daemon.send_signal(signal.SIGTERM)
            await asyncio.wait_for(daemon.wait(), 30)
        await long_running.close()
        await setup.close()

    published = {k for k, _, _ in arrived}
    assert kills == 2 and daemon.returncode == 0
    assert len(ledger.committed) >= 10_000
    assert not (published & ledger.rolled_back), "published a change of rolled-back work"
    assert published <= ledger.committed, "published a change that never committed"
    # A batch replayed after a crash repeats changes the client has seen (it drops them by change id);
    # a change never seen before must never arrive after a later change of the same row.
    seen: set[int] = set()
    last: dict[int, tuple[int, int]] = {}  # row id -> (change id, v)
    out_of_order = []
    for (_, row_id, _), v, change_id in arrived:
        if change_id in seen:
            continue
        seen.add(change_id)
        if last.get(row_id, (0, 0)) > (change_id, v):
            out_of_order.append(row_id)
        last[row_id] = (change_id, v)
    assert not out_of_order, f"rows published out of order: {out_of_order[:5]}"
    duplicates = len(arrived) - len({change_id for _, _, change_id in arrived})
    print(f"committed={len(ledger.committed)} rolled_back={len(ledger.rolled_back)} duplicates={duplicates}")
