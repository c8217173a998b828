"""Generate the capture-trigger DDL for a watched table (pure: config in, SQL text out).

Each watched table gets one trigger function and one statement-level trigger per captured
operation. Statement-level triggers with transition tables write all rows of a statement
with one ``INSERT ... SELECT``, so bulk statements stay cheap. Excluded columns are removed
before the row is written to the change log, so they never leave the application's table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy.dialects import postgresql

from cdc_sio.config import OPERATIONS, TableConfig, TableName

# Held exclusively by the daemon while it is idle and waits for a NOTIFY; see pump.py.
IDLE_LOCK = 0x63646373696F02
_PREPARER = postgresql.dialect().identifier_preparer  # type: ignore[no-untyped-call]
_TRANSITION = {"insert": "NEW TABLE AS new_rows", "update": "NEW TABLE AS new_rows", "delete": "OLD TABLE AS old_rows"}


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


@dataclass(frozen=True, slots=True)
class TableTriggers:
    """The DDL that installs capture on one table, and its fingerprint."""

    table: TableName
    function_name: str
    install_sql: str

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.install_sql.encode()).hexdigest()


def table_triggers(config: TableConfig) -> TableTriggers:
    table = config.table
    function = f"cdc_sio.{quote_ident(function_name(table))}"
    row = "to_jsonb(r)"
    if config.exclude_columns:
        excluded = ", ".join(quote_literal(column) for column in config.exclude_columns)
        row = f"to_jsonb(r) - ARRAY[{excluded}]::text[]"
    name = quote_literal(str(table))
    body = f"""
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO cdc_sio.changes (table_name, op, data)
        SELECT {name}, 'delete', {row} FROM old_rows r;
    ELSE
        INSERT INTO cdc_sio.changes (table_name, op, data)
        SELECT {name}, lower(TG_OP), {row} FROM new_rows r;
    END IF;
    IF FOUND AND NOT pg_try_advisory_xact_lock_shared({IDLE_LOCK}) THEN
        PERFORM cdc_sio.wake_v1();
    END IF;
    RETURN NULL;
END
"""
    tag = _dollar_tag(body)
    statements = [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger\n"
        "    LANGUAGE plpgsql\n"
        "    SECURITY DEFINER\n"
        "    SET search_path = pg_catalog, pg_temp\n"
        f"    AS {tag}{body}{tag}",
        *drop_trigger_statements(table),
    ]
    for op in OPERATIONS:
        if op in config.events:
            statements.append(
                f"CREATE TRIGGER {trigger_name(op)} AFTER {op.upper()} ON {quote_table(table)}\n"
                f"    REFERENCING {_TRANSITION[op]}\n"
                f"    FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
            )
    return TableTriggers(table, function_name(table), ";\n".join(statements) + ";\n")


def drop_trigger_statements(table: TableName) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {trigger_name(op)} ON {quote_table(table)}" for op in OPERATIONS]


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
