"""Split SQL text into single statements, for tools that run one statement at a time (Alembic)."""

from __future__ import annotations

import re

_TOKEN = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*.*?\*/)
    | (?P<dollar>\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$)
    | (?P<quoted>'(?:[^']|'')*'|"(?:[^"]|"")*")
    | (?P<end>;)
    """,
    re.VERBOSE | re.DOTALL,
)


def split_statements(sql: str) -> list[str]:
    """The statements of *sql*, without comments-only pieces; quotes and $tag$ bodies are respected."""
    statements: list[str] = []
    start = position = 0
    while (match := _TOKEN.search(sql, position)) is not None:
        position = match.end()
        if match.lastgroup == "dollar":
            closing = sql.find(match.group(), position)
            if closing < 0:
                raise ValueError(f"unterminated dollar-quoted string {match.group()}")
            position = closing + len(match.group())
        elif match.lastgroup == "end":
            statements.append(sql[start : match.start()])
            start = position
    statements.append(sql[start:])
    return [s.strip() for s in statements if _has_code(s)]


def _has_code(piece: str) -> bool:
    return bool(re.sub(r"--[^\n]*|/\*.*?\*/", "", piece, flags=re.DOTALL).strip())
