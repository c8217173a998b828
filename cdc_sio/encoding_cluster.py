"""``ClusterMessage``s of socket.io-adapter, as the sharded Redis adapter and the Redis streams adapter read them.

Sharded: ``SPUBLISH <prefix>#<nsp>#[<room>#] {"uid","nsp","type","data"}`` (JSON, or msgpack when the
arguments are not plain JSON). Streams: ``XADD <stream> MAXLEN ~ <n> * uid emitter nsp <nsp> type <t> data
<JSON or base64 msgpack>``, byte-identical to ``@socket.io/redis-streams-emitter``. The top-level ``nsp`` is
required (socket.io-adapter >= 2.5.6 drops messages without it).
"""

from __future__ import annotations

import base64
from typing import Any

from cdc_sio.encoding import (
    EMITTER_UID,
    Command,
    EmitEncoder,
    compact_json,
    event_packet,
    flags,
    json_or_msgpack,
    pack,
)
from cdc_sio.errors import EncodingError
from cdc_sio.operations import DisconnectSockets, Operation, Request, ServerSideEmit, SocketsJoin, SocketsLeave
from cdc_sio.routing import Emission
from cdc_sio.targets import RedisStreamsAdapter, ShardedRedisAdapter, stream_for

BROADCAST, SOCKETS_JOIN, SOCKETS_LEAVE, DISCONNECT_SOCKETS, SERVER_SIDE_EMIT = 3, 4, 5, 6, 9
SOCKET_ID_LENGTH = 20  # the sharded adapter's looksLikeASocketId()


def sharded_commands(target: ShardedRedisAdapter, operation: Operation) -> list[Command]:
    if isinstance(operation, Emission):
        return sharded_emit(target, operation)(operation.rooms, operation.args)
    message = {
        "uid": EMITTER_UID,
        "nsp": operation.namespace,
        "type": message_type(operation),
        "data": message_data(operation),
    }
    channel = f"{target.channel_prefix}#{operation.namespace}#"
    return [("SPUBLISH", channel.encode(), json_or_msgpack(message, _event_of(operation)))]


def sharded_emit(target: ShardedRedisAdapter, emission: Emission) -> EmitEncoder:
    """The encoder for emissions like *emission* (its rooms and arguments come with each call)."""
    namespace, event = emission.namespace, emission.event
    except_rooms, options = list(emission.except_rooms), flags(emission)
    channel_prefix = f"{target.channel_prefix}#{namespace}#"

    def commands(rooms: tuple[str, ...], args: tuple[Any, ...]) -> list[Command]:
        data = {
            "packet": event_packet(namespace, event, args),
            "opts": {"rooms": list(rooms), "except": except_rooms, "flags": options},
        }
        message = {"uid": EMITTER_UID, "nsp": namespace, "type": BROADCAST, "data": data}
        channel = f"{channel_prefix}{_room_channel_suffix(target, rooms)}".encode()
        return [("SPUBLISH", channel, json_or_msgpack(message, event))]

    return commands


def _room_channel_suffix(target: ShardedRedisAdapter, rooms: tuple[str, ...]) -> str:
    """As the adapter's computeChannel(): a broadcast to one room goes to that room's channel in dynamic modes.

    In "dynamic" mode servers do not subscribe to rooms named like socket ids, whose broadcasts stay on the
    namespace channel; in "static" mode servers subscribe to no room channel at all.
    """
    if len(rooms) != 1:
        return ""
    room = rooms[0]
    if target.subscription_mode == "dynamic-private" or (
        target.subscription_mode == "dynamic" and len(room) != SOCKET_ID_LENGTH
    ):
        return f"{room}#"
    return ""


def streams_commands(target: RedisStreamsAdapter, operation: Operation) -> list[Command]:
    if isinstance(operation, Emission):
        return streams_emit(target, operation)(operation.rooms, operation.args)
    stream = _stream(target, operation.namespace)
    return [
        _xadd(
            target, stream, operation.namespace, message_type(operation), message_data(operation), _event_of(operation)
        )
    ]


def streams_emit(target: RedisStreamsAdapter, emission: Emission) -> EmitEncoder:
    """The encoder for emissions like *emission* (its rooms and arguments come with each call)."""
    namespace, event = emission.namespace, emission.event
    except_rooms, options = list(emission.except_rooms), flags(emission)
    stream = _stream(target, namespace)

    def commands(rooms: tuple[str, ...], args: tuple[Any, ...]) -> list[Command]:
        data = {
            "packet": event_packet(namespace, event, args),
            "opts": {"rooms": list(rooms), "flags": options, "except": except_rooms},  # the streams emitter's order
        }
        return [_xadd(target, stream, namespace, BROADCAST, data, event)]

    return commands


def _xadd(
    target: RedisStreamsAdapter, stream: bytes, namespace: str, kind: int, data: dict[str, Any], event: str
) -> Command:
    try:
        encoded = compact_json(data)
    except (TypeError, ValueError):
        encoded = base64.b64encode(pack(data, event))
    return (
        "XADD",
        stream,
        "MAXLEN",
        "~",
        target.maxlen,
        "*",
        "uid",
        EMITTER_UID,
        "nsp",
        namespace,
        "type",
        str(kind),
        "data",
        encoded,
    )


def _stream(target: RedisStreamsAdapter, namespace: str) -> bytes:
    try:
        return stream_for(target, namespace).encode()
    except ValueError as error:
        raise EncodingError(str(error)) from None


def message_type(operation: Request) -> int:
    match operation:
        case SocketsJoin():
            return SOCKETS_JOIN
        case SocketsLeave():
            return SOCKETS_LEAVE
        case DisconnectSockets():
            return DISCONNECT_SOCKETS
        case ServerSideEmit():
            return SERVER_SIDE_EMIT


def message_data(operation: Request) -> dict[str, Any]:
    """The ``data`` member of a request (an emission's is made by its encoder)."""
    if isinstance(operation, ServerSideEmit):
        return {"packet": [operation.event, *operation.args]}
    opts = {"rooms": list(operation.rooms), "except": list(operation.except_rooms), "flags": {}}
    match operation:
        case SocketsJoin():
            return {"opts": opts, "rooms": list(operation.join)}
        case SocketsLeave():
            return {"opts": opts, "rooms": list(operation.leave)}
        case DisconnectSockets():
            return {"opts": opts, "close": operation.close}


def _event_of(operation: Request) -> str:
    return operation.event if isinstance(operation, ServerSideEmit) else type(operation).__name__
