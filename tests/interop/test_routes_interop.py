"""Routes and every common PostgreSQL type, delivered to a real socket.io-client."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis.asyncio

from tests.interop.harness import ClientFactory, ReceivedEvent, SocketServer
from tests.support import make_config, migrate_database, new_database, publish_sentinel, running_daemon

pytestmark = pytest.mark.interop

SENTINEL = ReceivedEvent("sentinel", [])


async def test_important_deletes_reach_only_clients_that_joined_the_alerts_room(
    dsn: str,
    key: str,
    socketio_server: SocketServer,
    socketio_client: ClientFactory,
    redis_client: redis.asyncio.Redis,
) -> None:
    """The talk's example: `Thing::delete::important` goes to ROOM::ExtraImportantUpdates only."""
    table = {
        "table": "things",
        "rooms": ["things"],
        "events": {"delete": "Thing::delete"},
        "routes": [
            {
                "on": ["delete"],
                "when": "importance > 100",
                "event": "Thing::delete::important",
                "rooms": ["ROOM::ExtraImportantUpdates"],
            }
        ],
    }
    config = make_config(dsn, key, table)
    await migrate_database(config)
    alerts_on = await socketio_client(socketio_server, "/", ["ROOM::ExtraImportantUpdates"])
    alerts_off = await socketio_client(socketio_server, "/", ["things"])
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("INSERT INTO things (id, name, importance) VALUES (1, 'minor', 5), (2, 'major', 500)")
        async with running_daemon(config):
            await connection.execute("DELETE FROM things WHERE id = 1")
            await connection.execute("DELETE FROM things WHERE id = 2")
            important = await alerts_on.next_event(timeout=15)
            deletes = [await alerts_off.next_event(timeout=15) for _ in range(2)]
    finally:
        await connection.close()
    assert (important.event, important.args[0]["name"]) == ("Thing::delete::important", "major")
    assert [(e.event, e.args[0]["id"]) for e in deletes] == [("Thing::delete", 1), ("Thing::delete", 2)]
    await publish_sentinel(redis_client, key, "/")
    assert await alerts_on.events_until("sentinel") == [SENTINEL]
    assert await alerts_off.events_until("sentinel") == [SENTINEL]


TYPES_DDL = """
CREATE TYPE mood AS ENUM ('happy', 'sad');
CREATE TYPE pair AS (a integer, b text);
CREATE DOMAIN positive AS integer CHECK (VALUE > 0);
CREATE TABLE typed (
    id integer PRIMARY KEY,
    small smallint, normal integer, safe bigint, huge bigint,
    amount numeric, precise numeric, single real, double double precision,
    not_a_number double precision, infinite double precision, flag boolean,
    words text, short varchar(20), at_tz timestamptz, at timestamp, day date, clock time,
    span interval, uid uuid, doc json, docb jsonb, list integer[], grid integer[][], holes text[],
    feeling mood, blob bytea, couple pair, count positive, nothing text
)
"""

TYPES_ROW = """
INSERT INTO typed VALUES (
    1, 32767, -2147483648, 9007199254740991, 9223372036854775807,
    12.5, 123456789012345678901234567890.123, 1.5, 0.1,
    'NaN', 'Infinity', true,
    E'h\u00e9llo \U0001f30d \u2028 "quoted" \\\\', 'short', '2026-01-02 03:04:05.123456+00', '2026-01-02 03:04:05',
    '2026-01-02', '03:04:05', '1 day 2 hours', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    '{"a": [1, {"b": null}]}', '{"nested": {"deep": [true, 2.5]}}', '{1,2,3}', '{{1,2},{3,4}}', '{NULL,x}',
    'happy', '\\x0102ff', ROW(1, 'x'), 5, NULL
)
"""

EXPECTED = {
    "id": 1,
    "small": 32767,
    "normal": -2147483648,
    "safe": 9007199254740991,
    "huge": "9223372036854775807",
    "amount": 12.5,
    "precise": "123456789012345678901234567890.123",
    "single": 1.5,
    "double": 0.1,
    "not_a_number": "NaN",
    "infinite": "Infinity",
    "flag": True,
    "words": 'h\u00e9llo \U0001f30d \u2028 "quoted" \\',
    "short": "short",
    "at_tz": "2026-01-02T03:04:05.123456+00:00",
    "at": "2026-01-02T03:04:05",
    "day": "2026-01-02",
    "clock": "03:04:05",
    "span": "1 day 02:00:00",
    "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "doc": {"a": [1, {"b": None}]},
    "docb": {"nested": {"deep": [True, 2.5]}},
    "list": [1, 2, 3],
    "grid": [[1, 2], [3, 4]],
    "holes": [None, "x"],
    "feeling": "happy",
    "blob": {"$binary": "AQL/"},
    "couple": {"a": 1, "b": "x"},
    "count": 5,
    "nothing": None,
}


async def test_every_common_type_reaches_the_browser_client_faithfully(
    socketio_server: SocketServer, socketio_client: ClientFactory, key: str
) -> None:
    async with new_database(TYPES_DDL) as dsn:
        config = make_config(dsn, key, {"table": "typed", "rooms": ["typed:{id}"], "events": {"insert": "Typed"}})
        await migrate_database(config)
        client = await socketio_client(socketio_server, "/", ["typed:1"])
        connection = await asyncpg.connect(dsn, server_settings={"TimeZone": "UTC"})
        try:
            async with running_daemon(config):
                await connection.execute(TYPES_ROW)
                received = await asyncio.wait_for(client.next_event(), 20)
        finally:
            await connection.close()
    assert received.event == "Typed"
    assert received.args[0] == EXPECTED
