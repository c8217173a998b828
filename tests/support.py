"""Helpers shared by the integration, interop and acceptance tests (real PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import asyncpg
import redis.asyncio as redis

from cdc_sio import daemon, migrate, pg, publish
from cdc_sio.config import Config, parse_config
from cdc_sio.encoding import classic_commands, decode_classic
from cdc_sio.routing import Emission

ADMIN_DSN = os.environ.get("CDC_SIO_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CDC_SIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

THINGS_DDL = """
CREATE TABLE things (
    id integer PRIMARY KEY,
    org_id integer,
    name text,
    secret text,
    importance integer NOT NULL DEFAULT 0,
    token text,
    v integer NOT NULL DEFAULT 0
)
"""


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def database_dsn(name: str) -> str:
    base, _, _ = ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


@contextlib.asynccontextmanager
async def new_database(setup_sql: str = THINGS_DDL) -> AsyncIterator[str]:
    """A database of its own for one test, dropped afterwards; yields its DSN."""
    name = f"cdc_sio_test_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = database_dsn(name)
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(setup_sql)
        finally:
            await connection.close()
        yield dsn
    finally:
        await forget_fencing_key(database_dsn(name))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def forget_fencing_key(dsn: str) -> None:
    """The leader's fencing key in Redis (one per deployment, so per test database) goes with the database."""
    with contextlib.suppress(asyncpg.PostgresError, OSError):  # never migrated, or no leader row
        connection = await asyncpg.connect(dsn)
        try:
            deployment = await connection.fetchval("SELECT deployment::text FROM cdc_sio.leader")
        finally:
            await connection.close()
        if deployment is not None:
            client = redis.Redis.from_url(REDIS_URL)
            try:
                await client.delete(publish.Fence.of(deployment, 0).key)
            finally:
                await client.aclose()


def make_config(
    dsn: str,
    key: str,
    *tables: dict[str, Any],
    socketio: dict[str, Any] | None = None,
    redis_url: str = REDIS_URL,
    http: str | None = None,
    **daemon_settings: Any,
) -> Config:
    """A config on the test's database; *socketio* replaces the default classic target on *key*."""
    if not tables:
        tables = (
            {
                "table": "public.things",
                "rooms": ["thing:{id}", "org:{org_id}"],
                "exclude_columns": ["secret"],
                "events": {"insert": "Thing::create", "update": "Thing::update", "delete": "Thing::delete"},
            },
        )
    document = {
        "postgres": {"dsn": dsn},
        "redis": {"url": redis_url},
        "socketio": socketio or {"key": key},
        "daemon": {"poll_interval": 0.2, **daemon_settings},
        "tables": list(tables),
    }
    if http is not None:
        document["http"] = {"listen": http}
    return parse_config(document, "test.toml", {})


async def migrate_database(config: Config) -> list[migrate.Step]:
    connection = await pg.connect(config.postgres.dsn, "test-migrate")
    try:
        return await migrate.migrate(connection, config)
    finally:
        await connection.close()


@contextlib.asynccontextmanager
async def running_daemon(config: Config | daemon.Daemon) -> AsyncIterator[daemon.Daemon]:
    """The daemon as a task of this event loop, stopped (and checked for errors) afterwards."""
    service = config if isinstance(config, daemon.Daemon) else daemon.Daemon(config)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=15)


