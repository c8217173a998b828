"""Turn an operation into the Redis commands that make a target's servers carry it out (pure, no I/O).

Every operation is checked first, so a refused one publishes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

from cdc_sio.encoding import Command, EmitEncoder, check, classic_commands, classic_emit
from cdc_sio.encoding_cluster import sharded_commands, sharded_emit, streams_commands, streams_emit
from cdc_sio.encoding_python import python_socketio_commands, python_socketio_emit
from cdc_sio.operations import Operation
from cdc_sio.routing import Emission
from cdc_sio.targets import PythonSocketIO, RedisAdapter, RedisStreamsAdapter, ShardedRedisAdapter, Target

Encoder = Callable[[Operation], list[Command]]
EmitCompiler = Callable[[Emission], EmitEncoder]


class TargetEncoders(NamedTuple):
    """How one target encodes: any operation that passed ``check``, and emissions of one kind (an
    emission that passed ``check`` gives its namespace, event, except-rooms and flags)."""

    operation: Encoder
    emission: EmitCompiler


def commands(target: Target, operation: Operation) -> list[Command]:
    check(operation)
    return target_encoders(target).operation(operation)


def target_encoders(target: Target) -> TargetEncoders:
    match target:
        case RedisAdapter():
            return TargetEncoders(
                functools.partial(classic_commands, target.key), functools.partial(classic_emit, target.key)
            )
        case ShardedRedisAdapter():
            return TargetEncoders(functools.partial(sharded_commands, target), functools.partial(sharded_emit, target))
        case RedisStreamsAdapter():
            return TargetEncoders(functools.partial(streams_commands, target), functools.partial(streams_emit, target))
        case PythonSocketIO():
            return TargetEncoders(
                functools.partial(python_socketio_commands, target), functools.partial(python_socketio_emit, target)
            )
