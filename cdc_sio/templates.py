"""Room templates such as ``thing:{id}``: literal text with ``{column}`` references.

``{{`` and ``}}`` stand for literal braces. Everything between ``{`` and ``}`` is a column
name, taken verbatim.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class TemplateError(ValueError):
    """A template cannot be parsed, or cannot be rendered for one row."""


@dataclass(frozen=True, slots=True)
class Template:
    text: str
    parts: tuple[tuple[bool, str], ...]  # (is_column, literal text or column name)
    literal: str | None = None  # the rendered text of a template that names no column
    # (text before, column, text after) of a template that names one column, like most rooms do
    one_column: tuple[str, str, str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Template:
        parts: list[tuple[bool, str]] = []
        literal: list[str] = []
        i = 0
        while i < len(text):
            char = text[i]
            if char in "{}" and text[i : i + 2] in ("{{", "}}"):
                literal.append(char)
                i += 2
            elif char == "{":
                end = text.find("}", i + 1)
                if end < 0:
                    raise TemplateError(f"template {text!r} has an unclosed '{{'")
                column = text[i + 1 : end]
                if not column:
                    raise TemplateError(f"template {text!r} has an empty '{{}}'")
                if literal:
                    parts.append((False, "".join(literal)))
                    literal = []
                parts.append((True, column))
                i = end + 1
            elif char == "}":
                raise TemplateError(f"template {text!r} has a '}}' without '{{' (write '}}}}')")
            else:
                literal.append(char)
                i += 1
        if literal:
            parts.append((False, "".join(literal)))
        columns = [value for is_column, value in parts if is_column]
        if not columns:
            return cls(text, tuple(parts), "".join(value for _, value in parts))
        if len(columns) > 1:
            return cls(text, tuple(parts))
        index = [is_column for is_column, _ in parts].index(True)
        before, after = ("".join(value for _, value in side) for side in (parts[:index], parts[index + 1 :]))
        return cls(text, tuple(parts), one_column=(before, columns[0], after))

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(value for is_column, value in self.parts if is_column)

    def render(self, row: Mapping[str, Any]) -> str | None:
        """The room for *row*, or None when a referenced column is NULL (the row is in no such room)."""
        if self.literal is not None:
            return self.literal
        if self.one_column is not None:
            before, column, after = self.one_column
            cell = row.get(column)
            kind = type(cell)
            if kind is str or kind is int:  # not bool, which renders as true/false
                return f"{before}{cell}{after}"
        out: list[str] = []
        for is_column, value in self.parts:
            if not is_column:
                out.append(value)
                continue
            cell = row.get(value, _MISSING)
            if cell is None:
                return None
            if cell is _MISSING:
                raise TemplateError(f"template {self.text!r}: the row has no column {value!r}")
            out.append(_room_text(cell))
        return "".join(out)


_MISSING = object()


def _room_text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
