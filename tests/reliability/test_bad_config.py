"""Every wrong configuration gets one line naming the file, the key and the problem, exit 78, and no change."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from cdc_sio.cli import EX_CONFIG, main
from tests.support import THINGS_DDL, new_database

GOOD_TABLE = '[[tables]]\ntable = "things"\n[tables.events]\ninsert = "c"\n'


def document(dsn: str, body: str) -> str:
    return f'[postgres]\ndsn = "{dsn}"\n{body}'


CASES: list[tuple[str, str, str]] = [
    # (name, config text ({dsn} is replaced), the key and problem the error must name)
    ("empty file", "", "postgres: this section is required"),
    ("not toml", "[postgres\n", "not valid TOML"),
    ("no dsn", "[postgres]\n" + GOOD_TABLE, "postgres.dsn: is required"),
    ("dsn not a string", "[postgres]\ndsn = 5\n" + GOOD_TABLE, "postgres.dsn: must be a string, not int"),
    (
        "unset variable",
        '[postgres]\ndsn = "${NO_SUCH_VARIABLE}"\n' + GOOD_TABLE,
        "postgres.dsn: environment variable NO_SUCH_VARIABLE",
    ),
    ("unknown section", "{good}[nonsense]\nx = 1\n", "nonsense: unknown key"),
    (
        "unknown postgres key",
        '[postgres]\ndsn = "{dsn}"\npassword = "x"\n' + GOOD_TABLE,
        "postgres.password: unknown key",
    ),
    ("empty redis url", '{good}[redis]\nurl = ""\n', "redis.url: must not be empty"),
    ("socketio key not a string", "{good}[socketio]\nkey = 1\n", "socketio.key: must be a string, not int"),
    ("unknown adapter", "{good}[socketio]\nadapter = 'kafka'\n", "socketio.adapter: unknown adapter 'kafka'"),
    (
        "option of another adapter",
        "{good}[socketio]\nadapter = 'redis'\nstream_count = 2\n",
        "socketio.stream_count: is an option of adapter 'redis-streams', not of 'redis'",
    ),
    (
        "bad subscription mode",
        "{good}[socketio]\nadapter = 'redis-sharded'\nsubscription_mode = 'lazy'\n",
        "socketio.subscription_mode: 'lazy' is not one of static, dynamic, dynamic-private",
    ),
    (
        "targets beside target keys",
        "{good}[socketio]\nkey = 'k'\n[[socketio.targets]]\nadapter = 'redis'\n",
        "socketio.key: with [[socketio.targets]], set it in each target entry",
    ),
    (
        "namespace no streams server reads",
        "{pg}[[tables]]\ntable = 'things'\nnamespace = '/notifications'\n[tables.events]\ninsert = 'c'\n"
        "[socketio]\nadapter = 'redis-streams'\nstream_count = 4\n",
        "tables[0]: namespace '/notifications' maps to stream 'socket.io--3'",
    ),
    ("batch size zero", "{good}[daemon]\nbatch_size = 0\n", "daemon.batch_size: must be at least 1"),
    ("batch size string", '{good}[daemon]\nbatch_size = "10"\n', "daemon.batch_size: must be an integer, not a string"),
    ("negative poll", "{good}[daemon]\npoll_interval = -1\n", "daemon.poll_interval: must be at least 0.01"),
    ("tiny event limit", "{good}[daemon]\nmax_event_bytes = 10\n", "daemon.max_event_bytes: must be at least 1024"),
    ("unknown daemon key", "{good}[daemon]\nthreads = 4\n", "daemon.threads: unknown key"),
    ("no tables", '[postgres]\ndsn = "{dsn}"\n', "tables: at least one [[tables]] entry is required"),
    ("tables not an array", 'tables = "things"\n[postgres]\ndsn = "{dsn}"\n', "tables: at least one [[tables]] entry"),
    ("table without name", "{pg}[[tables]]\n[tables.events]\ninsert = 'c'\n", "tables[0].table: is required"),
    (
        "three-part name",
        "{pg}[[tables]]\ntable = 'a.b.c'\n[tables.events]\ninsert = 'c'\n",
        "tables[0].table: 'a.b.c' is not",
    ),
    (
        "namespace without slash",
        "{pg}[[tables]]\ntable = 'things'\nnamespace = 'admin'\n[tables.events]\ninsert = 'c'\n",
        "tables[0].namespace: 'admin' must start with '/'",
    ),
    (
        "rooms not a list",
        "{pg}[[tables]]\ntable = 'things'\nrooms = 'r'\n[tables.events]\ninsert = 'c'\n",
        "tables[0].rooms: must be a list of strings",
    ),
    (
        "unclosed template",
        "{pg}[[tables]]\ntable = 'things'\nrooms = ['t:{id']\n[tables.events]\ninsert = 'c'\n",
        "tables[0].rooms[0]: template 't:{id' has an unclosed '{'",
    ),
    (
        "stray brace",
        "{pg}[[tables]]\ntable = 'things'\nrooms = ['t:id}']\n[tables.events]\ninsert = 'c'\n",
        "tables[0].rooms[0]: template 't:id}' has a '}' without '{'",
    ),
    (
        "exclude not strings",
        "{pg}[[tables]]\ntable = 'things'\nexclude_columns = [1]\n[tables.events]\ninsert = 'c'\n",
        "tables[0].exclude_columns[0]: must be a non-empty string",
    ),
    ("no events", "{pg}[[tables]]\ntable = 'things'\n", "tables[0].events: name an event for at least one of"),
    (
        "unknown operation",
        "{pg}[[tables]]\ntable = 'things'\n[tables.events]\nupsert = 'c'\n",
        "tables[0].events.upsert: unknown key",
    ),
    (
        "reserved event",
        "{pg}[[tables]]\ntable = 'things'\n[tables.events]\ninsert = 'connect'\n",
        "tables[0].events.insert: 'connect' is reserved by Socket.IO",
    ),
    (
        "route without on",
        "{pg}[[tables]]\ntable = 'things'\n[[tables.routes]]\nevent = 'e'\n",
        "tables[0].routes[0].on: name at least one of",
    ),
    (
        "route on upsert",
        "{pg}[[tables]]\ntable = 'things'\n[[tables.routes]]\non = ['upsert']\nevent = 'e'\n",
        "tables[0].routes[0].on[0]: 'upsert' is not one of",
    ),
    (
        "route without event",
        "{pg}[[tables]]\ntable = 'things'\n[[tables.routes]]\non = ['insert']\n",
        "tables[0].routes[0].event: is required",
    ),
    (
        "bad payload",
        "{pg}[[tables]]\ntable = 'things'\n[[tables.routes]]\non = ['insert']\nevent = 'e'\npayload = 'diff'\n",
        "tables[0].routes[0].payload: 'diff' is not one of",
    ),
    (
        "include_old string",
        "{pg}[[tables]]\ntable = 'things'\ninclude_old = 'yes'\n[tables.events]\ninsert = 'c'\n",
        "tables[0].include_old: must be true or false",
    ),
    (
        "duplicate route",
        "{pg}[[tables]]\ntable = 'things'\n[tables.events]\ninsert = 'c'\n"
        "[[tables.routes]]\nname = 'insert'\non = ['insert']\nevent = 'e'\n",
        "tables[0].routes: two routes are named 'insert'",
    ),
    ("table twice", "{good}" + GOOD_TABLE, "tables[1].table: public.things is configured twice"),
    (
        "excluded room column",
        "{pg}[[tables]]\ntable = 'things'\nrooms = ['s:{secret}']\nexclude_columns = ['secret']\n"
        "[tables.events]\ninsert = 'c'\n",
        "tables[0]: route 'insert' uses excluded column 'secret'",
    ),
    (
        "unknown table",
        "{pg}[[tables]]\ntable = 'nothings'\n[tables.events]\ninsert = 'c'\n",
        "tables[0].table: table public.nothings does not exist",
    ),
    (
        "unknown column",
        "{pg}[[tables]]\ntable = 'things'\nrooms = ['o:{organisation}']\n[tables.events]\ninsert = 'c'\n",
        "template 'o:{organisation}' names column 'organisation'",
    ),
    (
        "unknown key column",
        "{pg}[[tables]]\ntable = 'things'\nprimary_key = ['uuid']\n[tables.events]\ninsert = 'c'\n",
        "tables[0].primary_key: table public.things has no column 'uuid'",
    ),
    (
        "no primary key",
        "{pg}[[tables]]\ntable = 'nokey'\n[tables.events]\ninsert = 'c'\n",
        "tables[0].table: table public.nokey has no primary key",
    ),
    (
        "invalid filter",
        "{pg}[[tables]]\ntable = 'things'\n[[tables.routes]]\non = ['insert']\nevent = 'e'\nwhen = 'importance >'\n",
        "route 'routes[0]': filter 'importance >' is not valid for insert: syntax error",
    ),
    (
        "dsn does not resolve",
        '[postgres]\ndsn = "postgresql://nosuchhost.invalid/app"\n' + GOOD_TABLE,
        "postgres.dsn: the host does not resolve",
    ),
]


@pytest.fixture(scope="module")
async def shared_dsn() -> AsyncIterator[str]:
    """One database for every case: each case proves it changed nothing in it."""
    async with new_database(THINGS_DDL + "; CREATE TABLE nokey (id int)") as dsn:
        yield dsn


@pytest.mark.parametrize(("name", "text", "expected"), CASES, ids=[c[0] for c in CASES])
async def test_wrong_config_is_one_clear_line_exit_78_and_no_change(
    name: str, text: str, expected: str, shared_dsn: str, tmp_path: Path
) -> None:
    dsn = shared_dsn
    connection = await asyncpg.connect(dsn)
    try:
        path = tmp_path / "bad.toml"
        pg = f'[postgres]\ndsn = "{dsn}"\n'
        path.write_text(text.replace("{good}", pg + GOOD_TABLE).replace("{pg}", pg).replace("{dsn}", dsn))
        for command in ("check", "migrate"):
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = await asyncio.to_thread(main, [command, "--config", str(path)])
            message = err.getvalue().strip()
            assert code == EX_CONFIG, message
            assert message.count("\n") == 0, message
            assert message.startswith(f"cdc-sio: configuration error: {path}: "), message
            assert expected in message, message
        assert await connection.fetchval("SELECT to_regnamespace('cdc_sio')") is None
    finally:
        await connection.close()


def test_there_are_at_least_thirty_cases() -> None:
    assert len(CASES) >= 30
