"""migrate installs exactly what the config asks for, is idempotent, and uninstalls cleanly."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from cdc_sio import daemon, deadletters, migrate, status
from cdc_sio.errors import ConfigError
from cdc_sio.migrate import migration_step, migrations
from cdc_sio.pg import sql_file
from tests.support import Subscriber, make_config, migrate_database, row_of

TRIGGERS = """
SELECT c.relname || ':' || t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE NOT t.tgisinternal AND t.tgname LIKE 'cdc_sio%' ORDER BY 1
"""
THINGS = {"table": "things", "rooms": ["thing:{id}"], "events": {"insert": "c", "update": "u"}}


async def test_migrate_is_idempotent_and_applies_only_what_changed(dsn: str, key: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE TABLE others (id int PRIMARY KEY, secret text)")
        first = await migrate_database(make_config(dsn, key, THINGS))
        assert [s.description for s in first] == [
            "create schema cdc_sio and its version table",
            "apply migration 0001_initial",
            "apply migration 0002_routes",
            "apply migration 0003_daemon_state",
            "apply migration 0004_id_horizon",
            "apply migration 0005_json_log",
            "install capture on public.things",
        ]
        assert await connection.fetch(TRIGGERS) == [("things:cdc_sio_v1_insert",), ("things:cdc_sio_v1_update",)]
        assert await migrate_database(make_config(dsn, key, THINGS)) == []

        others = {"table": "others", "exclude_columns": ["secret"], "events": {"delete": "d"}}
        changed = {**THINGS, "events": {"update": "u"}}
        steps = await migrate_database(make_config(dsn, key, changed, others))
        assert [s.description for s in steps] == [
            "update capture on public.things (differs from the config or the table's columns)",
            "install capture on public.others",
        ]
        assert [r[0] for r in await connection.fetch(TRIGGERS)] == [
            "others:cdc_sio_v1_delete",
            "things:cdc_sio_v1_update",
        ]

        steps = await migrate_database(make_config(dsn, key, others))
        assert [s.description for s in steps] == ["remove capture from public.things"]
        assert [r[0] for r in await connection.fetch(TRIGGERS)] == ["others:cdc_sio_v1_delete"]

        await migrate.uninstall(connection)
        assert await connection.fetch(TRIGGERS) == []
        assert await connection.fetchval("SELECT to_regnamespace('cdc_sio')") is None
        assert await connection.fetchval("SELECT count(*) FROM pg_proc WHERE proname LIKE 'capture_%'") == 0
    finally:
        await connection.close()


async def test_changes_and_dead_letters_waiting_in_jsonb_are_published_after_the_upgrade_to_json(
    dsn: str, key: str, subscriber: Subscriber
) -> None:
    """Before 0005 the log held jsonb, with the rows of tables holding json as a JSON string of their text."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(sql_file("bootstrap.sql"))
        for migration in migrations()[:4]:
            await connection.execute(migration_step(migration).sql)
        text_row = '{"id": 2, "org_id": 1, "name": "\\u0000 kept"}'  # jsonb refuses this as content
        await connection.execute(
            "INSERT INTO cdc_sio.changes (table_name, op, data) VALUES"
            ' (\'public.things\', \'insert\', \'{"id": 1, "org_id": 1, "name": "a"}\'),'
            " ('public.things', 'insert', to_jsonb($1::text))",
            text_row,
        )
        await connection.execute(
            "INSERT INTO cdc_sio.dead_letters (change_id, captured_at, table_name, op, data, reason)"
            " VALUES (0, now(), 'public.things', 'insert', to_jsonb($1::text), 'parked')",
            text_row,
        )
        config = make_config(dsn, key, THINGS)
        steps = await migrate_database(config)
        assert steps[0].description == "apply migration 0005_json_log"
        assert await connection.fetchval("SELECT data::text FROM cdc_sio.dead_letters") == text_row
        assert await deadletters.retry_dead_letters(connection, None) == 1
        await asyncio.wait_for(daemon.run(config, asyncio.Event(), once=True), timeout=30)
        published = [row_of((await subscriber.next())[1]) for _ in range(3)]
        assert published == [
            {"id": 1, "org_id": 1, "name": "a"},
            {"id": 2, "org_id": 1, "name": "\x00 kept"},
            {"id": 2, "org_id": 1, "name": "\x00 kept"},
        ]
    finally:
        await connection.close()


