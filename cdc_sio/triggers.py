"""Generate the capture-trigger DDL for a watched table (pure: config in, SQL text out).

Each watched table gets one trigger function and one statement-level trigger per captured
operation. Statement-level triggers with transition tables write all rows of a statement
with one ``INSERT ... SELECT``, so bulk statements stay cheap. The routes' filters run in that
SELECT, so a row no route wants is never written, and excluded columns are removed before the
row is written, so they never leave the application's table. Each change row records the names
of the routes it matched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import asyncpg

from cdc_sio.config import OPERATIONS, Route, TableConfig, TableName

# Held exclusively by the daemon while it is idle and waits for a NOTIFY; see pump.py.
IDLE_LOCK = 0x63646373696F02
# The asyncpg dialect's preparer: the default (psycopg2) one doubles "%" for its paramstyle.
_PREPARER = asyncpg.dialect().identifier_preparer  # type: ignore[no-untyped-call]
_TRANSITION = {
    "insert": "NEW TABLE AS new_rows",
    "update": "NEW TABLE AS new_rows OLD TABLE AS old_rows",
    "delete": "OLD TABLE AS old_rows",
}
_ROW_ALIAS = {"insert": "new", "update": "new", "delete": "old"}


def quote_ident(name: str) -> str:
    """Always-quoted identifier: safe for any name, including keywords and mixed case."""
    return _PREPARER.quote_identifier(name)


def quote_table(table: TableName) -> str:
    return f"{quote_ident(table.schema)}.{quote_ident(table.name)}"


def quote_literal(text: str) -> str:
    """A string literal that means the same whatever ``standard_conforming_strings`` is."""
    if "\x00" in text:
        raise ValueError("a NUL character cannot be part of an SQL literal")
    quoted = text.replace("'", "''")
    if "\\" in quoted:
        return "E'" + quoted.replace("\\", "\\\\") + "'"
    return "'" + quoted + "'"


def function_name(table: TableName) -> str:
    digest = hashlib.sha256(f"{table.schema}\x00{table.name}".encode()).hexdigest()
    return f"capture_{digest[:16]}"


def trigger_name(op: str) -> str:
    return f"cdc_sio_v1_{op}"


def filter_sql(route: Route, op: str) -> str:
    """The route's filter as a boolean expression; unqualified columns mean the row (the old one for DELETE)."""
    assert route.when is not None
    return f"EXISTS (SELECT FROM (SELECT {_ROW_ALIAS[op]}.*) AS cdc_sio_row WHERE ({route.when}))"


def filter_check_sql(table: TableName, route: Route, op: str) -> str:
    """A query that PostgreSQL can plan only if the route's filter is valid for *op*."""
    sources = {"insert": "new", "update": "new, {t} AS old", "delete": "old"}[op].format(t=quote_table(table))
    return f"EXPLAIN SELECT {filter_sql(route, op)} FROM {quote_table(table)} AS {sources}"


@dataclass(frozen=True, slots=True)
class TableTriggers:
    """The DDL that installs capture on one table, and its fingerprint."""

    table: TableName
    function_name: str
    function_body: str  # what pg_proc.prosrc holds once installed
    trigger_names: tuple[str, ...]
    install_sql: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.install_sql.encode()).hexdigest()


def drift(expected: TableTriggers, installed: Mapping[str, Any]) -> str | None:
    """How the installed capture (a row of installed_capture.sql) differs from *expected*, or None."""
    if installed["fingerprint"] != expected.fingerprint:
        return "differs from the config or the table's columns"
    if installed["function_body"] != expected.function_body:
        return f"changed outside cdc-sio: function cdc_sio.{expected.function_name} differs"
    if sorted(installed["enabled_triggers"]) != sorted(expected.trigger_names):
        return "changed outside cdc-sio: enabled triggers are " + (", ".join(installed["enabled_triggers"]) or "none")
    return None


@dataclass(frozen=True, slots=True)
class RowType:
    """What the catalog says of a watched table's row (see sql/row_type.sql)."""

    columns: tuple[str, ...]
    has_json: bool = False
    has_domain: bool = False


