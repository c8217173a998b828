"""The Emitter API on a real Redis: immutable builders, nothing published for refused input, several targets at
once, and the daemon publishing to every configured target."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import asyncpg
import msgpack
import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError as RedisConnectionError

from cdc_sio.config import RedisConfig, SocketIOConfig, TargetConfig
from cdc_sio.emitter import Emitter, PythonSocketIO, RedisAdapter
from cdc_sio.errors import EncodingError
from cdc_sio.routing import Emission
from tests.support import REDIS_URL, make_config, migrate_database, running_daemon


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(REDIS_URL)
    yield connection
    await connection.aclose()


@pytest.fixture
async def channels(client: redis.Redis, key: str) -> AsyncIterator[asyncio.Queue[tuple[str, bytes]]]:
    """Everything published on ``<key>#*`` (classic) and ``<key>`` (python-socketio), as (channel, payload)."""
    received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    pubsub = client.pubsub()
    await pubsub.psubscribe(f"{key}#*", key)

    async def read() -> None:
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                received.put_nowait((message["channel"].decode(), message["data"]))

    for _ in range(2):
        assert (await pubsub.get_message(timeout=5) or {}).get("type") == "psubscribe"
    reader = asyncio.create_task(read())
    yield received
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await pubsub.aclose()


async def next_message(channels: asyncio.Queue[tuple[str, bytes]]) -> tuple[str, bytes]:
    return await asyncio.wait_for(channels.get(), 10)


def test_builders_are_immutable_and_collect_rooms_once(client: redis.Redis) -> None:
    """to()/except_()/volatile/compress()/of() return new objects; the originals can be reused as they were."""
    emitter = Emitter(client)
    admin = emitter.of("admin")
    to_a = admin.to("a")
    refined = to_a.to("b", "a").except_("c").volatile.compress(False)
    assert (emitter.namespace, admin.namespace) == ("/", "/admin")
    assert (to_a.rooms, to_a.except_rooms, to_a.is_volatile, to_a.compression) == (("a",), (), False, None)
    assert (refined.rooms, refined.except_rooms, refined.is_volatile, refined.compression) == (
        ("a", "b"),
        ("c",),
        True,
        False,
    )


async def test_emit_publishes_the_classic_message(
    client: redis.Redis, key: str, channels: asyncio.Queue[tuple[str, bytes]]
) -> None:
    """emitter.of(nsp).to(rooms).except_(...).emit(...) is one classic message on the namespace channel."""
    await Emitter(client, target=RedisAdapter(key)).of("/admin").to("a", "b").except_("c").emit("ev", {"x": b"\x01"})
    channel, payload = await next_message(channels)
    assert channel == f"{key}#/admin#"
    assert msgpack.unpackb(payload) == [
        "emitter",
        {"type": 2, "data": ["ev", {"x": b"\x01"}], "nsp": "/admin"},
        {"rooms": ["a", "b"], "flags": {}, "except": ["c"]},
    ]


async def test_refused_input_publishes_nothing_to_any_target(
    client: redis.Redis, key: str, channels: asyncio.Queue[tuple[str, bytes]]
) -> None:
    """A reserved name, an unencodable argument, or an operation one target cannot do fails before any target
    gets anything; a batch keeps none of the operations of a refused add()."""
    emitter = Emitter(client, target=[RedisAdapter(key), PythonSocketIO(key)])
    with pytest.raises(EncodingError, match="reserved"):
        await emitter.emit("disconnect")
    with pytest.raises(EncodingError, match="cannot encode"):
        await emitter.to("r").emit("ev", {1, 2})
    with pytest.raises(EncodingError, match="server-side events"):
        await emitter.server_side_emit("hello")
    batch = emitter.batch()
    with pytest.raises(EncodingError):
        batch.add(Emission("/", (), "fine", ()), Emission("/", (), "connect", ()))
    assert len(batch) == 0

    await emitter.emit("after")
    published = [await next_message(channels) for _ in range(2)]
    assert sorted(channel for channel, _ in published) == sorted([f"{key}#/#", key])
    assert channels.empty()


async def test_several_targets_and_redis_clients_each_get_every_operation_in_order(
    client: redis.Redis, key: str, channels: asyncio.Queue[tuple[str, bytes]]
) -> None:
    """Emitter.over() sends to targets on different Redis connections; each sees the operations in order."""
    other = redis.Redis.from_url(REDIS_URL)
    try:
        emitter = Emitter.over([(client, RedisAdapter(key)), (other, PythonSocketIO(key))])
        batch = emitter.batch()
        batch.add(Emission("/", ("r",), "first", ()), Emission("/", ("r",), "second", ()))
        assert len(batch) == 4
        await batch.send()
        assert len(batch) == 0
    finally:
        await other.aclose()
    published = [await next_message(channels) for _ in range(4)]
    classic = [msgpack.unpackb(p)[1]["data"][0] for c, p in published if c == f"{key}#/#r#"]
    python = [json.loads(p)["event"] for c, p in published if c == key]
    assert (classic, python) == (["first", "second"], ["first", "second"])


async def test_from_config_owns_its_connections_and_an_unreachable_cluster_is_a_connection_error() -> None:
    """from_config() opens (and aclose() closes) its own clients; a Redis Cluster that cannot be reached raises
    redis' ConnectionError (a RedisError the daemon retries), not redis-py's RedisClusterException."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    unreachable = RedisConfig(f"redis://127.0.0.1:{closed_port}", cluster=True)
    async with Emitter.from_config(SocketIOConfig((TargetConfig(RedisAdapter(), unreachable),))) as emitter:
        with pytest.raises(RedisConnectionError, match="Redis Cluster"):
            await emitter.ping()
        with pytest.raises(RedisConnectionError, match="Redis Cluster"):
            await emitter.emit("e")


async def test_daemon_publishes_each_change_to_every_configured_target(
    dsn: str, key: str, channels: asyncio.Queue[tuple[str, bytes]]
) -> None:
    """With [[socketio.targets]], a committed change reaches the classic and the python-socketio channel."""
    targets = {"targets": [{"adapter": "redis", "key": key}, {"adapter": "python-socketio", "channel": key}]}
    config = make_config(dsn, key, socketio=targets)
    await migrate_database(config)
    async with running_daemon(config):
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("INSERT INTO things (id, org_id, name) VALUES (7, 1, 'x')")
        finally:
            await connection.close()
        published = dict([await next_message(channels) for _ in range(2)])
    assert msgpack.unpackb(published[f"{key}#/#"])[1]["data"][1]["name"] == "x"
    message = json.loads(published[key])
    assert (message["event"], message["room"], message["data"][0]["name"]) == (
        "Thing::create",
        ["thing:7", "org:1"],
        "x",
    )
