"""The Redis side: connect to a Redis server or a Redis Cluster, and run commands in one pipelined round trip.

A cluster that cannot be reached raises redis-py's ``RedisClusterException``, which is not a ``RedisError``;
it is raised here as a ``redis.exceptions.ConnectionError`` so that callers handle every outage alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from cdc_sio.encoding import Command

RedisClient = redis.Redis | RedisCluster


def connect(url: str, *, cluster: bool = False) -> RedisClient:
    """A cluster client sends each command to the shard that owns its channel's or stream's slot."""
    if cluster:
        return RedisCluster.from_url(url, client_name="cdc-sio:publisher", health_check_interval=30)
    return redis.Redis.from_url(url, client_name="cdc-sio:publisher", health_check_interval=30)


async def execute(client: RedisClient, commands: Sequence[Command]) -> list[Any]:
    """Run every command in order (per shard, on a cluster); return the replies."""
    if not commands:
        return []
    with _cluster_errors_as_connection_errors():
        async with client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute()


async def ping(client: RedisClient) -> None:
    with _cluster_errors_as_connection_errors():
        await client.ping()


@contextlib.contextmanager
def _cluster_errors_as_connection_errors() -> Iterator[None]:
    try:
        yield
    except RedisClusterException as error:
        raise RedisConnectionError(f"Redis Cluster: {error}") from error
