"""Turn an operation into the Redis commands that make a target's servers carry it out (pure, no I/O).

Every operation is checked first, so a refused one publishes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from cdc_sio.encoding import Command, EmitEncoder, check, classic_commands, classic_emit
from cdc_sio.encoding_cluster import sharded_commands, sharded_emit, streams_commands, streams_emit
from cdc_sio.encoding_python import python_socketio_commands, python_socketio_emit
from cdc_sio.operations import Operation
from cdc_sio.routing import Emission
from cdc_sio.targets import PythonSocketIO, RedisAdapter, RedisStreamsAdapter, ShardedRedisAdapter, Target

Encoder = Callable[[Operation], list[Command]]
EmitCompiler = Callable[[Emission], EmitEncoder]


def commands(target: Target, operation: Operation) -> list[Command]:
    check(operation)
    return encoder(target)(operation)


def encoder(target: Target) -> Encoder:
    """The target's commands for an operation that passed ``check``."""
    match target:
        case RedisAdapter():
            return functools.partial(classic_commands, target.key)
        case ShardedRedisAdapter():
            return functools.partial(sharded_commands, target)
        case RedisStreamsAdapter():
            return functools.partial(streams_commands, target)
        case PythonSocketIO():
            return functools.partial(python_socketio_commands, target)


def emit_compiler(target: Target) -> EmitCompiler:
    """The target's encoder for emissions of the kind of one that passed ``check`` (its rooms and args aside)."""
    match target:
        case RedisAdapter():
            return functools.partial(classic_emit, target.key)
        case ShardedRedisAdapter():
            return functools.partial(sharded_emit, target)
        case RedisStreamsAdapter():
            return functools.partial(streams_emit, target)
        case PythonSocketIO():
            return functools.partial(python_socketio_emit, target)
