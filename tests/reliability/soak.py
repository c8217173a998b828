"""The full soak: ``python -m tests.reliability.soak [--changes 200000] [--kills 20]``.

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

from tests.reliability.faults import Fault, Run, run_scenario
from tests.reliability.workload import Report
from tests.support import new_database


def kills(count: int) -> Fault:
    async def fault(run: Run) -> None:
        for i in range(count):
            await run.at((i + 0.5) / (count + 1))
            await run.kill(run.daemons[-1])
            await run.at((i + 0.75) / (count + 1))
            await run.start_daemon()

    return fault


async def soak(changes: int, kill_count: int) -> list[tuple[str, Report]]:
    from tests.reliability.test_faults import hold_a_transaction_open, kill_connections, kill_the_active_of_two

    scenarios: list[tuple[str, Fault]] = [
        (f"sigkill x{kill_count}", kills(kill_count)),
        ("connections terminated", kill_connections),
        ("transaction held open", hold_a_transaction_open),
        ("standby takeover", kill_the_active_of_two),
    ]
    results = []
    for name, fault in scenarios:
        async with new_database() as dsn:
            with tempfile.TemporaryDirectory() as tmp:
                key = f"cdc-sio-soak-{secrets.token_hex(4)}"
                report = await run_scenario(dsn, key, Path(tmp), fault, total=changes, writers=8)
        print(report.render(name), flush=True)
        results.append((name, report))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=200_000, help="changes per scenario (default 200000)")
    parser.add_argument("--kills", type=int, default=20, help="daemon SIGKILLs in the kill scenario (default 20)")
    args = parser.parse_args()
    results = asyncio.run(soak(args.changes, args.kills))
    failed = [name for name, r in results if r.lost or r.published_rolled_back or r.order_violations]
    print("soak: " + ("FAILED " + ", ".join(failed) if failed else "all invariants held"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
