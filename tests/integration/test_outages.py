"""Servers that go away for real (a throw-away PostgreSQL cluster, Redis on a spare port): nothing is lost."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as redis
from redis.exceptions import ReadOnlyError, ResponseError

from cdc_sio.daemon import Backoff, Daemon
from cdc_sio.systemd import Notifier
from tests.servers import PostgresCluster, RedisServer, free_port
from tests.support import LogEvents, Subscriber, make_config, migrate_database, row_of, running_daemon

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
            assert "no permissions to run the 'publish' command" in log_events.named("retry_failed")[-1]["error"]
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


async def test_publish_goes_on_under_redis_oom_and_readonly(
    dsn: str, key: str, spare_redis: RedisServer, spare_subscriber: Subscriber
) -> None:
    """PUBLISH is refused neither by a full Redis (maxmemory, noeviction) nor by a read-only replica."""
    config = make_config(dsn, key, redis_url=spare_redis.url)
    await migrate_database(config)
    admin = redis.Redis.from_url(spare_redis.url)
    db = await asyncpg.connect(dsn)
    try:
        async with running_daemon(config):
            await admin.config_set("maxmemory-policy", "noeviction")
            await admin.config_set("maxmemory", "1")
            with pytest.raises(ResponseError, match="used memory"):
                await admin.set("x", "y")
            await db.execute("INSERT INTO things (id) VALUES (1)")
            assert await ids_until(spare_subscriber, 1) == [1]
            await admin.config_set("maxmemory", "0")
            await admin.execute_command("REPLICAOF", "127.0.0.1", str(free_port()))
            with pytest.raises(ReadOnlyError):
                await admin.set("x", "y")
            await db.execute("INSERT INTO things (id) VALUES (2)")
            assert await ids_until(spare_subscriber, 2) == [2]
    finally:
        await admin.execute_command("REPLICAOF", "NO", "ONE")
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
