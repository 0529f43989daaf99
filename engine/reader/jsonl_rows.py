"""JSONL records: one JSON object per line."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, NoReturn, TextIO

from engine.errors import FieldError, RowError
from engine.reader.row import Row


def _no_constant(name: str) -> NoReturn:
    # NaN and Infinity are JavaScript, not JSON: the service would refuse the body.
    raise ValueError(f"{name} is not a JSON value")


# An escape of one half of a UTF-16 pair: alone, it decodes to no character at all.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _half_a_character(text: str, value: Any) -> bool:
    """Whether ``value`` holds a lone surrogate, which no file or database can store.

    Only lines spelling such an escape are checked; a proper pair (an emoji) is one
    character once parsed and passes.
    """
    if "\\u" not in text or not _SURROGATE_ESCAPE.search(text):
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _parse(text: str) -> Any:
    return json.loads(text, parse_constant=_no_constant)


def _invalid(line: int, message: str) -> Row:
    return Row(line, {}, RowError([FieldError("", message)]))


def read_jsonl(stream: TextIO) -> Iterator[tuple[Row, bool]]:
    """Each line's row, with whether the line ended with a line end."""
    # JSON escapes every line break inside a string, so one physical line is one record.
    for number, text in enumerate(stream, start=1):
        if text.strip():
            yield _row(number, text), text.endswith(("\n", "\r"))


def _row(number: int, text: str) -> Row:
    try:
        value = _parse(text)
    except json.JSONDecodeError as err:
        return _invalid(number, f"the line is not valid JSON: {err.msg} at column {err.colno}")
    except (ValueError, RecursionError) as err:
        return _invalid(number, f"the line is not valid JSON: {err}")
    if not isinstance(value, dict):
        kind = _json_kind(value)
        return _invalid(number, f"the line must hold one JSON object {{...}}, not {kind}")
    if _half_a_character(text, value):
        return _invalid(
            number,
            "the line holds a \\uD800-\\uDFFF escape without its other half: "
            "half a character, which is not text",
        )
    return Row(number, value)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool | int | float):
        return "a number or true/false"
    return "null"
