"""The Redis side: connect to a Redis server or a Redis Cluster, and run commands in one round trip.

The daemon's commands are fenced: they run inside one Lua script that first compares the leader's
epoch with the highest one Redis has seen (see :class:`Fence`). A cluster that cannot be reached
raises redis-py's ``RedisClusterException``, which is not a ``RedisError``; it is raised here as a
``redis.exceptions.ConnectionError`` so that callers handle every outage alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from cdc_sio.encoding import Command

RedisClient = redis.Redis | RedisCluster

CHUNK_BYTES = 16 * 1024 * 1024  # one script call carries at most about this much (Redis caps a request at 1 GB)

# KEYS[1]: the fence key. ARGV[1]: this leader's epoch; then each command as its number of
# arguments followed by the arguments. An epoch lower than the highest seen is refused, so nothing
# from a leader that lost the lock can follow anything from the one that took it over.
_FENCED = """
local epoch = tonumber(ARGV[1])
local highest = tonumber(redis.call('GET', KEYS[1]) or '0')
if epoch < highest then
    return redis.error_reply('FENCED epoch ' .. ARGV[1] .. ' is older than the leader epoch ' .. highest)
end
if epoch > highest then
    redis.call('SET', KEYS[1], ARGV[1])
end
local replies = {}
local i = 2
while i <= #ARGV do
    local count = tonumber(ARGV[i])
    replies[#replies + 1] = redis.call(unpack(ARGV, i + 1, i + count))
    i = i + count + 1
end
return replies
"""


@dataclass(frozen=True, slots=True)
class Fence:
    """The leader's fencing token: its commands run only while no later leader has published."""

    key: str
    epoch: int

    @classmethod
    def of(cls, deployment: str, epoch: int) -> Fence:
        return cls(f"cdc-sio:leader:{deployment}", epoch)


def connect(url: str, *, cluster: bool = False) -> RedisClient:
    """A cluster client sends each command to the shard that owns its channel's or stream's slot."""
    # Timeouts: a Redis that stopped answering is an outage, not a hang.
    if cluster:
        return RedisCluster.from_url(
            url, client_name="cdc-sio:publisher", health_check_interval=30, socket_connect_timeout=10, socket_timeout=30
        )
    return redis.Redis.from_url(
        url, client_name="cdc-sio:publisher", health_check_interval=30, socket_connect_timeout=10, socket_timeout=30
    )


async def execute(client: RedisClient, commands: Sequence[Command], fence: Fence | None = None) -> list[Any]:
    """Run every command in order (per shard, on a cluster); return the replies.

    With *fence*, the commands run in the fencing script (ResponseError ``FENCED ...`` when a later
    leader has published). On a Redis Cluster only PUBLISH commands (which reach every shard from
    any node) can be fenced; other commands there run unfenced.
    """
    if not commands:
        return []
    with _cluster_errors_as_connection_errors():
        fenceable = not isinstance(client, RedisCluster) or all(command[0] == "PUBLISH" for command in commands)
        if fence is not None and fenceable:
            return await _fenced(client, commands, fence)
        async with client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute()


async def _fenced(client: RedisClient, commands: Sequence[Command], fence: Fence) -> list[Any]:
    script = client.register_script(_FENCED)
    replies: list[Any] = []
    start = 0
    while start < len(commands):
        args: list[str | bytes | int] = [fence.epoch]
        size, end = 0, start
        while end < len(commands) and (end == start or size + _size(commands[end]) <= CHUNK_BYTES):
            args += [len(commands[end]), *commands[end]]
            size += _size(commands[end])
            end += 1
        replies += await script(keys=[fence.key], args=args)
        start = end
    return replies


def _size(command: Command) -> int:
    return sum(len(part) if isinstance(part, bytes | str) else 8 for part in command)


async def ping(client: RedisClient) -> None:
    with _cluster_errors_as_connection_errors():
        await client.ping()


@contextlib.contextmanager
def _cluster_errors_as_connection_errors() -> Iterator[None]:
    try:
        yield
    except RedisClusterException as error:
        raise RedisConnectionError(f"Redis Cluster: {error}") from error
