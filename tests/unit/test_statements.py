"""SQL is split into statements the way PostgreSQL reads it."""

from __future__ import annotations

import pytest

from cdc_sio.migrate import migrations
from cdc_sio.statements import split_statements


def test_semicolons_inside_quotes_comments_and_dollar_bodies_do_not_split() -> None:
    sql = """
    SELECT 'a;b', "odd;name";  -- a comment; with a semicolon
    CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$;
    /* block; comment */ SELECT $$;$$;
    -- only a comment;
    """
    assert split_statements(sql) == [
        "SELECT 'a;b', \"odd;name\"",
        "-- a comment; with a semicolon\n    CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $body$ SELECT 1; $body$",
        "/* block; comment */ SELECT $$;$$",
    ]


def test_every_migration_splits_into_statements_that_end_cleanly() -> None:
    for migration in migrations():
        statements = split_statements(migration.sql)
        assert statements
        assert all(not s.endswith(";") for s in statements)


def test_unterminated_dollar_quote_is_an_error() -> None:
    with pytest.raises(ValueError, match="unterminated"):
        split_statements("SELECT $x$ never closed")
