"""JSONL records: one JSON object per line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TextIO

from engine.errors import FieldError, RowError
from engine.reader.row import Row


def read_jsonl(stream: TextIO) -> Iterator[Row]:
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            yield Row(number, {}, RowError([FieldError("", f"is not valid JSON: {err.msg}")]))
            continue
        if not isinstance(value, dict):
            kind = type(value).__name__
            yield Row(number, {}, RowError([FieldError("", f"must be a JSON object, got {kind}")]))
            continue
        yield Row(number, value)
