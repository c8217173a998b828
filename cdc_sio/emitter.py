"""Emit into a Socket.IO cluster from any asyncio Python program, through Redis; the daemon publishes with it too.

    emitter = Emitter(redis.asyncio.Redis(), target=ShardedRedisAdapter(subscription_mode="dynamic"))
    await emitter.of("/admin").to("room1", "room2").except_("room3").emit("event", {"id": 7}, b"\\x01")
    await emitter.to("room1").sockets_join("room4")
    await emitter.server_side_emit("hello", 1, "two")

Builders are immutable: ``to()``, ``except_()``, ``volatile``, ``compress()`` and ``of()`` return new objects,
so a partly built one can be kept and reused. Every operation is checked and encoded for every target before
anything is published: a refused one (reserved event name, unencodable argument, an operation the target
cannot do) raises ``EncodingError`` and publishes nothing. Several rooms are one message, so a socket in two
of them receives the event once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, NamedTuple

from cdc_sio import publish
from cdc_sio.commands import TargetEncoders, target_encoders
from cdc_sio.config import SocketIOConfig
from cdc_sio.encoding import Command, check, check_rooms
from cdc_sio.operations import DisconnectSockets, Operation, ServerSideEmit, SocketsJoin, SocketsLeave
from cdc_sio.publish import RedisClient
from cdc_sio.routing import Emission
from cdc_sio.targets import PythonSocketIO, RedisAdapter, RedisStreamsAdapter, ShardedRedisAdapter, Target

__all__ = [
    "Batch",
    "Broadcast",
    "Emitter",
    "Encoded",
    "PythonSocketIO",
    "RedisAdapter",
    "RedisStreamsAdapter",
    "ShardedRedisAdapter",
    "Target",
]


EMISSION_KINDS = 1024  # emissions of different namespace, event, except-rooms or flags whose encoders are kept


class _Destinations:
    """The targets, each with its Redis client; the clients this emitter opened itself are closed by it."""

    def __init__(self, pairs: Iterable[tuple[RedisClient, Target]], *, owned: bool) -> None:
        self.clients: list[RedisClient] = []
        self.encoders: list[tuple[int, TargetEncoders]] = []  # (client index, the target's encoders)
        for client, target in pairs:
            index = next((i for i, known in enumerate(self.clients) if known is client), None)
            if index is None:
                self.clients.append(client)
                index = len(self.clients) - 1
            self.encoders.append((index, target_encoders(target)))
        if not self.encoders:
            raise ValueError("an emitter needs at least one target")
        self.owned = owned
        self.emission_encoder = functools.lru_cache(maxsize=EMISSION_KINDS, typed=True)(self._emission_encoder)

    def _emission_encoder(
        self, namespace: str, event: str, except_rooms: tuple[str, ...], volatile: bool, compress: bool | None
    ) -> Callable[[tuple[str, ...], tuple[Any, ...]], Encoded]:
        """Checked and prepared once per kind of emission; then only the rooms are checked per emission."""
        kind = Emission(namespace, (), event, (), except_rooms, volatile, compress)
        check(kind)
        encoders = [(index, target.emission(kind)) for index, target in self.encoders]

        def encode(rooms: tuple[str, ...], args: tuple[Any, ...]) -> Encoded:
            check_rooms(rooms)
            commands = []
            size = 0
            for index, encode_for in encoders:
                for command in encode_for(rooms, args):
                    commands.append((index, command))
                    size = max(size, len(command[-1]))  # type: ignore[arg-type]  # an emission's payload is bytes
            return Encoded(tuple(commands), size, namespace)

        return encode


class Encoded(NamedTuple):
    """One operation's Redis commands for every target (as ``(client index, command)``), not yet published."""

    commands: tuple[tuple[int, Command], ...]
    size: int  # the largest payload among the targets' commands, in bytes
    namespace: str


