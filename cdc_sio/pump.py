"""When and where the leader reads the change log: at once while changes flow, on a NOTIFY once idle.

A NOTIFY at commit takes a cluster-wide lock, so notifying commits are serialised. The capture
triggers therefore notify only while the daemon is idle, which it says by holding the idle lock
(an advisory lock) exclusively. A trigger that finds the lock free takes it in share mode until
its transaction ends, and skips the NOTIFY: the daemon is busy and reads the log again as soon as
a batch is out, or ``BUSY_POLL`` seconds after a read that found nothing.

No wake-up can be lost: the daemon takes the idle lock only when no writer holds it in share mode,
that is when every writer that skipped its NOTIFY has committed or rolled back, and then reads
the log once more before it waits. Every writer that comes later finds the lock taken and
notifies. While a writer that skipped its NOTIFY stays open (a long transaction), the daemon
cannot go idle and keeps reading, at most ``SLOW_POLL`` seconds apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import asyncpg

from cdc_sio import capture
from cdc_sio.supervision import wait_for

BUSY_POLL = 0.001  # seconds between reads while changes flow
SLOW_POLL = 0.025  # the longest gap between reads while the daemon cannot go idle
IDLE_AFTER = 3  # empty reads in a row before the daemon tries to go idle
PATIENCE = 8  # refused attempts to go idle before the reads slow down towards SLOW_POLL
HORIZON_INTERVAL = 1.0  # seconds between looks at the change log's id horizon


class Pace:
    """Decides, after each batch that was not full, how long to wait before the next read."""

    def __init__(self, worker: asyncpg.Connection, poll_interval: float) -> None:
        self.worker = worker
        self.poll_interval = poll_interval
        self.empty_reads = 0
        self.refused = 0  # attempts to go idle in a row that found a writer still open

    async def wait(
        self,
        changes: int,
        read: Callable[[], Awaitable[int]],
        stop: asyncio.Event,
        wake: asyncio.Event,
        lost: asyncio.Event,
    ) -> None:
        """Wait after a batch of *changes* (fewer than a full one); *read* publishes one more batch."""
        self.empty_reads = 0 if changes else self.empty_reads + 1
        if changes:
            self.refused = 0
        if self.empty_reads < IDLE_AFTER:
            await asyncio.sleep(BUSY_POLL)  # stop and lost are checked before the next read
            return
        if not await capture.enter_idle(self.worker):
            self.refused += 1  # usually a writer about to commit; after many, a long transaction
            await asyncio.sleep(min(SLOW_POLL, BUSY_POLL * 2 ** max(0, self.refused - PATIENCE)))
            return
        wake.clear()
        if await read() == 0:
            await wait_for(stop, self.poll_interval, wake, lost)
        await capture.leave_idle(self.worker)
        self.empty_reads = self.refused = 0


class LogReader:
    """Reads batches from the change log, oldest first, outside any transaction, and deletes each batch
    once Redis accepted it (a crash in between publishes it again), in one statement with the next read.
    During a backlog that read is made while this batch is published (passing over its changes).

    The reads start above a floor, below which every change was deleted (or is passed over), so that
    they do not walk the index over deleted changes that autovacuum has not removed yet. The floor
    rises to an id that the id horizon says can no longer appear, once a read finds none left below it.
    """

    def __init__(
        self,
        connection: asyncpg.Connection,
        *,
        commit_timestamps: bool,
        horizon_interval: float = HORIZON_INTERVAL,
    ) -> None:
        self.connection = connection  # one statement at a time: a park waits for a read ahead
        self.commit_timestamps = commit_timestamps
        self.horizon_interval = horizon_interval
        self.horizon: capture.Horizon | None = None  # the last look that took a transaction id
        self.looked_at = -math.inf
        self.settled = 0  # no change with an id up to this one can appear any more
        self.floor = 0
        self.flowing = True  # the last read found changes
        self.ahead: asyncio.Task[list[Any]] | None = None
        self.read_on: list[Any] = []  # read with the delete of the batch published last
        self.batch_size = 0
        self.in_flight: list[int] = []  # the ids of the batch being published
        self.done: list[int] = []  # published, to be deleted by the next read

    async def next(self, batch_size: int) -> list[Any]:
        """The next batch; call ``published()`` once Redis accepted it."""
        self.batch_size = batch_size
        if self.read_on:
            records, self.read_on = self.read_on, []
        else:
            ahead, self.ahead = self.ahead, None
            records = await (ahead if ahead is not None else self._read(batch_size))
        self.in_flight = [record["id"] for record in records]
        if len(records) == batch_size:
            self.ahead = asyncio.create_task(self._read(batch_size))
        return records

    async def published(self) -> None:
        """Redis accepted the batch in flight: delete it now, reading what came meanwhile, or with the
        read ahead when there is one."""
        self.done += self.in_flight
        self.in_flight = []
        if self.ahead is None and self.done:
            self.read_on = await self._read(self.batch_size)

    async def park(self, record: Any, reason: str) -> None:
        """Keep a change of the batch in flight as a dead letter; it is deleted with the batch."""
        if self.ahead is not None:
            await asyncio.wait([self.ahead])
        await capture.park(self.connection, record, reason)

    async def close(self) -> None:
        """Stop reading ahead, and delete what was published (if that fails, it is published again)."""
        if self.ahead is not None:
            self.ahead.cancel()
            with contextlib.suppress(BaseException):
                await self.ahead
            self.ahead = None
        if self.done:
            done, self.done = self.done, []
            with contextlib.suppress(Exception):  # a broken connection: they wait, and go out again
                await capture.delete_changes(self.connection, done)

    def _read(self, batch_size: int) -> Coroutine[Any, Any, list[Any]]:
        """The read, its ids bound now: the ones it deletes are no longer this object's to delete."""
        deleting, self.done = self.done, []
        return self._read_above_floor(batch_size, self.in_flight, deleting)

    async def _read_above_floor(self, batch_size: int, pass_over: list[int], deleting: list[int]) -> list[Any]:
        # Before the read while changes flow, else after a read that found nothing: a change that
        # wakes the daemon from idle does not wait for a look.
        if self.flowing and self._horizon_due():
            await self._look_at_horizon()
        settled = self.settled  # known before this read started
        records = await capture.read_batch(
            self.connection,
            batch_size,
            commit_timestamps=self.commit_timestamps,
            pass_over=pass_over,
            delete=deleting,
            floor=self.floor,
        )
        if settled > self.floor and (not records or records[0]["id"] > settled):
            self.floor = settled
        self.flowing = bool(records)
        if not records and self._horizon_due():
            await self._look_at_horizon()
        return records

    def _horizon_due(self) -> bool:
        return time.monotonic() - self.looked_at >= self.horizon_interval

    async def _look_at_horizon(self) -> None:
        self.looked_at = time.monotonic()
        earlier = self.horizon
        now = await capture.id_horizon(self.connection, None if earlier is None else earlier.last_id)
        if earlier is None or now.filenode != earlier.filenode:  # the first look, or the ids started over
            self.floor = self.settled = 0
            self.horizon = now if now.xact is not None else None
            return
        assert earlier.xact is not None
        if now.oldest_running > earlier.xact:
            self.settled = earlier.last_id
        if now.xact is not None:
            self.horizon = now
