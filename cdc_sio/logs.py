"""Structured logs: one event per line, JSON for journald and collectors, plain text on a terminal.

Every record has a stable snake_case event name and key=value fields::

    log = logs.get("cdc_sio.daemon")
    log.info("batch_published", changes=12, lag_ms=3.1)

Secrets never reach the output: passwords in URLs (``scheme://user:PASSWORD@host``) and in
``password=...`` settings are masked, and so is every value registered with :func:`add_secrets`
(the passwords of the configured DSN and Redis URL), wherever it appears, tracebacks included.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

MASK = "***"
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^@\s]+)(@)")
_SETTING_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_secrets: set[str] = set()


def redact(text: str) -> str:
    """*text* with every known secret and every password-looking part masked."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(rf"\g<1>{MASK}\g<3>", text)
    return _SETTING_PASSWORD.sub(rf"\g<1>{MASK}", text)


def add_secrets(values: Iterable[str]) -> None:
    _secrets.update(value for value in values if value)


def url_secrets(*urls: str) -> list[str]:
    """The passwords inside *urls* (libpq and Redis URLs, or libpq ``key=value`` strings), raw and decoded."""
    found = []
    for url in urls:
        password = None
        if "://" in url:
            try:
                password = urlsplit(url).password
            except ValueError:
                password = None
        else:
            match = _SETTING_PASSWORD.search(url)
            password = match.group(2).strip("'") if match else None
        if password:
            found += [password, unquote(password)]
    return found


class EventLog:
    """A logger whose messages are event names with structured fields."""

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def debug(self, event: str, **fields: Any) -> None:
        self.log(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self.log(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log(logging.WARNING, event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self.log(logging.ERROR, event, fields)

    def log(self, level: int, event: str, fields: dict[str, Any]) -> None:
        if self.logger.isEnabledFor(level):
            self.logger.log(level, event, extra={"fields": fields})

    def enabled(self, level: int) -> bool:
        return self.logger.isEnabledFor(level)


def get(name: str) -> EventLog:
    return EventLog(name)


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
        if fields is None:
            entry["event"] = "log"
            entry["message"] = record.getMessage()
        else:
            entry["event"] = record.msg
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        fields = getattr(record, "fields", None)
        text = record.getMessage() if fields is None else " ".join([record.msg, *map(_pair, fields.items())])
        line = f"{when} {record.levelname:<7} {text}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def _pair(item: tuple[str, Any]) -> str:
    key, value = item
    text = str(value)
    if not text or any(c.isspace() or c in '"=' for c in text):
        text = json.dumps(text, ensure_ascii=False)
    return f"{key}={text}"


def configure(level: str, stream: TextIO = sys.stderr, log_format: str | None = None) -> None:
    """Log to *stream*: JSON lines unless it is a terminal (``log_format`` "json" or "text" decides)."""
    json_lines = log_format == "json" if log_format else not stream.isatty()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
