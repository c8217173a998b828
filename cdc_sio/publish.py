"""The Redis side: connect to a Redis server or a Redis Cluster, and run commands in one round trip.

The daemon's commands are fenced: they run inside one Lua script that first compares the leader's
epoch with the highest one Redis has seen (see :class:`Fence`). A cluster that cannot be reached
raises redis-py's ``RedisClusterException``, which is not a ``RedisError``; it is raised here as a
``redis.exceptions.ConnectionError`` so that callers handle every outage alike.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisClusterException, ResponseError

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
    if isinstance(client, redis.Redis):
        return await _fenced_packed(client, commands, fence)
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


async def _fenced_packed(client: redis.Redis, commands: Sequence[Command], fence: Fence) -> list[Any]:
    """The fencing script on one Redis server, its request bytes packed here in one pass.

    redis-py's script call packs every argument on its own, which cost the daemon more than
    routing a change. Each reply is read before the next request, so an error reply (FENCED,
    NOSCRIPT) leaves the connection in step; anything else closes it.
    """
    connection = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        replies: list[Any] = []
        for chunk in _chunks([(_packed(command), 1 + len(command)) for command in commands]):
            request = _evalsha_request(fence, chunk)
            await connection.send_packed_command(request)
            try:
                reply = await connection.read_response()
            except NoScriptError:
                await connection.send_command("SCRIPT", "LOAD", _FENCED)
                await connection.read_response()
                await connection.send_packed_command(request)
                reply = await connection.read_response()
            replies += reply
        return replies
    except ResponseError:
        raise
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await client.connection_pool.release(connection)


_FENCED_SHA = hashlib.sha1(_FENCED.encode()).hexdigest().encode()


def _evalsha_request(fence: Fence, chunk: list[tuple[bytes, int]]) -> bytes:
    head = [b"EVALSHA", _FENCED_SHA, b"1", fence.key.encode(), str(fence.epoch).encode()]
    arguments = len(head) + sum(count for _, count in chunk)
    return b"".join([b"*%d\r\n" % arguments, *map(_bulk, head), *(packed for packed, _ in chunk)])


def _packed(command: Command) -> bytes:
    """A command as the script's arguments: its length, then each part, as RESP bulk strings."""
    if len(command) == 3 and command[0] == "PUBLISH":  # nearly every command: one format, no joins
        channel, message = command[1], command[2]
        if isinstance(channel, bytes) and isinstance(message, bytes):
            return _PUBLISH_PACKED % (len(channel), channel, len(message), message)
    return b"".join([_bulk(len(command)), *map(_bulk, command)])


_PUBLISH_PACKED = b"$1\r\n3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"


def _chunks(packed: list[tuple[bytes, int]]) -> Iterator[list[tuple[bytes, int]]]:
    """Consecutive runs of (packed command, its argument count) of at most CHUNK_BYTES (at least one)."""
    chunk: list[tuple[bytes, int]] = []
    size = 0
    for part in packed:
        if chunk and size + len(part[0]) > CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(part)
        size += len(part[0])
    if chunk:
        yield chunk


def _bulk(value: str | bytes | int) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


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
