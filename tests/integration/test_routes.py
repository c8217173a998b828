"""Routes, filters and payload strategies through the real trigger path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from cdc_sio import daemon, deadletters
from cdc_sio.config import Config
from cdc_sio.errors import ConfigError
from cdc_sio.routing import Emission
from tests.support import Subscriber, make_config, meta_of, migrate_database, row_of, running_daemon


@pytest.fixture
async def db(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(dsn)
    yield connection
    await connection.close()


async def publish_waiting(config: Config) -> None:
    await asyncio.wait_for(daemon.run(config, asyncio.Event(), once=True), timeout=30)


async def drain(subscriber: Subscriber) -> list[Emission]:
    """Everything published so far; the daemon ran with --once, so it is all in the queue."""
    out = []
    while not subscriber.received.empty():
        out.append(subscriber.received.get_nowait()[1])
    return out


def things(**table: Any) -> dict[str, Any]:
    return {
        "table": "things",
        "rooms": ["thing:{id}"],
        "events": {"insert": "c", "update": "u", "delete": "d"},
        **table,
    }


async def test_filtered_route_only_fires_for_matching_rows_and_the_trigger_skips_the_rest(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """The talk's example: deleting an important Thing also alerts ROOM::ExtraImportantUpdates."""
    important = {
        "on": ["delete"],
        "when": "importance > 100",
        "event": "Thing::delete::important",
        "rooms": ["ROOM::ExtraImportantUpdates"],
    }
    config = make_config(dsn, key, things(events={"delete": "Thing::delete"}, routes=[important]))
    await migrate_database(config)
    await db.execute("INSERT INTO things (id, importance) VALUES (1, 5), (2, 500)")
    await db.execute("DELETE FROM things")
    assert await db.fetchval("SELECT count(*) FROM cdc_sio.changes") == 2
    await publish_waiting(config)
    published = [(e.event, e.rooms, row_of(e)["id"]) for e in await drain(subscriber)]
    assert published == [
        ("Thing::delete", ("thing:1",), 1),
        ("Thing::delete", ("thing:2",), 2),
        ("Thing::delete::important", ("ROOM::ExtraImportantUpdates",), 2),
    ]