class Batch:
    """Operations encoded as they are added, then published together: one pipelined round trip per Redis."""

    def __init__(self, destinations: _Destinations) -> None:
        self._destinations = destinations
        self._pending: list[list[Command]] = [[] for _ in destinations.clients]
        self._namespaces: list[list[str]] = [[] for _ in destinations.clients]  # of each pending command

    def encode(self, operation: Operation) -> Encoded:
        """The operation's commands for every target; EncodingError if any target refuses it."""
        if isinstance(operation, Emission):
            kind = operation.namespace, operation.event, operation.except_rooms, operation.volatile, operation.compress
            try:
                encode = self._destinations.emission_encoder(*kind)
            except TypeError:  # unhashable, so not a name: say which
                check(operation)
                raise
            return encode(operation.rooms, operation.args)
        check(operation)
        encoded = []
        size = 0
        for index, target in self._destinations.encoders:
            for command in target.operation(operation):
                encoded.append((index, command))
                payload = command[-1]
                if isinstance(payload, bytes) and len(payload) > size:
                    size = len(payload)
        return Encoded(tuple(encoded), size, operation.namespace)

    def extend(self, encoded: Iterable[Encoded]) -> None:
        for operation in encoded:
            for index, command in operation.commands:
                self._pending[index].append(command)
                self._namespaces[index].append(operation.namespace)

    def add(self, *operations: Operation) -> None:
        """Encode *operations* for every target; on EncodingError none of them is added."""
        self.extend([self.encode(operation) for operation in operations])

    def __len__(self) -> int:
        """The number of Redis commands waiting."""
        return sum(map(len, self._pending))

    async def send(self, fence: publish.Fence | None = None) -> list[tuple[str, Any]]:
        """Publish everything added, in order; the batch is empty again once every Redis accepted it.

        Returns each command's namespace and reply, Redis client by Redis client; *fence* runs them
        under the daemon's fencing token.
        """
        clients = self._destinations.clients
        results: list[list[Any] | BaseException]
        if len(clients) == 1:  # as usual: gathering one would cost a task and a turn of the loop
            results = [await publish.execute(clients[0], self._pending[0], fence)]
        else:
            results = await asyncio.gather(
                *(publish.execute(client, cmds, fence) for client, cmds in zip(clients, self._pending, strict=True)),
                return_exceptions=True,
            )
        replies: list[tuple[str, Any]] = []
        for namespaces, result in zip(self._namespaces, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            replies += zip(namespaces, result, strict=True)
        self._pending = [[] for _ in clients]
        self._namespaces = [[] for _ in clients]
        return replies


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A selection of sockets in one namespace: ``to()`` rooms (all sockets when none), minus ``except_()`` rooms."""

    _destinations: _Destinations
    namespace: str
    rooms: tuple[str, ...] = ()
    except_rooms: tuple[str, ...] = ()
    is_volatile: bool = False
    compression: bool | None = None

    def to(self, *rooms: str) -> Broadcast:
        """Also the sockets in *rooms* (a socket id is a room too)."""
        return replace(self, rooms=_union(self.rooms, rooms))

    def in_(self, *rooms: str) -> Broadcast:
        return self.to(*rooms)

    def except_(self, *rooms: str) -> Broadcast:
        """Not the sockets in *rooms*."""
        return replace(self, except_rooms=_union(self.except_rooms, rooms))

    @property
    def volatile(self) -> Broadcast:
        """The event may be dropped for a client that is not ready to receive it."""
        return replace(self, is_volatile=True)

    def compress(self, compress: bool) -> Broadcast:
        """Per-message deflate on or off for this event (default: the server's setting)."""
        return replace(self, compression=compress)

    async def emit(self, event: str, *args: Any) -> None:
        """``socket.on(event, (...args) => ...)`` in the browser; ``bytes`` arrive as binary."""
        emission = Emission(
            self.namespace,
            self.rooms,
            event,
            args,
            except_rooms=self.except_rooms,
            volatile=self.is_volatile,
            compress=self.compression,
        )
        await _publish(self._destinations, emission)

    async def sockets_join(self, rooms: str | Iterable[str]) -> None:
        """The selected sockets join *rooms*."""
        await _publish(self._destinations, SocketsJoin(self.namespace, self.rooms, self.except_rooms, _rooms(rooms)))

    async def sockets_leave(self, rooms: str | Iterable[str]) -> None:
        """The selected sockets leave *rooms*."""
        await _publish(self._destinations, SocketsLeave(self.namespace, self.rooms, self.except_rooms, _rooms(rooms)))

    async def disconnect_sockets(self, close: bool = False) -> None:
        """Disconnect the selected sockets; *close* also closes their underlying connection."""
        await _publish(self._destinations, DisconnectSockets(self.namespace, self.rooms, self.except_rooms, close))


_CLASSIC = RedisAdapter()


class Emitter:
    """The whole of one namespace (``"/"`` unless ``of()`` says otherwise) on one or more targets."""

    __slots__ = ("_destinations", "namespace")

    def __init__(
        self, redis: RedisClient, target: Target | Sequence[Target] = _CLASSIC, *, namespace: str = "/"
    ) -> None:
        targets = target if isinstance(target, Sequence) else (target,)
        self._destinations = _Destinations(((redis, t) for t in targets), owned=False)
        self.namespace = _namespace(namespace)

    @classmethod
    def over(cls, destinations: Iterable[tuple[RedisClient, Target]], *, namespace: str = "/") -> Emitter:
        """Targets on different Redis servers: ``Emitter.over([(old_redis, RedisAdapter()), (cluster, ...)])``."""
        return cls._with(_Destinations(destinations, owned=False), namespace)

    @classmethod
    def from_config(cls, config: SocketIOConfig) -> Emitter:
        """The targets of a cdc-sio config, with Redis connections of its own (closed by ``aclose()``)."""
        clients: dict[tuple[str, bool], RedisClient] = {}
        pairs = []
        for entry in config.targets:
            where = (entry.redis.url, entry.redis.cluster)
            if where not in clients:
                clients[where] = publish.connect(entry.redis.url, cluster=entry.redis.cluster)
            pairs.append((clients[where], entry.target))
        return cls._with(_Destinations(pairs, owned=True), "/")

    @classmethod
    def _with(cls, destinations: _Destinations, namespace: str) -> Emitter:
        emitter = cls.__new__(cls)
        emitter._destinations = destinations
        emitter.namespace = _namespace(namespace)
        return emitter

    def of(self, namespace: str) -> Emitter:
        """The same targets, another namespace (``"admin"`` means ``"/admin"``)."""
        return self._with(self._destinations, namespace)

    def to(self, *rooms: str) -> Broadcast:
        return self._everyone().to(*rooms)

    def in_(self, *rooms: str) -> Broadcast:
        return self._everyone().to(*rooms)

    def except_(self, *rooms: str) -> Broadcast:
        return self._everyone().except_(*rooms)

    @property
    def volatile(self) -> Broadcast:
        return self._everyone().volatile

    def compress(self, compress: bool) -> Broadcast:
        return self._everyone().compress(compress)

    async def emit(self, event: str, *args: Any) -> None:
        await self._everyone().emit(event, *args)

    async def sockets_join(self, rooms: str | Iterable[str]) -> None:
        await self._everyone().sockets_join(rooms)

    async def sockets_leave(self, rooms: str | Iterable[str]) -> None:
        await self._everyone().sockets_leave(rooms)

    async def disconnect_sockets(self, close: bool = False) -> None:
        await self._everyone().disconnect_sockets(close)

    async def server_side_emit(self, event: str, *args: Any) -> None:
        """Runs ``io.of(namespace).on(event, (...args) => ...)`` on every server (no acknowledgements)."""
        await _publish(self._destinations, ServerSideEmit(self.namespace, event, args))

    def batch(self) -> Batch:
        """Collect operations with ``batch.add(...)``; ``await batch.send()`` publishes them in one round trip."""
        return Batch(self._destinations)

    async def ping(self) -> None:
        """Raise if a Redis server does not answer."""
        await asyncio.gather(*(publish.ping(client) for client in self._destinations.clients))

    async def aclose(self) -> None:
        """Close the connections ``from_config()`` opened; clients passed in are left to their owner."""
        if self._destinations.owned:
            await asyncio.gather(*(client.aclose() for client in self._destinations.clients))

    async def __aenter__(self) -> Emitter:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    def _everyone(self) -> Broadcast:
        return Broadcast(self._destinations, self.namespace)


async def _publish(destinations: _Destinations, operation: Operation) -> None:
    batch = Batch(destinations)
    batch.add(operation)
    await batch.send()


def _namespace(name: str) -> str:
    return name if not isinstance(name, str) or name.startswith("/") else f"/{name}"


def _union(first: tuple[str, ...], more: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*first, *more)))


def _rooms(rooms: str | Iterable[str]) -> tuple[str, ...]:
    return (rooms,) if isinstance(rooms, str) else tuple(rooms)
