"""Drive real Socket.IO servers and clients (Node socket.io with each Redis adapter, python-socketio) from tests.

Every helper process prints one JSON line per fact: servers ``{"ready": true, "port"}``; clients
``{"joined": true, "id"}``, ``{"event", "args"}``, ``{"disconnected": reason}``, ``{"reconnected": true,
"recovered"}``. Binary values arrive as ``{"$binary": base64}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

NODE_DIR = Path(__file__).resolve().parent / "node"
PYTHON_DIR = Path(__file__).resolve().parent / "python_socketio"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
_LINE_LIMIT = 16 * 1024 * 1024
DEFAULT_NAMESPACES = ("/", "/admin")


class NodeProcessError(RuntimeError):
    """A helper process failed to start or exited unexpectedly."""


@dataclass(frozen=True)
class ReceivedEvent:
    event: str
    args: list[Any]


@dataclass(frozen=True)
class ServerSpec:
    """How to start one Socket.IO server of a cluster: its adapter and the adapter's options."""

    adapter: str  # "redis" | "redis-sharded" | "redis-streams" | "python-socketio"
    key: str  # the adapter's key / channelPrefix / streamName, or python-socketio's channel
    redis_url: str
    cluster: bool = False  # redis_url is one node of a Redis Cluster
    subscription_mode: str = "dynamic"
    stream_count: int = 1
    recovery_ms: int = 0  # connection-state recovery window (Node only; 0: off)

    @property
    def python(self) -> bool:
        return self.adapter == "python-socketio"

    def argv(self, namespaces: Sequence[str]) -> list[str]:
        common = [
            "--port=0",
            f"--redis-url={self.redis_url}",
            f"--key={self.key}",
            f"--namespaces={','.join(namespaces)}",
        ]
        if self.python:
            return [sys.executable, str(PYTHON_DIR / "server.py"), *common]
        return [
            "node",
            "server.js",
            *common,
            f"--adapter={self.adapter}",
            f"--subscription-mode={self.subscription_mode}",
            f"--stream-count={self.stream_count}",
            f"--recovery={self.recovery_ms}",
            *(["--cluster"] if self.cluster else []),
        ]


def ensure_node_modules() -> None:
    if shutil.which("node") is None:
        raise NodeProcessError("`node` is not on PATH; the interop tests need Node.js >= 20")
    if not (NODE_DIR / "node_modules" / "socket.io").is_dir():
        raise NodeProcessError(f"{NODE_DIR / 'node_modules'} is missing; run `npm ci --prefix tests/interop/node`")


class _Process:
    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self._proc = proc
        self._lines: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._stderr = bytearray()
        self._exited = False
        self._stdout_task = asyncio.create_task(self._read_stdout())
        self._stderr_task = asyncio.create_task(self._read_stderr())

    @classmethod
    async def spawn(cls, name: str, argv: Sequence[str]) -> _Process:
        ensure_node_modules()
        proc = await asyncio.create_subprocess_exec(
            *argv,
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

    async def send(self, command: str) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(f"{command}\n".encode())
        await self._proc.stdin.drain()

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


class SocketServer:
    def __init__(self, process: _Process, port: int, spec: ServerSpec) -> None:
        self._process = process
        self.port = port
        self.spec = spec
        self.url = f"http://127.0.0.1:{port}"

    def __repr__(self) -> str:
        return f"<SocketServer {self.spec.adapter} {self.url}>"

    async def stop(self) -> None:
        await self._process.stop()


class SocketClient:
    def __init__(self, process: _Process, sid: str, early: Sequence[dict[str, Any]]) -> None:
        self._process = process
        self.id = sid
        self.received: list[ReceivedEvent] = []
        self._pending: deque[dict[str, Any]] = deque(early)

    def __repr__(self) -> str:
        return f"<SocketClient {self._process.name} id={self.id}>"

    async def _next_line(self) -> dict[str, Any]:
        message = self._pending.popleft() if self._pending else await self._process.read()
        if "event" in message:
            self.received.append(ReceivedEvent(message["event"], message["args"]))
        return message

    async def _next(self) -> ReceivedEvent:
        message = await self._next_line()
        if "event" not in message:
            raise AssertionError(f"{self!r} got {message}; received so far: {self.received!r}")
        return ReceivedEvent(message["event"], message["args"])

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

    async def expect(self, key: str, timeout: float = 10.0) -> dict[str, Any]:
        """The next line, which must carry `key` (e.g. "disconnected"), not an event."""
        try:
            async with asyncio.timeout(timeout):
                message = await self._next_line()
        except TimeoutError:
            raise AssertionError(f"{self!r} printed no {key!r} within {timeout}s") from None
        if key not in message:
            raise AssertionError(f"{self!r} got {message} instead of {key!r}")
        return message

    async def drop(self) -> str:
        """Lose the connection as a broken network would; return the disconnect reason."""
        await self._process.send("drop")
        return str((await self.expect("disconnected"))["disconnected"])

    async def reconnect(self, timeout: float = 10.0) -> bool:
        """Connect again; return whether the server recovered the session.

        Replayed events may come before the client reports the connection: they stay queued for next_event().
        """
        await self._process.send("reconnect")
        replayed: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                while "reconnected" not in (message := await self._process.read()):
                    replayed.append(message)
        except TimeoutError:
            raise AssertionError(f"{self!r} did not reconnect within {timeout}s") from None
        self._pending.extend(replayed)
        return bool(message["recovered"])

    async def stop(self) -> None:
        await self._process.stop()


async def start_server(spec: ServerSpec, namespaces: Sequence[str] = DEFAULT_NAMESPACES) -> SocketServer:
    process = await _Process.spawn(f"server({spec.adapter}, key={spec.key})", spec.argv(namespaces))
    ready, _ = await process.read_startup_line("ready")
    return SocketServer(process, int(ready["port"]), spec)


async def connect_client(
    server: SocketServer, nsp: str = "/", rooms: Sequence[str] = (), *, also_nsp: str | None = None
) -> SocketClient:
    """A socket.io-client for a Node server, python-socketio's AsyncClient for a python-socketio one.

    *also_nsp* (Node only) connects a second namespace over the same connection.
    """
    options = [f"--url={server.url}", f"--nsp={nsp}", f"--rooms={','.join(rooms)}"]
    if also_nsp:
        options.append(f"--also-nsp={also_nsp}")
    if server.spec.python:
        argv = [sys.executable, str(PYTHON_DIR / "client.py"), *options]
    else:
        argv = ["node", "client.js", *options]
    process = await _Process.spawn(f"client(nsp={nsp}, rooms={list(rooms)})", argv)
    joined, before = await process.read_startup_line("joined")
    return SocketClient(process, joined["id"], before)


class ServerFactory(Protocol):
    async def __call__(
        self, namespaces: Sequence[str] = DEFAULT_NAMESPACES, key: str | None = None
    ) -> SocketServer: ...


class ClientFactory(Protocol):
    async def __call__(
        self, server: SocketServer, nsp: str = "/", rooms: Sequence[str] = (), *, also_nsp: str | None = None
    ) -> SocketClient: ...
