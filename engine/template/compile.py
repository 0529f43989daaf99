"""Compile a template once, render it per row.

Only ``{{ name }}`` substitution exists, with one filter, ``default("text")``, for an
empty cell: no expressions or code, so a template from an untrusted spreadsheet tool
cannot do anything but fill text. Substitution is a single pass over the template's
own text: a cell holding ``{{ other }}`` is inserted as those characters, never expanded.
Each cell is checked where it is inserted, since only there are its column and field
both known: an empty cell (without a fallback) or a control character makes the row
invalid.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError, FieldError, Reason, RowError
from engine.template.cells import (
    control_error,
    control_in,
    control_in_value,
    control_name,
    control_pattern,
    is_blank,
)

# A name holds no braces, so "{{ a }}{{ b }}" is two placeholders, never one named "a }}{{ b".
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
# Jinja statements and comments: refused at load rather than sent as spoken text.
_STATEMENT = re.compile(r"\{%|\{#")
# The one filter: a quoted fallback for an empty cell, as Jinja writes it.
_DEFAULT = re.compile(r"""default\s*\(\s*(?:"([^"]*)"|'([^']*)')\s*\)""")
# Characters of expressions, calls, literals and subscripts: never part of a column name
# here, so "{{ a + b }}" is refused at load instead of being read as a column "a + b".
_EXPRESSION = re.compile(r"""[+*/%()\[\]"'=<>!~,^\\`]""")
# A fallback whose text holds a brace: the placeholder pattern cannot match it.
_BRACED_DEFAULT = re.compile(r"""default\s*\(\s*(?:"[^"]*[{}]|'[^']*[{}])""")
_FORMS = '{{ column }} or {{ column | default("text") }}'
# A V2 body nests five levels deep; far deeper means a runaway or self-referencing YAML.
_MAX_DEPTH = 32
_MAX_NODES = 100_000

# A compiled node renders one template value for one row, appending
# the row's problems (missing column, empty cell, control character) to ``problems``.
_Node = Callable[[Mapping[str, Any], list[FieldError]], Any]
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class _Slot:
    """One placeholder: the column it names and its fallback for an empty cell."""

    name: str
    default: str | None


def _missing(path: str, name: str) -> FieldError:
    return FieldError(path, f"column '{name}' is not in this row", Reason.MISSING_COLUMN)


def _empty(path: str, name: str) -> FieldError:
    return FieldError(
        path,
        f"column '{name}' is empty; fill it in, or give the placeholder a fallback: "
        f'{{{{ {name} | default("text") }}}}',
        Reason.EMPTY_CELL,
    )


def _checked(
    path: str, slot: _Slot, pattern: re.Pattern[str], value: Any, problems: list[FieldError]
) -> Any:
    """The value a cell gives its placeholder, or None after recording why it cannot.

    The renderers call this only for a cell that is not plain printable non-blank text.
    """
    if value is _ABSENT:
        if slot.default is not None:
            return slot.default
        problems.append(_missing(path, slot.name))
        return None
    # Controls first: some (US, NEL) count as whitespace, and the code point says more.
    char = control_in(value, pattern) if type(value) is str else control_in_value(value, pattern)
    if char is not None:
        problems.append(control_error(path, slot.name, char))
        return None
    if value is None or (type(value) is str and is_blank(value)):
        if slot.default is not None:
            return slot.default
        problems.append(_empty(path, slot.name))
        return None
    return value


class _Compiler:
    def __init__(self, source: str) -> None:
        self.source = source
        self.columns: set[str] = set()
        # The columns some placeholder needs, having no fallback for them.
        self.required: set[str] = set()
        # Control characters in the template's own text, as "path: code point".
        self.controls: list[str] = []
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
            if (char := control_in(key, control_pattern(""))) is not None:
                self.controls.append(
                    f"{path or 'the template'}: the key {key!r}: {control_name(char)}"
                )
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
        # The template's own text (a fallback's too) obeys the rule for cells.
        if (char := control_in(value, control_pattern(path))) is not None:
            self.controls.append(f"{path}: {control_name(char)}")
        if _STATEMENT.search(value):
            raise self.fail(
                path,
                f"'{value}' holds a {{% %}} or {{# #}} block; only {{{{ column }}}} is supported.",
            )
        pieces = _PLACEHOLDER.split(value)
        # Literal text between placeholders never holds double braces: those are a typo
        # ("{{ name }" or "{{ {{ a }} }}") that would otherwise be spoken as written.
        if any("{{" in text or "}}" in text for text in pieces[0::2]):
            if _BRACED_DEFAULT.search(value):
                raise self.fail(
                    path, f"'{value}': a default text cannot hold {{ or }}; remove them."
                )
            raise self.fail(path, f"'{value}' has an unclosed or broken placeholder.")
        if len(pieces) == 1:
            return (lambda _row, _problems: value), True
        slots = [self._slot(value, path, inner) for inner in pieces[1::2]]
        if pieces[0] == "" and pieces[2] == "" and len(pieces) == 3:
            return _whole(path, slots[0]), False
        return _mixed(path, pieces[0::2], slots), False

    def _slot(self, value: str, path: str, inner: str) -> _Slot:
        """Parse what one ``{{ }}`` holds: a column name and, maybe, ``| default("...")``."""
        name, bar, rest = inner.partition("|")
        name = name.strip()
        default: str | None = None
        if bar:
            found = _DEFAULT.fullmatch(rest.strip())
            if found is None:
                raise self.fail(
                    path,
                    f"'{value}': the only filter is default, with a quoted text: {_FORMS}.",
                )
            default = found.group(1) if found.group(1) is not None else found.group(2)
        if not name:
            raise self.fail(path, f"'{value}' has an empty placeholder {{{{ }}}}.")
        if found := _EXPRESSION.search(name):
            raise self.fail(
                path,
                f"'{value}': '{name}' is an expression, not a column name (it holds "
                f"'{found.group()}'); a placeholder holds a column name only: {_FORMS}. "
                "Rename a column whose name holds such a character.",
            )
        self.columns.add(name)
        if default is None:
            self.required.add(name)
        return _Slot(name, default)


