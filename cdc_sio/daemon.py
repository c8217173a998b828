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
from datetime import UTC, datetime

import asyncpg
from redis.exceptions import RedisError

from cdc_sio import capture, pg
from cdc_sio.catalog import TableShapes, table_shapes
from cdc_sio.config import Config
from cdc_sio.emitter import Batch, Emitter, Encoded
from cdc_sio.errors import ConfigError, EncodingError
from cdc_sio.migrate import migrations, validate
from cdc_sio.routing import Change, Emission, route, too_large
from cdc_sio.templates import TemplateError

log = logging.getLogger("cdc_sio.daemon")

RECOVERABLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, RedisError)


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
                await _wait_for(stop, backoff.next_delay())
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
        worker = await pg.connect(config.postgres.dsn, "worker")
        try:
            await _check_migrated(worker)
            wake, lost = asyncio.Event(), asyncio.Event()
            listener.add_termination_listener(lambda _: lost.set())
            await capture.listen(listener, wake)
            while not await capture.try_lead(worker):
                log.info("standby reason=another daemon holds the leader lock")
                if await _wait_for(stop, config.daemon.poll_interval):
                    return
            await emitter.ping()
            commit_timestamps = await capture.commit_timestamps_enabled(worker)
            on_connected()
            log.info("connected role=leader tables=%d", len(config.tables))
            while not stop.is_set():
                if lost.is_set():
                    raise ConnectionError("the LISTEN connection was closed")
                wake.clear()
                count = await publish_batch(config, shapes, worker, emitter, commit_timestamps=commit_timestamps)
                if count == config.daemon.batch_size:
                    continue
                if once:
                    return
                await _wait_for(stop, config.daemon.poll_interval, wake, lost)
        finally:
            await _close(worker)
    finally:
        await _close(listener)


async def publish_batch(
    config: Config,
    shapes: TableShapes,
    worker: asyncpg.Connection,
    emitter: Emitter,
    *,
    commit_timestamps: bool,
) -> int:
    """Claim one batch, publish it, and commit; on any error the batch waits to be retried."""
    async with worker.transaction():
        records = await capture.claim_batch(worker, config.daemon.batch_size, commit_timestamps=commit_timestamps)
        messages = emitter.batch()
        for record in records:
            try:
                change = capture.to_change(record, shapes.binary_columns.get(record["table_name"], ()))
                encoded = [
                    encode(config, messages, emission, change, shapes)
                    for emission in route(change, config, shapes.keys)
                ]
            except Exception as error:  # one bad row must never stop the stream: park it, with the reason
                reason = (
                    str(error)
                    if isinstance(error, TemplateError | EncodingError)
                    else f"{type(error).__name__}: {error}"
                )
                log.error("change_parked id=%d table=%s reason=%s", record["id"], record["table_name"], reason)
                await capture.park(worker, record, reason)
                continue
            messages.extend(encoded)
        message_count = len(messages)
        await messages.send()
    if records:
        lag = datetime.now(UTC) - records[-1]["committed_at"]
        log.debug(
            "batch_published changes=%d messages=%d lag_ms=%.1f",
            len(records),
            message_count,
            lag.total_seconds() * 1000,
        )
    return len(records)


def encode(config: Config, messages: Batch, emission: Emission, change: Change, shapes: TableShapes) -> Encoded:
    """The emission's commands; an event over ``max_event_bytes`` for any target becomes a marker with the row's key."""
    encoded = messages.encode(emission)
    if encoded.size > config.daemon.max_event_bytes:
        log.warning("event_too_large id=%d table=%s bytes=%d", change.id, change.table, encoded.size)
        encoded = messages.encode(too_large(emission, change, shapes.keys.get(change.table, ()), encoded.size))
    return encoded


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


async def _wait_for(stop: asyncio.Event, timeout: float, *events: asyncio.Event) -> bool:
    """Wait until *stop* or any of *events* is set, or *timeout* passes; return whether stop is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in (stop, *events)]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return stop.is_set()


async def _close(connection: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), timeout=5)
    except RECOVERABLE:
        connection.terminate()
