"""The pub/sub messages of python-socketio's ``AsyncRedisManager`` / ``RedisManager`` (>= 5.15.1).

``PUBLISH <channel> {"method": "emit", "event", "data": [args...], "binary", "namespace", "room", "skip_sid",
"callback", "host_id"}``, as python-socketio 5.18 itself writes it. ``data`` is the list of arguments (the
rule since 5.15.1); with binary arguments it is ``[args with placeholders, base64 attachments...]`` (5.14.2).
python-socketio addresses single sockets by session id: ``skip_sid``, ``enter_room``, ``leave_room`` and
``disconnect`` take sids, not rooms.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cdc_sio.encoding import EMITTER_UID, Command, EmitEncoder
from cdc_sio.errors import EncodingError, UnsupportedOperation
from cdc_sio.operations import DisconnectSockets, Operation, ServerSideEmit, SocketsJoin, SocketsLeave
from cdc_sio.routing import Emission
from cdc_sio.targets import PythonSocketIO


def python_socketio_commands(target: PythonSocketIO, operation: Operation) -> list[Command]:
    channel = target.channel.encode()
    match operation:
        case Emission():
            return python_socketio_emit(target, operation)(operation.rooms, operation.args)
        case SocketsJoin():
            messages = _room_messages("enter_room", operation, operation.join)
        case SocketsLeave():
            messages = _room_messages("leave_room", operation, operation.leave)
        case DisconnectSockets():
            if operation.close:
                raise UnsupportedOperation("python-socketio cannot close the underlying connection: use close=False")
            messages = [
                _json({"method": "disconnect", "sid": sid, **_namespace_and_host(operation)})
                for sid in _sids(operation)
            ]
        case ServerSideEmit():
            raise UnsupportedOperation("python-socketio has no server-side events (serverSideEmit)")
    return [("PUBLISH", channel, message) for message in messages]


def python_socketio_emit(target: PythonSocketIO, emission: Emission) -> EmitEncoder:
    """The encoder for emissions like *emission* (its rooms and arguments come with each call)."""
    channel, namespace, event = target.channel.encode(), emission.namespace, emission.event
    skip_sid = list(emission.except_rooms) or None

    def commands(rooms: tuple[str, ...], args: tuple[Any, ...]) -> list[Command]:
        data: list[Any] = list(args)
        binary = False
        try:
            json.dumps(data, allow_nan=False)
        except TypeError:
            attachments: list[bytes] = []
            data = [_deconstruct(data, attachments), *(base64.b64encode(a).decode() for a in attachments)]
            binary = bool(attachments)
        except ValueError as error:
            raise EncodingError(f"event {event!r}: cannot encode its arguments: {error}") from None
        message = {
            "method": "emit",
            "event": event,
            "data": data,
            "binary": binary,
            "namespace": namespace,
            "room": (rooms[0] if len(rooms) == 1 else list(rooms)) if rooms else None,
            "skip_sid": skip_sid,
            "callback": None,
            "host_id": EMITTER_UID,
        }
        try:
            return [("PUBLISH", channel, _json(message))]
        except (TypeError, ValueError) as error:
            raise EncodingError(f"event {event!r}: cannot encode its arguments: {error}") from None

    return commands


def _deconstruct(value: Any, attachments: list[bytes]) -> Any:
    """python-socketio's ``Packet.deconstruct_binary``: bytes become ``{"_placeholder": true, "num": i}``."""
    if isinstance(value, bytes | bytearray):
        attachments.append(bytes(value))
        return {"_placeholder": True, "num": len(attachments) - 1}
    if isinstance(value, list | tuple):
        return [_deconstruct(item, attachments) for item in value]
    if isinstance(value, dict):
        return {key: _deconstruct(item, attachments) for key, item in value.items()}
    return value


def _room_messages(method: str, operation: SocketsJoin | SocketsLeave, rooms: tuple[str, ...]) -> list[bytes]:
    return [
        _json({"method": method, "sid": sid, "room": room, **_namespace_and_host(operation)})
        for sid in _sids(operation)
        for room in rooms
    ]


def _sids(operation: SocketsJoin | SocketsLeave | DisconnectSockets) -> tuple[str, ...]:
    if not operation.rooms or operation.except_rooms:
        raise UnsupportedOperation(
            f"python-socketio addresses {type(operation).__name__} to sockets by session id only: "
            "name the sids with to(...), and no except_(...)"
        )
    return operation.rooms


def _namespace_and_host(operation: Operation) -> dict[str, str]:
    return {"namespace": operation.namespace, "host_id": EMITTER_UID}


def _json(message: dict[str, Any]) -> bytes:
    """python-socketio's own ``json.dumps`` (NaN refused: its servers would pass it on, and browsers reject it)."""
    return json.dumps(message, allow_nan=False).encode()
