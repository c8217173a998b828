"""The leader's publishing loop: claim batches, publish them, and wake on NOTIFY only when idle.

A NOTIFY at commit takes a cluster-wide lock, so notifying commits are serialised. The capture
triggers therefore notify only while the daemon is idle, which it says by holding the idle lock
(an advisory lock) exclusively. A trigger that finds the lock free takes it in share mode until
its transaction ends, and skips the NOTIFY: the daemon is busy and reads the log every
``BUSY_POLL`` seconds anyway.

No wake-up can be lost: the daemon takes the idle lock only when no writer holds it in share mode,
that is when every writer that skipped its NOTIFY has committed or rolled back, and then reads
the log once more before it waits. Every writer that comes later finds the lock taken and
notifies. While a writer that skipped its NOTIFY stays open (a long transaction), the daemon
cannot go idle and keeps reading, at most ``SLOW_POLL`` seconds apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from asyncpg.transaction import Transaction

from cdc_sio import capture, pg
from cdc_sio.catalog import TableShapes
from cdc_sio.config import Config
from cdc_sio.emitter import Batch, Emitter, Encoded
from cdc_sio.errors import EncodingError
from cdc_sio.routing import Change, Emission, route, too_large
from cdc_sio.templates import TemplateError

log = logging.getLogger("cdc_sio.daemon")

BUSY_POLL = 0.001  # seconds between reads while changes flow
SLOW_POLL = 0.025  # the longest gap between reads while the daemon cannot go idle
IDLE_AFTER = 3  # empty reads in a row before the daemon tries to go idle
PATIENCE = 8  # refused attempts to go idle before the reads slow down towards SLOW_POLL
YIELD_EVERY = 128  # changes encoded between two turns of the event loop


async def pump(
    config: Config,
    shapes: TableShapes,
    worker: asyncpg.Connection,
    emitter: Emitter,
    *,
    stop: asyncio.Event,
    wake: asyncio.Event,
    lost: asyncio.Event,
    once: bool,
    commit_timestamps: bool,
) -> None:
    """Publish changes until *stop* is set (or, with *once*, until a batch is not full)."""
    prefetch = await pg.connect(config.postgres.dsn, "prefetch", synchronous_commit=False)
    batches = Batches(config, shapes, (worker, prefetch), emitter, commit_timestamps)
    if not await capture.can_skip_locked(worker):
        batches.connections = (worker,)
        log.info("claims_one_at_a_time reason=no UPDATE privilege on cdc_sio.changes, which row locks need")
    try:
        await _loop(config, batches, worker, stop=stop, wake=wake, lost=lost, once=once)
    finally:
        await batches.abandon()
        await pg.close(prefetch)


async def _loop(
    config: Config,
    batches: Batches,
    worker: asyncpg.Connection,
    *,
    stop: asyncio.Event,
    wake: asyncio.Event,
    lost: asyncio.Event,
    once: bool,
) -> None:
    empty_reads = 0
    refused = 0  # attempts to go idle in a row that found a writer still open
    while not stop.is_set():
        if lost.is_set():
            raise ConnectionError("the LISTEN connection was closed")
        count = await batches.publish_next()
        if count == config.daemon.batch_size:
            empty_reads = refused = 0
            continue
        if once:
            return
        empty_reads = 0 if count else empty_reads + 1
        if count:
            refused = 0
        if empty_reads < IDLE_AFTER:
            await asyncio.sleep(BUSY_POLL)  # stop and lost are checked on the next turn
            continue
        if not await capture.enter_idle(worker):
            refused += 1  # usually a writer about to commit; after many, a long transaction
            await asyncio.sleep(min(SLOW_POLL, BUSY_POLL * 2 ** max(0, refused - PATIENCE)))
            continue
        wake.clear()
        if await batches.publish_next() == 0:
            await wait_any(stop, config.daemon.poll_interval, wake, lost)
        await capture.leave_idle(worker)
        empty_reads = refused = 0


@dataclass
class Claim:
    """A batch deleted from the log in a transaction that is still open: it commits once published."""

    connection: asyncpg.Connection
    transaction: Transaction
    records: list[Any]


class Batches:
    """Claims, encodes, publishes and commits batches; after a full batch it claims the next one on
    the other connection while this one is encoded and published (``SKIP LOCKED`` passes over the
    rows of the batch in flight), so PostgreSQL's work overlaps the daemon's. Without the UPDATE
    privilege on cdc_sio.changes (row locks need it) it claims one batch at a time.

    Batches are still published one after the other, in claim order, and each commits only after
    Redis took all of it; if one fails, the session ends and both open claims roll back.
    """

    def __init__(
        self,
        config: Config,
        shapes: TableShapes,
        connections: tuple[asyncpg.Connection, ...],
        emitter: Emitter,
        commit_timestamps: bool,
    ) -> None:
        self.config = config
        self.shapes = shapes
        self.connections = connections
        self.emitter = emitter
        self.commit_timestamps = commit_timestamps
        self.claimed: asyncio.Task[Claim] | None = None
        self.turn = 0

    async def publish_next(self) -> int:
        """Publish the next batch; return how many changes it had."""
        claimed, self.claimed = self.claimed, None
        claim = await (claimed or self._claim(skip_locked=False))
        if len(claim.records) == self.config.daemon.batch_size and len(self.connections) == 2:
            self.claimed = asyncio.create_task(self._claim(skip_locked=True))
        await self._publish(claim)
        return len(claim.records)

    async def abandon(self) -> None:
        """Drop a claim made ahead: its transaction rolls back when its connection closes."""
        if self.claimed is not None:
            self.claimed.cancel()
            with contextlib.suppress(BaseException):
                await self.claimed

    async def _claim(self, *, skip_locked: bool) -> Claim:
        connection = self.connections[self.turn % len(self.connections)]
        self.turn += 1
        transaction = connection.transaction()
        await transaction.start()
        records = await capture.claim_batch(
            connection, self.config.daemon.batch_size, commit_timestamps=self.commit_timestamps, skip_locked=skip_locked
        )
        return Claim(connection, transaction, records)

    async def _publish(self, claim: Claim) -> None:
        config, shapes = self.config, self.shapes
        messages = self.emitter.batch()
        for number, record in enumerate(claim.records):
            if number % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # let the next claim reach PostgreSQL
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
                await capture.park(claim.connection, record, reason)
                continue
            messages.extend(encoded)
        message_count = len(messages)
        await messages.send()
        await claim.transaction.commit()
        if claim.records:
            lag = datetime.now(UTC) - claim.records[-1]["committed_at"]
            log.debug(
                "batch_published changes=%d messages=%d lag_ms=%.1f",
                len(claim.records),
                message_count,
                lag.total_seconds() * 1000,
            )


def encode(config: Config, messages: Batch, emission: Emission, change: Change, shapes: TableShapes) -> Encoded:
    """The emission's commands; an event over ``max_event_bytes`` for any target becomes a marker with the row's key."""
    encoded = messages.encode(emission)
    if encoded.size > config.daemon.max_event_bytes:
        log.warning("event_too_large id=%d table=%s bytes=%d", change.id, change.table, encoded.size)
        encoded = messages.encode(too_large(emission, change, shapes.keys.get(change.table, ()), encoded.size))
    return encoded


async def wait_any(stop: asyncio.Event, timeout: float, *events: asyncio.Event) -> bool:
    """Wait until *stop* or any of *events* is set, or *timeout* passes; return whether stop is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in (stop, *events)]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return stop.is_set()
