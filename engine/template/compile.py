"""Compile a template once, render it per row.

Only ``{{ name }}`` substitution exists: no expressions, filters or code, so a
template from an untrusted spreadsheet tool cannot do anything but fill text.
Substitution is a single pass over the template's own text: a cell holding
``{{ other }}`` is inserted as those characters and never expanded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError, FieldError, RowError

# A name holds no braces, so "{{ a }}{{ b }}" is two placeholders, never one named "a }}{{ b".
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# Jinja statements and comments: refused at load rather than sent as spoken text.
_STATEMENT = re.compile(r"\{%|\{#")
# A V2 body nests five levels deep; far deeper means a runaway or self-referencing YAML.
_MAX_DEPTH = 32
_MAX_NODES = 100_000

# A compiled node renders one template value for one row, appending
# any missing-column problems to ``problems``.
_Node = Callable[[Mapping[str, Any], list[FieldError]], Any]


def _text(path: str, name: str, value: Any, problems: list[FieldError]) -> str:
    """How a cell reads inside a longer string (JSONL cells may be numbers or objects)."""
    if isinstance(value, str):
        return value
    if value is None:
        problems.append(FieldError(path, f"column '{name}' is null; text cannot hold it"))
        return ""
    return json.dumps(value, ensure_ascii=False)


def _missing(path: str, name: str) -> FieldError:
    return FieldError(path, f"column '{name}' is not in this row")


class _Compiler:
    def __init__(self, source: str) -> None:
        self.source = source
        self.columns: set[str] = set()
        self._nodes = 0

    def fail(self, path: str, message: str) -> ConfigError:
        return ConfigError(f"{self.source}: {path or 'the template'}: {message}")

    def compile(self, value: Any, path: str, depth: int) -> tuple[_Node, bool]:
        """The node for ``value`` and whether it is constant (no placeholder inside)."""
        self._nodes += 1
        if depth > _MAX_DEPTH or self._nodes > _MAX_NODES:
            raise self.fail(path, "nested too deeply or too large to be a V2 request body.")
        if isinstance(value, dict):
            return self._dict(value, path, depth)
        if isinstance(value, list):
            return self._list(value, path, depth)
        if isinstance(value, str):
            return self._string(value, path)
        return (lambda _row, _problems: value), True

    def _dict(self, value: dict[Any, Any], path: str, depth: int) -> tuple[_Node, bool]:
        dynamic: list[tuple[str, _Node]] = []
        for key, child in value.items():
            if not isinstance(key, str):
                raise self.fail(path, f"the key {key!r} must be text (quote it in YAML).")
            if "{{" in key or _STATEMENT.search(key):
                raise self.fail(
                    path,
                    f"the key '{key}' holds a placeholder; only values may hold {{{{ column }}}}.",
                )
            node, fixed = self.compile(child, f"{path}.{key}" if path else key, depth + 1)
            if not fixed:
                dynamic.append((key, node))
        if not dynamic:
            # Shared between rows: the rendered raw body is only ever read, never changed.
            return (lambda _row, _problems: value), True

        def render_dict(row: Mapping[str, Any], problems: list[FieldError]) -> Any:
            # A copy of the template's own mapping keeps its key order; only the
            # values with placeholders are computed per row.
            out = value.copy()
            for key, node in dynamic:
                out[key] = node(row, problems)
            return out

        return render_dict, False

    def _list(self, value: list[Any], path: str, depth: int) -> tuple[_Node, bool]:
        compiled = [self.compile(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
        if all(fixed for _, fixed in compiled):
            return (lambda _row, _problems: value), True
        nodes = [node for node, _ in compiled]

        def render_list(row: Mapping[str, Any], problems: list[FieldError]) -> Any:
            return [node(row, problems) for node in nodes]

        return render_list, False

    def _string(self, value: str, path: str) -> tuple[_Node, bool]:
        if _STATEMENT.search(value):
            raise self.fail(
                path,
                f"'{value}' holds a {{% %}} or {{# #}} block; only {{{{ column }}}} is supported.",
            )
        pieces = _PLACEHOLDER.split(value)
        # Literal text between placeholders never holds double braces: those are a typo
        # ("{{ name }" or "{{ {{ a }} }}") that would otherwise be spoken as written.
        if any("{{" in text or "}}" in text for text in pieces[0::2]):
            raise self.fail(path, f"'{value}' has an unclosed or broken placeholder.")
        if len(pieces) == 1:
            return (lambda _row, _problems: value), True
        names = pieces[1::2]
        for name in names:
            if not name:
                raise self.fail(path, f"'{value}' has an empty placeholder {{{{ }}}}.")
            if "|" in name:
                raise self.fail(
                    path, f"'{value}': filters are not supported; write {{{{ column }}}} only."
                )
            self.columns.add(name)
        if pieces[0] == "" and pieces[2] == "" and len(pieces) == 3:
            return _whole(path, names[0]), False
        return _mixed(path, pieces), False


def _whole(path: str, name: str) -> _Node:
    def render_whole(row: Mapping[str, Any], problems: list[FieldError]) -> Any:
        # The cell's own value, typed later by the schema ("1.1" -> 1.1).
        try:
            return row[name]
        except KeyError:
            problems.append(_missing(path, name))
            return None

    return render_whole


def _mixed(path: str, pieces: list[str]) -> _Node:
    # ``pieces`` alternates literal text and column names: text, name, text, ..., text.
    names = pieces[1::2]
    literals = pieces[0::2]
    # The literals become a format string, with every brace of their own escaped.
    fmt = "{}".join(p.replace("{", "{{").replace("}", "}}") for p in literals)

    def render_mixed(row: Mapping[str, Any], problems: list[FieldError]) -> Any:
        try:
            values = [row[name] for name in names]
        except KeyError:
            values = []
            for name in names:
                if name in row:
                    values.append(row[name])
                else:
                    problems.append(_missing(path, name))
                    values.append("")
        cells = [
            v if type(v) is str else _text(path, n, v, problems)
            for n, v in zip(names, values, strict=True)
        ]
        return fmt.format(*cells)

    return render_mixed


@dataclass(frozen=True)
class Template:
    """A compiled template: ``render`` fills it from one row's values."""

    source: str
    columns: frozenset[str]
    _root: _Node

    def render(self, row: Mapping[str, Any]) -> dict[str, Any]:
        problems: list[FieldError] = []
        body = self._root(row, problems)
        if problems:
            raise RowError(problems)
        assert isinstance(body, dict)
        return body


def compile_template(data: Mapping[str, Any], source: str = "template") -> Template:
    compiler = _Compiler(source)
    root, _ = compiler.compile(dict(data), "", 0)
    try:
        # A body is sent as JSON: a YAML date or a NaN would fail only at the first send.
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"{source}: holds a value JSON cannot carry ({err}); in YAML, quote dates and times."
        ) from err
    return Template(source, frozenset(compiler.columns), root)