async def test_capture_changed_outside_cdc_sio_is_reported_by_check_and_repaired_by_migrate(dsn: str, key: str) -> None:
    config = make_config(dsn, key, THINGS)
    await migrate_database(config)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("ALTER TABLE things DISABLE TRIGGER cdc_sio_v1_update")
        states = await status.capture_states(connection, config)
        assert states == {
            "public.things": "changed outside cdc-sio: enabled triggers are cdc_sio_v1_insert (run cdc-sio migrate)"
        }
        [step] = await migrate_database(config)
        assert (
            step.description
            == "update capture on public.things (changed outside cdc-sio: enabled triggers are cdc_sio_v1_insert)"
        )
        function = await connection.fetchval("SELECT function_name FROM cdc_sio.watched_tables")
        await connection.execute(
            f'CREATE OR REPLACE FUNCTION cdc_sio."{function}"() RETURNS trigger '
            "LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$"
        )
        assert "function cdc_sio.capture_" in (await status.capture_states(connection, config))["public.things"]
        assert len(await migrate_database(config)) == 1
        assert await status.capture_states(connection, config) == {"public.things": status.UP_TO_DATE}
    finally:
        await connection.close()


async def test_dry_run_changes_nothing(dsn: str, key: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        steps = await migrate.migrate(connection, make_config(dsn, key, THINGS), dry_run=True)
        assert len(steps) == 7
        assert "CREATE TRIGGER cdc_sio_v1_insert" in migrate.render_steps(steps)
        assert await connection.fetchval("SELECT to_regnamespace('cdc_sio')") is None
    finally:
        await connection.close()


async def test_printed_sql_installs_the_same_as_migrate(dsn: str, key: str) -> None:
    """The --sql output can be run by another tool; migrate then has nothing left to do."""
    connection = await asyncpg.connect(dsn)
    try:
        config = make_config(dsn, key, THINGS)
        sql = migrate.render_steps(await migrate.migrate(connection, config, dry_run=True))
        await connection.execute(sql)
        assert await migrate_database(config) == []
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({**THINGS, "table": "nope"}, "test.toml: tables[0].table: table public.nope does not exist"),
        (
            {**THINGS, "rooms": ["org:{organisation}"]},
            "test.toml: tables[0]: route 'insert': template 'org:{organisation}' names column 'organisation', "
            "which table public.things does not have",
        ),
        (
            {**THINGS, "exclude_columns": ["pwd"]},
            "test.toml: tables[0].exclude_columns: table public.things has no column 'pwd'",
        ),
        ({**THINGS, "table": "nokey"}, "test.toml: tables[0].table: table public.nokey has no primary key"),
    ],
)
async def test_config_that_does_not_fit_the_database_is_refused_before_any_change(
    dsn: str, key: str, table: dict[str, object], message: str
) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("CREATE TABLE nokey (id int)")
        with pytest.raises(ConfigError) as raised:
            await migrate.migrate(connection, make_config(dsn, key, table))
        assert message in str(raised.value)
        assert await connection.fetchval("SELECT to_regnamespace('cdc_sio')") is None
    finally:
        await connection.close()


async def test_hostile_table_and_column_names_are_captured(dsn: str, key: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(
            'CREATE SCHEMA "Odd; Schema"; '
            'CREATE TABLE "Odd; Schema"."select ""t""" '
            '("Id" int PRIMARY KEY, "drop table x;--" text, "pass\'word" text, "q""\\u0000" int)'
        )
        table = {
            "table": 'Odd; Schema.select "t"',
            "rooms": ["r:{Id}"],
            "exclude_columns": ["pass'word"],
            "events": {"insert": "i", "update": "u"},
        }
        await migrate_database(make_config(dsn, key, table))
        name = '"Odd; Schema"."select ""t"""'
        await connection.execute(f"INSERT INTO {name} VALUES (1, 'v', 'p', 0)")
        await connection.execute(f"UPDATE {name} SET \"pass'word\" = 'q'")  # an excluded column only
        await connection.execute(f'UPDATE {name} SET "q""\\u0000" = 1')
        await connection.execute(f'UPDATE {name} SET "Id" = 2')
        rows = await connection.fetch(
            "SELECT table_name, data::text, old IS NOT NULL AS old FROM cdc_sio.changes ORDER BY id"
        )
        assert [tuple(row) for row in rows] == [
            ('Odd; Schema.select "t"', '{"Id":1,"drop table x;--":"v","pass\'word":null,"q\\"\\\\u0000":0}', False),
            ('Odd; Schema.select "t"', '{"Id":1,"drop table x;--":"v","pass\'word":null,"q\\"\\\\u0000":1}', False),
            ('Odd; Schema.select "t"', '{"Id":2,"drop table x;--":"v","pass\'word":null,"q\\"\\\\u0000":1}', True),
        ]
    finally:
        await connection.close()
