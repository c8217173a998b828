"""Throw-away PostgreSQL clusters and Redis servers on spare loopback ports, for tests that stop them."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support import free_port


async def _run(*command: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}): {out.decode()}")
    return out.decode()


class PostgresCluster:
    """An ``initdb`` cluster of its own (trust auth, no fsync), run as the postgres user when we are root."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not binaries:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql")
        self.bin = Path(binaries[-1]).parent
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="cdc-sio-pg-"))
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def _tool(self, name: str, *arguments: str) -> None:
        await _run(*self.as_user, str(self.bin / name), "-D", str(self.directory / "data"), *arguments)

    async def init(self) -> None:
        if self.as_user:
            shutil.chown(self.directory, "postgres", "postgres")
        await self._tool("initdb", "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")

    async def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        await self._tool("pg_ctl", "-o", options, "-l", str(self.directory / "log"), "-w", "start")

    async def stop(self, mode: str = "fast") -> None:
        await self._tool("pg_ctl", "-m", mode, "-w", "stop")

    async def remove(self) -> None:
        with contextlib.suppress(RuntimeError):
            await self.stop("immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


class RedisServer:
    """``redis-server`` on a spare port with no persistence; stop and start it again on the same port."""

    def __init__(self, *options: str) -> None:
        self.port = free_port()
        self.options = options
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            *self.options, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stdout is not None
        async with asyncio.timeout(20):
            while b"Ready to accept connections" not in await self.process.stdout.readline():
                if self.process.stdout.at_eof():
                    raise RuntimeError(f"redis-server on port {self.port} did not start")
        self._drain = asyncio.create_task(self.process.stdout.read())

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await asyncio.wait_for(self.process.wait(), 20)
            await self._drain
        self.process = None


@contextlib.asynccontextmanager
async def redis_server(*options: str) -> AsyncIterator[RedisServer]:
    server = RedisServer(*options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


class HoldingProxy:
    """A TCP proxy on a spare port in front of a server; once armed, it holds the first client write that
    contains *marker* (and everything after it on that connection) until released: a network partition
    that starts at a chosen command."""

    def __init__(self, upstream_port: int, marker: bytes) -> None:
        self.upstream_port = upstream_port
        self.marker = marker
        self.port = free_port()
        self.armed = False
        self.held = asyncio.Event()
        self.released = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        for pump in (self._pump(client_reader, upstream_writer, hold=True), self._pump(upstream_reader, client_writer)):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: bool = False) -> None:
        try:
            while data := await reader.read(65536):
                if hold and self.armed and self.marker in data:
                    self.armed = False
                    self.held.set()
                    await self.released.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        self.released.set()
        self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
