"""The checks every operation passes before anything is published, and the classic ``@socket.io/redis-adapter`` format.

Classic broadcasts are byte-identical to ``@socket.io/redis-emitter`` 5.x: ``PUBLISH <key>#<nsp>#[<room>#]
msgpack([uid, packet, opts])``. See docs: the trailing ``#`` is required, and several rooms travel as one
message on the namespace channel so that no socket gets a duplicate. socketsJoin/socketsLeave/
disconnectSockets/serverSideEmit are JSON requests on ``<key>-request#<nsp>#``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

import msgpack

from cdc_sio.config import RESERVED_EVENTS
from cdc_sio.errors import EncodingError
from cdc_sio.operations import DisconnectSockets, Operation, Request, ServerSideEmit, SocketsJoin, SocketsLeave
from cdc_sio.routing import Emission

EMITTER_UID = "emitter"
EVENT_PACKET = 2
# A server-side event runs ``namespace.emit(event, ...)`` on every Node server: these would fake a
# connection, or throw (an "error" event with no listener) inside the adapter's message handler.
SERVER_SIDE_RESERVED_EVENTS = RESERVED_EVENTS | {"connection", "new_namespace", "error"}

# Redis command arguments, e.g. ("PUBLISH", channel, payload) or ("XADD", stream, "MAXLEN", ...).
Command = tuple[str | bytes | int, ...]
# An emission's commands from its rooms and arguments, made for one namespace, event, except-rooms and flags:
# what stays the same from one emission to the next is prepared once (the daemon emits a few kinds, often).
EmitEncoder = Callable[[tuple[str, ...], tuple[Any, ...]], list[Command]]

_REQUEST_TYPES = {SocketsJoin: 2, SocketsLeave: 3, DisconnectSockets: 4, ServerSideEmit: 6}
# One packer for every message: ``packb`` makes a new one, and its buffer, each time (2 µs of the
# 3.5 µs an event takes). A pack runs no Python code, so under the GIL no other pack can interleave,
# and a failed pack empties the buffer.
_packer = msgpack.Packer(use_bin_type=True)


def check(operation: Operation) -> None:
    """Refuse what no server can route, or what would make clients drop the connection."""
    _check_namespace(operation.namespace)
    if isinstance(operation, ServerSideEmit):
        _check_event(operation.event, SERVER_SIDE_RESERVED_EVENTS)
        return
    check_rooms(operation.rooms)
    _check_rooms(operation.except_rooms, "except-room")
    match operation:
        case Emission():
            _check_event(operation.event, RESERVED_EVENTS)
        case SocketsJoin():
            _check_rooms(operation.join, "room to join")
        case SocketsLeave():
            _check_rooms(operation.leave, "room to leave")


def _check_namespace(namespace: object) -> None:
    if not _is_text(namespace) or not namespace.startswith("/"):
        raise EncodingError(f"namespace {namespace!r} must be a string that starts with '/'")


def check_rooms(rooms: Sequence[object]) -> None:
    _check_rooms(rooms, "room")


def _check_rooms(rooms: Sequence[object], what: str) -> None:
    for room in rooms:
        if not _is_text(room) or not room:
            raise EncodingError(f"{what} {room!r} must be a non-empty string")


def _check_event(event: object, reserved: frozenset[str]) -> None:
    if not _is_text(event):
        raise EncodingError(f"the event name {event!r} must be a string")
    if not event:
        raise EncodingError("the event name is empty")
    if event in reserved:
        raise EncodingError(f"event name {event!r} is reserved by Socket.IO")


def _is_text(value: object) -> TypeGuard[str]:
    """A string that UTF-8 can carry (a lone surrogate cannot be put in a channel name or on the wire)."""
    if not isinstance(value, str):
        return False
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def flags(emission: Emission) -> dict[str, bool]:
    """Only the flags that were set: ``volatile: false`` would disable connection-state recovery."""
    result = {}
    if emission.volatile:
        result["volatile"] = True
    if emission.compress is not None:
        result["compress"] = emission.compress
    return result


def event_packet(namespace: str, event: str, args: tuple[Any, ...]) -> dict[str, Any]:
    """The Socket.IO packet every Node adapter carries: type 2 even with binary arguments, and no ack id."""
    return {"type": EVENT_PACKET, "data": [event, *args], "nsp": namespace}


def pack(value: Any, event: str) -> bytes:
    """msgpack with ``bytes`` as bin, so binary arrives as binary."""
    try:
        return _packer.pack(value)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as error:
        raise EncodingError(f"event {event!r}: cannot encode its arguments: {error}") from None


def compact_json(value: Any) -> bytes:
    """``JSON.stringify``'s output; TypeError for bytes, ValueError for NaN/Infinity (not JSON)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def json_or_msgpack(value: Any, event: str) -> bytes:
    """JSON text when the value is plain JSON, else msgpack (binary, NaN): what the Node adapters send."""
    try:
        return compact_json(value)
    except (TypeError, ValueError):
        return pack(value, event)


def classic_commands(key: str, operation: Operation) -> list[Command]:
    if isinstance(operation, Emission):
        return classic_emit(key, operation)(operation.rooms, operation.args)
    return [("PUBLISH", f"{key}-request#{operation.namespace}#".encode(), classic_request(operation))]


def classic_emit(key: str, emission: Emission) -> EmitEncoder:
    """The encoder for emissions like *emission* (its rooms and arguments come with each call)."""
    namespace, event, except_rooms, options = emission.namespace, emission.event, emission.except_rooms, flags(emission)
    everyone = f"{key}#{namespace}#".encode()

    def commands(rooms: tuple[str, ...], args: tuple[Any, ...]) -> list[Command]:
        channel = f"{key}#{namespace}#{rooms[0]}#".encode() if len(rooms) == 1 else everyone
        opts = {"rooms": rooms, "flags": options, "except": except_rooms}  # tuples pack as arrays
        return [("PUBLISH", channel, pack([EMITTER_UID, event_packet(namespace, event, args), opts], event))]

    return commands


def classic_request(operation: Request) -> bytes:
    """The adapter reads a request as JSON when its first byte is ``{``, else as msgpack (binary arguments)."""
    request_type = _REQUEST_TYPES[type(operation)]
    if isinstance(operation, ServerSideEmit):
        request = {"uid": EMITTER_UID, "type": request_type, "data": [operation.event, *operation.args]}
        return json_or_msgpack(request, operation.event)
    opts = {"rooms": list(operation.rooms), "except": list(operation.except_rooms)}
    match operation:
        case SocketsJoin():
            return compact_json({"type": request_type, "opts": opts, "rooms": list(operation.join)})
        case SocketsLeave():
            return compact_json({"type": request_type, "opts": opts, "rooms": list(operation.leave)})
        case DisconnectSockets():
            return compact_json({"type": request_type, "opts": opts, "close": operation.close})


def decode_classic(payload: bytes) -> Emission:
    """Read back a classic broadcast message (for ``cdc-sio tail`` and tests)."""
    uid, packet, opts = msgpack.unpackb(payload, raw=False)
    event, *args = packet["data"]
    del uid
    flags = opts.get("flags") or {}
    return Emission(
        packet.get("nsp", "/"),
        tuple(opts.get("rooms") or ()),
        event,
        tuple(args),
        except_rooms=tuple(opts.get("except") or ()),
        volatile=bool(flags.get("volatile", False)),
        compress=flags.get("compress"),
    )
