"""A batch of PUBLISH commands arrives once and in order, fenced or not."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import redis.asyncio as redis
from redis.asyncio.client import PubSub

from cdc_sio import publish
from cdc_sio.encoding import Command
from tests.support import REDIS_URL


async def received(pubsub: PubSub, count: int) -> list[tuple[bytes, bytes]]:
    messages: list[tuple[bytes, bytes]] = []
    async with asyncio.timeout(10):
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                messages.append((message["channel"], message["data"]))
                if len(messages) == count:
                    return messages
    return messages


def batch(key: str, n: int) -> list[Command]:
    return [("PUBLISH", f"{key}#/#room{i % 3}#".encode(), b"\x00payload %d\xff" % i) for i in range(n)]


@pytest.mark.parametrize("fenced", [False, True])
async def test_every_message_arrives_once_in_order_with_its_receiver_count(key: str, fenced: bool) -> None:
    """PUBLISH commands reach a subscriber exactly as sent, in order, each reply counting the receivers,
    whether they go through a pipeline or through the leader's fencing script."""
    fence = publish.Fence(f"{key}:fence", 1) if fenced else None
    async with contextlib.AsyncExitStack() as stack:
        client = redis.Redis.from_url(REDIS_URL)
        stack.push_async_callback(client.aclose)
        pubsub = client.pubsub()
        stack.push_async_callback(pubsub.aclose)
        await pubsub.psubscribe(f"{key}#*")
        confirmation = await pubsub.get_message(timeout=5)
        assert confirmation is not None and confirmation["type"] == "psubscribe"
        commands = batch(key, 1500)
        arrived = asyncio.create_task(received(pubsub, 2 * len(commands)))
        first = await publish.execute(client, commands, fence)
        second = await publish.execute(client, commands, fence)
        messages = await arrived
        await client.delete(f"{key}:fence")
    assert first == second == [1] * len(commands)
    assert messages == [(c[1], c[2]) for c in commands] * 2