def table_triggers(config: TableConfig, row_type: RowType | None = None) -> TableTriggers:
    """The function and triggers for *config*, on a table whose row is *row_type* (None: unknown).

    The change log holds each row as JSON text (json), which PostgreSQL writes for less than jsonb.
    Unless a column is a domain (whose constraints may refuse the nulls that excluded columns and
    comparisons set), an UPDATE's old and new rows are compared byte for byte as records, which
    costs a fraction of comparing them as jsonb. A row that holds the json type, whose content
    jsonb may refuse (``\\u0000``, a lone surrogate), never passes through jsonb, so that no value
    can make the application's write fail.
    """
    table = config.table
    function = f"cdc_sio.{quote_ident(function_name(table))}"
    raw = image = None
    if row_type is not None and not row_type.has_domain:
        image = row_type.columns
    elif row_type is not None and row_type.has_json:
        raw = tuple(c for c in row_type.columns if c not in config.exclude_columns)
    shape = _Shape(config, image_columns=image, raw_json_columns=raw)
    branches = [(op, shape.capture_sql(op)) for op in config.operations]
    if config.truncate_event is not None:
        branches.append(
            (
                "truncate",
                [f"INSERT INTO cdc_sio.changes (table_name, op, data) VALUES ({_name(config)}, 'truncate', '{{}}')"],
            )
        )
    ifs = "".join(
        f"    {'IF' if i == 0 else 'ELSIF'} TG_OP = '{op.upper()}' THEN\n        " + "\n        ".join(lines) + ";\n"
        for i, (op, lines) in enumerate(branches)
    )
    body = (
        "\n#variable_conflict use_column\nBEGIN\n"
        f"{ifs}    END IF;\n"
        f"    IF FOUND AND NOT pg_try_advisory_xact_lock_shared({IDLE_LOCK}) THEN\n"
        "        PERFORM cdc_sio.wake_v1();\n    END IF;\n"
        "    RETURN NULL;\nEND\n"
    )
    tag = _dollar_tag(body)
    statements = [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger\n"
        "    LANGUAGE plpgsql\n"
        "    SECURITY DEFINER\n"
        "    SET search_path = pg_catalog, pg_temp\n"
        # A bulk statement's capture is planned as costly enough to compile: 140 ms per 100,000 rows.
        "    SET jit = off\n"
        f"    AS {tag}{body}{tag}",
        *drop_trigger_statements(table),
    ]
    for op in config.operations:
        statements.append(
            f"CREATE TRIGGER {trigger_name(op)} AFTER {op.upper()} ON {quote_table(table)}\n"
            f"    REFERENCING {_TRANSITION[op]}\n"
            f"    FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    if config.truncate_event is not None:
        statements.append(
            f"CREATE TRIGGER {trigger_name('truncate')} AFTER TRUNCATE ON {quote_table(table)}\n"
            f"    FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    names = tuple(trigger_name(op) for op in config.operations)
    if config.truncate_event is not None:
        names += (trigger_name("truncate"),)
    return TableTriggers(table, function_name(table), body, names, ";\n".join(statements) + ";\n")


def _name(config: TableConfig) -> str:
    return quote_literal(str(config.table))


@dataclass(frozen=True, slots=True)
class _Shape:
    config: TableConfig
    image_columns: tuple[str, ...] | None  # the table's columns, when rows are compared as records
    # Otherwise, on a table holding json, the columns its rows are built from: jsonb may refuse json.
    raw_json_columns: tuple[str, ...] | None

    def row(self, alias: str, whole: str) -> str:
        """The row as the change log stores it, without the excluded columns' values; *whole* is the
        row as one value, *alias* the relation whose columns are the row's."""
        nulls = _nulls(self.config.exclude_columns)
        if self.image_columns is not None:
            # Set to null (the daemon drops them): a row built from the columns named here would
            # make the application's writes fail once one of them is dropped.
            return f"row_to_json({whole})" if nulls is None else f"row_to_json(jsonb_populate_record({whole}, {nulls}))"
        if self.raw_json_columns is None:
            # jsonb, which the checks compare; the log's json column takes it as its text.
            excluded = ", ".join(quote_literal(column) for column in self.config.exclude_columns)
            return f"to_jsonb({whole}) - ARRAY[{excluded}]::text[]" if excluded else f"to_jsonb({whole})"
        if nulls is None:
            return f"row_to_json({whole})"
        columns = ", ".join(f"{alias}.{quote_ident(c)}" for c in self.raw_json_columns)
        return f"(SELECT row_to_json(cdc_sio_row.*) FROM (SELECT {columns}) AS cdc_sio_row)"

    def changed(self, column: str) -> str:
        if self.image_columns is not None:
            return f"NOT {self.same(c for c in self.image_columns if c != column)}"
        if self.raw_json_columns is not None:  # jsonb may refuse the row: compare text
            return f"new.{quote_ident(column)}::text IS DISTINCT FROM old.{quote_ident(column)}::text"
        key = quote_literal(column)
        return f"j.new_data -> {key} IS DISTINCT FROM j.old_data -> {key}"

    def capture_sql(self, op: str) -> list[str]:
        """The statement's lines (joined by the caller, which never re-indents text that holds names)."""
        config = self.config
        routes = config.routes_for(op)
        matches = [self.match(route, op) for route in routes]
        if all(condition is None for condition in matches):
            routes_sql = "ARRAY[" + ", ".join(quote_literal(r.name) for r in routes) + "] AS routes"
            where = []
        else:
            cases = ", ".join(
                quote_literal(r.name) if c is None else f"CASE WHEN {c} THEN {quote_literal(r.name)} END"
                for r, c in zip(routes, matches, strict=True)
            )
            routes_sql = f"array_remove(ARRAY[{cases}], NULL) AS routes OFFSET 0"
            where = ["cardinality(m.routes) > 0"]
        head = "INSERT INTO cdc_sio.changes (table_name, op, data, old, routes)"
        if op == "update":
            unchanged = self.same(self.config.exclude_columns)
            if unchanged is None:  # the checks compare the logged rows: each is computed once
                new_data, check = "j.new_data", self.data_changed()
                rows = f"{self.row('new', 'n.cdc_sio_new')} AS new_data, {self.row('old', 'o.cdc_sio_old')} AS old_data"
                # OFFSET 0 keeps each row's JSON computed once: flattened, every use of j.* recomputes it.
                computed = [f"CROSS JOIN LATERAL (SELECT {rows} OFFSET 0) AS j"]
            else:  # computed in the select list: only for the rows that are logged
                new_data, check, computed = self.row("new", "n.cdc_sio_new"), f"NOT {unchanged}", []
            # A statement's old and new rows are paired by position: PostgreSQL adds each updated
            # row's old and new version to the two transition tables one after the other. Pairing
            # by key would pair wrongly when the statement changes keys (SET id = id + 10).
            # The plan is made once per connection, for the row counts of its first statement; a
            # FULL JOIN (the tables are the same size) cannot be a nested loop, which, planned for
            # one row, would take quadratic time on a later bulk statement.
            return [
                head,
                f"SELECT {_name(config)}, 'update', {new_data}, {self.old_sql()}, m.routes",
                "FROM (SELECT cdc_sio_new, row_number() OVER () AS i FROM new_rows AS cdc_sio_new) AS n",
                "FULL JOIN (SELECT cdc_sio_old, row_number() OVER () AS i FROM old_rows AS cdc_sio_old) AS o"
                " ON n.i = o.i",
                "CROSS JOIN LATERAL (SELECT (n.cdc_sio_new).*) AS new",
                "CROSS JOIN LATERAL (SELECT (o.cdc_sio_old).*) AS old",
                *computed,
                f"CROSS JOIN LATERAL (SELECT {routes_sql}) AS m",
                "WHERE " + " AND ".join([check, *where]),
            ]
        alias = _ROW_ALIAS[op]
        return [
            head,
            f"SELECT {_name(config)}, '{op}', {self.row(alias, f'{alias}.*')}, NULL, m.routes",
            f"FROM {alias}_rows AS {alias}",
            f"CROSS JOIN LATERAL (SELECT {routes_sql}) AS m",
            *(f"WHERE {w}" for w in where),
        ]

    def match(self, route: Route, op: str) -> str | None:
        conditions = []
        if route.when is not None:
            conditions.append(filter_sql(route, op))
        if op == "update" and route.only_when_changed:
            conditions.append("(" + " OR ".join(self.changed(c) for c in route.only_when_changed) + ")")
        return " AND ".join(conditions) or None

    def same(self, nulled: Iterable[str]) -> str | None:
        """Whether an UPDATE's old and new rows are the same bytes apart from the *nulled* columns
        (None when rows are compared as jsonb); a column added after migrate counts as any other."""
        if self.image_columns is None:
            return None
        nulls = _nulls(nulled)
        if nulls is None:
            return "coalesce(n.cdc_sio_new *= o.cdc_sio_old, false)"
        return (
            f"coalesce(jsonb_populate_record(n.cdc_sio_new, {nulls}) *= "
            f"jsonb_populate_record(o.cdc_sio_old, {nulls}), false)"
        )

    def data_changed(self) -> str:
        """Whether an UPDATE's logged rows differ, when rows are not compared as records."""
        if self.raw_json_columns is not None:  # json has no equality: its text does
            return "j.new_data::text IS DISTINCT FROM j.old_data::text"
        return "j.new_data IS DISTINCT FROM j.old_data"

    def old_sql(self) -> str:
        """The old row of an UPDATE, kept only when a route needs it: for its payload, or to tell rooms the row left."""
        routes = self.config.routes_for("update")
        old = "j.old_data" if self.image_columns is None else self.row("old", "o.cdc_sio_old")
        if any(r.payload == "changes" or r.include_old for r in routes):
            return old
        room_columns = sorted(
            {c for r in routes for t in (*r.rooms, *r.except_rooms) for c in t.columns if not c.startswith("$")}
        )
        if not room_columns:
            return "NULL"
        if self.image_columns is None:
            return "CASE WHEN " + " OR ".join(self.changed(c) for c in room_columns) + f" THEN {old} END"
        rooms_unchanged = self.same(c for c in self.image_columns if c not in room_columns)
        return f"CASE WHEN NOT {rooms_unchanged} THEN {old} END"


def _nulls(columns: Iterable[str]) -> str | None:
    """A jsonb literal that sets *columns* to null through ``jsonb_populate_record`` (None: no columns)."""
    names = sorted(set(columns))
    return quote_literal(json.dumps(dict.fromkeys(names))) if names else None


def drop_trigger_statements(table: TableName) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {trigger_name(op)} ON {quote_table(table)}" for op in (*OPERATIONS, "truncate")]


def uninstall_sql(table: TableName, function: str, *, table_exists: bool) -> str:
    statements = drop_trigger_statements(table) if table_exists else []
    statements.append(f"DROP FUNCTION IF EXISTS cdc_sio.{quote_ident(function)}()")
    return ";\n".join(statements) + ";\n"


def _dollar_tag(body: str) -> str:
    tag, n = "$cdc_sio$", 0
    while tag in body:
        n += 1
        tag = f"$cdc_sio_{n}$"
    return tag
