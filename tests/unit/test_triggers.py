"""The generated trigger DDL: exact text, quoting of hostile names, and fingerprints."""

from __future__ import annotations

import re

import pytest

from cdc_sio.config import TableConfig, TableName, parse_config
from cdc_sio.migrate import migrations
from cdc_sio.triggers import RowType, TableTriggers, quote_ident, quote_literal, table_triggers, uninstall_sql

EXPECTED = """\
CREATE OR REPLACE FUNCTION cdc_sio."capture_b4fdde28887c058e"() RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    SET jit = off
    AS $cdc_sio$
#variable_conflict use_column
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO cdc_sio.changes (table_name, op, data, old, routes)
        SELECT 'public.things', 'update', j.new_data, j.old_data, m.routes
        FROM (SELECT cdc_sio_new, row_number() OVER () AS i FROM new_rows AS cdc_sio_new) AS n
        FULL JOIN (SELECT cdc_sio_old, row_number() OVER () AS i FROM old_rows AS cdc_sio_old) AS o ON n.i = o.i
        CROSS JOIN LATERAL (SELECT (n.cdc_sio_new).*) AS new
        CROSS JOIN LATERAL (SELECT (o.cdc_sio_old).*) AS old
        CROSS JOIN LATERAL (SELECT to_jsonb(n.cdc_sio_new) - ARRAY['secret']::text[] AS new_data, to_jsonb(o.cdc_sio_old) - ARRAY['secret']::text[] AS old_data OFFSET 0) AS j
        CROSS JOIN LATERAL (SELECT array_remove(ARRAY['update', CASE WHEN (j.new_data -> 'status' IS DISTINCT FROM j.old_data -> 'status') THEN 'status' END], NULL) AS routes OFFSET 0) AS m
        WHERE j.new_data IS DISTINCT FROM j.old_data AND cardinality(m.routes) > 0;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO cdc_sio.changes (table_name, op, data, old, routes)
        SELECT 'public.things', 'delete', to_jsonb(old.*) - ARRAY['secret']::text[], NULL, m.routes
        FROM old_rows AS old
        CROSS JOIN LATERAL (SELECT array_remove(ARRAY['delete', CASE WHEN EXISTS (SELECT FROM (SELECT old.*) AS cdc_sio_row WHERE (importance > 100)) THEN 'important' END], NULL) AS routes OFFSET 0) AS m
        WHERE cardinality(m.routes) > 0;
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
DROP TRIGGER IF EXISTS cdc_sio_v1_truncate ON "public"."things";
CREATE TRIGGER cdc_sio_v1_update AFTER UPDATE ON "public"."things"
    REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cdc_sio."capture_b4fdde28887c058e"();
CREATE TRIGGER cdc_sio_v1_delete AFTER DELETE ON "public"."things"
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION cdc_sio."capture_b4fdde28887c058e"();
"""


def table(**entry: object) -> TableConfig:
    document = {"postgres": {"dsn": "x"}, "tables": [{"table": "things", "events": {"update": "u"}, **entry}]}
    return parse_config(document, "t.toml", {}).tables[0]


def triggers(**entry: object) -> TableTriggers:
    return table_triggers(table(**entry))


def test_golden_ddl_with_an_excluded_column_a_filter_and_a_changed_column_route() -> None:
    """Filters and changed-column checks run in the trigger's SELECT; the old row is kept for `changes`."""
    routes = [
        {"name": "important", "on": ["delete"], "when": "importance > 100", "event": "Thing::delete::important"},
        {
            "name": "status",
            "on": ["update"],
            "only_when_changed": ["status"],
            "event": "Thing::status",
            "payload": "changes",
        },
    ]
    config = table(
        rooms=["org:{org_id}"], exclude_columns=["secret"], events={"update": "u", "delete": "d"}, routes=routes
    )
    assert table_triggers(config).install_sql == EXPECTED


def test_old_row_is_kept_only_when_a_room_column_changed() -> None:
    sql = table_triggers(table(rooms=["org:{org_id}", "t:{$table}"])).install_sql
    assert "CASE WHEN j.new_data -> 'org_id' IS DISTINCT FROM j.old_data -> 'org_id' THEN j.old_data END" in sql
    assert ", NULL, m.routes" in triggers(rooms=["static"], events={"update": "u"}).install_sql


THINGS = RowType(("id", "org_id", "name", "secret", "v"))


