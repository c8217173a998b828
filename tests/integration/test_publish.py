"""A batch of PUBLISH commands goes out as one EVAL, and through a pipeline where Redis refuses EVAL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError

from cdc_sio import publish
from cdc_sio.encoding import Command
from tests.support import REDIS_URL, free_port


@contextlib.asynccontextmanager
async def spare_redis(*options: str) -> AsyncIterator[str]:
    """A throw-away redis-server on a free loopback port; yields its URL."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", *options,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    probe = redis.Redis.from_url(url)
    try:
        async with asyncio.timeout(10):
            for _ in iter(int, 1):  # until it answers
                with contextlib.suppress(RedisConnectionError):
                    await probe.ping()
                    break
                await asyncio.sleep(0.05)
        yield url
    finally:
        await probe.aclose()
        proc.terminate()
        await proc.wait()


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


@pytest.mark.parametrize("refuses_eval", [False, True])
async def test_every_message_arrives_once_in_order_with_its_receiver_count(key: str, refuses_eval: bool) -> None:
    """PUBLISH commands reach a subscriber exactly as sent, in order, each reply counting the
    receivers; a Redis whose EVAL is refused (here renamed away) gets them through a pipeline."""
    options = ("--rename-command", "EVAL", "") if refuses_eval else ()
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(spare_redis(*options)) if refuses_eval else REDIS_URL
        client = redis.Redis.from_url(url)
        stack.push_async_callback(client.aclose)
        listener = redis.Redis.from_url(url)
        stack.push_async_callback(listener.aclose)
        pubsub = listener.pubsub()
        stack.push_async_callback(pubsub.aclose)
        await pubsub.psubscribe(f"{key}#*")
        confirmation = await pubsub.get_message(timeout=5)
        assert confirmation is not None and confirmation["type"] == "psubscribe"
        commands = batch(key, 1500)
        arrived = asyncio.create_task(received(pubsub, 2 * len(commands)))
        first = await publish.execute(client, commands)
        second = await publish.execute(client, commands)
        messages = await arrived
    assert first == second == [1] * len(commands)
    assert messages == [(c[1], c[2]) for c in commands] * 2
