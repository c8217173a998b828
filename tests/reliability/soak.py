"""The full soak: ``python -m tests.reliability.soak [--changes 200000] [--kills 20] [--redis-restarts 5]``.

Runs the fault-injection workload at full size against the local PostgreSQL and Redis, with the
real daemon, a Node Socket.IO server and a socket.io-client, and prints the invariant report of
each scenario. Exits 1 if any invariant failed (a change lost, a rolled-back change published, a
row out of order).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
import tempfile
from pathlib import Path

from tests.reliability.faults import Fault, Observer, Run, StreamObserver, run_scenario
from tests.reliability.workload import Report
from tests.servers import RedisServer
from tests.support import new_database


def kills(count: int) -> Fault:
    async def fault(run: Run) -> None:
        for i in range(count):
            await run.at((i + 0.5) / (count + 1))
            await run.kill(run.daemons[-1])
            await run.at((i + 0.75) / (count + 1))
            await run.start_daemon()

    return fault


def kills_and_restarts(kill_count: int, redis: RedisServer, restarts: int) -> Fault:
    """SIGKILL the daemon *kill_count* times and restart its Redis *restarts* times, interleaved."""

    async def fault(run: Run) -> None:
        events = sorted(
            [((i + 0.5) / (kill_count + 1), "kill") for i in range(kill_count)]
            + [((i + 0.6) / (restarts + 1), "redis") for i in range(restarts)]
        )
        for at, what in events:
            await run.at(at)
            if what == "kill":
                await run.kill(run.daemons[-1])
                await run.at(at + 0.2 / (kill_count + 1))
                await run.start_daemon()
            else:
                await redis.stop()
                await run.at(at + 0.2 / (restarts + 1))
                await redis.start()

    return fault


async def soak(changes: int, kill_count: int, restarts: int) -> list[tuple[str, Report]]:
    from tests.reliability.test_faults import hold_a_transaction_open, kill_connections, kill_the_active_of_two

    results = []

    async def scenario(name: str, fault: Fault, observer: Observer | None = None) -> None:
        async with new_database() as dsn:
            with tempfile.TemporaryDirectory() as tmp:
                key = f"cdc-sio-soak-{secrets.token_hex(4)}"
                report = await run_scenario(dsn, key, Path(tmp), fault, total=changes, writers=8, observer=observer)
        print(report.render(name), flush=True)
        results.append((name, report))

    with tempfile.TemporaryDirectory() as redis_dir:
        redis = RedisServer("--appendonly", "yes", "--appendfsync", "always", "--dir", redis_dir)
        await redis.start()
        try:
            name = f"sigkill x{kill_count} + redis restart x{restarts} (streams target)"
            await scenario(name, kills_and_restarts(kill_count, redis, restarts), StreamObserver(redis))
        finally:
            await redis.stop()
    await scenario(f"sigkill x{kill_count} (socket.io-client)", kills(kill_count))
    await scenario("connections terminated", kill_connections)
    await scenario("transaction held open", hold_a_transaction_open)
    await scenario("standby takeover", kill_the_active_of_two)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=200_000, help="changes per scenario (default 200000)")
    parser.add_argument("--kills", type=int, default=20, help="daemon SIGKILLs in the kill scenarios (default 20)")
    parser.add_argument("--redis-restarts", type=int, default=5, help="Redis restarts (default 5)")
    args = parser.parse_args()
    results = asyncio.run(soak(args.changes, args.kills, args.redis_restarts))
    failed = [name for name, r in results if r.lost or r.published_rolled_back or r.order_violations]
    print("soak: " + ("FAILED " + ", ".join(failed) if failed else "all invariants held"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
