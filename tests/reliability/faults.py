"""Run the workload against the real daemon, Node Socket.IO server and socket.io-client, with a fault."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio
import redis.exceptions

from cdc_sio.config import load_config
from tests.interop.harness import ServerSpec, connect_client, start_server
from tests.reliability.workload import CONFIG_TABLE, Arrival, Ledger, Report, arrival, check, seed, writer
from tests.servers import RedisServer
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

    def record(self, item: Arrival) -> None:
        self.arrivals.append(item)
        self.received.set()

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


class SocketIOObserver:
    """A Node Socket.IO server on the classic Redis adapter, and a socket.io-client in room "things"."""

    def settings(self, key: str) -> str:
        return f'[redis]\nurl = "{REDIS_URL}"\n[socketio]\nkey = "{key}"\n'

    async def start(self, run: Run) -> None:
        self.server = await start_server(ServerSpec("redis", run.key, REDIS_URL), ["/"])
        self.client = await connect_client(self.server, "/", ["things"])
        self.reader = asyncio.create_task(self._record(run))

    async def _record(self, run: Run) -> None:
        while True:
            event = await self.client.next_event(timeout=3600)
            run.record(arrival(event.event, event.args, time.monotonic()))

    async def stop(self) -> None:
        self.reader.cancel()
        await self.client.stop()
        await self.server.stop()


class StreamObserver:
    """The Redis Streams target on a Redis of its own (append-only file, fsync always), read from the start.

    Restarting that Redis loses nothing Redis acknowledged, so what the stream holds is exactly what
    cdc-sio published, whatever happened to Redis meanwhile.
    """

    def __init__(self, redis: RedisServer) -> None:
        self.redis = redis

    def settings(self, key: str) -> str:
        return (
            f'[redis]\nurl = "{self.redis.url}"\n'
            f'[socketio]\nadapter = "redis-streams"\nstream_name = "{key}"\nmaxlen = 10000000\n'
        )

    async def start(self, run: Run) -> None:
        self.reader = asyncio.create_task(self._record(run))

    async def _record(self, run: Run) -> None:
        last = "0"
        while True:
            client = redis.asyncio.Redis.from_url(self.redis.url)
            try:
                while True:
                    for _, entries in await client.xread({run.key: last}, block=1000, count=1000) or ():
                        for entry_id, fields in entries:
                            last = entry_id.decode()
                            packet = json.loads(fields[b"data"])["packet"]
                            run.record(arrival(packet["data"][0], packet["data"][1:], time.monotonic()))
            except (redis.exceptions.ConnectionError, OSError):
                await asyncio.sleep(0.05)  # Redis is restarting: read on from the last entry once it is back
            finally:
                await client.aclose()

    async def stop(self) -> None:
        self.reader.cancel()
        await asyncio.gather(self.reader, return_exceptions=True)


Observer = SocketIOObserver | StreamObserver


async def run_scenario(
    dsn: str,
    key: str,
    tmp: Path,
    fault: Fault,
    *,
    total: int = 4000,
    writers: int = 6,
    seed_value: int = 7,
    observer: Observer | None = None,
) -> Report:
    """Migrate, start one daemon and the observer, run the workload with *fault*, and check."""
    observer = observer or SocketIOObserver()
    config_path = tmp / "cdc-sio.toml"
    config_path.write_text(
        f'[postgres]\ndsn = "{dsn}"\n{observer.settings(key)}'
        f"[daemon]\npoll_interval = 0.2\nbatch_size = 500\n{CONFIG_TABLE}"
    )
    await migrate_database(load_config(config_path, {}))
    connection = await asyncpg.connect(dsn)
    await seed(connection)
    await connection.close()

    run = Run(dsn, key, config_path, total)
    await observer.start(run)
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
        await observer.stop()
    return check(run.ledger, run.arrivals)


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
