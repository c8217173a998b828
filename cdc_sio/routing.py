"""Turn one captured change into the Socket.IO events it produces (pure, no I/O)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from cdc_sio.config import OPERATIONS, Config, Route, TableConfig
from cdc_sio.templates import Template, TemplateError


class Change(NamedTuple):
    """One committed row change, as read from the change log (a named tuple: see Emission)."""

    id: int
    table: str  # "schema.table", as configured
    op: str  # "insert" | "update" | "delete" | "truncate"
    row: dict[str, Any]  # the new row, or the old row for a delete; excluded columns absent
    committed_at: str  # ISO 8601
    old: dict[str, Any] | None = None  # the old row of an update, when a route needs it
    routes: tuple[str, ...] | None = None  # the routes whose filters matched; None: every route of op


class Emission(NamedTuple):
    """One Socket.IO event to publish: ``io.of(namespace).to(*rooms).emit(event, *args)``.

    A named tuple, like Change: one is built for every event, and a frozen dataclass takes four times as long.
    """

    namespace: str
    rooms: tuple[str, ...]  # empty: every socket of the namespace
    event: str
    args: tuple[Any, ...]
    except_rooms: tuple[str, ...] = ()
    volatile: bool = False  # may be dropped when a client's transport is not writable
    compress: bool | None = None  # None: the server's default (per-message deflate)


class Router:
    """Turns changes into emissions, with each table's routes per operation looked up once."""

    def __init__(self, config: Config, primary_keys: Mapping[str, tuple[str, ...]]) -> None:
        """*primary_keys* gives each table's key columns ("schema.table" -> columns), for the
        ``changes`` and ``flag`` payloads."""
        self.tables = {str(t.table): t for t in config.tables}
        self.routes = {(name, op): t.routes_for(op) for name, t in self.tables.items() for op in OPERATIONS}
        self.primary_keys = primary_keys

    def __call__(self, change: Change) -> list[Emission]:
        """The events for *change*; none when its table or operation is no longer configured."""
        table = self.tables.get(change.table)
        if table is None:
            return []
        meta = {"id": change.id, "op": change.op, "table": change.table, "committed_at": change.committed_at}
        if change.op == "truncate":
            if table.truncate_event is None:
                return []
            return [Emission(table.truncate_namespace, table.truncate_rooms, table.truncate_event, ({}, meta))]
        key = self.primary_keys.get(change.table, ())
        emissions: list[Emission] = []
        for route_ in self.routes.get((change.table, change.op), ()):
            if change.routes is None or route_.name in change.routes:
                emissions += _route_emissions(change, table, route_, key, meta)
        return emissions


def route(change: Change, config: Config, primary_keys: Mapping[str, tuple[str, ...]]) -> list[Emission]:
    """The events for one *change* (see Router)."""
    return Router(config, primary_keys)(change)


def _route_emissions(
    change: Change, table: TableConfig, route_: Route, key: tuple[str, ...], meta: dict[str, Any]
) -> list[Emission]:
    emissions = []
    rooms = _rooms(route_.rooms, change.row)
    if rooms is not None:
        payload, old = _payload(route_.payload, change, key)
        full_meta = {**meta, "old": old} if route_.include_old and old is not None else meta
        emissions.append(
            Emission(
                route_.namespace,
                rooms,
                _event(route_.event, change.row, change),
                (payload, full_meta),
                _rooms(route_.except_rooms, change.row) or (),
            )
        )
    if change.op == "update" and change.old is not None and route_.rooms:
        left = tuple(room for room in _rooms(route_.rooms, change.old) or () if room not in (rooms or ()))
        if left:
            gone = Change(change.id, change.table, "delete", change.old, change.committed_at)
            payload, _ = _payload(route_.payload, gone, key)
            emissions.append(
                Emission(
                    route_.namespace,
                    left,
                    _event(route_.left_event, change.old, change),
                    (payload, {**meta, "left": True}),
                    _rooms(route_.except_rooms, change.old) or (),
                )
            )
    return emissions


def _rooms(templates: tuple[Template, ...], row: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The rooms for *row*: () for no templates (the whole namespace); None if every room is NULL."""
    if not templates:
        return ()
    rooms: list[str] = []
    for template in templates:
        room = template.render(row)
        if room is not None and room not in rooms:
            rooms.append(room)
    if not rooms:
        return None  # every room column is NULL: the row is in no room, not in all of them
    return tuple(rooms)


def _event(template: Template, row: Mapping[str, Any], change: Change) -> str:
    event = template.literal or template.render({**row, "$table": change.table, "$op": change.op})
    if event is None:
        raise TemplateError(f"event template {template.text!r}: a column it names is NULL")
    return event


def _payload(strategy: str, change: Change, key: tuple[str, ...]) -> tuple[Any, Any]:
    """The event's first argument, and the old values that ``include_old`` adds to the metadata."""
    row, old = change.row, change.old
    if strategy == "row":
        return row, old
    if strategy == "json-string":
        return json.dumps(row, separators=(",", ":"), ensure_ascii=False), old
    ids = {column: row.get(column) for column in key}
    if strategy == "flag" or change.op == "delete":
        return ids, old
    if change.op == "insert" or old is None:
        return row, None
    changed = [c for c in row if c not in key and row[c] != old.get(c, _MISSING)]
    return {**ids, **{c: row[c] for c in changed}}, {c: old.get(c) for c in changed}


def too_large(emission: Emission, change: Change, key: tuple[str, ...], size: int) -> Emission:
    """The marker sent instead of an event over the size limit: the row's key, and ``too_large`` in the metadata."""
    ids = {column: change.row.get(column) for column in key}
    return emission._replace(args=(ids, {**emission.args[1], "too_large": True, "bytes": size}))


_MISSING = object()
