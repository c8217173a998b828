"""Load and validate the TOML configuration into frozen, typed objects.

Every error names the file, the key and the problem, e.g.
``config.toml: tables[0].rooms[1]: template 'org:{org_id' has an unclosed '{'``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdc_sio.errors import ConfigError
from cdc_sio.targets import (
    SUBSCRIPTION_MODES,
    PythonSocketIO,
    RedisAdapter,
    RedisStreamsAdapter,
    ShardedRedisAdapter,
    Target,
    stream_for,
)
from cdc_sio.templates import Template, TemplateError

OPERATIONS = ("insert", "update", "delete")
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)
_ENV_REFERENCE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True, slots=True)
class TableName:
    schema: str
    name: str

    @classmethod
    def parse(cls, text: str) -> TableName:
        schema, dot, name = text.partition(".")
        if not dot:
            schema, name = "public", text
        if not schema or not name or "." in name:
            raise ValueError(f"{text!r} is not 'table' or 'schema.table'")
        return cls(schema, name)

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True, slots=True)
class TableConfig:
    table: TableName
    namespace: str
    rooms: tuple[Template, ...]
    exclude_columns: tuple[str, ...]
    events: Mapping[str, str]  # operation ("insert" | "update" | "delete") -> event name


@dataclass(frozen=True, slots=True)
class PostgresConfig:
    dsn: str


@dataclass(frozen=True, slots=True)
class RedisConfig:
    url: str
    cluster: bool = False  # a Redis Cluster: each command goes to the shard that owns its slot


@dataclass(frozen=True, slots=True)
class TargetConfig:
    target: Target
    redis: RedisConfig


@dataclass(frozen=True, slots=True)
class SocketIOConfig:
    targets: tuple[TargetConfig, ...]  # every event is published to each of them


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    batch_size: int
    poll_interval: float


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    postgres: PostgresConfig
    redis: RedisConfig
    socketio: SocketIOConfig
    daemon: DaemonConfig
    tables: tuple[TableConfig, ...]

    def table(self, name: str) -> TableConfig:
        return next(t for t in self.tables if str(t.table) == name)


def load_config(path: str | Path, environ: Mapping[str, str]) -> Config:
    """Read the TOML file at *path*, expanding ``${VAR}`` from *environ*."""
    source = str(path)
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except OSError as error:
        raise ConfigError(f"{source}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    return parse_config(document, source, environ)


def parse_config(document: Mapping[str, Any], source: str, environ: Mapping[str, str]) -> Config:
    reader = _Reader(source, environ)
    root = reader.section(document, "", {"postgres", "redis", "socketio", "daemon", "tables"})
    postgres = reader.section(root.get("postgres"), "postgres", {"dsn"}, required=True)
    redis = reader.section(root.get("redis", {}), "redis", {"url", "cluster"})
    socketio = reader.section(root.get("socketio", {}), "socketio", {"targets", *TARGET_OPTIONS})
    daemon = reader.section(root.get("daemon", {}), "daemon", {"batch_size", "poll_interval"})
    tables_value = root.get("tables")
    if not isinstance(tables_value, list) or not tables_value:
        raise reader.error("tables", "at least one [[tables]] entry is required")
    tables = tuple(reader.table(value, f"tables[{i}]") for i, value in enumerate(tables_value))
    seen: set[TableName] = set()
    for i, table in enumerate(tables):
        if table.table in seen:
            raise reader.error(f"tables[{i}].table", f"{table.table} is configured twice")
        seen.add(table.table)

    batch_size = reader.integer(daemon, "daemon.batch_size", default=1000, minimum=1)
    poll_interval = reader.number(daemon, "daemon.poll_interval", default=1.0, minimum=0.01)
    redis_config = RedisConfig(
        url=reader.string(redis, "redis.url", "redis://127.0.0.1:6379/0"),
        cluster=reader.boolean(redis, "redis.cluster", default=False),
    )
    socketio_config = reader.socketio(socketio, redis_config)
    reader.check_stream_names(socketio_config, tables)
    return Config(
        source=source,
        postgres=PostgresConfig(dsn=reader.string(postgres, "postgres.dsn")),
        redis=redis_config,
        socketio=socketio_config,
        daemon=DaemonConfig(batch_size=batch_size, poll_interval=poll_interval),
        tables=tables,
    )


# The options of each adapter, named after the server-side adapter's options.
ADAPTER_OPTIONS = {
    "redis": ("key",),
    "redis-sharded": ("channel_prefix", "subscription_mode"),
    "redis-streams": ("stream_name", "stream_count", "maxlen"),
    "python-socketio": ("channel",),
}
TARGET_OPTIONS = {"adapter", "redis_url", "redis_cluster", *(k for keys in ADAPTER_OPTIONS.values() for k in keys)}


class _Reader:
    def __init__(self, source: str, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.source}: {key}: {problem}" if key else f"{self.source}: {problem}")

    def section(self, value: object, key: str, allowed: set[str], *, required: bool = False) -> Mapping[str, Any]:
        if value is None and required:
            raise self.error(key, "this section is required")
        if not isinstance(value, dict):
            raise self.error(key, "must be a table")
        unknown = sorted(set(value) - allowed)
        if unknown:
            prefix = f"{key}." if key else ""
            raise self.error(prefix + unknown[0], f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return value

    def string(self, section: Mapping[str, Any], key: str, default: str | None = None) -> str:
        value = section.get(key.rpartition(".")[2], default)
        if value is None:
            raise self.error(key, "is required")
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, not {_type_name(value)}")
        expanded = self.expand(value, key)
        if not expanded:
            raise self.error(key, "must not be empty")
        return expanded

    def expand(self, value: str, key: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name is None:
                return "$"
            if name not in self.environ:
                raise self.error(key, f"environment variable {name} is not set")
            return self.environ[name]

        return _ENV_REFERENCE.sub(substitute, value)

    def integer(self, section: Mapping[str, Any], key: str, *, default: int, minimum: int) -> int:
        value = section.get(key.rpartition(".")[2], default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(key, f"must be an integer, not {_type_name(value)}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}")
        return value

    def number(self, section: Mapping[str, Any], key: str, *, default: float, minimum: float) -> float:
        value = section.get(key.rpartition(".")[2], default)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise self.error(key, f"must be a number, not {_type_name(value)}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}")
        return float(value)

    def boolean(self, section: Mapping[str, Any], key: str, *, default: bool) -> bool:
        value = section.get(key.rpartition(".")[2], default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, not {_type_name(value)}")
        return value

    def socketio(self, section: Mapping[str, Any], redis: RedisConfig) -> SocketIOConfig:
        """One target from the keys of [socketio] itself, or one per [[socketio.targets]] entry."""
        if "targets" not in section:
            return SocketIOConfig((self.target(section, "socketio", redis),))
        beside = sorted(set(section) - {"targets"})
        if beside:
            raise self.error(f"socketio.{beside[0]}", "with [[socketio.targets]], set it in each target entry")
        entries = section["targets"]
        if not isinstance(entries, list) or not entries:
            raise self.error("socketio.targets", "must be a non-empty array of tables ([[socketio.targets]])")
        targets = tuple(self.target(entry, f"socketio.targets[{i}]", redis) for i, entry in enumerate(entries))
        for i, target in enumerate(targets):
            if target in targets[:i]:
                raise self.error(
                    f"socketio.targets[{i}]", "the same target is listed twice (every event would be sent twice)"
                )
        return SocketIOConfig(targets)

    def target(self, value: object, key: str, redis: RedisConfig) -> TargetConfig:
        section = self.section(value, key, TARGET_OPTIONS)
        adapter = self.string(section, f"{key}.adapter", "redis")
        if adapter not in ADAPTER_OPTIONS:
            raise self.error(f"{key}.adapter", f"unknown adapter {adapter!r} (known: {', '.join(ADAPTER_OPTIONS)})")
        for option in section:
            owner = next((name for name, keys in ADAPTER_OPTIONS.items() if option in keys), adapter)
            if owner != adapter:
                raise self.error(f"{key}.{option}", f"is an option of adapter {owner!r}, not of {adapter!r}")
        target: Target
        if adapter == "redis":
            target = RedisAdapter(key=self.string(section, f"{key}.key", "socket.io"))
        elif adapter == "redis-sharded":
            mode = self.string(section, f"{key}.subscription_mode", "dynamic")
            if mode not in SUBSCRIPTION_MODES:
                raise self.error(f"{key}.subscription_mode", f"{mode!r} is not one of {', '.join(SUBSCRIPTION_MODES)}")
            prefix = self.string(section, f"{key}.channel_prefix", "socket.io")
            target = ShardedRedisAdapter(channel_prefix=prefix, subscription_mode=mode)
        elif adapter == "redis-streams":
            target = RedisStreamsAdapter(
                stream_name=self.string(section, f"{key}.stream_name", "socket.io"),
                stream_count=self.integer(section, f"{key}.stream_count", default=1, minimum=1),
                maxlen=self.integer(section, f"{key}.maxlen", default=10_000, minimum=1),
            )
        else:
            target = PythonSocketIO(channel=self.string(section, f"{key}.channel", "socketio"))
        return TargetConfig(
            target,
            RedisConfig(
                url=self.string(section, f"{key}.redis_url", redis.url),
                cluster=self.boolean(section, f"{key}.redis_cluster", default=redis.cluster),
            ),
        )

    def check_stream_names(self, socketio: SocketIOConfig, tables: tuple[TableConfig, ...]) -> None:
        """A namespace that a multi-stream adapter would never read is a configuration error, not a silent loss."""
        for entry in socketio.targets:
            if not isinstance(entry.target, RedisStreamsAdapter):
                continue
            for i, table in enumerate(tables):
                try:
                    stream_for(entry.target, table.namespace)
                except ValueError as error:
                    raise self.error(f"tables[{i}].namespace", str(error)) from None

    def string_list(self, section: Mapping[str, Any], key: str) -> list[str]:
        value = section.get(key.rpartition(".")[2], [])
        if not isinstance(value, list):
            raise self.error(key, f"must be a list of strings, not {_type_name(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise self.error(f"{key}[{i}]", "must be a non-empty string")
        return value

    def table(self, value: object, key: str) -> TableConfig:
        allowed = {"table", "namespace", "rooms", "exclude_columns", "events"}
        section = self.section(value, key, allowed)
        table_text = self.string(section, f"{key}.table")
        try:
            table = TableName.parse(table_text)
        except ValueError as error:
            raise self.error(f"{key}.table", str(error)) from None

        namespace = self.string(section, f"{key}.namespace", "/")
        if not namespace.startswith("/"):
            raise self.error(f"{key}.namespace", f"{namespace!r} must start with '/'")

        rooms = []
        for i, text in enumerate(self.string_list(section, f"{key}.rooms")):
            try:
                rooms.append(Template.parse(text))
            except TemplateError as error:
                raise self.error(f"{key}.rooms[{i}]", str(error)) from None

        exclude = self.string_list(section, f"{key}.exclude_columns")
        for template in rooms:
            hidden = sorted(set(template.columns) & set(exclude))
            if hidden:
                raise self.error(
                    f"{key}.rooms",
                    f"template {template.text!r} uses excluded column {hidden[0]!r}",
                )

        events_section = self.section(section.get("events"), f"{key}.events", set(OPERATIONS), required=True)
        events = {op: self.string(events_section, f"{key}.events.{op}") for op in OPERATIONS if op in events_section}
        if not events:
            raise self.error(f"{key}.events", "name an event for at least one of insert, update, delete")
        for op, event in events.items():
            if event in RESERVED_EVENTS:
                raise self.error(f"{key}.events.{op}", f"{event!r} is reserved by Socket.IO")
        return TableConfig(table, namespace, tuple(rooms), tuple(exclude), events)


def _type_name(value: object) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)
