"""The Redis side of the daemon: publish encoded messages in one pipelined round trip."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as redis


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        client_name="cdc-sio:publisher",
        health_check_interval=30,
        socket_connect_timeout=10,
        socket_timeout=30,  # a Redis that stopped answering is an outage, not a hang
    )


async def publish(client: redis.Redis, messages: Sequence[tuple[bytes, bytes]]) -> list[int]:
    """PUBLISH every (channel, payload) in order; return how many subscribers each reached."""
    if not messages:
        return []
    async with client.pipeline(transaction=False) as pipe:
        for channel, payload in messages:
            pipe.publish(channel, payload)
        return await pipe.execute()
