"""The configuration loader accepts the documented shape and names every problem precisely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cdc_sio.config import TableName, load_config, parse_config
from cdc_sio.errors import ConfigError

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
    assert table.namespace == "/"
    assert [t.text for t in table.rooms] == ["thing:{id}", "org:{org_id}"]
    assert table.exclude_columns == ("secret",)
    assert dict(table.events) == {"insert": "Thing::create", "update": "Thing::update", "delete": "Thing::delete"}
    assert config.socketio.key == "socket.io"
    assert config.redis.url == "redis://127.0.0.1:6379/0"
    assert config.daemon.batch_size == 1000


def test_defaults_and_unqualified_table_means_public() -> None:
    config = parse_config(minimal(), "app.toml", {})
    assert config.tables[0].table == TableName("public", "things")
    assert config.tables[0].rooms == ()
    assert config.daemon.poll_interval == 1.0


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
        (minimal(rooms=["t:{secret}"], exclude_columns=["secret"]), "uses excluded column 'secret'"),
        (minimal(events={}), "app.toml: tables[0].events: name an event for at least one of insert, update, delete"),
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
