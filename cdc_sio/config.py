"""Load and validate the TOML configuration into frozen, typed objects.

Every error names the file, the key and the problem, e.g.
``config.toml: tables[0].rooms[1]: template 'org:{org_id' has an unclosed '{'``.
"""

from __future__ import annotations

import dataclasses
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
PAYLOADS = ("row", "changes", "flag", "json-string")
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
class Route:
    """One way a change becomes an event: for these operations, when the filter holds."""

    name: str
    operations: tuple[str, ...]
    when: str | None  # an SQL boolean expression over the row (and `new` / `old`), run in the trigger
    only_when_changed: tuple[str, ...]  # UPDATE: emit only if one of these columns changed
    event: Template  # over the row's columns, plus {$table} and {$op}
    namespace: str
    rooms: tuple[Template, ...]
    except_rooms: tuple[Template, ...]
    payload: str  # one of PAYLOADS
    include_old: bool
    left_event: Template  # UPDATE: sent to the rooms the row left

    @property
    def columns(self) -> set[str]:
        """Every row column the route's templates read."""
        templates = (self.event, self.left_event, *self.rooms, *self.except_rooms)
        return {c for t in templates for c in t.columns if not c.startswith("$")} | set(self.only_when_changed)


@dataclass(frozen=True, slots=True)
class TableConfig:
    table: TableName
    exclude_columns: tuple[str, ...]
    primary_key: tuple[str, ...]  # configured; empty means the table's own primary key
    routes: tuple[Route, ...]
    truncate_event: str | None
    truncate_namespace: str
    truncate_rooms: tuple[str, ...]  # the table's rooms that do not depend on row values

    @property
    def operations(self) -> tuple[str, ...]:
        captured = {op for route in self.routes for op in route.operations}
        return tuple(op for op in OPERATIONS if op in captured)

    def routes_for(self, op: str) -> tuple[Route, ...]:
        return tuple(route for route in self.routes if op in route.operations)


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
    max_event_bytes: int
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
    redis = reader.section(root.get("redis", {}), "redis", {"url", "cluster"})
    socketio = reader.section(root.get("socketio", {}), "socketio", {"targets", *TARGET_OPTIONS})
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
    redis_config = RedisConfig(
        url=reader.string(redis, "redis.url", "redis://127.0.0.1:6379/0"),
        cluster=reader.boolean(redis, "redis.cluster", False),
    )
    socketio_config = reader.socketio(socketio, redis_config)
    reader.check_stream_names(socketio_config, tables)
    return Config(
        source=source,
        postgres=PostgresConfig(dsn=reader.string(postgres, "postgres.dsn")),
        redis=redis_config,
        socketio=socketio_config,
        daemon=DaemonConfig(
            batch_size=batch_size,
            poll_interval=poll_interval,
            max_event_bytes=reader.integer(daemon, "daemon.max_event_bytes", default=8 * 2**20, minimum=1024),
            shutdown_timeout=reader.number(daemon, "daemon.shutdown_timeout", default=10.0, minimum=0.0),
            probe_interval=reader.number(daemon, "daemon.probe_interval", default=5.0, minimum=0.05),
            summary_interval=reader.number(daemon, "daemon.summary_interval", default=60.0, minimum=0.1),
        ),
        tables=tables,
        http=HttpConfig(listen=reader.address(http, "http.listen")),
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

    def address(self, section: Mapping[str, Any], key: str) -> tuple[str, int] | None:
        if key.rpartition(".")[2] not in section:
            return None
        text = self.string(section, key)
        host, colon, port = text.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise self.error(key, f"{text!r} is not 'host:port' (e.g. '127.0.0.1:9464' or '[::1]:9464')")
        return host, int(port)

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
                cluster=self.boolean(section, f"{key}.redis_cluster", redis.cluster),
            ),
        )

    def check_stream_names(self, socketio: SocketIOConfig, tables: tuple[TableConfig, ...]) -> None:
        """A namespace that a multi-stream adapter would never read is a configuration error, not a silent loss."""
        for entry in socketio.targets:
            if not isinstance(entry.target, RedisStreamsAdapter):
                continue
            for i, table in enumerate(tables):
                namespaces = {route.namespace for route in table.routes}
                if table.truncate_event is not None:
                    namespaces.add(table.truncate_namespace)
                for namespace in sorted(namespaces):
                    try:
                        stream_for(entry.target, namespace)
                    except ValueError as error:
                        raise self.error(f"tables[{i}]", str(error)) from None

    def string_list(self, section: Mapping[str, Any], key: str) -> list[str]:
        value = section.get(key.rpartition(".")[2], [])
        if not isinstance(value, list):
            raise self.error(key, f"must be a list of strings, not {_type_name(value)}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise self.error(f"{key}[{i}]", "must be a non-empty string")
        return value

    def boolean(self, section: Mapping[str, Any], key: str, default: bool) -> bool:
        value = section.get(key.rpartition(".")[2], default)
        if not isinstance(value, bool):
            raise self.error(key, f"must be true or false, not {_type_name(value)}")
        return value

    def template(self, text: str, key: str) -> Template:
        try:
            return Template.parse(text)
        except TemplateError as error:
            raise self.error(key, str(error)) from None

    def templates(self, section: Mapping[str, Any], key: str) -> tuple[Template, ...]:
        return tuple(self.template(text, f"{key}[{i}]") for i, text in enumerate(self.string_list(section, key)))

    def route_options(self, section: Mapping[str, Any], key: str, base: _RouteOptions) -> _RouteOptions:
        """*base*, with what *section* sets (a table sets defaults for its routes; a route overrides them)."""
        changes: dict[str, Any] = {}
        if "namespace" in section:
            changes["namespace"] = self.namespace(section, f"{key}.namespace")
        if "rooms" in section:
            changes["rooms"] = self.templates(section, f"{key}.rooms")
        if "except_rooms" in section:
            changes["except_rooms"] = self.templates(section, f"{key}.except_rooms")
        if "payload" in section:
            payload = self.string(section, f"{key}.payload")
            if payload not in PAYLOADS:
                raise self.error(f"{key}.payload", f"{payload!r} is not one of {', '.join(PAYLOADS)}")
            changes["payload"] = payload
        if "include_old" in section:
            changes["include_old"] = self.boolean(section, f"{key}.include_old", False)
        return dataclasses.replace(base, **changes)

    def event(self, section: Mapping[str, Any], key: str, default: str | None = None) -> Template:
        text = self.string(section, key, default)
        if text in RESERVED_EVENTS:
            raise self.error(key, f"{text!r} is reserved by Socket.IO")
        return self.template(text, key)

    def table(self, value: object, key: str) -> TableConfig:
        allowed = set(_ROUTE_OPTIONS) | {"table", "exclude_columns", "primary_key", "events", "routes"}
        section = self.section(value, key, allowed)
        table_text = self.string(section, f"{key}.table")
        try:
            table = TableName.parse(table_text)
        except ValueError as error:
            raise self.error(f"{key}.table", str(error)) from None
        exclude = tuple(self.string_list(section, f"{key}.exclude_columns"))
        primary_key = tuple(self.string_list(section, f"{key}.primary_key"))

        defaults = self.route_options(section, key, _BUILT_IN_OPTIONS)
        events = self.section(section.get("events", {}), f"{key}.events", {*OPERATIONS, "truncate"})
        routes = []
        for op in OPERATIONS:
            if op in events:
                self.event(events, f"{key}.events.{op}")
                shorthand = {"on": [op], "event": events[op]}
                routes.append(self.route(shorthand, defaults, f"{key}.events.{op}", op, events.get("delete")))
        routes_value = section.get("routes", [])
        if not isinstance(routes_value, list):
            raise self.error(f"{key}.routes", "must be an array of tables ([[tables.routes]])")
        for i, route_value in enumerate(routes_value):
            routes.append(self.route(route_value, defaults, f"{key}.routes[{i}]", f"routes[{i}]", events.get("delete")))
        truncate = self.string(events, f"{key}.events.truncate") if "truncate" in events else None
        if not routes and truncate is None:
            raise self.error(f"{key}.events", "name an event for at least one of insert, update, delete, truncate")

        names = [route.name for route in routes]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise self.error(f"{key}.routes", f"two routes are named {name!r}")
        for route in routes:
            hidden = sorted(route.columns & set(exclude))
            if hidden:
                raise self.error(f"{key}", f"route {route.name!r} uses excluded column {hidden[0]!r}")
        if truncate in RESERVED_EVENTS:
            raise self.error(f"{key}.events.truncate", f"{truncate!r} is reserved by Socket.IO")
        return TableConfig(
            table=table,
            exclude_columns=exclude,
            primary_key=primary_key,
            routes=tuple(routes),
            truncate_event=truncate,
            truncate_namespace=defaults.namespace,
            truncate_rooms=tuple(t.text for t in defaults.rooms if not t.columns),
        )

    def namespace(self, section: Mapping[str, Any], key: str) -> str:
        namespace = self.string(section, key, "/")
        if not namespace.startswith("/"):
            raise self.error(key, f"{namespace!r} must start with '/'")
        return namespace

    def route(self, value: object, defaults: _RouteOptions, key: str, name: str, delete_event: str | None) -> Route:
        allowed = set(_ROUTE_OPTIONS) | {"name", "on", "when", "event", "only_when_changed", "left_event"}
        section = self.section(value, key, allowed)
        options = self.route_options(section, key, defaults)
        operations = tuple(self.string_list(section, f"{key}.on"))
        if not operations:
            raise self.error(f"{key}.on", "name at least one of insert, update, delete")
        for i, op in enumerate(operations):
            if op not in OPERATIONS:
                raise self.error(f"{key}.on[{i}]", f"{op!r} is not one of insert, update, delete")
        when = self.string(section, f"{key}.when") if "when" in section else None
        event = self.event(section, f"{key}.event")
        left_default = delete_event if delete_event is not None else f"{event.text}::left"
        return Route(
            name=self.string(section, f"{key}.name", name),
            operations=operations,
            when=when,
            only_when_changed=tuple(self.string_list(section, f"{key}.only_when_changed")),
            event=event,
            namespace=options.namespace,
            rooms=options.rooms,
            except_rooms=options.except_rooms,
            payload=options.payload,
            include_old=options.include_old,
            left_event=self.event(section, f"{key}.left_event", left_default),
        )


@dataclass(frozen=True, slots=True)
class _RouteOptions:
    namespace: str = "/"
    rooms: tuple[Template, ...] = ()
    except_rooms: tuple[Template, ...] = ()
    payload: str = "row"
    include_old: bool = False


_BUILT_IN_OPTIONS = _RouteOptions()
_ROUTE_OPTIONS = tuple(field.name for field in dataclasses.fields(_RouteOptions))


def _type_name(value: object) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)
