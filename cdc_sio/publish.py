"""The Redis side of the daemon: publish encoded messages, fenced by the leader's epoch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis.asyncio as redis

CHUNK_BYTES = 16 * 1024 * 1024  # one script call carries at most about this much (Redis caps a request at 1 GB)

# KEYS[1]: the fence key. ARGV[1]: this leader's epoch; then channel, payload, channel, payload, ...
# Refuses an epoch lower than the highest seen, so nothing from a leader that lost the lock can
# follow anything from the one that took it over; Redis runs the script atomically.
_FENCED_PUBLISH = """
local epoch = tonumber(ARGV[1])
local highest = tonumber(redis.call('GET', KEYS[1]) or '0')
if epoch < highest then
    return redis.error_reply('FENCED epoch ' .. ARGV[1] .. ' is older than the leader epoch ' .. highest)
end
if epoch > highest then
    redis.call('SET', KEYS[1], ARGV[1])
end
local receivers = {}
for i = 2, #ARGV, 2 do
    receivers[#receivers + 1] = redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return receivers
"""


@dataclass(frozen=True, slots=True)
class Fence:
    """The leader's fencing token: publish only while no later leader has published."""

    key: str
    epoch: int

    @classmethod
    def of(cls, deployment: str, epoch: int) -> Fence:
        return cls(f"cdc-sio:leader:{deployment}", epoch)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        client_name="cdc-sio:publisher",
        health_check_interval=30,
        socket_connect_timeout=10,
        socket_timeout=30,  # a Redis that stopped answering is an outage, not a hang
    )


async def publish(client: redis.Redis, messages: Sequence[tuple[bytes, bytes]], fence: Fence) -> list[int]:
    """PUBLISH every (channel, payload) in order unless *fence* is stale (then ResponseError "FENCED ...");
    return how many subscribers each reached."""
    script = client.register_script(_FENCED_PUBLISH)
    receivers: list[int] = []
    start = 0
    while start < len(messages):
        end, size = start, 0
        while end < len(messages) and (end == start or size + len(messages[end][1]) <= CHUNK_BYTES):
            size += len(messages[end][1])
            end += 1
        args: list[bytes | int] = [fence.epoch]
        for channel, payload in messages[start:end]:
            args += [channel, payload]
        receivers += await script(keys=[fence.key], args=args)
        start = end
    return receivers
