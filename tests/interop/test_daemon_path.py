"""The whole path: a plain SQL UPDATE run through psql reaches a real socket.io-client."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis.asyncio

from tests.interop.harness import ClientFactory, ReceivedEvent, SocketServer
from tests.support import make_config, migrate_database, publish_sentinel, running_daemon

pytestmark = pytest.mark.interop

SENTINEL = ReceivedEvent("sentinel", [])


async def test_psql_update_reaches_the_client_in_the_row_room_only(
    dsn: str,
    key: str,
    socketio_server: SocketServer,
    socketio_client: ClientFactory,
    redis_client: redis.asyncio.Redis,
) -> None:
    config = make_config(dsn, key)
    await migrate_database(config)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.executemany(
            "INSERT INTO things (id, org_id, name, secret) VALUES ($1, 1, $2, 's')", [(7, "seven"), (8, "eight")]
        )
        await connection.execute("DELETE FROM cdc_sio.changes")
    finally:
        await connection.close()

    thing7 = await socketio_client(socketio_server, "/", ["thing:7"])
    thing8 = await socketio_client(socketio_server, "/", ["thing:8"])
    admin = await socketio_client(socketio_server, "/admin", ["thing:7"])

    async with running_daemon(config):
        psql = await asyncio.create_subprocess_exec(
            "psql", dsn, "-v", "ON_ERROR_STOP=1", "-c", "UPDATE things SET name = 'lucky' WHERE id = 7"
        )
        assert await asyncio.wait_for(psql.wait(), 30) == 0
        received = await thing7.next_event(timeout=15)

    assert received.event == "Thing::update"
    row, meta = received.args
    assert row == {"id": 7, "org_id": 1, "name": "lucky", "importance": 0, "token": None, "v": 0}
    assert (meta["op"], meta["table"]) == ("update", "public.things")
    assert isinstance(meta["id"], int) and meta["committed_at"]

    await publish_sentinel(redis_client, key, "/")
    await publish_sentinel(redis_client, key, "/admin")
    assert await thing8.events_until("sentinel") == [SENTINEL]
    assert await admin.events_until("sentinel") == [SENTINEL]
    assert await thing7.events_until("sentinel") == [SENTINEL]
