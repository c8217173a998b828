"""Turn one captured change into the Socket.IO events it produces (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdc_sio.config import Config, TableConfig


@dataclass(frozen=True, slots=True)
class Change:
    """One committed row change, as read from the change log."""

    id: int
    table: str  # "schema.table", as configured
    op: str  # "insert" | "update" | "delete"
    row: dict[str, Any]  # the new row, or the old row for a delete; excluded columns absent
    committed_at: str  # ISO 8601


@dataclass(frozen=True, slots=True)
class Emission:
    """One Socket.IO event to publish: ``io.of(namespace).to(*rooms).emit(event, *args)``."""

    namespace: str
    rooms: tuple[str, ...]  # empty: every socket of the namespace
    event: str
    args: tuple[Any, ...]
    except_rooms: tuple[str, ...] = ()
    volatile: bool = False  # may be dropped when a client's transport is not writable
    compress: bool | None = None  # None: the server's default (per-message deflate)


def route(change: Change, config: Config) -> list[Emission]:
    """The events for *change*; none when its table or operation is no longer configured."""
    table = next((t for t in config.tables if str(t.table) == change.table), None)
    if table is None or change.op not in table.events:
        return []
    emission = _emission(change, table)
    return [] if emission is None else [emission]


def _emission(change: Change, table: TableConfig) -> Emission | None:
    rooms: dict[str, None] = {}
    for template in table.rooms:
        room = template.render(change.row)
        if room is not None:
            rooms[room] = None
    if table.rooms and not rooms:
        return None  # every room column is NULL: the row is in no room, not in all of them
    meta = {
        "id": change.id,
        "op": change.op,
        "table": change.table,
        "committed_at": change.committed_at,
    }
    return Emission(table.namespace, tuple(rooms), table.events[change.op], (change.row, meta))
