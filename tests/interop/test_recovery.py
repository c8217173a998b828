"""Connection-state recovery with @socket.io/redis-streams-adapter: what cdc-sio writes while a browser is
away is replayed to it when it comes back within the window, exactly once and in order."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from cdc_sio.emitter import Emitter, RedisStreamsAdapter
from tests.interop.harness import ClientFactory, ReceivedEvent, ServerSpec, SocketServer, start_server
from tests.support import REDIS_URL

pytestmark = pytest.mark.interop

OFFSET = re.compile(r"^[0-9]+-[0-9]+$")  # a stream entry id, which the adapter appends as the last argument


@pytest.fixture
async def recovering_server(key: str, redis_client: redis.Redis) -> AsyncIterator[SocketServer]:
    server = await start_server(ServerSpec("redis-streams", key, REDIS_URL, recovery_ms=60_000))
    yield server
    await server.stop()
    await redis_client.delete(key, *[k async for k in redis_client.scan_iter(match=f"{key}:session:*")])


def without_offsets(events: list[ReceivedEvent]) -> list[ReceivedEvent]:
    """The events with their trailing offset removed, after checking that each has one and that they increase."""
    offsets = [event.args[-1] for event in events]
    assert all(isinstance(offset, str) and OFFSET.match(offset) for offset in offsets), events
    assert offsets == sorted(offsets, key=lambda o: tuple(map(int, o.split("-")))) and len(set(offsets)) == len(offsets)
    return [ReceivedEvent(event.event, event.args[:-1]) for event in events]


async def session_saved(client: redis.Redis, key: str, timeout: float = 10.0) -> None:
    """The server stores the session when it notices the lost connection; it signals nothing, so poll for it."""
    async with asyncio.timeout(timeout):
        while True:
            if [k async for k in client.scan_iter(match=f"{key}:session:*")]:
                return
            await asyncio.sleep(0.02)


async def test_events_missed_while_disconnected_arrive_once_in_order_after_reconnecting(
    key: str, recovering_server: SocketServer, socketio_client: ClientFactory, redis_client: redis.Redis
) -> None:
    """Missed events for the client's rooms are replayed with their offsets, then live events follow: no gap, no
    duplicate. Events for other rooms are not replayed. A volatile event carries no offset (so it is never
    replayed, and the client's recovery point stays where it was)."""
    emitter = Emitter(redis_client, target=RedisStreamsAdapter(stream_name=key))
    room = f"room-{secrets.token_hex(3)}"
    client = await socketio_client(recovering_server, "/", [room])

    await emitter.to(room).emit("before", 1)
    assert without_offsets([await client.next_event()]) == [ReceivedEvent("before", [1])]
    assert await client.drop() == "forced close"  # the client closed its transport; the server sees it vanish
    await session_saved(redis_client, key)

    await emitter.to(room).emit("missed", 2)
    await emitter.to("another-room").emit("not-mine", 0)
    await emitter.emit("missed", 3, b"\x03")
    assert await client.reconnect() is True
    await emitter.to(room).emit("live", 4)

    replayed = [await client.next_event() for _ in range(3)]
    assert without_offsets(replayed) == [
        ReceivedEvent("missed", [2]),
        ReceivedEvent("missed", [3, {"$binary": "Aw=="}]),
        ReceivedEvent("live", [4]),
    ]
    await emitter.to(room).volatile.emit("volatile", 5)
    assert await client.next_event() == ReceivedEvent("volatile", [5])
    await emitter.to(room).emit("sentinel")
    assert without_offsets(await client.events_until("sentinel")) == [ReceivedEvent("sentinel", [])]