async def test_a_filter_can_compare_old_and_new_and_rows_no_route_wants_are_not_logged(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    route = {"on": ["update"], "when": "new.importance > old.importance", "event": "Thing::promoted"}
    config = make_config(dsn, key, things(events={}, routes=[route]))
    await migrate_database(config)
    await db.execute("INSERT INTO things (id, importance) VALUES (1, 10)")
    await db.execute("UPDATE things SET importance = 5")
    assert await db.fetchval("SELECT count(*) FROM cdc_sio.changes") == 0
    await db.execute("UPDATE things SET importance = 50")
    await publish_waiting(config)
    [emission] = await drain(subscriber)
    assert (emission.event, row_of(emission)["importance"]) == ("Thing::promoted", 50)


async def test_an_invalid_filter_is_refused_with_postgresql_s_message_and_the_route_named(dsn: str, key: str) -> None:
    route = {"name": "broken", "on": ["insert"], "when": "importanse > 1", "event": "e"}
    with pytest.raises(ConfigError) as raised:
        await migrate_database(make_config(dsn, key, things(routes=[route])))
    assert (
        "route 'broken': filter 'importanse > 1' is not valid for insert: column \"importanse\" does not exist"
        in str(raised.value)
    )
    route = {"name": "not-boolean", "on": ["delete"], "when": "importance", "event": "e"}
    with pytest.raises(ConfigError, match="argument of WHERE must be type boolean"):
        await migrate_database(make_config(dsn, key, things(routes=[route])))
    route = {"name": "no-old", "on": ["insert"], "when": "old.importance > 1", "event": "e"}
    with pytest.raises(ConfigError, match=r"route 'no-old'.*missing FROM-clause entry for table \"old\""):
        await migrate_database(make_config(dsn, key, things(routes=[route])))


async def test_updates_that_change_nothing_or_not_the_listed_columns_are_not_emitted(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    named = {"name": "renamed", "on": ["update"], "only_when_changed": ["name"], "event": "Thing::renamed"}
    config = make_config(dsn, key, things(routes=[named]))
    await migrate_database(config)
    await db.execute("INSERT INTO things (id, name) VALUES (1, 'a')")
    await db.execute("UPDATE things SET name = 'a'")  # changes nothing
    await db.execute("UPDATE things SET v = 1")  # changes a column `renamed` does not watch
    await db.execute("UPDATE things SET name = 'b'")
    await publish_waiting(config)
    assert [(e.event, row_of(e)["v"]) for e in await drain(subscriber)] == [
        ("c", 0),
        ("u", 1),
        ("u", 1),
        ("Thing::renamed", 1),
    ]


async def test_updates_of_excluded_columns_only_are_not_emitted_and_old_rows_are_kept_for_moves(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """The trigger compares old and new rows as records, with the excluded (or non-room) columns nulled."""
    config = make_config(dsn, key, things(rooms=["org:{org_id}"], exclude_columns=["secret"]))
    await migrate_database(config)
    await db.execute("INSERT INTO things (id, org_id, name, secret) VALUES (1, 1, 'a', 's')")
    await db.execute("UPDATE things SET secret = 't'")
    await db.execute("UPDATE things SET name = 'a', secret = 'u'")
    await db.execute("UPDATE things SET name = 'b'")
    await db.execute("UPDATE things SET org_id = 2")
    logged = [(r["op"], r["old"]) for r in await db.fetch("SELECT op, old::text FROM cdc_sio.changes ORDER BY id")]
    assert logged == [
        ("insert", None),
        ("update", None),
        ("update", '{"id":1,"org_id":1,"name":"b","secret":null,"importance":0,"token":null,"v":0}'),
    ]
    await publish_waiting(config)
    assert [(e.event, e.rooms, row_of(e)["name"]) for e in await drain(subscriber)] == [
        ("c", ("org:1",), "a"),
        ("u", ("org:1",), "b"),
        ("u", ("org:2",), "b"),
        ("d", ("org:1",), "b"),
    ]


async def test_a_column_whose_domain_refuses_null_does_not_break_the_update(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """Rows of such a table are compared as jsonb: nulling the column to compare records would fail the write."""
    await db.execute("CREATE DOMAIN label AS text NOT NULL")
    await db.execute("CREATE TABLE labelled (id int PRIMARY KEY, label label, secret text)")
    table = {"table": "labelled", "rooms": ["l:{id}"], "exclude_columns": ["secret"], "events": {"update": "u"}}
    config = make_config(dsn, key, table)
    await migrate_database(config)
    await db.execute("INSERT INTO labelled VALUES (1, 'a', 's')")
    await db.execute("UPDATE labelled SET secret = 't'")
    await db.execute("UPDATE labelled SET label = 'b'")
    await publish_waiting(config)
    assert [(e.event, row_of(e)) for e in await drain(subscriber)] == [("u", {"id": 1, "label": "b"})]


async def test_a_row_moving_to_another_room_tells_the_old_room(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    config = make_config(dsn, key, things(rooms=["org:{org_id}"]))
    await migrate_database(config)
    await db.execute("INSERT INTO things (id, org_id, name) VALUES (7, 1, 'x')")
    await db.execute("UPDATE things SET org_id = 2")
    await db.execute("UPDATE things SET name = 'y'")
    await publish_waiting(config)
    published = [(e.event, e.rooms, meta_of(e).get("left", False)) for e in await drain(subscriber)]
    assert published == [
        ("c", ("org:1",), False),
        ("u", ("org:2",), False),
        ("d", ("org:1",), True),
        ("u", ("org:2",), False),
    ]
    assert await db.fetchval("SELECT count(*) FROM cdc_sio.changes") == 0


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO things (id, org_id, name) VALUES (1, 2, 'b'), (2, 1, 'b'), (3, 1, 'c'), (4, 2, 'd')"
        " ON CONFLICT (id) DO UPDATE SET org_id = excluded.org_id, name = excluded.name",
        "MERGE INTO things AS t"
        " USING (VALUES (1, 2, 'b'), (2, 1, 'b'), (3, 1, 'c'), (4, 2, 'd')) AS s (id, org_id, name) ON t.id = s.id"
        " WHEN MATCHED THEN UPDATE SET org_id = s.org_id, name = s.name"
        " WHEN NOT MATCHED THEN INSERT (id, org_id, name) VALUES (s.id, s.org_id, s.name)",
        # Both UPDATEs of one query share its transition tables (row 2's changes nothing).
        "WITH a AS (UPDATE things SET org_id = 2, name = 'b' WHERE id = 1 RETURNING id),"
        " b AS (UPDATE things SET name = 'b' WHERE id = 2 RETURNING id)"
        " INSERT INTO things (id, org_id, name) VALUES (3, 1, 'c'), (4, 2, 'd')",
    ],
    ids=["upsert", "merge", "writable-ctes"],
)
async def test_upserts_merges_and_writable_ctes_are_captured_as_inserts_and_updates(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber, statement: str
) -> None:
    config = make_config(dsn, key, things(rooms=["org:{org_id}"], payload="changes"))
    await migrate_database(config)
    await db.execute("INSERT INTO things (id, org_id, name) VALUES (1, 1, 'a'), (2, 1, 'b')")
    await publish_waiting(config)
    await drain(subscriber)
    await db.execute(statement)
    await publish_waiting(config)
    published = {(e.event, e.rooms, meta_of(e).get("left", False)): e.args[0] for e in await drain(subscriber)}
    unset = {"secret": None, "importance": 0, "token": None, "v": 0}
    assert published == {
        ("u", ("org:2",), False): {"id": 1, "org_id": 2, "name": "b"},
        ("d", ("org:1",), True): {"id": 1},
        ("c", ("org:1",), False): {"id": 3, "org_id": 1, "name": "c", **unset},
        ("c", ("org:2",), False): {"id": 4, "org_id": 2, "name": "d", **unset},
    }


async def test_a_statement_that_changes_keys_pairs_each_new_row_with_its_own_old_row(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """Paired by key, the new rows 11..13 would have no old row, and rooms thing:1..3 would never
    hear that their rows left."""
    config = make_config(dsn, key, things(payload="changes"))
    await migrate_database(config)
    await db.execute("INSERT INTO things (id, name) SELECT g, 'n' || g FROM generate_series(1, 3) g")
    await publish_waiting(config)
    await drain(subscriber)
    await db.execute("UPDATE things SET id = id + 10")
    await publish_waiting(config)
    published = {(e.event, e.rooms): (e.args[0], meta_of(e).get("left", False)) for e in await drain(subscriber)}
    assert published == {
        **{("u", (f"thing:{i + 10}",)): ({"id": i + 10}, False) for i in (1, 2, 3)},
        **{("d", (f"thing:{i}",)): ({"id": i}, True) for i in (1, 2, 3)},
    }


async def test_changes_made_by_foreign_key_cascades_are_captured(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """PostgreSQL runs a cascade as its own statement on the child table, as the table's owner."""
    config = make_config(dsn, key, things(rooms=["org:{org_id}"], payload="changes"))
    await migrate_database(config)
    await db.execute(
        "CREATE TABLE orgs (id integer PRIMARY KEY);"
        "INSERT INTO orgs VALUES (1), (2), (3);"
        "ALTER TABLE things ADD FOREIGN KEY (org_id) REFERENCES orgs ON DELETE CASCADE ON UPDATE CASCADE;"
        "INSERT INTO things (id, org_id, name) VALUES (1, 1, 'a'), (2, 1, 'b'), (3, 2, 'c'), (4, 3, 'd')"
    )
    await publish_waiting(config)
    await drain(subscriber)
    await db.execute("UPDATE orgs SET id = 20 WHERE id = 2")
    await db.execute("DELETE FROM orgs WHERE id IN (1, 3)")
    await publish_waiting(config)
    published = [(e.event, e.rooms, e.args[0], meta_of(e).get("left", False)) for e in await drain(subscriber)]
    assert sorted(published, key=repr) == [
        ("d", ("org:1",), {"id": 1}, False),
        ("d", ("org:1",), {"id": 2}, False),
        ("d", ("org:2",), {"id": 3}, True),
        ("d", ("org:3",), {"id": 4}, False),
        ("u", ("org:20",), {"id": 3, "org_id": 20}, False),
    ]


@pytest.mark.parametrize(
    ("payload", "include_old", "expected_row", "expected_old"),
    [
        ("row", False, {"id": 1, "org_id": 1, "name": "b", "importance": 0, "token": None, "v": 0}, None),
        ("changes", True, {"id": 1, "name": "b"}, {"name": "a"}),
        ("flag", False, {"id": 1}, None),
        ("json-string", False, '{"id":1,"org_id":1,"name":"b","importance":0,"token":null,"v":0}', None),
    ],
)
async def test_payload_strategies_through_the_trigger(
    dsn: str,
    key: str,
    db: asyncpg.Connection,
    subscriber: Subscriber,
    payload: str,
    include_old: bool,
    expected_row: object,
    expected_old: object,
) -> None:
    config = make_config(
        dsn, key, things(events={"update": "u"}, payload=payload, include_old=include_old, exclude_columns=["secret"])
    )
    await migrate_database(config)
    await db.execute("INSERT INTO things (id, org_id, name, secret) VALUES (1, 1, 'a', 's')")
    await db.execute("UPDATE things SET name = 'b', secret = 't'")
    await publish_waiting(config)
    [emission] = await drain(subscriber)
    assert emission.args[0] == expected_row
    assert meta_of(emission).get("old") == expected_old


async def test_truncate_emits_one_event_to_the_rooms_that_do_not_depend_on_rows(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    config = make_config(dsn, key, things(rooms=["thing:{id}", "things"], events={"truncate": "Thing::truncate"}))
    await migrate_database(config)
    await db.execute("INSERT INTO things (id) VALUES (1), (2)")
    await db.execute("TRUNCATE things")
    await publish_waiting(config)
    [emission] = await drain(subscriber)
    assert (emission.event, emission.rooms, meta_of(emission)["op"]) == ("Thing::truncate", ("things",), "truncate")


async def test_an_event_over_the_size_limit_becomes_a_marker(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    config = make_config(dsn, key, things(), max_event_bytes=2048)
    await migrate_database(config)
    await db.execute("INSERT INTO things (id, name) VALUES (1, $1), (2, 'small')", "x" * 5000)
    await publish_waiting(config)
    big, small = await drain(subscriber)
    assert big.args[0] == {"id": 1}
    assert meta_of(big)["too_large"] is True and meta_of(big)["bytes"] > 5000
    assert row_of(small)["name"] == "small"


async def test_composite_keys_missing_keys_partitions_and_mixed_case_names(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    await db.execute(
        """
        CREATE TABLE "Order Lines" ("Order" int, "Line" int, qty int, PRIMARY KEY ("Order", "Line"));
        CREATE TABLE events_log (ref text, body text);
        CREATE TABLE measurements (city int, at date, value int, PRIMARY KEY (city, at)) PARTITION BY RANGE (at);
        CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        """
    )
    tables = [
        {"table": "Order Lines", "rooms": ["order:{Order}"], "payload": "changes", "events": {"update": "line"}},
        {"table": "events_log", "primary_key": ["ref"], "payload": "flag", "events": {"insert": "logged"}},
        {"table": "measurements", "rooms": ["city:{city}"], "events": {"insert": "measured"}},
    ]
    config = make_config(dsn, key, *tables)
    await migrate_database(config)
    await db.execute('INSERT INTO "Order Lines" VALUES (1, 1, 5), (1, 2, 5)')
    await db.execute('UPDATE "Order Lines" SET qty = 6 WHERE "Line" = 2')
    await db.execute("INSERT INTO events_log VALUES ('r1', 'b')")
    await db.execute("INSERT INTO measurements VALUES (3, '2026-05-01', 20)")
    await publish_waiting(config)
    published = [(e.event, e.rooms, e.args[0]) for e in await drain(subscriber)]
    assert published == [
        ("line", ("order:1",), {"Order": 1, "Line": 2, "qty": 6}),
        ("logged", (), {"ref": "r1"}),
        ("measured", ("city:3",), {"city": 3, "at": "2026-05-01", "value": 20}),
    ]


async def test_an_update_that_moves_rows_between_partitions_pairs_each_new_row_with_its_old_row(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """A moved row is deleted from one partition and inserted into another; the partitioned table's
    trigger still sees one old and one new row for it, in step with the rows that stay."""
    await db.execute(
        """
        CREATE TABLE measurements (city int, at date, value int, PRIMARY KEY (city, at)) PARTITION BY RANGE (at);
        CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
        CREATE TABLE measurements_2027 PARTITION OF measurements FOR VALUES FROM ('2027-01-01') TO ('2028-01-01');
        INSERT INTO measurements SELECT g, '2026-05-01', g FROM generate_series(1, 4) g;
        """
    )
    table = {"table": "measurements", "rooms": ["city:{city}"], "payload": "changes", "events": {"update": "u"}}
    config = make_config(dsn, key, table)
    await migrate_database(config)
    await db.execute(
        "UPDATE measurements SET value = value * 10,"
        " at = CASE WHEN city % 2 = 0 THEN at + 365 ELSE at END,"
        " city = CASE WHEN city % 2 = 0 THEN city + 10 ELSE city END"
    )
    await publish_waiting(config)
    published = {(e.event, e.rooms): (e.args[0], meta_of(e).get("left", False)) for e in await drain(subscriber)}
    assert published == {
        ("u", ("city:1",)): ({"city": 1, "at": "2026-05-01", "value": 10}, False),
        ("u", ("city:3",)): ({"city": 3, "at": "2026-05-01", "value": 30}, False),
        ("u", ("city:12",)): ({"city": 12, "at": "2027-05-01", "value": 20}, False),
        ("u", ("city:14",)): ({"city": 14, "at": "2027-05-01", "value": 40}, False),
        ("u::left", ("city:2",)): ({"city": 2, "at": "2026-05-01"}, True),
        ("u::left", ("city:4",)): ({"city": 4, "at": "2026-05-01"}, True),
    }


async def test_a_table_without_a_primary_key_needs_one_configured(dsn: str, key: str, db: asyncpg.Connection) -> None:
    await db.execute("CREATE TABLE events_log (ref text)")
    with pytest.raises(ConfigError, match=r"table public\.events_log has no primary key: add one, or name the columns"):
        await migrate_database(make_config(dsn, key, {"table": "events_log", "events": {"insert": "e"}}))


async def test_columns_added_or_dropped_while_the_daemon_runs(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """A new column simply appears in the payload; a dropped one simply disappears."""
    config = make_config(dsn, key, things())
    await migrate_database(config)
    async with running_daemon(config):
        await db.execute("INSERT INTO things (id) VALUES (1)")
        _, first = await subscriber.next()
        await db.execute("ALTER TABLE things ADD COLUMN colour text DEFAULT 'red'")
        await db.execute("ALTER TABLE things DROP COLUMN token")
        await db.execute("UPDATE things SET v = 2")
        _, second = await subscriber.next()
    assert "colour" not in row_of(first) and "token" in row_of(first)
    assert row_of(second)["colour"] == "red" and "token" not in row_of(second)


async def test_dead_letters_can_be_listed_and_retried_after_a_fix(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    await db.execute("CREATE TABLE others (id int PRIMARY KEY)")
    sentinel = {"table": "others", "events": {"insert": "sentinel"}}
    config = make_config(dsn, key, things(rooms=["org:{org_id}"]), sentinel)
    await migrate_database(config)
    await db.execute("INSERT INTO things (id, org_id) VALUES (1, 1)")
    async with running_daemon(config):
        await subscriber.next()
        await db.execute("ALTER TABLE things RENAME COLUMN org_id TO organisation_id")
        await db.execute("UPDATE things SET v = 1")
        await db.execute("INSERT INTO things (id, organisation_id) VALUES (2, 2)")
        await db.execute("INSERT INTO others (id) VALUES (1)")
        _, after = await subscriber.next()
        assert after.event == "sentinel"
    listed = await deadletters.list_dead_letters(db)
    assert len(listed) == 2 and "the row has no column 'org_id'" in listed[0]

    fixed = make_config(dsn, key, things(rooms=["org:{organisation_id}"]), sentinel)
    assert await deadletters.retry_dead_letters(db, None) == 2
    await publish_waiting(fixed)
    assert [(e.event, e.rooms) for e in await drain(subscriber)] == [("u", ("org:1",)), ("c", ("org:2",))]
    assert await deadletters.list_dead_letters(db) == []


DOCS = {
    "table": "docs",
    "rooms": ["org:{org}"],
    "exclude_columns": ["secret"],
    "events": {"insert": "i", "update": "u"},
}


async def test_a_column_dropped_from_a_table_holding_json_never_fails_the_application_s_write(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """Such rows stay JSON text, with the excluded columns taken out of it: never by naming the
    columns that the table had when migrate ran."""
    await db.execute("CREATE TABLE docs (id int PRIMARY KEY, org int, body json, note text, secret text)")
    config = make_config(dsn, key, DOCS)
    await migrate_database(config)
    await db.execute("""INSERT INTO docs VALUES (1, 1, '{"a": 1}', 'n', 's')""")
    await db.execute("ALTER TABLE docs DROP COLUMN note")
    await db.execute("UPDATE docs SET org = 2 WHERE id = 1")
    await db.execute("""INSERT INTO docs VALUES (2, 2, '{"a": "\\u0000"}', 's')""")
    await publish_waiting(config)
    published = [(e.event, e.rooms, e.args[0]) for e in await drain(subscriber)]
    assert published == [
        ("i", ("org:1",), {"id": 1, "org": 1, "body": {"a": 1}, "note": "n"}),
        ("u", ("org:2",), {"id": 1, "org": 2, "body": {"a": 1}}),
        ("u::left", ("org:1",), {"id": 1, "org": 1, "body": {"a": 1}}),
        ("i", ("org:2",), {"id": 2, "org": 2, "body": {"a": "\x00"}}),
    ]


async def test_only_when_changed_on_a_table_holding_json_survives_its_column_being_dropped(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """The application's writes go on (the daemon refuses the config until it is fixed)."""
    await db.execute("CREATE TABLE docs (id int PRIMARY KEY, status text, body json)")
    route = {"name": "status", "on": ["update"], "only_when_changed": ["status"], "event": "u"}
    config = make_config(dsn, key, {"table": "docs", "routes": [route]})
    await migrate_database(config)
    await db.execute("""INSERT INTO docs VALUES (1, 'new', '{"a": "\\u0000"}')""")
    await db.execute("""UPDATE docs SET body = '{"a": 1}'""")
    await db.execute("UPDATE docs SET status = 'done'")
    await publish_waiting(config)
    assert [(e.event, row_of(e)) for e in await drain(subscriber)] == [
        ("u", {"id": 1, "status": "done", "body": {"a": 1}})
    ]
    await db.execute("ALTER TABLE docs DROP COLUMN status")
    await db.execute("""UPDATE docs SET body = '{"a": 2}'""")
    assert await db.fetchval("SELECT count(*) FROM cdc_sio.changes") == 0


async def test_json_content_that_jsonb_refuses_never_fails_the_application_s_write(
    dsn: str, key: str, db: asyncpg.Connection, subscriber: Subscriber
) -> None:
    """A json column may hold \\u0000 or a lone surrogate: the write succeeds, the change is delivered or parked."""
    await db.execute("CREATE TABLE docs (id int PRIMARY KEY, org int, body json, secret text)")
    config = make_config(dsn, key, DOCS)
    await migrate_database(config)
    await db.execute("""INSERT INTO docs VALUES (1, 1, '{"text": "a\\u0000b"}', 's')""")
    await db.execute("""INSERT INTO docs VALUES (2, 1, '{"text": "\\ud800"}', 's')""")
    await db.execute("UPDATE docs SET org = 2 WHERE id = 1")
    await publish_waiting(config)
    published = [(e.event, e.rooms, e.args[0]) for e in await drain(subscriber)]
    body = {"text": "a\x00b"}
    assert published == [
        ("i", ("org:1",), {"id": 1, "org": 1, "body": body}),
        ("u", ("org:2",), {"id": 1, "org": 2, "body": body}),
        ("u::left", ("org:1",), {"id": 1, "org": 1, "body": body}),
    ]
    [parked] = await deadletters.list_dead_letters(db)
    assert "surrogates not allowed" in parked
