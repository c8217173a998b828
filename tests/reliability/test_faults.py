"""The fault-injection suite (CI subset): no loss, nothing from rolled-back work, per-row order.

Each scenario runs concurrent writers against the real daemon (a subprocess), with a real Node
Socket.IO server and socket.io-client recording what arrived, breaks something on purpose, and
checks the invariants from the outside. The soak (`python -m tests.reliability.soak`) runs the
same scenarios at full size.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest

from tests.reliability.faults import Fault, Run, StreamObserver, run_scenario
from tests.reliability.workload import Report
from tests.servers import RedisServer

pytestmark = pytest.mark.interop


def assert_invariants(report: Report, scenario: str, *, crashes: bool) -> None:
    print(report.render(scenario))
    assert report.committed >= 1000
    assert report.lost == 0
    assert report.published_rolled_back == 0
    assert report.order_violations == 0
    if not crashes:
        assert report.duplicates == 0


async def sigkill_repeatedly(run: Run) -> None:
    for i in range(5):
        await run.at(0.1 + i * 0.15)
        await run.kill(run.daemons[-1])
        await run.at(0.15 + i * 0.15)
        await run.start_daemon()


async def kill_connections(run: Run) -> None:
    killed = 0
    for fraction in (0.2, 0.5, 0.8):
        await run.at(fraction)
        killed += await run.sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name IN ('cdc-sio:listener', 'cdc-sio:worker')"
        )
    assert killed >= 3  # at least one connection each time (a reconnecting daemon may have only one)


async def lose_notifications(run: Run) -> None:
    await run.sql("CREATE OR REPLACE FUNCTION cdc_sio.wake_v1() RETURNS void LANGUAGE sql AS 'SELECT'")


async def hold_a_transaction_open(run: Run) -> None:
    connection = await asyncpg.connect(run.dsn)
    try:
        transaction = connection.transaction()
        await transaction.start()
        await connection.execute("INSERT INTO things (id, token) VALUES (999, 'long')")
        await run.at(0.8)
        opened_for = len(run.arrivals)
        assert opened_for > 1000, "the others were held back by the open transaction"
        await transaction.commit()
        run.ledger.committed["insert", 999, "long"] = time.monotonic()
    finally:
        await connection.close()


async def kill_the_active_of_two(run: Run) -> None:
    await run.at(0.1)
    standby = await run.start_daemon()
    await run.at(0.5)
    await run.kill(run.daemons[0])
    assert standby.returncode is None


def restart_redis(redis: RedisServer, times: int = 3) -> Fault:
    """Kill the daemon's Redis (SIGKILL) and start it again, *times* times during the workload."""

    async def fault(run: Run) -> None:
        for i in range(times):
            await run.at((i + 1) / (times + 1))
            await redis.stop()
            await run.at((i + 1.3) / (times + 1))
            await redis.start()

    fault.__name__ = f"restart_redis_x{times}"
    return fault


async def test_redis_restarts_lose_nothing_cdc_sio_published(dsn: str, key: str, tmp_path: Path) -> None:
    """Observed through the Redis Streams target on a Redis that persists what it acknowledges."""
    redis = RedisServer("--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path))
    await redis.start()
    try:
        fault = restart_redis(redis)
        report = await asyncio.wait_for(
            run_scenario(dsn, key, tmp_path, fault, observer=StreamObserver(redis)), timeout=600
        )
    finally:
        await redis.stop()
    assert_invariants(report, fault.__name__, crashes=True)


@pytest.mark.parametrize(
    ("fault", "crashes"),
    [
        (sigkill_repeatedly, True),
        (kill_connections, True),
        (lose_notifications, False),
        (hold_a_transaction_open, False),
        (kill_the_active_of_two, True),
    ],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
async def test_invariants_hold_under_faults(fault, crashes: bool, dsn: str, key: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    report = await asyncio.wait_for(run_scenario(dsn, key, tmp_path, fault), timeout=600)
    assert_invariants(report, fault.__name__, crashes=crashes)
