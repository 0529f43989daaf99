"""Compile a template once, render it per row.

Only ``{{ name }}`` substitution exists: no expressions, filters or code, so a
template from an untrusted spreadsheet tool cannot do anything but fill text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError, FieldError, RowError

_PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")

# A compiled node renders one template value for one row, appending
# any missing-column problems to ``problems``.
_Node = Callable[[Mapping[str, Any], list[FieldError]], Any]


def _text(value: Any) -> str:
    """How a non-string cell reads inside a longer string (JSONL cells may be numbers)."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _missing(path: str, name: str) -> FieldError:
    return FieldError(path, f"column '{name}' is not in this row")


def _compile(value: Any, path: str, columns: set[str], source: str) -> _Node:
    if isinstance(value, dict):
        items = [
            (k, _compile(v, f"{path}.{k}" if path else k, columns, source))
            for k, v in value.items()
        ]

        def render_dict(row: Mapping[str, Any], problems: list[FieldError]) -> Any:
            return {k: node(row, problems) for k, node in items}

        return render_dict
    if isinstance(value, list):
        nodes = [_compile(v, f"{path}[{i}]", columns, source) for i, v in enumerate(value)]

        def render_list(row: Mapping[str, Any], problems: list[FieldError]) -> Any:
            return [node(row, problems) for node in nodes]

        return render_list
    if isinstance(value, str):
        return _compile_string(value, path, columns, source)
    return lambda _row, _problems: value


def _compile_string(value: str, path: str, columns: set[str], source: str) -> _Node:
    names = _PLACEHOLDER.findall(value)
    if not names:
        return lambda _row, _problems: value
    for name in names:
        if not name or "{" in name or "}" in name:
            raise ConfigError(f"{source}: {path}: '{value}' has an empty or broken placeholder.")
        columns.add(name)
    whole = _PLACEHOLDER.fullmatch(value)
    if whole is not None:
        name = whole.group(1)

        def render_whole(row: Mapping[str, Any], problems: list[FieldError]) -> Any:
            # The cell's own value, typed later by the schema ("1.1" -> 1.1).
            if name in row:
                return row[name]
            problems.append(_missing(path, name))
            return None

        return render_whole
    pieces = _PLACEHOLDER.split(value)

    def render_mixed(row: Mapping[str, Any], problems: list[FieldError]) -> Any:
        out: list[str] = []
        for index, piece in enumerate(pieces):
            if index % 2 == 0:
                out.append(piece)
            elif piece in row:
                out.append(_text(row[piece]))
            else:
                problems.append(_missing(path, piece))
        return "".join(out)

    return render_mixed


@dataclass(frozen=True)
class Template:
    """A compiled template: ``render`` fills it from one row's values."""

    source: str
    columns: frozenset[str]
    sets_callback_id: bool
    _root: _Node

    def render(self, row: Mapping[str, Any]) -> dict[str, Any]:
        problems: list[FieldError] = []
        body = self._root(row, problems)
        if problems:
            raise RowError(problems)
        assert isinstance(body, dict)
        return body


def compile_template(data: Mapping[str, Any], source: str = "template") -> Template:
    columns: set[str] = set()
    root = _compile(dict(data), "", columns, source)
    return Template(source, frozenset(columns), "callback_id" in data, root)
