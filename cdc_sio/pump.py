"""When and where the leader reads the change log: at once while changes flow, on a NOTIFY once idle.

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.transaction import Transaction

from cdc_sio import capture
from cdc_sio.supervision import wait_for

BUSY_POLL = 0.001  # seconds between reads while changes flow
SLOW_POLL = 0.025  # the longest gap between reads while the daemon cannot go idle
IDLE_AFTER = 3  # empty reads in a row before the daemon tries to go idle
PATIENCE = 8  # refused attempts to go idle before the reads slow down towards SLOW_POLL


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


@dataclass
class Claim:
    """A batch deleted from the log in a transaction that is still open: it commits once published."""

    connection: asyncpg.Connection
    transaction: Transaction
    records: list[Any]


class Claims:
    """Claims batches; after a full one it claims the next on the other connection while this one is
    encoded and published (``FOR UPDATE SKIP LOCKED`` passes over the rows of the batch in flight),
    so that PostgreSQL's work overlaps the daemon's. Batches are still published and committed one
    after the other, in claim order; if one fails, the session ends and both claims roll back.
    With one connection (no UPDATE privilege on cdc_sio.changes), one batch at a time.
    """

    def __init__(self, connections: Sequence[asyncpg.Connection], *, commit_timestamps: bool) -> None:
        self.connections = tuple(connections)
        self.commit_timestamps = commit_timestamps
        self.ahead: asyncio.Task[Claim] | None = None
        self.turn = 0

    async def next(self, batch_size: int) -> Claim:
        ahead, self.ahead = self.ahead, None
        claim = await ahead if ahead is not None else await self._claim(batch_size, skip_locked=False)
        if len(claim.records) == batch_size and len(self.connections) > 1:
            self.ahead = asyncio.create_task(self._claim(batch_size, skip_locked=True))
        return claim

    async def abandon(self) -> None:
        """Drop a claim made ahead: its transaction rolls back when its connection closes."""
        if self.ahead is not None:
            self.ahead.cancel()
            with contextlib.suppress(BaseException):
                await self.ahead
            self.ahead = None

    async def _claim(self, batch_size: int, *, skip_locked: bool) -> Claim:
        connection = self.connections[self.turn % len(self.connections)]
        self.turn += 1
        transaction = connection.transaction()
        await transaction.start()
        records = await capture.claim_batch(
            connection, batch_size, commit_timestamps=self.commit_timestamps, skip_locked=skip_locked
        )
        return Claim(connection, transaction, records)
