"""Staying up: capped backoff between retries, waits that a stop interrupts, and ending tasks and connections."""

from __future__ import annotations

import asyncio
import random
import ssl
import time

import asyncpg
import redis.exceptions
import sqlalchemy.exc
from redis.exceptions import RedisError

# What a retry cannot cure: a wrong password or user, a role without the rights, a certificate
# that does not verify. The daemon stops with exit code 78, naming the setting, instead of retrying.
REFUSED_CREDENTIALS = (
    redis.exceptions.AuthenticationError,
    redis.exceptions.NoPermissionError,
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidAuthorizationSpecificationError,
    ssl.SSLCertVerificationError,
)


def refused_credentials(error: BaseException) -> BaseException | None:
    """The credentials refusal behind *error* (client libraries wrap TLS errors in their own), if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, REFUSED_CREDENTIALS):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


# What a retry can cure: a service that went away, refused, timed out or broke a connection.
RECOVERABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,  # a connection whose protocol state broke (it was killed mid-query)
    sqlalchemy.exc.DBAPIError,  # from migrate.validate's reflection
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


class Lost:
    """Why the session must end: the LISTEN connection closed, or a health round trip failed."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.error: BaseException | None = None

    def set(self, error: BaseException) -> None:
        if not self.event.is_set():
            self.error = error
            self.event.set()

    def check(self) -> None:
        if self.error is not None:
            raise self.error


async def wait_for(stop: asyncio.Event, timeout: float, *events: asyncio.Event) -> bool:
    """Wait until *stop* or any of *events* is set, or *timeout* passes; return whether stop is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in (stop, *events)]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return stop.is_set()


async def cancel(task: asyncio.Task[object], timeout: float = 5.0) -> None:
    """Cancel *task* and wait for it to end, cancelling again if a library swallowed the cancellation."""
    deadline = time.monotonic() + timeout
    while not task.done() and time.monotonic() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if task.done() and not task.cancelled():
        task.exception()  # retrieved: an error after the cancellation is of no interest any more


async def close(connection: asyncpg.Connection) -> None:
    try:
        await asyncio.wait_for(connection.close(), timeout=5)
    except RECOVERABLE:
        connection.terminate()
