"""The daemon: wire the change log to Redis, and keep doing it through outages.

One session = a LISTEN connection, a worker connection that holds the leader lock and claims
batches, and the Redis client. The listener is connected (and LISTENing) before the first
read, so a change committed at any moment is either read now or announced later; polling
every ``poll_interval`` covers a notification that never arrives.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

import asyncpg
from redis.exceptions import RedisError

from cdc_sio import capture, pg
from cdc_sio.catalog import table_shapes
from cdc_sio.config import Config
from cdc_sio.emitter import Emitter
from cdc_sio.errors import ConfigError
from cdc_sio.migrate import migrations, validate
from cdc_sio.pump import pump, wait_any

log = logging.getLogger("cdc_sio.daemon")

# InternalClientError: asyncpg's word for a connection that the server closed between two queries.
RECOVERABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    RedisError,
)


class Backoff:
    """Capped exponential delays with jitter, so a fleet of daemons does not retry in step."""

    def __init__(self, first: float = 0.1, cap: float = 10.0) -> None:
        self.first, self.cap, self.attempt = first, cap, 0

    def next_delay(self) -> float:
        delay = min(self.cap, self.first * (1 << min(self.attempt, 30)))
        self.attempt += 1
        jitter: float = random.uniform(0.5, 1.0)
        return delay * jitter

    def reset(self) -> None:
        self.attempt = 0


async def run(config: Config, stop: asyncio.Event, *, once: bool = False) -> None:
    """Publish changes until *stop* is set (or, with *once*, until nothing is waiting)."""
    emitter = Emitter.from_config(config.socketio)
    backoff = Backoff()
    outage_since: float | None = None
    try:
        while not stop.is_set():
            try:
                await _session(config, emitter, stop, once=once, on_connected=backoff.reset)
                if outage_since is not None:
                    log.info("outage_ended duration_s=%.1f", time.monotonic() - outage_since)
                return
            except RECOVERABLE as error:
                if outage_since is None:
                    outage_since = time.monotonic()
                    log.warning("outage_started error=%s: %s", type(error).__name__, error)
                await wait_any(stop, backoff.next_delay())
    finally:
        await emitter.aclose()


async def _session(
    config: Config,
    emitter: Emitter,
    stop: asyncio.Event,
    *,
    once: bool,
    on_connected: Callable[[], None],
) -> None:
    shapes = table_shapes(config, await validate(config, check_filters=False))
    listener = await pg.connect(config.postgres.dsn, "listener")
    try:
        worker = await pg.connect(config.postgres.dsn, "worker", synchronous_commit=False)
        try:
            await _check_migrated(worker)
            wake, lost = asyncio.Event(), asyncio.Event()
            listener.add_termination_listener(lambda _: lost.set())
            await capture.listen(listener, wake)
            while not await capture.try_lead(worker):
                log.info("standby reason=another daemon holds the leader lock")
                if await wait_any(stop, config.daemon.poll_interval):
                    return
            await emitter.ping()
            commit_timestamps = await capture.commit_timestamps_enabled(worker)
            on_connected()
            log.info("connected role=leader tables=%d", len(config.tables))
            await pump(
                config,
                shapes,
                worker,
                emitter,
                stop=stop,
                wake=wake,
                lost=lost,
                once=once,
                commit_timestamps=commit_timestamps,
            )
        finally:
            await pg.close(worker)
    finally:
        await pg.close(listener)


async def _check_migrated(connection: asyncpg.Connection) -> None:
    applied: set[int] = set()
    if await connection.fetchval("SELECT to_regclass('cdc_sio.schema_migrations') IS NOT NULL"):
        applied = {r["version"] for r in await connection.fetch("SELECT version FROM cdc_sio.schema_migrations")}
    missing = [m for m in migrations() if m.version not in applied]
    if missing:
        raise ConfigError(
            f"the database lacks cdc-sio migration {missing[0].version:04d}_{missing[0].name}: "
            "run 'cdc-sio migrate --config FILE' first"
        )
