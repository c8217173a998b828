"""The generated trigger DDL: exact text, quoting of hostile names, and fingerprints."""

from __future__ import annotations

import re

import pytest

from cdc_sio.config import TableConfig, TableName, parse_config
from cdc_sio.migrate import migrations
from cdc_sio.triggers import quote_ident, quote_literal, table_triggers, uninstall_sql

EXPECTED = """\
CREATE OR REPLACE FUNCTION cdc_sio."capture_b4fdde28887c058e"() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $cdc_sio$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO cdc_sio.changes (table_name, op, data)
        SELECT 'public.things', 'delete', to_jsonb(r) - ARRAY['secret']::text[] FROM old_rows r;
    ELSE
        INSERT INTO cdc_sio.changes (table_name, op, data)
        SELECT 'public.things', lower(TG_OP), to_jsonb(r) - ARRAY['secret']::text[] FROM new_rows r;
    END IF;
    IF FOUND AND NOT pg_try_advisory_xact_lock_shared(27976400995184386) THEN
        PERFORM cdc_sio.wake_v1();
    END IF;
    RETURN NULL;
END
$cdc_sio$;
DROP TRIGGER IF EXISTS cdc_sio_v1_insert ON "public"."things";
DROP TRIGGER IF EXISTS cdc_sio_v1_update ON "public"."things";
DROP TRIGGER IF EXISTS cdc_sio_v1_delete ON "public"."things";
CREATE TRIGGER cdc_sio_v1_update AFTER UPDATE ON "public"."things"
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cdc_sio."capture_b4fdde28887c058e"();
CREATE TRIGGER cdc_sio_v1_delete AFTER DELETE ON "public"."things"
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cdc_sio."capture_b4fdde28887c058e"();
"""


def table(**entry: object) -> TableConfig:
    document = {"postgres": {"dsn": "x"}, "tables": [{"table": "things", "events": {"update": "u"}, **entry}]}
    return parse_config(document, "t.toml", {}).tables[0]


def test_golden_ddl_for_update_and_delete_with_an_excluded_column() -> None:
    triggers = table_triggers(table(exclude_columns=["secret"], events={"update": "u", "delete": "d"}))
    assert triggers.install_sql == EXPECTED


def test_fingerprint_changes_exactly_when_the_ddl_does() -> None:
    base = table_triggers(table()).fingerprint
    assert table_triggers(table(rooms=["r:{id}"])).fingerprint == base  # rooms are the daemon's business
    assert table_triggers(table(exclude_columns=["secret"])).fingerprint != base
    assert table_triggers(table(events={"update": "u", "insert": "i"})).fingerprint != base


@pytest.mark.parametrize(
    "name", ['we"ird', "semi;colon", "select", "Mixed Case", "ünï cödé", "back\\slash", "it's", "$cdc_sio$"]
)
def test_hostile_names_are_quoted(name: str) -> None:
    triggers = table_triggers(table(table=f"{name}.{name}", exclude_columns=[name]))
    quoted = quote_ident(name)
    assert f"ON {quoted}.{quoted}" in triggers.install_sql
    assert quoted == '"' + name.replace('"', '""') + '"'
    tags = re.findall(r"AS (\$[a-z_0-9]*\$)", triggers.install_sql)
    assert len(tags) == 1 and triggers.install_sql.count(tags[0]) == 2


def test_literals_survive_both_string_modes() -> None:
    assert quote_literal("it's") == "'it''s'"
    assert quote_literal("a\\b") == "E'a\\\\b'"
    with pytest.raises(ValueError, match="NUL"):
        quote_literal("a\x00b")


def test_uninstall_of_a_dropped_table_only_drops_the_function() -> None:
    sql = uninstall_sql(TableName("public", "gone"), "capture_x", table_exists=False)
    assert sql == 'DROP FUNCTION IF EXISTS cdc_sio."capture_x"();\n'


def test_migration_files_are_numbered_from_one_without_gaps() -> None:
    assert [m.version for m in migrations()] == list(range(1, len(migrations()) + 1))
