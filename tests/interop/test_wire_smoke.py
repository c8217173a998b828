"""Self-test of the interop harness with hand-made messages in the classic Redis adapter format."""

from typing import Any

import msgpack
import pytest
import redis.asyncio

from tests.interop.harness import ClientFactory, ReceivedEvent, SocketServer

pytestmark = pytest.mark.interop

# §2.5 of socketio-wire-formats.md: "Thing::update" {"id": 7, "name": "x"} to room "thing:7" of "/".
WORKED_EXAMPLE = bytes.fromhex(
    "93a7656d697474657283a47479706502a46461746192ad5468696e673a3a75706461746582a2696407a46e616d65"
    "a178a36e7370a12f83a5726f6f6d7391a77468696e673a37a5666c61677380a665786365707490"
)
SENTINEL = ReceivedEvent("sentinel", [])


def broadcast(nsp: str, rooms: list[str], *data: Any) -> bytes:
    packed: bytes = msgpack.packb(
        ["emitter", {"type": 2, "data": list(data), "nsp": nsp}, {"rooms": rooms, "flags": {}, "except": []}]
    )
    return packed


async def publish_sentinel(redis_client: redis.asyncio.Redis, key: str, nsp: str) -> None:
    assert await redis_client.publish(f"{key}#{nsp}#", broadcast(nsp, [], "sentinel")) == 1


async def test_worked_example_reaches_only_the_room(
    socketio_server: SocketServer,
    socketio_client: ClientFactory,
    redis_client: redis.asyncio.Redis,
    key: str,
) -> None:
    in_room = await socketio_client(socketio_server, "/", ["thing:7"])
    other_room = await socketio_client(socketio_server, "/", ["thing:8"])
    other_nsp = await socketio_client(socketio_server, "/admin", ["thing:7"])
    assert len(WORKED_EXAMPLE) == 85

    assert await redis_client.publish(f"{key}#/#thing:7#", WORKED_EXAMPLE) == 1
    assert await in_room.next_event() == ReceivedEvent("Thing::update", [{"id": 7, "name": "x"}])

    await publish_sentinel(redis_client, key, "/")
    await publish_sentinel(redis_client, key, "/admin")
    assert await in_room.events_until("sentinel") == [SENTINEL]
    assert await other_room.events_until("sentinel") == [SENTINEL]
    assert await other_nsp.events_until("sentinel") == [SENTINEL]


async def test_binary_argument_arrives_as_binary(
    socketio_server: SocketServer,
    socketio_client: ClientFactory,
    redis_client: redis.asyncio.Redis,
    key: str,
) -> None:
    client = await socketio_client(socketio_server, "/", ["thing:7"])
    message = broadcast("/", ["thing:7"], "Thing::update", {"id": 7, "blob": b"\x01\x02"})
    assert bytes.fromhex("a4626c6f62c4020102") in message

    assert await redis_client.publish(f"{key}#/#thing:7#", message) == 1
    assert await client.next_event() == ReceivedEvent("Thing::update", [{"id": 7, "blob": {"$binary": "AQI="}}])
