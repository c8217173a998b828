"""The Redis side of the daemon: publish a batch of encoded messages with one command."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as redis

# One EVAL runs every PUBLISH of a batch inside Redis, in order: the daemon writes one command and
# reads one reply per batch, instead of a pipeline's reply per message, which cost more than
# everything else the daemon does per change. Subscribers receive exactly what PUBLISH sends.
PUBLISH_ALL = (
    b"local n = {} for i = 1, #ARGV, 2 do n[#n + 1] = redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end return n"
)


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, client_name="cdc-sio:publisher", health_check_interval=30)


def pack_publish_all(messages: Sequence[tuple[bytes, bytes]]) -> bytes:
    """The RESP bytes of ``EVAL PUBLISH_ALL 0 channel payload channel payload ...``."""
    parts = [b"*%d\r\n$4\r\nEVAL\r\n$%d\r\n%b\r\n$1\r\n0\r\n" % (3 + 2 * len(messages), len(PUBLISH_ALL), PUBLISH_ALL)]
    parts += [b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(c), c, len(p), p) for c, p in messages]
    return b"".join(parts)


async def publish(client: redis.Redis, messages: Sequence[tuple[bytes, bytes]]) -> list[int]:
    """PUBLISH every (channel, payload) in order; return how many subscribers each reached."""
    if not messages:
        return []
    pool = client.connection_pool
    connection = await pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        await connection.send_packed_command(pack_publish_all(messages))
        receivers: list[int] = await connection.read_response()
        return receivers
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)
