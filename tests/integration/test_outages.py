"""Servers that go away for real (a throw-away PostgreSQL cluster, Redis on a spare port): nothing is lost."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as redis

from cdc_sio.daemon import Backoff, Daemon
from cdc_sio.systemd import Notifier
from tests.servers import PostgresCluster, RedisServer
from tests.support import LogEvents, Subscriber, free_port, make_config, migrate_database, row_of, running_daemon

FAST_RETRIES = Backoff(first=0.05, cap=0.5)


async def ids_until(subscriber: Subscriber, last: int, timeout: float = 30) -> list[int]:
    return [row_of(e)["id"] for e in await subscriber.until(lambda e: row_of(e)["id"] == last, timeout=timeout)]


@pytest.fixture
async def spare_subscriber(spare_redis: RedisServer, key: str) -> AsyncIterator[Subscriber]:
    subscriber = Subscriber(key, spare_redis.url)
    await subscriber.start()
    yield subscriber
    await subscriber.close()


async def test_a_postgresql_restart_is_one_outage_and_loses_nothing(
    pg_cluster: PostgresCluster, cluster_dsn: str, key: str, subscriber: Subscriber, log_events: LogEvents
) -> None:
    """The server stops under the daemon; changes from before and right after the restart all arrive."""
    config = make_config(cluster_dsn, key)
    await migrate_database(config)
    service = Daemon(config)
    service.backoff = FAST_RETRIES
    async with running_daemon(service):
        db = await asyncpg.connect(cluster_dsn)
        await db.execute("INSERT INTO things (id) VALUES (1)")
        assert await ids_until(subscriber, 1) == [1]
        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(2, 7)])
        await db.close()
        await pg_cluster.stop("fast")
        outage = await log_events.wait("outage_started")
        assert outage["service"] == "postgres"
        assert service.health.summary().startswith("outage: postgres unavailable")
        assert not service.health.ready(config.daemon.probe_interval)
        await pg_cluster.start()
        db = await asyncpg.connect(cluster_dsn)
        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(7, 12)])
        arrived = await ids_until(subscriber, 11)
        await log_events.wait("outage_ended")
        await db.close()
    assert set(arrived) >= set(range(2, 12))  # a batch cut off by the stop may arrive twice, never not at all
    assert len(log_events.named("outage_started")) == len(log_events.named("outage_ended")) == 1
    assert len(log_events.named("retry_failed")) >= 1  # retried more than once, logged at info only once
    assert service.metrics.reconnects.labels("postgres")._value.get() == 1


async def test_redis_restart_refusal_and_dropped_connections_are_retried_without_loss(
    dsn: str, key: str, spare_redis: RedisServer, log_events: LogEvents
) -> None:
    """Redis killed, then back but refusing PUBLISH (NOPERM), then its connections dropped: all changes arrive."""
    config = make_config(dsn, key, redis_url=spare_redis.url)
    await migrate_database(config)
    subscriber = Subscriber(key, spare_redis.url)
    await subscriber.start()
    db = await asyncpg.connect(dsn)
    service = Daemon(config)
    service.backoff = FAST_RETRIES
    try:
        async with running_daemon(service):
            await db.execute("INSERT INTO things (id) VALUES (1)")
            assert await ids_until(subscriber, 1) == [1]
            await subscriber.close()
            await spare_redis.stop()
            await db.execute("INSERT INTO things (id) VALUES (2)")  # committed while Redis is down
            assert (await log_events.wait("outage_started"))["service"] == "redis"
            assert service.health.summary().startswith("outage: redis unavailable")

            spare_redis.options = ("--user", "default", "on", "nopass", "~*", "&*", "+@all", "-publish")
            await spare_redis.start()
            subscriber = Subscriber(key, spare_redis.url)
            await subscriber.start()
            failures = len(log_events.named("retry_failed"))
            await log_events.wait("retry_failed", failures + 2)  # PUBLISH refused: still the same outage
            assert "can't run this command" in log_events.named("retry_failed")[-1]["error"]
            await db.execute("INSERT INTO things (id) VALUES (3)")
            admin = redis.Redis.from_url(spare_redis.url)
            await admin.execute_command("ACL", "SETUSER", "default", "+publish")
            assert set(await ids_until(subscriber, 3)) == {2, 3}
            await log_events.wait("outage_ended")

            await admin.execute_command("CLIENT", "KILL", "TYPE", "normal")  # a network cut, as Redis sees it
            await db.execute("INSERT INTO things (id) VALUES (4)")
            assert 4 in await ids_until(subscriber, 4)
            await admin.aclose()
    finally:
        await subscriber.close()
        await db.close()
    # Two outages (the restart with its refusals, then the cut), each logged once as it starts and ends.
    assert [event for event, _ in log_events.events if event.startswith("outage_")] == [
        "outage_started",
        "outage_ended",
    ] * 2


async def test_redis_oom_and_readonly_stop_only_a_takeover_which_waits_until_redis_accepts_writes(
    dsn: str, key: str, spare_redis: RedisServer, spare_subscriber: Subscriber, log_events: LogEvents
) -> None:
    """A full Redis (maxmemory, noeviction) or a read-only replica still takes PUBLISH from the leader in
    place; a new leader must raise the fencing epoch (a write), so it retries until Redis accepts writes
    again, and the changes committed meanwhile arrive."""
    config = make_config(dsn, key, redis_url=spare_redis.url)
    await migrate_database(config)
    admin = redis.Redis.from_url(spare_redis.url)
    db = await asyncpg.connect(dsn)
    out_of_memory = ("CONFIG", "SET", "maxmemory-policy", "noeviction", "maxmemory", "1")
    cases = [
        (out_of_memory, "OutOfMemoryError", ("CONFIG", "SET", "maxmemory", "0")),
        (("REPLICAOF", "127.0.0.1", str(free_port())), "ReadOnlyError", ("REPLICAOF", "NO", "ONE")),
    ]
    try:
        for number, (breakage, error, repair) in enumerate(cases):
            first, in_place, taking_over = 10 * number + 1, 10 * number + 2, 10 * number + 3
            async with running_daemon(config):
                await db.execute("INSERT INTO things (id) VALUES ($1)", first)  # its epoch is now in Redis
                assert first in await ids_until(spare_subscriber, first)
                await admin.execute_command(*breakage)
                await db.execute("INSERT INTO things (id) VALUES ($1)", in_place)
                assert in_place in await ids_until(spare_subscriber, in_place)
            service = Daemon(config)
            service.backoff = FAST_RETRIES
            async with running_daemon(service):
                await db.execute("INSERT INTO things (id) VALUES ($1)", taking_over)
                outage = await log_events.wait("outage_started", number + 1)
                assert error in outage["error"]
                await admin.execute_command(*repair)
                assert taking_over in await ids_until(spare_subscriber, taking_over)
                await log_events.wait("outage_ended", number + 1)
    finally:
        await admin.aclose()
        await db.close()


async def test_watchdog_is_fed_only_by_real_round_trips(
    dsn: str, key: str, spare_redis: RedisServer, log_events: LogEvents
) -> None:
    """WATCHDOG=1 follows successful round trips; during a Redis outage only STATUS= lines arrive."""
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(f"\0cdc-sio-test-{key}")
    receiver.setblocking(False)
    loop = asyncio.get_running_loop()

    async def message() -> str:
        return (await asyncio.wait_for(loop.sock_recv(receiver, 4096), 15)).decode()

    config = make_config(dsn, key, redis_url=spare_redis.url, probe_interval=0.1)
    await migrate_database(config)
    notifier = Notifier(f"@cdc-sio-test-{key}", watchdog_interval=3.0)
    service = Daemon(config, notifier=notifier)
    service.backoff = FAST_RETRIES
    try:
        async with running_daemon(service):
            while not (await message()).startswith("WATCHDOG=1"):
                pass
            await spare_redis.stop()
            while not (await message()).startswith("STATUS=outage: redis"):
                pass  # WATCHDOG=1 from round trips before the outage may still be queued
            outage_lines = 1
            while outage_lines < 5:  # five reports of the outage, about half a second
                text = await message()
                assert text != "WATCHDOG=1"
                outage_lines += text.startswith("STATUS=outage: redis")
            await spare_redis.start()
            while (text := await message()) != "WATCHDOG=1":
                pass
    finally:
        notifier.close()
        receiver.close()
