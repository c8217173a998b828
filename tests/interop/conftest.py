from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
import redis.asyncio

from tests.interop.harness import (
    DEFAULT_NAMESPACES,
    ClientFactory,
    NodeProcessError,
    ServerFactory,
    ServerSpec,
    SocketClient,
    SocketServer,
    connect_client,
    ensure_node_modules,
    start_server,
)
from tests.interop.redis_cluster import RedisClusterNodes, redis_cluster
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
    servers: list[SocketServer] = []
    test_key = key

    async def start(namespaces: Sequence[str] = DEFAULT_NAMESPACES, key: str | None = None) -> SocketServer:
        server = await start_server(ServerSpec("redis", key or test_key, REDIS_URL), namespaces)
        servers.append(server)
        return server

    yield start
    await asyncio.gather(*(server.stop() for server in servers))


@pytest.fixture
async def socketio_server(socketio_server_factory: ServerFactory) -> SocketServer:
    return await socketio_server_factory()


@pytest.fixture
async def socketio_client() -> AsyncIterator[ClientFactory]:
    """Connect clients that have joined `rooms`; all are stopped at teardown."""
    clients: list[SocketClient] = []

    async def connect(
        server: SocketServer, nsp: str = "/", rooms: Sequence[str] = (), *, also_nsp: str | None = None
    ) -> SocketClient:
        client = await connect_client(server, nsp, rooms, also_nsp=also_nsp)
        clients.append(client)
        return client

    yield connect
    await asyncio.gather(*(client.stop() for client in clients))


@pytest.fixture(scope="session")
def redis_cluster_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterNodes]:
    """A three-master Redis Cluster on spare ports, for the whole session (tests use keys of their own)."""
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as nodes:
        yield nodes
