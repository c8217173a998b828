from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest
import redis.asyncio

from tests.interop.harness import (
    DEFAULT_NAMESPACES,
    ClientFactory,
    NodeClient,
    NodeProcessError,
    NodeServer,
    ServerFactory,
    connect_client,
    ensure_node_modules,
    start_server,
)
from tests.support import REDIS_URL


@pytest.fixture(scope="session", autouse=True)
def node_modules() -> None:
    try:
        ensure_node_modules()
    except NodeProcessError as exc:
        problem = str(exc)
    else:
        return
    pytest.fail(problem, pytrace=False)


@pytest.fixture
async def redis_client() -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


@pytest.fixture
async def socketio_server_factory(key: str) -> AsyncIterator[ServerFactory]:
    """Start Node servers (by default on the test's adapter `key`); all are stopped at teardown."""
    servers: list[NodeServer] = []
    test_key = key

    async def start(namespaces: Sequence[str] = DEFAULT_NAMESPACES, key: str | None = None) -> NodeServer:
        server = await start_server(REDIS_URL, key or test_key, namespaces)
        servers.append(server)
        return server

    yield start
    await asyncio.gather(*(server.stop() for server in servers))


@pytest.fixture
async def socketio_server(socketio_server_factory: ServerFactory) -> NodeServer:
    return await socketio_server_factory()


@pytest.fixture
async def socketio_client(socketio_server_factory: ServerFactory) -> AsyncIterator[ClientFactory]:
    """Connect socket.io-client processes that have joined `rooms`; all are stopped at teardown."""
    clients: list[NodeClient] = []

    async def connect(server: NodeServer, nsp: str = "/", rooms: Sequence[str] = ()) -> NodeClient:
        client = await connect_client(server.url, nsp, rooms)
        clients.append(client)
        return client

    yield connect
    await asyncio.gather(*(client.stop() for client in clients))
