"""Capture and delivery guarantees, proven against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from cdc_sio import capture, daemon
from cdc_sio.config import Config
from cdc_sio.status import read_status
from tests.support import Subscriber, make_config, meta_of, migrate_database, row_of, running_daemon


@pytest.fixture
async def config(dsn: str, key: str) -> Config:
    config = make_config(dsn, key)
    await migrate_database(config)
    return config


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn)
    yield connection
    await connection.close()


async def test_insert_update_delete_reach_their_rooms_without_excluded_columns(
    config: Config, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """Each committed change is one event to all its rooms, with the row and its metadata."""
    async with running_daemon(config):
        await db.execute("INSERT INTO things (id, org_id, name, secret) VALUES (7, 1, 'x', 'hidden')")
        await db.execute("UPDATE things SET name = 'y' WHERE id = 7")
        await db.execute("DELETE FROM things WHERE id = 7")
        published = [await subscriber.next() for _ in range(3)]

    channels = {channel for channel, _ in published}
    assert channels == {f"{subscriber.key}#/#"}  # two rooms: one message on the namespace channel
    events = [emission.event for _, emission in published]
    assert events == ["Thing::create", "Thing::update", "Thing::delete"]
    for _, emission in published:
        assert emission.rooms == ("thing:7", "org:1")
        assert "secret" not in row_of(emission)
    assert row_of(published[1][1]) == {"id": 7, "org_id": 1, "name": "y", "importance": 0, "token": None, "v": 0}
    metas = [meta_of(emission) for _, emission in published]
    assert [m["op"] for m in metas] == ["insert", "update", "delete"]
    assert {m["table"] for m in metas} == {"public.things"}
    assert metas[0]["id"] < metas[1]["id"] < metas[2]["id"]
    assert all(m["committed_at"].endswith("+00:00") for m in metas)
    assert await db.fetchval("SELECT count(*) FROM cdc_sio.changes") == 0


async def test_single_room_goes_to_the_room_channel(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    config = make_config(dsn, key, {"table": "things", "rooms": ["thing:{id}"], "events": {"insert": "c"}})
    await migrate_database(config)
    async with running_daemon(config):
        await db.execute("INSERT INTO things (id) VALUES (3)")
        channel, emission = await subscriber.next()
    assert channel == f"{key}#/#thing:3#"
    assert emission.rooms == ("thing:3",)


async def test_rolled_back_transactions_and_savepoints_publish_nothing(
    config: Config, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    async with running_daemon(config):
        async with db.transaction():
            await db.execute("INSERT INTO things (id) VALUES (1)")
            with pytest.raises(asyncpg.UniqueViolationError):
                async with db.transaction():  # a savepoint
                    await db.execute("INSERT INTO things (id) VALUES (2)")
                    await db.execute("INSERT INTO things (id) VALUES (1)")
        with pytest.raises(RuntimeError):
            async with db.transaction():
                await db.execute("INSERT INTO things (id) VALUES (3)")
                raise RuntimeError("roll back")
        await db.execute("INSERT INTO things (id) VALUES (4)")
        seen = await subscriber.until(lambda e: row_of(e)["id"] == 4)
    assert [row_of(e)["id"] for e in seen] == [1, 4]


async def test_a_long_open_transaction_holds_back_nothing_and_is_published_when_it_commits(
    config: Config, dsn: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    slow = await asyncpg.connect(dsn)
    try:
        async with running_daemon(config):
            transaction = slow.transaction()
            await transaction.start()
            await slow.execute("INSERT INTO things (id) VALUES (1)")  # the lower change id
            for i in range(2, 12):
                await db.execute("INSERT INTO things (id) VALUES ($1)", i)
            seen = await subscriber.until(lambda e: row_of(e)["id"] == 11)
            assert sorted(row_of(e)["id"] for e in seen) == list(range(2, 12))
            await transaction.commit()
            _, late = await subscriber.next()
            assert row_of(late)["id"] == 1
    finally:
        await slow.close()


async def test_updates_of_one_row_by_concurrent_writers_arrive_in_commit_order(
    config: Config, dsn: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    await db.execute("INSERT INTO things (id) VALUES (1)")
    writers = [await asyncpg.connect(dsn) for _ in range(4)]

    async def bump(connection: asyncpg.Connection) -> None:
        for _ in range(50):
            async with connection.transaction():
                await connection.execute("UPDATE things SET v = v + 1 WHERE id = 1")

    try:
        async with running_daemon(config):
            await asyncio.gather(*(bump(w) for w in writers))
            seen = await subscriber.until(lambda e: row_of(e)["v"] == 200, timeout=30)
    finally:
        for writer in writers:
            await writer.close()
    versions = [row_of(e)["v"] for e in seen if e.event == "Thing::update"]
    assert versions == list(range(1, 201))


async def test_changes_wait_while_the_daemon_is_down_and_run_once_publishes_them(
    config: Config, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(1, 2501)])
    status_before = await read_status(db, config)
    assert status_before.waiting == 2500
    await db.executemany("UPDATE things SET v = 1 WHERE id = $1", [(i,) for i in range(1, 11)])
    assert (await read_status(db, config)).waiting == 2510
    assert (await read_status(db, config)).oldest_age_s is not None

    await asyncio.wait_for(daemon.run(config, asyncio.Event(), once=True), timeout=60)

    assert await db.fetchval("SELECT count(*) FROM cdc_sio.changes") == 0
    published = [await subscriber.next() for _ in range(2510)]
    assert sorted(row_of(e)["id"] for _, e in published[:2500]) == list(range(1, 2501))


async def test_a_one_megabyte_row_is_captured_and_published_intact(
    config: Config, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    big = "é" * 500_000 + "x" * 24_288  # 1 MiB of UTF-8
    async with running_daemon(config):
        await db.execute("INSERT INTO things (id, name) VALUES (1, $1)", big)
        _, emission = await subscriber.next()
    assert row_of(emission)["name"] == big


async def test_rows_loaded_with_copy_are_captured(
    config: Config, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    await db.copy_records_to_table("things", records=[(i, f"n{i}") for i in range(1, 1001)], columns=["id", "name"])
    await asyncio.wait_for(daemon.run(config, asyncio.Event(), once=True), timeout=60)
    published = [await subscriber.next() for _ in range(1000)]
    assert sorted(row_of(e)["id"] for _, e in published) == list(range(1, 1001))


async def test_a_bulk_update_after_single_row_ones_on_the_same_connection_is_captured_in_linear_time(
    config: Config, db: asyncpg.Connection
) -> None:
    """PostgreSQL plans the capture once per connection, with the row counts of its first statement.
    Planned for one row, a join of the old and new rows could be a nested loop: 30,000 rows would then
    take minutes (the timeout below), where a hash or merge join takes well under a second."""
    await db.execute("INSERT INTO things (id, name) SELECT g, 'n' || g FROM generate_series(1, 30000) g")
    await db.execute("UPDATE things SET name = 'one' WHERE id = 1")
    await db.execute("SET statement_timeout = '20s'")
    await db.execute("UPDATE things SET name = name || '+'")
    counts = await db.fetch("SELECT op, count(*) FROM cdc_sio.changes GROUP BY op ORDER BY op")
    assert [tuple(row) for row in counts] == [("insert", 30000), ("update", 30001)]


async def test_a_missed_notification_only_delays_the_change(
    config: Config, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    await db.execute("CREATE OR REPLACE FUNCTION cdc_sio.wake_v1() RETURNS void LANGUAGE sql AS 'SELECT'")
    async with running_daemon(config):
        await db.execute("INSERT INTO things (id) VALUES (1)")
        _, emission = await subscriber.next(timeout=5)
    assert row_of(emission)["id"] == 1


async def test_killed_connections_are_reopened_and_nothing_committed_meanwhile_is_lost(
    config: Config, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    async with running_daemon(config):
        await db.execute("INSERT INTO things (id) VALUES (1)")
        await subscriber.next()
        killed = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name IN ('cdc-sio:listener', 'cdc-sio:worker')"
        )
        assert killed == 2
        await db.execute("INSERT INTO things (id) VALUES (2)")
        _, emission = await subscriber.next(timeout=15)
        if row_of(emission)["id"] == 1:  # at least once: killed before its delete, it goes out again
            _, emission = await subscriber.next(timeout=15)
        assert row_of(emission)["id"] == 2
        await db.execute("INSERT INTO things (id) VALUES (3)")
        _, emission = await subscriber.next(timeout=15)
        assert row_of(emission)["id"] == 3


async def test_a_row_that_cannot_be_routed_is_parked_and_the_stream_goes_on(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    await db.execute("CREATE TABLE others (id int PRIMARY KEY)")
    things = {"table": "things", "rooms": ["org:{org_id}"], "events": {"insert": "T::c", "update": "T::u"}}
    config = make_config(dsn, key, things, {"table": "others", "events": {"insert": "Other::create"}})
    await migrate_database(config)
    async with running_daemon(config):
        await db.execute("INSERT INTO things (id, org_id) VALUES (1, 1)")
        _, first = await subscriber.next()
        assert row_of(first)["org_id"] == 1
        await db.execute("ALTER TABLE things DROP COLUMN org_id")  # the room template now fails
        await db.execute("UPDATE things SET v = 1 WHERE id = 1")
        await db.execute("INSERT INTO others (id) VALUES (5)")
        _, after = await subscriber.next()
        assert (after.event, row_of(after)) == ("Other::create", {"id": 5})
    parked = await db.fetchrow("SELECT table_name, op, data, reason FROM cdc_sio.dead_letters")
    assert dict(parked) == {
        "table_name": "public.things",
        "op": "update",
        "data": '{"id":1,"name":null,"secret":null,"importance":0,"token":null,"v":1}',
        "reason": "template 'org:{org_id}': the row has no column 'org_id'",
    }
    assert await db.fetchval("SELECT count(*) FROM cdc_sio.changes") == 0


async def test_only_one_daemon_publishes(config: Config, db: asyncpg.Connection, subscriber: Subscriber) -> None:
    """A second daemon on the same database waits as a standby; every change is published once."""
    async with running_daemon(config), running_daemon(config):
        await db.executemany("INSERT INTO things (id) VALUES ($1)", [(i,) for i in range(1, 101)])
        published = [await subscriber.next() for _ in range(100)]
        assert subscriber.received.empty()
        holders = await db.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND (classid::bigint << 32 | objid::bigint) = $1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            capture.LEADER_LOCK,
        )
        assert holders == 1
    assert sorted(row_of(e)["id"] for _, e in published) == list(range(1, 101))