def test_updates_of_a_known_row_type_are_compared_as_records_with_the_other_columns_nulled() -> None:
    """No old row logged unless a room column changed; the no-op check ignores the excluded columns,
    which the logged rows hold as null."""
    config = table(rooms=["org:{org_id}"], exclude_columns=["secret"])
    update = table_triggers(config, THINGS).function_body
    others = """'{"id": null, "name": null, "secret": null, "v": null}'"""
    secret = """'{"secret": null}'"""
    assert (
        f"CASE WHEN NOT coalesce(jsonb_populate_record(n.cdc_sio_new, {others}) *= "
        f"jsonb_populate_record(o.cdc_sio_old, {others}), false) "
        f"THEN row_to_json(jsonb_populate_record(o.cdc_sio_old, {secret})) END" in update
    )
    assert f"'update', row_to_json(jsonb_populate_record(n.cdc_sio_new, {secret})), CASE" in update
    assert "AS j" not in update  # each row's JSON is computed in the select list, for logged rows only
    assert (
        f"WHERE NOT coalesce(jsonb_populate_record(n.cdc_sio_new, {secret}) *= "
        f"jsonb_populate_record(o.cdc_sio_old, {secret}), false);\n" in update
    )
    plain = table_triggers(table(), THINGS).function_body
    assert "WHERE NOT coalesce(n.cdc_sio_new *= o.cdc_sio_old, false);" in plain


def test_a_route_that_sends_the_old_row_gets_it_as_json_and_still_compares_records() -> None:
    sql = table_triggers(table(payload="changes"), THINGS).function_body
    assert "'update', row_to_json(n.cdc_sio_new), row_to_json(o.cdc_sio_old), m.routes" in sql
    assert "WHERE NOT coalesce(n.cdc_sio_new *= o.cdc_sio_old, false);" in sql


def test_rows_with_a_domain_are_compared_as_jsonb_and_rows_with_json_never_become_jsonb() -> None:
    domain = table_triggers(table(), RowType(THINGS.columns, has_domain=True)).function_body
    assert domain == table_triggers(table()).function_body
    assert "WHERE j.new_data IS DISTINCT FROM j.old_data;" in domain
    json = table_triggers(table(exclude_columns=["secret"]), RowType(THINGS.columns, has_json=True)).function_body
    assert "row_to_json(jsonb_populate_record(n.cdc_sio_new, '{\"secret\": null}'))" in json
    assert "*=" in json and "cdc_sio_row" not in json and "to_jsonb" not in json  # no column is named
    both = RowType(THINGS.columns, has_json=True, has_domain=True)
    json_and_domain = table_triggers(table(exclude_columns=["secret"]), both).function_body
    assert "*=" not in json_and_domain and "row_to_json(cdc_sio_row.*)" in json_and_domain
    assert (
        "to_jsonb" not in json_and_domain
        and "WHERE j.new_data::text IS DISTINCT FROM j.old_data::text" in json_and_domain
    )


def test_truncate_gets_its_own_statement_trigger() -> None:
    sql = triggers(events={"truncate": "Thing::truncate"}).install_sql
    assert "INSERT INTO cdc_sio.changes (table_name, op, data) VALUES ('public.things', 'truncate', '{}')" in sql
    assert "CREATE TRIGGER cdc_sio_v1_truncate AFTER TRUNCATE" in sql
    assert "CREATE TRIGGER cdc_sio_v1_update" not in sql


def test_fingerprint_changes_exactly_when_the_ddl_does() -> None:
    base = triggers().fingerprint
    assert triggers(rooms=["r"], events={"update": "other"}).fingerprint == base  # the daemon's business
    assert triggers(exclude_columns=["secret"]).fingerprint != base
    assert triggers(events={"update": "u", "insert": "i"}).fingerprint != base


@pytest.mark.parametrize(
    "name", ['we"ird', "per%cent", "semi;colon", "select", "Mixed Case", "ünï cödé", "back\\slash", "it's", "$cdc_sio$"]
)
def test_hostile_names_are_quoted(name: str) -> None:
    generated = triggers(table=f"{name}.{name}", exclude_columns=[name])
    quoted = quote_ident(name)
    assert f"ON {quoted}.{quoted}" in generated.install_sql
    assert quoted == '"' + name.replace('"', '""') + '"'
    tags = re.findall(r"AS (\$[a-z_0-9]*\$)", generated.install_sql)
    assert len(tags) == 1 and generated.install_sql.count(tags[0]) == 2


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