def _whole(path: str, slot: _Slot) -> _Node:
    pattern = control_pattern(path)
    name = slot.name

    def render_whole(row: Mapping[str, Any], problems: list[FieldError]) -> Any:
        # The cell's own value, typed later by the schema ("1.1" -> 1.1).
        value = row.get(name, _ABSENT)
        if type(value) is str and value and value.isprintable() and not value.isspace():
            return value
        return _checked(path, slot, pattern, value, problems)

    return render_whole


def _mixed(path: str, literals: list[str], slots: list[_Slot]) -> _Node:
    # The literals become a format string, with every brace of their own escaped.
    fmt = "{}".join(p.replace("{", "{{").replace("}", "}}") for p in literals)
    pattern = control_pattern(path)
    names = [(slot.name, slot) for slot in slots]

    def render_mixed(row: Mapping[str, Any], problems: list[FieldError]) -> Any:
        cells: list[str] = []
        for name, slot in names:
            value = row.get(name, _ABSENT)
            if not (type(value) is str and value and value.isprintable() and not value.isspace()):
                value = _checked(path, slot, pattern, value, problems)
                if value is None:
                    value = ""
                elif type(value) is not str:
                    # JSONL numbers and objects read as JSON inside text; its escapes
                    # keep their control characters out of it.
                    value = json.dumps(value, ensure_ascii=False)
            cells.append(value)
        return fmt.format(*cells)

    return render_mixed


@dataclass(frozen=True)
class Template:
    """A compiled template: ``render`` fills it from one row's values."""

    source: str
    columns: frozenset[str]
    #: The columns a row must have: those some placeholder names without a fallback.
    required: frozenset[str]
    _root: _Node
    #: The body's top-level fields, which say the API it is for (engine.api.choose).
    top_level: frozenset[str] = frozenset()

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
    if compiler.controls:
        raise ConfigError(
            f"{source}: the template's own text holds control characters "
            f"({'; '.join(compiler.controls)}); remove them from the template."
        )
    _check_callback_id(data.get("callback_id"), source)
    try:
        # A body is sent as JSON: a YAML date or a NaN would fail only at the first send.
        json.dumps(data, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"{source}: holds a value JSON cannot carry ({err}); in YAML, quote dates and times."
        ) from err
    return Template(
        source,
        frozenset(compiler.columns),
        frozenset(compiler.required),
        root,
        frozenset(str(k) for k in data),
    )


def _blank_fallback_only(callback_id: str) -> bool:
    """Whether ``callback_id`` is one placeholder whose fallback is blank: an empty cell
    then leaves it unset, and the engine makes one for the job."""
    whole = _PLACEHOLDER.fullmatch(callback_id)
    if whole is None:
        return False
    found = _DEFAULT.fullmatch(whole.group(1).partition("|")[2].strip())
    return found is not None and is_blank(found.group(1) or found.group(2) or "")


def _check_callback_id(callback_id: Any, source: str) -> None:
    """A callback_id names one job at the service, so it must differ per row.

    Blank is unset (the engine makes one). A fallback is refused, but a blank one for
    the whole callback_id: it makes the callback_id one constant for every row whose
    cell is empty or absent.
    """
    if callback_id is None or (isinstance(callback_id, str) and is_blank(callback_id)):
        return
    if not (isinstance(callback_id, str) and _PLACEHOLDER.search(callback_id)):
        raise ConfigError(
            f"{source}: callback_id {json.dumps(callback_id)} is the same for every "
            "row, but it names one job at the service and must differ per row: build it from "
            'a column ("{{ customer_id }}-spring"), or leave it out so the engine makes one '
            "per job."
        )
    if any("|" in inner for inner in _PLACEHOLDER.findall(callback_id)) and not (
        _blank_fallback_only(callback_id)
    ):
        raise ConfigError(
            f"{source}: callback_id {json.dumps(callback_id)} has a default(...) fallback, "
            "which gives every row whose cell is empty the same callback_id, but it names "
            "one job at the service: drop the fallback (a row with an empty cell is then "
            "invalid), or leave callback_id out so the engine makes one per job."
        )
