"""Every target against its real servers: two Socket.IO servers on one Redis (or Redis Cluster), real clients,
and cdc-sio's Emitter (built from a cdc-sio config, as the daemon builds it) or the daemon itself.

Each flavour's servers are shared by the tests of this module; every test uses rooms of its own and its own
clients, and ends with a sentinel event to the whole namespace: a client that saw the sentinel saw everything
published before it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest
import redis.asyncio as redis

from cdc_sio.config import parse_config
from cdc_sio.emitter import Emitter
from cdc_sio.errors import UnsupportedOperation
from tests.interop.harness import (
    ClientFactory,
    ReceivedEvent,
    ServerSpec,
    SocketClient,
    SocketServer,
    start_server,
)
from tests.support import REDIS_URL, make_config, migrate_database, running_daemon

pytestmark = pytest.mark.interop

SENTINEL = ReceivedEvent("sentinel", [])
# The option that names the adapter's key / channelPrefix / streamName / python-socketio channel.
KEY_OPTION = {
    "redis": "key",
    "redis-sharded": "channel_prefix",
    "redis-streams": "stream_name",
    "python-socketio": "channel",
}


@dataclass(frozen=True)
class Flavour:
    adapter: str
    options: dict[str, Any] = field(default_factory=dict)
    on_redis_cluster: bool = False


FLAVOURS = {
    "redis": Flavour("redis"),
    "sharded-static": Flavour("redis-sharded", {"subscription_mode": "static"}),
    "sharded-dynamic": Flavour("redis-sharded", {"subscription_mode": "dynamic"}),
    "sharded-dynamic-private": Flavour("redis-sharded", {"subscription_mode": "dynamic-private"}),
    "sharded-redis-cluster": Flavour("redis-sharded", {"subscription_mode": "dynamic"}, on_redis_cluster=True),
    "streams-4": Flavour("redis-streams", {"stream_count": 4}),  # "/" is in stream -3, "/admin" in -0
    "python-socketio": Flavour("python-socketio"),
}


@dataclass
class SocketIOCluster:
    """Two servers of one flavour, the cdc-sio [socketio] section that reaches them, and an Emitter built from it."""

    flavour: Flavour
    key: str
    servers: list[SocketServer]
    socketio_config: dict[str, Any]
    emitter: Emitter

    @property
    def python(self) -> bool:
        """python-socketio addresses single sockets (except, join, leave, disconnect) by session id only."""
        return self.flavour.adapter == "python-socketio"

    def selector(self, client: SocketClient, room: str) -> str:
        """How to name *client* (which is in *room*) in to()/except_() on this flavour."""
        return client.id if self.python else room

    async def sentinel(self, *namespaces: str) -> None:
        for namespace in namespaces or ("/",):
            await self.emitter.of(namespace).emit("sentinel")

    async def received(self, client: SocketClient, *expected: ReceivedEvent) -> None:
        """*client* received exactly *expected*, then the sentinel.

        On a Redis Cluster, messages on different channels (a room's own channel, the namespace channel)
        live on different shards and keep no order between them: there the events received by the time
        every expected one and the sentinel have arrived are compared as a multiset.
        """
        if not self.flavour.on_redis_cluster:
            assert await client.events_until("sentinel") == [*expected, SENTINEL]
            return
        wanted = Counter(map(repr, (*expected, SENTINEL)))
        received: list[ReceivedEvent] = []
        while wanted - Counter(map(repr, received)):
            received.append(await client.next_event())
        assert Counter(map(repr, received)) == wanted, received


@pytest.fixture(scope="module", params=list(FLAVOURS))
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[SocketIOCluster]:
    flavour = FLAVOURS[request.param]
    redis_url = request.getfixturevalue("redis_cluster_nodes").url if flavour.on_redis_cluster else REDIS_URL
    key = f"cdc-sio-test-{secrets.token_hex(4)}"
    spec = ServerSpec(
        flavour.adapter,
        key,
        redis_url,
        cluster=flavour.on_redis_cluster,
        subscription_mode=flavour.options.get("subscription_mode", "dynamic"),
        stream_count=flavour.options.get("stream_count", 1),
    )
    socketio_config = {
        "adapter": flavour.adapter,
        KEY_OPTION[flavour.adapter]: key,
        **flavour.options,
        "redis_url": redis_url,
        "redis_cluster": flavour.on_redis_cluster,
    }
    document = {
        "postgres": {"dsn": "unused"},
        "socketio": socketio_config,
        "tables": [{"table": "t", "events": {"insert": "e"}}],
    }
    emitter = Emitter.from_config(parse_config(document, "test.toml", {}).socketio)
    servers = list(await asyncio.gather(start_server(spec), start_server(spec)))
    try:
        yield SocketIOCluster(flavour, key, servers, socketio_config, emitter)
    finally:
        await asyncio.gather(*(server.stop() for server in servers))
        await emitter.aclose()
        if flavour.adapter == "redis-streams":
            await _delete_keys(redis_url, f"{key}*")


async def _delete_keys(url: str, pattern: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=pattern)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def unique_rooms(count: int) -> list[str]:
    prefix = secrets.token_hex(3)
    return [f"{prefix}:room{i}" for i in range(1, count + 1)]


async def connect_all(connect: ClientFactory, *clients: tuple[SocketServer, str, Sequence[str]]) -> list[SocketClient]:
    return list(await asyncio.gather(*(connect(server, nsp, rooms) for server, nsp, rooms in clients)))


async def test_rooms_except_rooms_several_rooms_and_namespaces(
    cluster: SocketIOCluster, socketio_client: ClientFactory
) -> None:
    """One message to two rooms reaches each member once, on either server; except-rooms, other rooms and
    other namespaces get nothing; a one-room event reaches that room (its own channel in dynamic modes)."""
    r1, r2, r3, r4 = unique_rooms(4)
    s0, s1 = cluster.servers
    in_r1, in_r2, in_both, excluded, in_r4, admin = await connect_all(
        socketio_client,
        (s0, "/", [r1]),
        (s1, "/", [r2]),
        (s0, "/", [r1, r2]),
        (s1, "/", [r1, r3]),
        (s0, "/", [r4]),
        (s1, "/admin", [r1]),
    )
    emitter = cluster.emitter

    await emitter.to(r1, r2).except_(cluster.selector(excluded, r3)).emit("several", {"n": 1})
    await emitter.to(r4).emit("one-room", "x")
    await emitter.of("/admin").to(r1).emit("admin-only", 2)
    await cluster.sentinel("/", "/admin")

    several = ReceivedEvent("several", [{"n": 1}])
    await cluster.received(in_r1, several)
    await cluster.received(in_r2, several)
    await cluster.received(in_both, several)
    await cluster.received(excluded)
    await cluster.received(in_r4, ReceivedEvent("one-room", ["x"]))
    await cluster.received(admin, ReceivedEvent("admin-only", [2]))


async def test_binary_arguments_and_volatile_compress_flags(
    cluster: SocketIOCluster, socketio_client: ClientFactory
) -> None:
    """bytes arrive as binary (nested ones too); an event with volatile and compress(False) is delivered to a
    client whose connection is idle (volatile events are dropped while the server is still writing to it)."""
    [room] = unique_rooms(1)
    [client] = await connect_all(socketio_client, (cluster.servers[1], "/", [room]))

    await cluster.emitter.to(room).emit("binary", {"id": 7, "blob": b"\x01\x02"}, b"\x03")
    assert await client.next_event() == ReceivedEvent(
        "binary", [{"id": 7, "blob": {"$binary": "AQI="}}, {"$binary": "Aw=="}]
    )
    await cluster.emitter.to(room).volatile.compress(False).emit("flagged", 1)
    assert await client.next_event() == ReceivedEvent("flagged", [1])


async def test_sockets_join_leave_and_disconnect(cluster: SocketIOCluster, socketio_client: ClientFactory) -> None:
    """socketsJoin/socketsLeave change the rooms of the selected sockets on every server; disconnectSockets
    disconnects them, and with close=True (where the target can say it) closes their connection, which
    also ends the client's other namespace on it."""
    r1, r2, r3, joined_room, nobody = unique_rooms(5)
    s0, s1 = cluster.servers
    joiner, leaver = await connect_all(socketio_client, (s0, "/", [r1]), (s1, "/", [r2]))
    emitter = cluster.emitter

    # Events to two rooms travel on the namespace channel, which servers of every mode subscribe to.
    await emitter.to(cluster.selector(joiner, r1)).sockets_join(joined_room)
    await emitter.to(joined_room, nobody).emit("after-join")
    await emitter.to(cluster.selector(joiner, r1)).sockets_leave(r1)
    await emitter.to(r1, nobody).emit("after-leave")
    await emitter.to(cluster.selector(leaver, r2)).disconnect_sockets()
    reason = "server disconnect" if cluster.python else "io server disconnect"  # each client library's words
    assert await leaver.expect("disconnected") == {"disconnected": reason}
    if cluster.python:
        with pytest.raises(UnsupportedOperation, match="close"):
            await emitter.to(leaver.id).disconnect_sockets(close=True)
    else:
        closer = await socketio_client(s1, "/", [r3], also_nsp="/admin")
        await emitter.to(r3).disconnect_sockets(close=True)
        lines = [await closer.expect("disconnected"), await closer.expect("disconnected")]
        assert sorted(line.get("nsp", "/") for line in lines) == ["/", "/admin"]
    await cluster.sentinel()

    assert await joiner.events_until("sentinel") == [ReceivedEvent("after-join", []), SENTINEL]


async def test_server_side_emit_runs_on_every_server(cluster: SocketIOCluster, socketio_client: ClientFactory) -> None:
    """serverSideEmit runs the namespace's listener on each server (the test servers pass it to their sockets);
    python-socketio has no server-side events, and says so before publishing anything."""
    on_s0, on_s1 = await connect_all(socketio_client, (cluster.servers[0], "/", []), (cluster.servers[1], "/", []))
    if cluster.python:
        with pytest.raises(UnsupportedOperation, match="server-side events"):
            await cluster.emitter.server_side_emit("server-side", 1)
        return

    await cluster.emitter.server_side_emit("server-side", 1, "two", b"\x03")

    expected = ReceivedEvent("server-side", [1, "two", {"$binary": "Aw=="}])
    assert await on_s0.next_event() == expected
    assert await on_s1.next_event() == expected


async def test_sql_update_reaches_the_client_through_the_daemon(
    cluster: SocketIOCluster, socketio_client: ClientFactory, dsn: str
) -> None:
    """The daemon, configured for this target, publishes a psql UPDATE to the row's room only."""
    prefix = secrets.token_hex(3)
    table = {"table": "public.things", "rooms": [f"{prefix}:{{id}}"], "events": {"update": "Thing::update"}}
    config = make_config(dsn, cluster.key, table, socketio=cluster.socketio_config)
    await migrate_database(config)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("INSERT INTO things (id, name) VALUES (7, 'seven'), (8, 'eight')")
    finally:
        await connection.close()
    row7, row8 = await connect_all(
        socketio_client, (cluster.servers[1], "/", [f"{prefix}:7"]), (cluster.servers[0], "/", [f"{prefix}:8"])
    )

    async with running_daemon(config):
        psql = await asyncio.create_subprocess_exec(
            "psql", dsn, "-q", "-v", "ON_ERROR_STOP=1", "-c", "UPDATE things SET name = 'lucky' WHERE id = 7"
        )
        assert await asyncio.wait_for(psql.wait(), 30) == 0
        received = await row7.next_event(timeout=15)

    assert received.event == "Thing::update"
    row, meta = received.args
    assert row == {"id": 7, "org_id": None, "name": "lucky", "secret": None, "importance": 0, "token": None, "v": 0}
    assert (meta["op"], meta["table"]) == ("update", "public.things")
    await cluster.sentinel()
    assert await row8.events_until("sentinel") == [SENTINEL]
    assert await row7.events_until("sentinel") == [SENTINEL]
