"""Run the workload against the real daemon, Node Socket.IO server and socket.io-client, with a fault."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from cdc_sio.config import load_config
from tests.interop.harness import ServerSpec, SocketClient, connect_client, start_server
from tests.reliability.workload import CONFIG_TABLE, Arrival, Ledger, Report, arrival, check, seed, writer
from tests.support import REDIS_URL, migrate_database


@dataclass
class Run:
    """One scenario's world: the database, the daemons, the ledger and what the client received."""

    dsn: str
    key: str
    config_path: Path
    total: int
    redis_url: str = REDIS_URL
    ledger: Ledger = field(default_factory=Ledger)
    daemons: list[asyncio.subprocess.Process] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    received: asyncio.Event = field(default_factory=asyncio.Event)

    async def start_daemon(self) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cdc_sio", "run", "--config", str(self.config_path),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        self.daemons.append(process)
        return process

    async def kill(self, process: asyncio.subprocess.Process) -> None:
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10)

    async def at(self, fraction: float) -> None:
        """Wait until the writers have done *fraction* of the workload."""
        await self.ledger.reached(self.total * fraction, timeout=120)

    async def sql(self, statement: str) -> Any:
        connection = await asyncpg.connect(self.dsn)
        try:
            return await connection.fetchval(statement)
        finally:
            await connection.close()


Fault = Callable[[Run], Awaitable[None]]


async def run_scenario(
    dsn: str, key: str, tmp: Path, fault: Fault, *, total: int = 4000, writers: int = 6, seed_value: int = 7
) -> Report:
    """Migrate, start one daemon, a server and a client, run the workload with *fault*, and check."""
    config_path = tmp / "cdc-sio.toml"
    config_path.write_text(
        f'[postgres]\ndsn = "{dsn}"\n[redis]\nurl = "{REDIS_URL}"\n[socketio]\nkey = "{key}"\n'
        f"[daemon]\npoll_interval = 0.2\nbatch_size = 500\n{CONFIG_TABLE}"
    )
    await migrate_database(load_config(config_path, {}))
    connection = await asyncpg.connect(dsn)
    await seed(connection)
    await connection.close()

    run = Run(dsn, key, config_path, total)
    server = await start_server(ServerSpec("redis", key, REDIS_URL), ["/"])
    client = await connect_client(server, "/", ["things"])
    reader = asyncio.create_task(_record(client, run))
    try:
        await run.start_daemon()
        await run.sql("UPDATE things SET token = 'warm-up' WHERE id = 1")
        async with asyncio.timeout(30):
            await run.received.wait()  # the daemon is up and publishing: now the workload starts
        rng = random.Random(seed_value)
        work = asyncio.gather(*(writer(dsn, n, run.ledger, total, random.Random(rng.random())) for n in range(writers)))
        try:
            await fault(run)
        except BaseException:
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
            raise
        await asyncio.wait_for(work, timeout=600)
        if not any(d.returncode is None for d in run.daemons):
            await run.start_daemon()
        await _until_all_arrived(run, timeout=120)
    finally:
        for process in run.daemons:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 30)
        reader.cancel()
        await client.stop()
        await server.stop()
    return check(run.ledger, run.arrivals)


async def _record(client: SocketClient, run: Run) -> None:
    while True:
        event = await client.next_event(timeout=3600)
        run.arrivals.append(arrival(event.event, event.args, time.monotonic()))
        run.received.set()


async def _until_all_arrived(run: Run, timeout: float) -> None:
    """Wait until every committed change arrived (what is missing only shrinks as events come in)."""
    missing = set(run.ledger.committed)
    seen = 0
    async with asyncio.timeout(timeout):
        while True:
            missing.difference_update(a.key for a in run.arrivals[seen:])
            seen = len(run.arrivals)
            if not missing:
                return
            run.received.clear()
            await run.received.wait()
