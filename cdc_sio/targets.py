"""The Socket.IO cluster flavours cdc-sio can publish to: one frozen value per flavour, with its options.

Each option has the name and default of the matching server-side adapter option, so a target is
configured by copying the servers' settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SubscriptionMode = Literal["static", "dynamic", "dynamic-private"]
SUBSCRIPTION_MODES: tuple[SubscriptionMode, ...] = ("static", "dynamic", "dynamic-private")


@dataclass(frozen=True, slots=True)
class RedisAdapter:
    """``@socket.io/redis-adapter`` ``createAdapter(pub, sub, {key})``: PUBLISH, msgpack."""

    key: str = "socket.io"


@dataclass(frozen=True, slots=True)
class ShardedRedisAdapter:
    """``@socket.io/redis-adapter`` ``createShardedAdapter(pub, sub, {channelPrefix, subscriptionMode})``: SPUBLISH."""

    channel_prefix: str = "socket.io"
    subscription_mode: SubscriptionMode = "dynamic"


@dataclass(frozen=True, slots=True)
class RedisStreamsAdapter:
    """``@socket.io/redis-streams-adapter`` ``createAdapter(client, {streamName, streamCount, maxLen})``: XADD."""

    stream_name: str = "socket.io"
    stream_count: int = 1
    maxlen: int = 10_000


@dataclass(frozen=True, slots=True)
class PythonSocketIO:
    """python-socketio ``AsyncRedisManager(url, channel=...)`` / ``RedisManager``: PUBLISH, JSON."""

    channel: str = "socketio"


Target = RedisAdapter | ShardedRedisAdapter | RedisStreamsAdapter | PythonSocketIO


def stream_for(target: RedisStreamsAdapter, namespace: str) -> str:
    """The stream the adapter uses for *namespace*: ``streamName`` or ``streamName-<hashCode(nsp) % streamCount>``.

    ValueError when that index is negative (JavaScript's ``%``): the adapter writes such a namespace to
    ``streamName--<i>`` but its servers poll only ``-0`` to ``-<streamCount - 1>``, so nothing would arrive.
    """
    if target.stream_count == 1:
        return target.stream_name
    index = _js_remainder(_java_hash_code(namespace), target.stream_count)
    if index < 0:
        raise ValueError(
            f"namespace {namespace!r} maps to stream '{target.stream_name}-{index}', which "
            f"@socket.io/redis-streams-adapter servers never read with streamCount {target.stream_count} "
            f"(they poll only '{target.stream_name}-0' to '{target.stream_name}-{target.stream_count - 1}'); "
            "rename the namespace or change stream_count"
        )
    return f"{target.stream_name}-{index}"


def _java_hash_code(text: str) -> int:
    """JavaScript's ``h = h * 31 + charCodeAt(i); h |= 0`` over UTF-16 code units."""
    units = text.encode("utf-16-le", "surrogatepass")
    value = 0
    for i in range(0, len(units), 2):
        value = (value * 31 + int.from_bytes(units[i : i + 2], "little")) & 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _js_remainder(dividend: int, divisor: int) -> int:
    """JavaScript ``%``: the result takes the sign of the dividend."""
    remainder = abs(dividend) % divisor
    return -remainder if dividend < 0 else remainder
