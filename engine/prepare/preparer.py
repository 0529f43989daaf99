"""Render, validate and key one row."""

from __future__ import annotations

from typing import Any

from engine.errors import FieldError, InputError
from engine.prepare.job import PreparedJob
from engine.prepare.keys import body_sha256
from engine.reader.row import Row
from engine.request import request_to_body, validate_request
from engine.template import Template

# A key from the body's hash: 128 bits is far past any collision risk and
# short enough to read in a ledger or a callback_id.
_HASH_KEY_CHARS = 32


class Preparer:
    """Turns rows into jobs with one template (or none: whole V2 bodies in JSONL)."""

    def __init__(
        self,
        template: Template | None,
        key_column: str | None = None,
        test_videos: bool = False,
    ) -> None:
        self._template = template
        self._key_column = key_column
        self._test_videos = test_videos
        self._sets_callback_id = template.sets_callback_id if template else False

    def _line_key(self, row: Row) -> str:
        if self._key_column is not None:
            value = row.values.get(self._key_column)
            if isinstance(value, str | int) and str(value).strip():
                return str(value).strip()
        return f"line-{row.line}"

    def prepare(self, row: Row) -> PreparedJob:
        if row.error is not None:
            return self._invalid(row, row.error.errors)
        key: str | None = None
        if self._key_column is not None:
            value = row.values.get(self._key_column)
            if value is None or not str(value).strip():
                return self._invalid(
                    row, [FieldError(self._key_column, "the key column is empty or missing")]
                )
            key = str(value).strip()
        try:
            raw = self._template.render(row.values) if self._template else row.values
            sets_callback_id = self._sets_callback_id or (
                self._template is None and "callback_id" in raw
            )
            body = request_to_body(validate_request(raw))
        except InputError as err:
            return self._invalid(row, err.errors)
        if self._test_videos:
            body["test"] = True
        if key is None:
            key = body_sha256(body)[:_HASH_KEY_CHARS]
        if not sets_callback_id:
            body["callback_id"] = key
        return PreparedJob(row.line, key, row.values, body, body_sha256(body))

    def _invalid(self, row: Row, errors: Any) -> PreparedJob:
        return PreparedJob(row.line, self._line_key(row), row.values, None, None, tuple(errors))
