"""``ClusterMessage``s of socket.io-adapter, as the sharded Redis adapter and the Redis streams adapter read them.

Sharded: ``SPUBLISH <prefix>#<nsp>#[<room>#] {"uid","nsp","type","data"}`` (JSON, or msgpack when the
arguments are not plain JSON). Streams: ``XADD <stream> MAXLEN ~ <n> * uid emitter nsp <nsp> type <t> data
<JSON or base64 msgpack>``, byte-identical to ``@socket.io/redis-streams-emitter``. The top-level ``nsp`` is
required (socket.io-adapter >= 2.5.6 drops messages without it).
"""

from __future__ import annotations

import base64
from typing import Any

from cdc_sio.encoding import EMITTER_UID, Command, compact_json, event_packet, flags, json_or_msgpack, pack
from cdc_sio.errors import EncodingError
from cdc_sio.operations import DisconnectSockets, Operation, ServerSideEmit, SocketsJoin, SocketsLeave
from cdc_sio.routing import Emission
from cdc_sio.targets import RedisStreamsAdapter, ShardedRedisAdapter, stream_for

BROADCAST, SOCKETS_JOIN, SOCKETS_LEAVE, DISCONNECT_SOCKETS, SERVER_SIDE_EMIT = 3, 4, 5, 6, 9
SOCKET_ID_LENGTH = 20  # the sharded adapter's looksLikeASocketId()


def sharded_commands(target: ShardedRedisAdapter, operation: Operation) -> list[Command]:
    message = {
        "uid": EMITTER_UID,
        "nsp": operation.namespace,
        "type": message_type(operation),
        "data": message_data(operation),
    }
    channel = f"{target.channel_prefix}#{operation.namespace}#{_room_channel_suffix(target, operation)}"
    return [("SPUBLISH", channel.encode(), json_or_msgpack(message, _event_of(operation)))]


def _room_channel_suffix(target: ShardedRedisAdapter, operation: Operation) -> str:
    """As the adapter's computeChannel(): a broadcast to one room goes to that room's channel in dynamic modes.

    In "dynamic" mode servers do not subscribe to rooms named like socket ids, whose broadcasts stay on the
    namespace channel; in "static" mode servers subscribe to no room channel at all.
    """
    if not isinstance(operation, Emission) or len(operation.rooms) != 1:
        return ""
    room = operation.rooms[0]
    if target.subscription_mode == "dynamic-private" or (
        target.subscription_mode == "dynamic" and len(room) != SOCKET_ID_LENGTH
    ):
        return f"{room}#"
    return ""


def streams_commands(target: RedisStreamsAdapter, operation: Operation) -> list[Command]:
    try:
        stream = stream_for(target, operation.namespace)
    except ValueError as error:
        raise EncodingError(str(error)) from None
    data = message_data(operation, flags_before_except=True)
    try:
        encoded = compact_json(data)
    except (TypeError, ValueError):
        encoded = base64.b64encode(pack(data, _event_of(operation)))
    return [
        (
            "XADD",
            stream.encode(),
            "MAXLEN",
            "~",
            target.maxlen,
            "*",
            "uid",
            EMITTER_UID,
            "nsp",
            operation.namespace,
            "type",
            str(message_type(operation)),
            "data",
            encoded,
        )
    ]


def message_type(operation: Operation) -> int:
    match operation:
        case Emission():
            return BROADCAST
        case SocketsJoin():
            return SOCKETS_JOIN
        case SocketsLeave():
            return SOCKETS_LEAVE
        case DisconnectSockets():
            return DISCONNECT_SOCKETS
        case ServerSideEmit():
            return SERVER_SIDE_EMIT


def message_data(operation: Operation, *, flags_before_except: bool = False) -> dict[str, Any]:
    """The ``data`` member; the key order only matters for byte equality with the official emitters."""
    if isinstance(operation, ServerSideEmit):
        return {"packet": [operation.event, *operation.args]}
    rooms, except_rooms = list(operation.rooms), list(operation.except_rooms)
    match operation:
        case Emission() if flags_before_except:
            return {
                "packet": event_packet(operation),
                "opts": {"rooms": rooms, "flags": flags(operation), "except": except_rooms},
            }
        case Emission():
            return {
                "packet": event_packet(operation),
                "opts": {"rooms": rooms, "except": except_rooms, "flags": flags(operation)},
            }
        case SocketsJoin():
            return {"opts": {"rooms": rooms, "except": except_rooms, "flags": {}}, "rooms": list(operation.join)}
        case SocketsLeave():
            return {"opts": {"rooms": rooms, "except": except_rooms, "flags": {}}, "rooms": list(operation.leave)}
        case DisconnectSockets():
            return {"opts": {"rooms": rooms, "except": except_rooms, "flags": {}}, "close": operation.close}


def _event_of(operation: Operation) -> str:
    return operation.event if isinstance(operation, Emission | ServerSideEmit) else type(operation).__name__
