"""Drive a real Node Socket.IO server and socket.io-client processes from asyncio tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

NODE_DIR = Path(__file__).resolve().parent / "node"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
_LINE_LIMIT = 16 * 1024 * 1024
DEFAULT_NAMESPACES = ("/", "/admin")


class NodeProcessError(RuntimeError):
    """A Node helper process failed to start or exited unexpectedly."""


@dataclass(frozen=True)
class ReceivedEvent:
    event: str
    args: list[Any]


def ensure_node_modules() -> None:
    if shutil.which("node") is None:
        raise NodeProcessError("`node` is not on PATH; the interop tests need Node.js >= 20")
    if not (NODE_DIR / "node_modules" / "socket.io").is_dir():
        raise NodeProcessError(f"{NODE_DIR / 'node_modules'} is missing; run `npm ci --prefix tests/interop/node`")


class _NodeProcess:
    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self._proc = proc
        self._lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._stderr = bytearray()
        self._exited = False
        self._stdout_task = asyncio.create_task(self._read_stdout())
        self._stderr_task = asyncio.create_task(self._read_stderr())

    @classmethod
    async def spawn(cls, name: str, script: str, *args: str) -> _NodeProcess:
        ensure_node_modules()
        proc = await asyncio.create_subprocess_exec(
            "node",
            script,
            *args,
            cwd=NODE_DIR,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
        )
        return cls(name, proc)

    async def _read_stdout(self) -> None:
        assert self._proc.stdout is not None
        async for raw in self._proc.stdout:
            line = raw.decode().strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                message = {"unparsed": line}
            await self._lines.put(message)
        await self._lines.put(None)

    async def _read_stderr(self) -> None:
        assert self._proc.stderr is not None
        async for chunk in self._proc.stderr:
            self._stderr += chunk

    async def read(self) -> dict[str, Any]:
        """Return the next stdout JSON line; raise NodeProcessError once stdout is closed."""
        if not self._exited:
            message = await self._lines.get()
            if message is not None:
                return message
            self._exited = True
        raise await self.failure("exited")

    async def read_startup_line(self, key: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Wait for the line containing `key`; also return the lines read before it."""
        skipped: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while key not in (message := await self.read()):
                    skipped.append(message)
        except TimeoutError:
            raise await self.failure(f"printed no {key!r} line within {START_TIMEOUT}s") from None
        return message, skipped

    async def failure(self, what: str) -> NodeProcessError:
        await self.stop()
        stderr = self._stderr.decode(errors="replace").strip() or "<empty>"
        return NodeProcessError(f"{self.name} {what} (exit code {self._proc.returncode}); stderr:\n{stderr}")

    async def stop(self) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.terminate()
            try:
                async with asyncio.timeout(STOP_TIMEOUT):
                    await self._proc.wait()
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        await asyncio.gather(self._stdout_task, self._stderr_task)


class NodeServer:
    def __init__(self, process: _NodeProcess, port: int) -> None:
        self._process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def __repr__(self) -> str:
        return f"<NodeServer {self.url}>"

    async def stop(self) -> None:
        await self._process.stop()


class NodeClient:
    def __init__(self, process: _NodeProcess, sid: str, early: Sequence[ReceivedEvent]) -> None:
        self._process = process
        self.id = sid
        self.received: list[ReceivedEvent] = list(early)
        self._pending: deque[ReceivedEvent] = deque(early)

    def __repr__(self) -> str:
        return f"<NodeClient {self._process.name} id={self.id}>"

    async def _next(self) -> ReceivedEvent:
        if self._pending:
            return self._pending.popleft()
        message = await self._process.read()
        if "event" not in message:
            raise AssertionError(f"{self!r} got {message}; received so far: {self.received!r}")
        event = ReceivedEvent(message["event"], message["args"])
        self.received.append(event)
        return event

    async def next_event(self, timeout: float = 10.0) -> ReceivedEvent:
        try:
            async with asyncio.timeout(timeout):
                return await self._next()
        except TimeoutError:
            raise AssertionError(
                f"{self!r} received no event within {timeout}s; received so far: {self.received!r}"
            ) from None

    async def events_until(self, event_name: str, timeout: float = 10.0) -> list[ReceivedEvent]:
        """Events received up to and including the first one named `event_name`."""
        events: list[ReceivedEvent] = []
        try:
            async with asyncio.timeout(timeout):
                while not events or events[-1].event != event_name:
                    events.append(await self._next())
        except TimeoutError:
            raise AssertionError(
                f"{self!r} received no {event_name!r} within {timeout}s; received meanwhile: {events!r}"
            ) from None
        return events

    async def stop(self) -> None:
        await self._process.stop()


async def start_server(redis_url: str, key: str, namespaces: Sequence[str]) -> NodeServer:
    process = await _NodeProcess.spawn(
        f"server.js(key={key})",
        "server.js",
        "--port=0",
        f"--redis-url={redis_url}",
        f"--key={key}",
        f"--namespaces={','.join(namespaces)}",
    )
    ready, _ = await process.read_startup_line("ready")
    return NodeServer(process, int(ready["port"]))


async def connect_client(url: str, nsp: str, rooms: Sequence[str]) -> NodeClient:
    process = await _NodeProcess.spawn(
        f"client.js(nsp={nsp}, rooms={list(rooms)})",
        "client.js",
        f"--url={url}",
        f"--nsp={nsp}",
        f"--rooms={','.join(rooms)}",
    )
    joined, before = await process.read_startup_line("joined")
    early = [ReceivedEvent(m["event"], m["args"]) for m in before if "event" in m]
    return NodeClient(process, joined["id"], early)


class ServerFactory(Protocol):
    async def __call__(self, namespaces: Sequence[str] = DEFAULT_NAMESPACES, key: str | None = None) -> NodeServer: ...


class ClientFactory(Protocol):
    async def __call__(self, server: NodeServer, nsp: str = "/", rooms: Sequence[str] = ()) -> NodeClient: ...
