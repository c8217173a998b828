"""Fixtures on the real services; see tests/support.py."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from tests.servers import PostgresCluster, RedisServer
from tests.support import THINGS_DDL, LogEvents, Subscriber, forget_fencing_key, new_database


@pytest.fixture(autouse=True)
async def fail_on_unhandled_loop_errors() -> AsyncIterator[None]:
    """Fail the test if an exception reached the event loop unhandled (a forgotten task)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield
    loop.set_exception_handler(previous)
    assert not errors, f"unhandled errors in the event loop: {errors}"


@pytest.fixture
async def dsn() -> AsyncIterator[str]:
    async with new_database() as database:
        yield database


@pytest.fixture
def key() -> str:
    """A Socket.IO adapter key of this test's own, so tests never see each other's messages."""
    return f"cdc-sio-test-{secrets.token_hex(4)}"


@pytest.fixture
async def subscriber(key: str) -> AsyncIterator[Subscriber]:
    sub = Subscriber(key)
    await sub.start()
    yield sub
    await sub.close()


@pytest.fixture
def log_events() -> Iterator[LogEvents]:
    """Every structured event cdc-sio logs during the test, DEBUG included."""
    handler = LogEvents()
    logger = logging.getLogger("cdc_sio")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture(scope="session")
async def pg_cluster() -> AsyncIterator[PostgresCluster]:
    """A throw-away PostgreSQL cluster on a spare port, for tests that stop and restart the server."""
    cluster = PostgresCluster()
    await cluster.init()
    await cluster.start()
    yield cluster
    await cluster.remove()


@pytest.fixture
async def cluster_dsn(pg_cluster: PostgresCluster) -> AsyncIterator[str]:
    """A database of this test's own in the throw-away cluster (which is running again afterwards)."""
    name = f"cdc_sio_test_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(pg_cluster.dsn())
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = pg_cluster.dsn(name)
    connection = await asyncpg.connect(dsn)
    await connection.execute(THINGS_DDL)
    await connection.close()
    yield dsn
    try:
        admin = await asyncpg.connect(pg_cluster.dsn())
    except OSError:
        await pg_cluster.start()
        admin = await asyncpg.connect(pg_cluster.dsn())
    await forget_fencing_key(dsn)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
async def spare_redis() -> AsyncIterator[RedisServer]:
    """A redis-server of this test's own on a spare port, to stop, restart and break."""
    server = RedisServer()
    await server.start()
    yield server
    await server.stop()
