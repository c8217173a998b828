"""The Redis side: connect to a Redis server or a Redis Cluster, and run commands in one pipelined round trip.

A batch of PUBLISH commands to one Redis server is one EVAL whose Lua loop runs every PUBLISH in
order inside Redis: one command written and one reply read per batch, where a pipeline reads a
reply per message, which cost more than everything else the daemon does per change. Subscribers
receive exactly what PUBLISH sends. (On a cluster, and for SPUBLISH and XADD, which belong to a
shard's slot, the commands go through an ordinary pipeline.)

A cluster that cannot be reached raises redis-py's ``RedisClusterException``, which is not a ``RedisError``;
it is raised here as a ``redis.exceptions.ConnectionError`` so that callers handle every outage alike.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, ResponseError

from cdc_sio.encoding import Command

log = logging.getLogger("cdc_sio.publish")

RedisClient = redis.Redis | RedisCluster
_NO_EVAL: weakref.WeakSet[redis.Redis] = weakref.WeakSet()  # servers that refused the EVAL
PUBLISH_ALL = (
    b"local n = {} for i = 1, #ARGV, 2 do n[#n + 1] = redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end return n"
)


def connect(url: str, *, cluster: bool = False) -> RedisClient:
    """A cluster client sends each command to the shard that owns its channel's or stream's slot."""
    if cluster:
        return RedisCluster.from_url(url, client_name="cdc-sio:publisher", health_check_interval=30)
    return redis.Redis.from_url(url, client_name="cdc-sio:publisher", health_check_interval=30)


async def execute(client: RedisClient, commands: Sequence[Command]) -> list[Any]:
    """Run every command in order (per shard, on a cluster); return the replies."""
    if not commands:
        return []
    if (
        isinstance(client, redis.Redis)
        and client not in _NO_EVAL
        and all(command[0] == "PUBLISH" and len(command) == 3 for command in commands)
    ):
        try:
            return await _publish_all(client, commands)
        except ResponseError as error:  # e.g. an ACL that allows PUBLISH but not EVAL: use the pipeline
            _NO_EVAL.add(client)
            log.warning("publish_without_eval reason=%s", error)
    with _cluster_errors_as_connection_errors():
        async with client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute()


async def _publish_all(client: redis.Redis, commands: Sequence[Command]) -> list[Any]:
    """Every ``PUBLISH channel payload`` of *commands* as one EVAL; the replies, in order."""
    connection = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await connection.send_packed_command(pack_publish_all(commands))
        replies: list[Any] = await connection.read_response()
        return replies
    except BaseException:
        await connection.disconnect()  # replies may be left unread: never reuse it
        raise
    finally:
        await client.connection_pool.release(connection)


def pack_publish_all(commands: Sequence[Command]) -> bytes:
    """The RESP bytes of ``EVAL PUBLISH_ALL 0 channel payload channel payload ...``."""
    head = b"*%d\r\n$4\r\nEVAL\r\n$%d\r\n%b\r\n$1\r\n0\r\n" % (3 + 2 * len(commands), len(PUBLISH_ALL), PUBLISH_ALL)
    return head + b"".join([_bulk(c[1]) + _bulk(c[2]) for c in commands])


def _bulk(value: str | bytes | int) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode()
    return b"$%d\r\n%b\r\n" % (len(data), data)


async def ping(client: RedisClient) -> None:
    with _cluster_errors_as_connection_errors():
        await client.ping()


@contextlib.contextmanager
def _cluster_errors_as_connection_errors() -> Iterator[None]:
    try:
        yield
    except RedisClusterException as error:
        raise RedisConnectionError(f"Redis Cluster: {error}") from error
