"""Two daemon processes on one database: one publishes; SIGKILL or a pause of it hands over, losing nothing."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import msgpack
import pytest
import redis.asyncio as redis

from cdc_sio.capture import LEADER_LOCK
from tests.servers import HoldingProxy
from tests.support import (
    REDIS_URL,
    DaemonProcess,
    Subscriber,
    make_config,
    migrate_database,
    row_of,
    write_config_file,
)

LEADER_BACKEND = (
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND (classid::bigint << 32 | objid::bigint) = $1 AND database = (SELECT oid FROM pg_database "
    "WHERE datname = current_database())"
)


@pytest.fixture
async def pair(dsn: str, key: str, tmp_path: Path) -> AsyncIterator[tuple[DaemonProcess, DaemonProcess]]:
    """Two daemons, leader first (each READY=1 says its role), stopped afterwards."""
    await migrate_database(make_config(dsn, key))
    path = write_config_file(tmp_path / "config.toml", dsn, key, batch_size=200, probe_interval=0.5)
    daemons = [DaemonProcess(path, CDC_SIO_LOG_LEVEL="DEBUG") for _ in range(2)]
    try:
        roles = []
        for daemon in daemons:
            await daemon.start()
            ready = (await daemon.notification("READY=1"))[-1]
            roles.append(ready.partition("STATUS=")[2].partition(":")[0])
        assert roles == ["leader", "standby"]
        yield daemons[0], daemons[1]
    finally:
        for daemon in daemons:
            await daemon.close()
            print(f"daemon {daemon.pid}:", "".join(line for line in daemon.stderr if not line.startswith("{")))


async def test_sigkill_of_the_leader_hands_over_within_seconds_and_loses_nothing(
    pair: tuple[DaemonProcess, DaemonProcess], dsn: str, subscriber: Subscriber
) -> None:
    """Exactly one daemon publishes; after SIGKILL the standby takes over within a few seconds."""
    leader, standby = pair
    db = await asyncpg.connect(dsn)
    try:
        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(1, 51)])
        first = await subscriber.until(lambda e: row_of(e)["id"] == 50)
        assert sorted(row_of(e)["id"] for e in first) == list(range(1, 51))  # each once: only one publishes
        assert standby.logs.named("batch_published") == []

        leader.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(51, 101)])
        after = await subscriber.until(lambda e: row_of(e)["id"] == 100, timeout=15)
        takeover = time.monotonic() - killed_at
    finally:
        await db.close()
    # A batch published but not yet committed when the leader died comes again (at least once).
    assert set(range(51, 101)) <= {row_of(e)["id"] for e in after} <= set(range(1, 101))
    assert takeover < 5.0, f"the standby took {takeover:.1f} s to take over"
    assert (await standby.notification("STATUS=leader"))[-1].startswith("STATUS=leader")
    print(f"takeover after SIGKILL: {takeover:.2f} s")


async def test_a_paused_leader_publishes_nothing_after_losing_the_lock(
    dsn: str, key: str, subscriber: Subscriber, tmp_path: Path
) -> None:
    """The leader's PUBLISH is held on its way to Redis, the leader is stopped (SIGSTOP) and its worker
    connection killed; the standby takes over and publishes the same changes. When the old leader
    continues (SIGCONT) and its held PUBLISH reaches Redis, the fencing token refuses it."""
    await migrate_database(make_config(dsn, key))
    redis_port = int(REDIS_URL.rpartition(":")[2].partition("/")[0])
    proxy = HoldingProxy(redis_port, b"EVAL")
    await proxy.start()
    behind_proxy = write_config_file(tmp_path / "old.toml", dsn, key, redis_url=f"redis://127.0.0.1:{proxy.port}/0")
    old = DaemonProcess(behind_proxy, CDC_SIO_LOG_LEVEL="DEBUG")
    new = DaemonProcess(write_config_file(tmp_path / "new.toml", dsn, key), CDC_SIO_LOG_LEVEL="DEBUG")
    db = await asyncpg.connect(dsn)
    marker = redis.Redis.from_url(REDIS_URL)
    try:
        await old.start()
        assert (await old.notification("READY=1"))[-1].startswith("READY=1\nSTATUS=leader")
        await new.start()
        assert (await new.notification("READY=1"))[-1].startswith("READY=1\nSTATUS=standby")

        proxy.armed = True
        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(1, 11)])
        await asyncio.wait_for(proxy.held.wait(), 15)  # the old leader's PUBLISH of 1..10 is on its way
        old.send_signal(signal.SIGSTOP)
        await db.execute(f"SELECT pg_terminate_backend(pid) FROM ({LEADER_BACKEND}) l", LEADER_LOCK)
        first = await subscriber.until(lambda e: row_of(e)["id"] == 10)
        assert sorted(row_of(e)["id"] for e in first) == list(range(1, 11))  # from the new leader
        await marker.publish(f"{key}#/#marker#", _marker_message(0))

        old.send_signal(signal.SIGCONT)
        proxy.released.set()
        refused = await old.logs.wait("outage_started")
        assert "FENCED" in refused["error"] or "connection" in refused["error"].lower()
        await old.logs.wait("standby")
        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(11, 21)])
        arrivals = await _arrivals_until(subscriber, 20)
    finally:
        for daemon in (old, new):
            await daemon.close()
        await proxy.close()
        await marker.aclose()
        await db.close()
    after_marker = arrivals[arrivals.index(-1) + 1 :]
    assert sorted(after_marker) == list(range(11, 21)), f"published after the old leader resumed: {after_marker}"
    assert new.logs.named("outage_started") == []


def _marker_message(cycle: int) -> bytes:
    packet = {"type": 2, "data": ["marker", {"id": -1 - cycle}, {"id": -1 - cycle}], "nsp": "/"}
    return msgpack.packb(["test", packet, {"rooms": ["marker"], "flags": {}, "except": []}])  # type: ignore[no-any-return]


async def _arrivals_until(subscriber: Subscriber, last: int) -> list[int]:
    """Row ids in arrival order (the marker as -1), until *last* arrived."""
    arrivals: list[int] = []
    async with asyncio.timeout(30):
        while last not in arrivals:
            _, emission = await subscriber.received.get()
            arrivals.append(row_of(emission)["id"])
    return arrivals
