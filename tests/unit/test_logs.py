"""Structured log lines: stable event names, JSON off a terminal, and secrets never printed."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from cdc_sio import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger writing JSON lines into a buffer; the previous handlers come back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    logs.configure("DEBUG", buffer, "json")
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)


def test_passwords_in_urls_and_settings_are_masked() -> None:
    """URL user-info passwords and libpq password= settings are masked; user names and hosts stay."""
    assert logs.redact("postgresql://app:s3cr%40t@db:5432/app") == "postgresql://app:***@db:5432/app"
    assert (
        logs.redact("redis://:hunter2@cache:6379/0 and redis://u:p@h")
        == "redis://:***@cache:6379/0 and redis://u:***@h"
    )
    assert logs.redact("host=db password='a b' user=x") == "host=db password=*** user=x"
    assert logs.redact("postgresql://app@db/app redis://cache:6379") == "postgresql://app@db/app redis://cache:6379"


def test_registered_secrets_are_masked_anywhere_raw_or_decoded() -> None:
    """A configured password is masked even where no URL surrounds it (an error message, a traceback)."""
    urls = ("postgresql://app:pg%2Fpass-71@db/app", "redis://:redis-pass-72@cache/0", "password=kv-73")
    secrets = logs.url_secrets(*urls)
    assert secrets == ["pg%2Fpass-71", "pg/pass-71", "redis-pass-72", "redis-pass-72", "kv-73", "kv-73"]
    logs.add_secrets(secrets)
    text = "auth failed with pg/pass-71; then redis-pass-72 and kv-73"
    assert logs.redact(text) == "auth failed with ***; then *** and ***"


def test_json_lines_carry_the_event_and_its_fields(captured: io.StringIO) -> None:
    """One JSON object per line: time, level, logger, event name and the fields, secrets masked."""
    log = logs.get("cdc_sio.test")
    log.info("connected", postgres="postgresql://app:topsecret@db/app", tables=2)
    logging.getLogger("asyncpg").warning("plain %s", "message")
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["event"] == "connected" and first["level"] == "info" and first["logger"] == "cdc_sio.test"
    assert first["postgres"] == "postgresql://app:***@db/app" and first["tables"] == 2
    assert second["event"] == "log" and second["message"] == "plain message"
    assert "topsecret" not in captured.getvalue()


def test_exceptions_are_kept_and_masked(captured: io.StringIO) -> None:
    """A traceback is part of the line, with any secret in it masked."""
    logs.add_secrets(["tb-secret-99"])
    try:
        raise ValueError("cannot use tb-secret-99")
    except ValueError:
        logging.getLogger("cdc_sio.test").exception("failed")
    entry = json.loads(captured.getvalue())
    assert "ValueError: cannot use ***" in entry["exception"]
    assert "tb-secret-99" not in captured.getvalue()


def test_text_lines_on_a_terminal_are_event_then_fields() -> None:
    """On a terminal: time, level, event, then key=value, quoting values with spaces."""
    record = logging.LogRecord("cdc_sio.x", logging.WARNING, __file__, 1, "outage_started", None, None)
    record.fields = {"service": "redis", "error": "ConnectionError: refused"}
    line = logs.TextFormatter().format(record)
    assert line.split(" ", 1)[1] == 'WARNING outage_started service=redis error="ConnectionError: refused"'


def test_the_format_follows_the_stream_unless_chosen() -> None:
    """JSON when the stream is not a terminal; CDC_SIO_LOG_FORMAT's value wins."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("INFO", io.StringIO())
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter)
        logs.configure("INFO", io.StringIO(), "text")
        assert isinstance(root.handlers[0].formatter, logs.TextFormatter)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
