"""The configuration loader accepts the documented shape and names every problem precisely."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cdc_sio.config import RedisConfig, TableName, TargetConfig, load_config, parse_config
from cdc_sio.errors import ConfigError
from cdc_sio.targets import PythonSocketIO, RedisAdapter, RedisStreamsAdapter, ShardedRedisAdapter

ROOT = Path(__file__).parents[2]


def minimal(**table: Any) -> dict[str, Any]:
    entry = {"table": "things", "events": {"update": "Thing::update"}, **table}
    return {"postgres": {"dsn": "postgresql://h/db"}, "tables": [entry]}


def error_of(document: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_config(document, "app.toml", environ or {})
    return str(raised.value)


def test_example_config_loads_with_every_documented_key() -> None:
    """config.example.toml is valid, and its values arrive as typed, frozen objects."""
    config = load_config(ROOT / "config.example.toml", {})
    table = config.tables[0]
    assert table.table == TableName("public", "things")
    assert table.exclude_columns == ("secret",)
    update = next(r for r in table.routes if r.name == "update")
    assert (update.namespace, update.event.text, update.payload) == ("/", "Thing::update", "row")
    assert [t.text for t in update.rooms] == ["thing:{id}", "org:{org_id}"]
    assert update.left_event.text == "Thing::delete"
    assert table.operations == ("insert", "update", "delete")
    assert [t.target for t in config.socketio.targets] == [RedisAdapter(key="socket.io")]
    assert config.redis.url == "redis://127.0.0.1:6379/0"
    assert config.daemon.batch_size == 1000


def test_defaults_and_unqualified_table_means_public() -> None:
    config = parse_config(minimal(), "app.toml", {})
    assert config.tables[0].table == TableName("public", "things")
    [route] = config.tables[0].routes
    assert (route.rooms, route.namespace, route.when) == ((), "/", None)
    assert route.left_event.text == "Thing::update::left"
    assert config.daemon.poll_interval == 1.0
    assert config.daemon.max_event_bytes == 8 * 2**20


def test_environment_references_are_expanded_and_dollar_escaped() -> None:
    document = minimal()
    document["postgres"]["dsn"] = "postgresql://u:${PG_PASSWORD}@h/db?x=$$1"
    config = parse_config(document, "app.toml", {"PG_PASSWORD": "s3cret"})
    assert config.postgres.dsn == "postgresql://u:s3cret@h/db?x=$1"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"tables": []}, "app.toml: postgres: this section is required"),
        ({**minimal(), "extra": 1}, "app.toml: extra: unknown key"),
        ({**minimal(), "postgres": {"dsn": 5}}, "app.toml: postgres.dsn: must be a string, not int"),
        ({**minimal(), "postgres": {"dsn": "${NOPE}"}}, "app.toml: postgres.dsn: environment variable NOPE is not set"),
        ({"postgres": {"dsn": "x"}}, "app.toml: tables: at least one [[tables]] entry is required"),
        (minimal(table="a.b.c"), "app.toml: tables[0].table: 'a.b.c' is not 'table' or 'schema.table'"),
        (minimal(namespace="admin"), "app.toml: tables[0].namespace: 'admin' must start with '/'"),
        (minimal(rooms=["org:{org_id"]), "app.toml: tables[0].rooms[0]: template 'org:{org_id' has an unclosed '{'"),
        (minimal(rooms="thing"), "app.toml: tables[0].rooms: must be a list of strings, not a string"),
        (minimal(rooms=["t:{secret}"], exclude_columns=["secret"]), "route 'update' uses excluded column 'secret'"),
        (minimal(events={}), "app.toml: tables[0].events: name an event for at least one of insert, update, delete"),
        (minimal(payload="diff"), "app.toml: tables[0].payload: 'diff' is not one of row, changes, flag, json-string"),
        (minimal(routes={"on": ["insert"]}), "app.toml: tables[0].routes: must be an array of tables"),
        (minimal(routes=[{"event": "e"}]), "app.toml: tables[0].routes[0].on: name at least one of insert"),
        (minimal(routes=[{"on": ["upsert"], "event": "e"}]), "app.toml: tables[0].routes[0].on[0]: 'upsert' is not"),
        (minimal(routes=[{"on": ["insert"]}]), "app.toml: tables[0].routes[0].event: is required"),
        (minimal(routes=[{"on": ["insert"], "event": "e", "rooms": ["{x"]}]), "tables[0].routes[0].rooms[0]: template"),
        (minimal(routes=[{"on": ["insert"], "event": "e", "colour": 1}]), "tables[0].routes[0].colour: unknown key"),
        (minimal(routes=[{"on": ["insert"], "event": "e", "name": "update"}]), "two routes are named 'update'"),
        (minimal(include_old="yes"), "app.toml: tables[0].include_old: must be true or false, not a string"),
        (minimal(events={"upsert": "x"}), "app.toml: tables[0].events.upsert: unknown key"),
        (minimal(events={"delete": "disconnect"}), "app.toml: tables[0].events.delete: 'disconnect' is reserved"),
        ({**minimal(), "daemon": {"batch_size": 0}}, "app.toml: daemon.batch_size: must be at least 1"),
        ({**minimal(), "daemon": {"poll_interval": "1s"}}, "app.toml: daemon.poll_interval: must be a number"),
    ],
)
def test_bad_config_names_file_key_and_problem(document: dict[str, Any], message: str) -> None:
    assert message in error_of(document)


def test_same_table_twice_is_refused() -> None:
    document = minimal()
    document["tables"].append({"table": "public.things", "events": {"insert": "x"}})
    assert error_of(document) == "app.toml: tables[1].table: public.things is configured twice"


def test_missing_file_and_bad_toml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "none.toml", {})
    broken = tmp_path / "broken.toml"
    broken.write_text("[postgres\n")
    with pytest.raises(ConfigError, match=r"broken.toml: not valid TOML"):
        load_config(broken, {})


def targets_of(socketio: dict[str, Any], redis: dict[str, Any] | None = None) -> list[TargetConfig]:
    document = {**minimal(), "socketio": socketio, "redis": redis or {}}
    return list(parse_config(document, "app.toml", {}).socketio.targets)


def test_socketio_keys_are_one_target_and_the_classic_key_is_the_default() -> None:
    """[socketio] key = ... (the core's config) is the classic Redis adapter; an adapter's options sit beside it."""
    local = RedisConfig("redis://127.0.0.1:6379/0")
    assert targets_of({}) == [TargetConfig(RedisAdapter("socket.io"), local)]
    assert targets_of({"key": "app"}) == [TargetConfig(RedisAdapter("app"), local)]
    sharded = {"adapter": "redis-sharded", "channel_prefix": "p", "subscription_mode": "static"}
    assert targets_of(sharded, {"url": "redis://c:7000", "cluster": True}) == [
        TargetConfig(ShardedRedisAdapter("p", "static"), RedisConfig("redis://c:7000", cluster=True))
    ]
    streams = {"adapter": "redis-streams", "stream_name": "s", "stream_count": 4, "maxlen": 100}
    assert targets_of(streams)[0].target == RedisStreamsAdapter("s", 4, 100)
    assert targets_of({"adapter": "python-socketio"})[0].target == PythonSocketIO("socketio")


def test_several_targets_each_with_its_own_redis_or_the_default_one() -> None:
    """[[socketio.targets]]: every event goes to each (e.g. while moving a cluster from one adapter to another)."""
    entries = [
        {"adapter": "redis", "key": "old"},
        {"adapter": "redis-sharded", "redis_url": "redis://new:7000", "redis_cluster": True},
        {"adapter": "python-socketio", "channel": "py"},
    ]
    assert targets_of({"targets": entries}, {"url": "redis://old:6379"}) == [
        TargetConfig(RedisAdapter("old"), RedisConfig("redis://old:6379")),
        TargetConfig(ShardedRedisAdapter(), RedisConfig("redis://new:7000", cluster=True)),
        TargetConfig(PythonSocketIO("py"), RedisConfig("redis://old:6379")),
    ]


@pytest.mark.parametrize(
    ("socketio", "message"),
    [
        ({"adapter": "kafka"}, "socketio.adapter: unknown adapter 'kafka' (known: redis, redis-sharded, redis-streams"),
        (
            {"adapter": "redis", "stream_name": "s"},
            "socketio.stream_name: is an option of adapter 'redis-streams', not",
        ),
        ({"channel": "c"}, "socketio.channel: is an option of adapter 'python-socketio', not of 'redis'"),
        ({"adapter": "redis-sharded", "subscription_mode": "lazy"}, "'lazy' is not one of static, dynamic, dynamic-"),
        ({"adapter": "redis-streams", "stream_count": 0}, "socketio.stream_count: must be at least 1"),
        ({"redis_cluster": "yes"}, "socketio.redis_cluster: must be true or false, not a string"),
        ({"brokers": 1}, "socketio.brokers: unknown key"),
        ({"key": "k", "targets": [{}]}, "socketio.key: with [[socketio.targets]], set it in each target entry"),
        ({"targets": []}, "socketio.targets: must be a non-empty array of tables"),
        ({"targets": [{"key": "a"}, {"key": "a"}]}, "socketio.targets[1]: the same target is listed twice"),
        ({"targets": [{"adapter": "redis-sharded", "key": "a"}]}, "socketio.targets[0].key: is an option of adapter"),
    ],
)
def test_bad_target_names_its_key(socketio: dict[str, Any], message: str) -> None:
    """An unknown adapter, an option of another adapter, or a target listed twice is refused, naming the key."""
    assert message in error_of({**minimal(), "socketio": socketio})


def test_namespace_a_multi_stream_adapter_never_reads_is_a_config_error() -> None:
    """With stream_count 4, '/notifications' would go to 'socket.io--3', which no streams-adapter server polls."""
    document = {**minimal(namespace="/notifications"), "socketio": {"adapter": "redis-streams", "stream_count": 4}}
    assert "app.toml: tables[0]: namespace '/notifications' maps to stream 'socket.io--3'" in error_of(document)
    assert "redis.cluster: must be true or false" in error_of({**minimal(), "redis": {"cluster": 1}})


def test_routes_inherit_the_table_defaults_and_override_them() -> None:
    document = minimal(
        namespace="/live",
        rooms=["thing:{id}"],
        payload="changes",
        routes=[
            {
                "name": "important",
                "on": ["delete"],
                "when": "importance > 100",
                "event": "Thing::delete::important",
                "rooms": ["ROOM::ExtraImportantUpdates"],
                "payload": "flag",
            }
        ],
    )
    document["tables"][0]["events"]["truncate"] = "Thing::truncate"
    table = parse_config(document, "app.toml", {}).tables[0]
    update, important = table.routes
    assert (update.namespace, [t.text for t in update.rooms], update.payload) == ("/live", ["thing:{id}"], "changes")
    assert (important.namespace, [t.text for t in important.rooms]) == ("/live", ["ROOM::ExtraImportantUpdates"])
    assert (important.when, important.payload, important.operations) == ("importance > 100", "flag", ("delete",))
    assert table.operations == ("update", "delete")
    assert (table.truncate_event, table.truncate_namespace, table.truncate_rooms) == ("Thing::truncate", "/live", ())


def _documented_keys() -> dict[str, set[str]]:
    """Keys config.example.toml shows (set or commented out), by section ("" is the top level)."""
    sections: dict[str, set[str]] = {"": set()}
    section = ""
    for line in (ROOT / "config.example.toml").read_text().splitlines():
        text = line.lstrip("# ").rstrip()
        if re.fullmatch(r"\[\[?[a-z_.]+\]\]?", text) and not line.startswith("# "):
            section = text.strip("[]")
            sections.setdefault(section, set())
            parent, _, name = section.rpartition(".")
            sections.setdefault(parent, set()).add(name)
        elif match := re.match(r"([a-z_]+) = ", text):
            sections.setdefault(section, set()).add(match.group(1))
    return sections


def _accepted_keys(document: dict[str, Any], path: list[str | int]) -> set[str]:
    """Ask the parser itself: an unknown key's error lists the keys that section accepts."""
    target: Any = document
    for step in path:
        target = target[step]
    target["zz_unknown"] = 1
    with pytest.raises(ConfigError) as raised:
        parse_config(document, "t.toml", {})
    del target["zz_unknown"]
    match = re.search(r"unknown key \(allowed: ([^)]*)\)", str(raised.value))
    assert match, str(raised.value)
    return set(match.group(1).split(", "))


def test_every_key_the_parser_accepts_is_documented_in_the_example() -> None:
    """config.example.toml is the configuration reference; it cannot drift from the code."""
    document = tomllib.loads((ROOT / "config.example.toml").read_text())
    for name in ("redis", "socketio", "daemon"):
        document.setdefault(name, {})
    documented = _documented_keys()
    for section, path in [
        ("", []),
        ("postgres", ["postgres"]),
        ("redis", ["redis"]),
        ("socketio", ["socketio"]),
        ("daemon", ["daemon"]),
        ("tables", ["tables", 0]),
        ("tables.events", ["tables", 0, "events"]),
        ("tables.routes", ["tables", 0, "routes", 0]),
    ]:
        missing = _accepted_keys(document, path) - documented.get(section, set())
        assert not missing, f"[{section}] accepts {sorted(missing)}, which config.example.toml does not show"


def test_daemon_operation_keys_and_http_address() -> None:
    """Shutdown timeout, probe and summary intervals have defaults; http.listen takes host:port or [v6]:port."""
    config = parse_config(minimal(), "app.toml", {})
    daemon = config.daemon
    assert (daemon.shutdown_timeout, daemon.probe_interval, daemon.summary_interval) == (10.0, 5.0, 60.0)
    assert config.http.listen is None
    document = {**minimal(), "http": {"listen": "[::1]:9464"}, "daemon": {"shutdown_timeout": 3}}
    config = parse_config(document, "app.toml", {})
    assert config.http.listen == ("::1", 9464) and config.daemon.shutdown_timeout == 3.0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"http": {"listen": "9464"}}, "app.toml: http.listen: '9464' is not 'host:port'"),
        ({"http": {"listen": "localhost:99999"}}, "app.toml: http.listen: 'localhost:99999' is not 'host:port'"),
        ({"http": {"port": 1}}, "app.toml: http.port: unknown key (allowed: listen)"),
        ({"daemon": {"probe_interval": 0}}, "app.toml: daemon.probe_interval: must be at least 0.05"),
    ],
)
def test_bad_operation_keys_are_named(section: dict[str, Any], message: str) -> None:
    assert error_of({**minimal(), **section}).startswith(message)
