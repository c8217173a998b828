"""Encode emissions in the wire format of the classic ``@socket.io/redis-adapter``.

Byte-identical to ``@socket.io/redis-emitter`` 5.x: ``PUBLISH <key>#<nsp>#[<room>#]
msgpack([uid, packet, opts])``. See docs: the trailing ``#`` is required, and several rooms
travel as one message on the namespace channel so that no socket gets a duplicate.
"""

from __future__ import annotations

from typing import Any

import msgpack

from cdc_sio.config import RESERVED_EVENTS
from cdc_sio.errors import EncodingError
from cdc_sio.routing import Emission

EMITTER_UID = "emitter"
EVENT_PACKET = 2


def classic_channel(key: str, emission: Emission) -> bytes:
    room = f"{emission.rooms[0]}#" if len(emission.rooms) == 1 else ""
    return f"{key}#{emission.namespace}#{room}".encode()


def classic_message(emission: Emission) -> bytes:
    _check_event(emission.event)
    packet = {"type": EVENT_PACKET, "data": [emission.event, *emission.args], "nsp": emission.namespace}
    opts: dict[str, Any] = {
        "rooms": list(emission.rooms),
        "flags": flags(emission),
        "except": list(emission.except_rooms),
    }
    try:
        return msgpack.packb([EMITTER_UID, packet, opts], use_bin_type=True)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError) as error:
        raise EncodingError(f"event {emission.event!r}: cannot encode its arguments: {error}") from None


def flags(emission: Emission) -> dict[str, bool]:
    """Only the flags that were set: ``volatile: false`` would disable connection-state recovery."""
    result = {}
    if emission.volatile:
        result["volatile"] = True
    if emission.compress is not None:
        result["compress"] = emission.compress
    return result


def _check_event(event: str) -> None:
    if not event:
        raise EncodingError("the event name is empty")
    if event in RESERVED_EVENTS:
        raise EncodingError(f"event name {event!r} is reserved by Socket.IO")


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
