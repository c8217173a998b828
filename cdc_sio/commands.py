"""Turn an operation into the Redis commands that make a target's servers carry it out (pure, no I/O).

Every operation is checked first, so a refused one publishes nothing.
"""

from __future__ import annotations

from cdc_sio.encoding import Command, check, classic_commands
from cdc_sio.encoding_cluster import sharded_commands, streams_commands
from cdc_sio.encoding_python import python_socketio_commands
from cdc_sio.operations import Operation
from cdc_sio.targets import PythonSocketIO, RedisAdapter, RedisStreamsAdapter, ShardedRedisAdapter, Target


def commands(target: Target, operation: Operation) -> list[Command]:
    check(operation)
    match target:
        case RedisAdapter():
            return classic_commands(target.key, operation)
        case ShardedRedisAdapter():
            return sharded_commands(target, operation)
        case RedisStreamsAdapter():
            return streams_commands(target, operation)
        case PythonSocketIO():
            return python_socketio_commands(target, operation)
