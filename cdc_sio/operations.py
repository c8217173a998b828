"""What an emitter can ask a Socket.IO cluster to do, as plain values (``Emission`` is the broadcast).

The selection (``namespace``, ``rooms``, ``except_rooms``) means what it means on a Node server:
the sockets of the namespace in any of ``rooms`` (all of them when empty) and in none of ``except_rooms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdc_sio.routing import Emission


@dataclass(frozen=True, slots=True)
class SocketsJoin:
    """``io.of(namespace).in(rooms).except(except_rooms).socketsJoin(join)``."""

    namespace: str
    rooms: tuple[str, ...]
    except_rooms: tuple[str, ...]
    join: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SocketsLeave:
    """``io.of(namespace).in(rooms).except(except_rooms).socketsLeave(leave)``."""

    namespace: str
    rooms: tuple[str, ...]
    except_rooms: tuple[str, ...]
    leave: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DisconnectSockets:
    """``io.of(namespace).in(rooms).except(except_rooms).disconnectSockets(close)``."""

    namespace: str
    rooms: tuple[str, ...]
    except_rooms: tuple[str, ...]
    close: bool


@dataclass(frozen=True, slots=True)
class ServerSideEmit:
    """``io.of(namespace).serverSideEmit(event, *args)``: runs ``namespace.on(event, ...)`` on every server."""

    namespace: str
    event: str
    args: tuple[Any, ...]


Request = SocketsJoin | SocketsLeave | DisconnectSockets | ServerSideEmit  # what is not a broadcast
Operation = Emission | Request
