"""A concurrent write workload that records what committed, and the checker of what arrived.

Writers run transactions of 1-8 statements over shared rows (updates, deletes followed by
re-inserts) and new rows (inserts), with savepoints rolled back and whole transactions rolled
back. Every statement writes a unique token, so each published event names the statement it
came from. The checker compares the committed ledger with what a client received.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import asyncpg

Key = tuple[str, int, str]  # (operation, row id, token)
SHARED_ROWS = 300
OPERATIONS = {"c": "insert", "u": "update", "d": "delete"}
CONFIG_TABLE = (
    '[[tables]]\ntable = "things"\nrooms = ["things"]\n[tables.events]\ninsert = "c"\nupdate = "u"\ndelete = "d"\n'
)


@dataclass
class Ledger:
    """What the writers did: committed keys with their commit times, and rolled-back keys."""

    committed: dict[Key, float] = field(default_factory=dict)
    rolled_back: set[Key] = field(default_factory=set)
    changes: int = 0
    progress: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def count(self, changes: int) -> None:
        async with self.progress:
            self.changes += changes
            self.progress.notify_all()

    async def reached(self, changes: float, timeout: float) -> None:
        async with asyncio.timeout(timeout), self.progress:
            await self.progress.wait_for(lambda: self.changes >= changes)


async def seed(connection: asyncpg.Connection) -> None:
    await connection.executemany(
        "INSERT INTO things (id, token) VALUES ($1, 'seed')", [(i,) for i in range(1, SHARED_ROWS + 1)]
    )
    await connection.execute("DELETE FROM cdc_sio.changes")


async def writer(dsn: str, number: int, ledger: Ledger, total: int, rng: random.Random) -> None:
    """Write until the ledger counts *total* changes (committed and rolled back)."""
    connection = await asyncpg.connect(dsn)
    next_insert = 1_000_000 * (number + 1)
    counter = 0
    try:
        while ledger.changes < total:
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
                done: list[Key] = []
                if choice < 0.1:
                    next_insert += 1
                    await connection.execute("INSERT INTO things (id, token) VALUES ($1, $2)", next_insert, token)
                    done = [("insert", next_insert, token)]
                elif choice < 0.13:  # delete the row, and insert it again so that it lives on
                    old = await connection.fetchrow("DELETE FROM things WHERE id = $1 RETURNING token, v", row)
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
                now = time.monotonic()
                ledger.committed.update((k, now) for k in keys)
            ledger.rolled_back.update(discarded)
    finally:
        await connection.close()


@dataclass(frozen=True)
class Arrival:
    key: Key
    v: int
    change_id: int
    at: float  # time.monotonic() when the client's line was read


def arrival(event: str, args: list[object], at: float) -> Arrival:
    row, meta = args[0], args[1]
    assert isinstance(row, dict) and isinstance(meta, dict)
    return Arrival((OPERATIONS[event], row["id"], row["token"]), row["v"], meta["id"], at)


@dataclass(frozen=True)
class Report:
    committed: int
    published: int
    lost: int
    published_rolled_back: int
    duplicates: int
    order_violations: int
    worst_delay_s: float

    def render(self, scenario: str) -> str:
        return (
            f"{scenario}: committed={self.committed} published={self.published} lost={self.lost} "
            f"rolled_back_published={self.published_rolled_back} duplicates={self.duplicates} "
            f"out_of_order={self.order_violations} worst_delay_ms={self.worst_delay_s * 1000:.0f}"
        )


def check(ledger: Ledger, arrivals: Iterable[Arrival]) -> Report:
    """Compare what committed with what arrived (in arrival order).

    A batch replayed after a crash repeats changes the client has seen (it drops them by change
    id): those are duplicates, allowed around crashes. A change never seen before must never
    arrive after a later change of the same row: that is an order violation.
    """
    seen: set[int] = set()
    keys: set[Key] = set()
    last: dict[int, tuple[int, int]] = {}
    duplicates = violations = 0
    worst = 0.0
    for item in arrivals:
        keys.add(item.key)
        if item.change_id in seen:
            duplicates += 1
            continue
        seen.add(item.change_id)
        row_id = item.key[1]
        if last.get(row_id, (0, 0)) > (item.change_id, item.v):
            violations += 1
        last[row_id] = (item.change_id, item.v)
        committed_at = ledger.committed.get(item.key)
        if committed_at is not None:
            worst = max(worst, item.at - committed_at)
    return Report(
        committed=len(ledger.committed),
        published=len(seen),
        lost=len(set(ledger.committed) - keys),
        published_rolled_back=len(keys & ledger.rolled_back),
        duplicates=duplicates,
        order_violations=violations,
        worst_delay_s=worst,
    )