class Subscriber:
    """Everything published on ``<key>#*``, decoded, in arrival order."""

    def __init__(self, key: str, url: str = REDIS_URL) -> None:
        self.key = key
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.received: asyncio.Queue[tuple[str, Emission]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.pubsub.psubscribe(f"{self.key}#*")
        confirmation = await self.pubsub.get_message(timeout=5)
        assert confirmation is not None and confirmation["type"] == "psubscribe"
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.pubsub.listen():
            if message["type"] == "pmessage":
                self.received.put_nowait((message["channel"].decode(), decode_classic(message["data"])))

    async def next(self, timeout: float = 10.0) -> tuple[str, Emission]:
        try:
            return await asyncio.wait_for(self.received.get(), timeout)
        except TimeoutError:
            raise AssertionError(f"nothing published on {self.key}#* within {timeout} s") from None

    async def until(self, predicate: Any, timeout: float = 10.0) -> list[Emission]:
        """Every emission up to and including the first that satisfies *predicate*."""
        seen: list[Emission] = []
        async with asyncio.timeout(timeout):
            while True:
                _, emission = await self.received.get()
                seen.append(emission)
                if predicate(emission):
                    return seen

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self.pubsub.aclose()
        await self.client.aclose()


def classic_channel(key: str, emission: Emission) -> bytes:
    return cast(bytes, classic_commands(key, emission)[0][1])


def classic_message(emission: Emission) -> bytes:
    return cast(bytes, classic_commands("socket.io", emission)[0][2])


async def publish_sentinel(client: redis.Redis, key: str, namespace: str) -> None:
    """An event to everybody, published after the one under test: whoever sees it saw everything before it."""
    emission = Emission(namespace, (), "sentinel", ())
    assert await client.publish(classic_channel(key, emission), classic_message(emission)) == 1


def row_of(emission: Emission) -> dict[str, Any]:
    row: dict[str, Any] = emission.args[0]
    return row


def meta_of(emission: Emission) -> dict[str, Any]:
    meta: dict[str, Any] = emission.args[1]
    return meta


class LogEvents(logging.Handler):
    """The structured events logged under ``cdc_sio`` (at DEBUG and up), to count and to wait for."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", None)
        if fields is not None:
            self.events.append((str(record.msg), fields))
            self._changed.set()

    def named(self, name: str) -> list[dict[str, Any]]:
        return [fields for event, fields in self.events if event == name]

    async def wait(self, name: str, count: int = 1, timeout: float = 20.0) -> dict[str, Any]:
        """The fields of the *count*-th event called *name*, waiting for it if it has not happened yet."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.named(name)) < count:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"no {count}. {name!r} within {timeout} s; seen: {self.events}") from None
        return self.named(name)[count - 1]


def write_config_file(
    path: Path, dsn: str, key: str, *, events: str = "Thing", redis_url: str = REDIS_URL, **daemon_settings: Any
) -> Path:
    """A TOML config for a daemon subprocess: table things, room thing:{id}, events <events>::create/update."""
    settings = {"poll_interval": 0.2, **daemon_settings}
    path.write_text(
        f'[postgres]\ndsn = "{dsn}"\n[redis]\nurl = "{redis_url}"\n[socketio]\nkey = "{key}"\n[daemon]\n'
        + "".join(f"{name} = {value}\n" for name, value in settings.items())
        + '[[tables]]\ntable = "things"\nrooms = ["thing:{id}"]\n'
        + f'[tables.events]\ninsert = "{events}::create"\nupdate = "{events}::update"\n'
    )
    return path


class DaemonProcess:
    """``cdc-sio run`` as a subprocess with a NOTIFY_SOCKET of its own; its JSON log lines and notifications."""

    def __init__(self, config_path: Path, **environment: str) -> None:
        self.config_path = config_path
        self.environment = environment
        self.socket_name = f"cdc-sio-test-{secrets.token_hex(6)}"
        self.notifications: asyncio.Queue[str] = asyncio.Queue()
        self.logs = LogEvents()
        self.stderr: list[str] = []
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.receiver.bind("\0" + self.socket_name)
        self.receiver.setblocking(False)
        asyncio.get_running_loop().add_reader(self.receiver, self._received)
        environment = {**os.environ, "NOTIFY_SOCKET": "@" + self.socket_name, **self.environment}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "cdc_sio", "run", "--config", str(self.config_path),
            env=environment, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read_logs())

    def _received(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while True:
                self.notifications.put_nowait(self.receiver.recv(4096).decode())

    async def _read_logs(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        async for line in self.process.stderr:
            text = line.decode()
            self.stderr.append(text)
            with contextlib.suppress(ValueError):
                entry = json.loads(text)
                fields = {k: v for k, v in entry.items() if k not in ("ts", "level", "logger", "event")}
                self.logs.emit(_record(entry["event"], fields))

    async def notification(self, prefix: str, timeout: float = 30.0) -> list[str]:
        """Every notification up to and including the first that starts with *prefix*."""
        seen = []
        async with asyncio.timeout(timeout):
            while not (seen and seen[-1].startswith(prefix)):
                seen.append(await self.notifications.get())
        return seen

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def send_signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await asyncio.wait_for(self._reader, timeout)
        return code

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.wait()
        asyncio.get_running_loop().remove_reader(self.receiver)
        self.receiver.close()


def _record(event: str, fields: dict[str, Any]) -> logging.LogRecord:
    record = logging.LogRecord("cdc_sio", logging.INFO, __file__, 0, event, None, None)
    record.fields = fields
    return record
