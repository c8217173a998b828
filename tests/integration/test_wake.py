"""Writers notify only while the daemon is idle, and no wake-up is lost when it goes idle."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from cdc_sio.triggers import IDLE_LOCK
from tests.support import Subscriber, make_config, migrate_database, row_of, running_daemon

BOUND = 2.0  # seconds: far below the backstop poll of these tests, far above a normal delivery


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn)
    yield connection
    await connection.close()


async def daemon_idle(db: asyncpg.Connection) -> bool:
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted AND mode = 'ExclusiveLock' "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND (classid::bigint << 32 | objid::bigint) = $1)",
            IDLE_LOCK,
        )
    )


async def until_idle(db: asyncpg.Connection) -> None:
    """Wait for the daemon to hold the idle lock (it has no event to await: ask the server)."""
    async with asyncio.timeout(BOUND):
        for _ in iter(int, 1):
            if await daemon_idle(db):
                return
            await asyncio.sleep(0.005)


async def test_no_change_waits_for_the_backstop_poll_while_the_daemon_goes_busy_and_idle(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """With the backstop poll at 60 s, every change arrives within 2 s whenever it commits: while the
    daemon reads busily, while it goes idle, once it is idle (a NOTIFY wakes it), and from a writer
    that skipped its NOTIFY and stayed open while the daemon tried to go idle."""
    config = make_config(dsn, key, poll_interval=60)
    await migrate_database(config)
    rng = random.Random(20261128)
    slow = await asyncpg.connect(dsn)
    idle_before = 0
    try:
        async with running_daemon(config):
            for i in range(1, 91):
                if i % 3 == 0:
                    await until_idle(db)
                    idle_before += 1
                else:
                    await asyncio.sleep(rng.random() * 0.01)  # land anywhere in the busy-to-idle transition
                if i % 4 == 0:
                    async with slow.transaction():
                        await slow.execute("INSERT INTO things (id) VALUES ($1)", i)
                        await asyncio.sleep(rng.random() * 0.02)
                else:
                    await db.execute("INSERT INTO things (id) VALUES ($1)", i)
                _, emission = await subscriber.next(timeout=BOUND)
                assert row_of(emission)["id"] == i
    finally:
        await slow.close()
    assert idle_before == 30


async def test_the_daemon_stays_busy_while_a_writer_that_skipped_its_notify_is_open(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """A writer that found the daemon busy holds the idle lock in share mode until it ends, so the
    daemon cannot go idle meanwhile; when it commits, its change is published without a NOTIFY."""
    config = make_config(dsn, key, poll_interval=60)
    await migrate_database(config)
    slow = await asyncpg.connect(dsn)
    slow_pid = await slow.fetchval("SELECT pg_backend_pid()")
    try:
        async with running_daemon(config):
            for row in range(1, 101, 2):
                await db.execute("INSERT INTO things (id) VALUES ($1)", row)  # the daemon is busy for a moment
                await subscriber.next(timeout=BOUND)
                transaction = slow.transaction()
                await transaction.start()
                await slow.execute("INSERT INTO things (id) VALUES ($1)", row + 1)
                skipped_notify = await db.fetchval(
                    "SELECT EXISTS (SELECT FROM pg_locks WHERE pid = $1 AND locktype = 'advisory' "
                    "AND mode = 'ShareLock' AND granted)",
                    slow_pid,
                )
                if skipped_notify:
                    break
                await transaction.commit()  # the daemon was idle already: this one notified
                await subscriber.next(timeout=BOUND)
            else:
                pytest.fail("the daemon was never found busy")
            for _ in range(20):  # meanwhile the daemon keeps trying to go idle, and must not
                assert not await daemon_idle(db)
                await asyncio.sleep(0.01)
            await transaction.commit()
            _, emission = await subscriber.next(timeout=BOUND)
            assert row_of(emission)["id"] == row + 1
            await until_idle(db)
    finally:
        await slow.close()
