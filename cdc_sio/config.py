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


@dataclass(frozen=True, slots=True)
class SocketIOConfig:
    key: str


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    batch_size: int
    poll_interval: float
    shutdown_timeout: float  # seconds to finish the batch in flight after SIGTERM
    probe_interval: float  # seconds between health round trips (NOTIFY probe + Redis PING)
    summary_interval: float  # seconds between "summary" log lines


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Where ``/metrics`` and ``/healthz`` are served; None: nowhere."""

    listen: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Config:
    source: str
    postgres: PostgresConfig
    redis: RedisConfig
    socketio: SocketIOConfig
    daemon: DaemonConfig
    tables: tuple[TableConfig, ...]
    http: HttpConfig = HttpConfig()

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
    root = reader.section(document, "", {"postgres", "redis", "socketio", "daemon", "http", "tables"})
    postgres = reader.section(root.get("postgres"), "postgres", {"dsn"}, required=True)
    redis = reader.section(root.get("redis", {}), "redis", {"url"})
    socketio = reader.section(root.get("socketio", {}), "socketio", {"key"})
    daemon = reader.section(root.get("daemon", {}), "daemon", set(DaemonConfig.__annotations__))
    http = reader.section(root.get("http", {}), "http", {"listen"})
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
    daemon_config = DaemonConfig(
        batch_size=batch_size,
        poll_interval=poll_interval,
        shutdown_timeout=reader.number(daemon, "daemon.shutdown_timeout", default=10.0, minimum=0.0),
        probe_interval=reader.number(daemon, "daemon.probe_interval", default=5.0, minimum=0.05),
        summary_interval=reader.number(daemon, "daemon.summary_interval", default=60.0, minimum=0.1),
    )
    return Config(
        source=source,
        postgres=PostgresConfig(dsn=reader.string(postgres, "postgres.dsn")),
        redis=RedisConfig(url=reader.string(redis, "redis.url", "redis://127.0.0.1:6379/0")),
        socketio=SocketIOConfig(key=reader.string(socketio, "socketio.key", "socket.io")),
        daemon=daemon_config,
        tables=tables,
        http=HttpConfig(listen=reader.address(http, "http.listen")),
    )


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

    def address(self, section: Mapping[str, Any], key: str) -> tuple[str, int] | None:
        if key.rpartition(".")[2] not in section:
            return None
        text = self.string(section, key)
        host, colon, port = text.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise self.error(key, f"{text!r} is not 'host:port' (e.g. '127.0.0.1:9464' or '[::1]:9464')")
        return host, int(port)

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
