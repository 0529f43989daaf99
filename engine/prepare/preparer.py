"""Render, validate and key one row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.api.choose import ApiChoice, ShapeError, api_by_shape, validated_body
from engine.api.client import dialect_for
from engine.api.port import ApiName
from engine.errors import ConfigError, FieldError, InputError, Reason
from engine.prepare.job import PreparedJob
from engine.prepare.keys import body_sha256, engine_callback_id
from engine.reader.row import Row
from engine.template import Template
from engine.template.cells import body_control_errors, is_blank

# A key from the body's hash: 128 bits is far past any collision risk and
# short enough to read in a ledger or a callback_id.
_HASH_KEY_CHARS = 32


class Preparer:
    """Turns rows into jobs with one template (or none: whole V2 or v3 bodies in JSONL).

    ``api`` (``--api``): ``auto`` sends each body to the API its shape names; ``v2`` or
    ``v3`` must agree with it. A template that names no API, or not the one asked for,
    or asks for test videos on an API that has none, raises ``ConfigError`` here, before
    anything is read or sent; a JSONL body without a template makes its row invalid.
    """

    def __init__(
        self,
        template: Template | None,
        key_column: str | None = None,
        test_videos: bool = False,
        campaign: str | None = None,
        api: ApiChoice = "auto",
    ) -> None:
        self._template = template
        self._key_column = key_column
        self._test_videos = test_videos
        self._campaign = campaign
        self._api = api
        self._template_api: ApiName | None = None
        if template is not None:
            try:
                self._template_api = api_by_shape(template.top_level, api)
            except ShapeError as err:
                raise ConfigError(
                    f"{template.source}: {err}. A V2 "
                    "template has a top-level video_inputs, a v3 one a top-level type (see "
                    "`heygen-batch schema --api v3`); --api must match."
                ) from None
            if test_videos and not self._test_videos_on(self._template_api):
                raise ConfigError(
                    f"--test-videos: {template.source} is a v3 template, and HeyGen's v3 API "
                    "has no test videos (no `test` field: every v3 video is real and costs "
                    "credits). Drop --test-videos, or check the run first with --dry-run."
                )

    @staticmethod
    def _test_videos_on(api: ApiName) -> bool:
        return dialect_for(api).features.test_videos

    def for_campaign(self, campaign: str | None) -> Preparer:
        """The same preparer for one ledger: its bodies carry the ledger's campaign id in
        their callback_id. Without one (``validate``, a dry run on no ledger) the engine
        adds no callback_id: such bodies are never sent."""
        return Preparer(self._template, self._key_column, self._test_videos, campaign, self._api)

    def repeated_key(self, key: str) -> str:
        """What to tell the user of a row whose job key an earlier row of the file had."""
        if self._key_column is not None:
            return f"job key {key} appeared earlier in this file"
        # Keyed by the request's hash: two contacts whose videos would read the same are
        # one job, which surprises anyone who thinks in contacts.
        return (
            f"the same request as an earlier row (job key {key}); rows are keyed by their "
            "request, so identical videos are made once: give --key-column to key them "
            "by contact"
        )

    def check_columns(self, header: Sequence[str]) -> list[str]:
        """Check a CSV header before any row: the template's columns it lacks, sorted.

        A missing key column is a usage error (every row would fail the same way);
        a missing template column only makes rows invalid, as the contract says,
        so it is returned for a warning. A column whose every placeholder has a
        fallback may be missing: the fallback stands in for it.
        """
        if self._key_column is not None and self._key_column not in header:
            raise ConfigError(
                f"--key-column {self._key_column}: the jobs file has no such column "
                f"(its columns: {', '.join(header)})."
            )
        if self._template is None:
            return []
        return sorted(self._template.required.difference(header))

    def _column_key(self, row: Row) -> str | None:
        """The job key when --key-column names a usable cell (a ragged row's too); else None."""
        if self._key_column is None:
            return None
        return _key_cell(row.values.get(self._key_column))

    def prepare(self, row: Row) -> PreparedJob:
        if row.error is not None:
            return self._invalid(row, row.error.errors)
        key: str | None = None
        if self._key_column is not None:
            key = _key_cell(row.values.get(self._key_column))
            if key is None:
                message = "the key column is empty, missing, or not text or a number"
                error = FieldError(self._key_column, message, Reason.MISSING_KEY)
                return self._invalid(row, [error])
        try:
            raw = self.rendered(row)
            if self._template is not None:
                assert self._template_api is not None
                api = self._template_api
            else:
                try:
                    api = api_by_shape(raw.keys(), self._api)
                except ShapeError as err:
                    return self._invalid(row, [FieldError(err.field, f"not sent: {err}")])
            body = validated_body(api, raw)
        except InputError as err:
            return self._invalid(row, err.errors)
        if self._test_videos:
            if not self._test_videos_on(api):
                message = "--test-videos: a v3 body cannot be a test video (v3 has no `test`)"
                return self._invalid(row, [FieldError("type", message)])
            body["test"] = True
        if key is None:
            key = body_sha256(body)[:_HASH_KEY_CHARS]
        # The callback_id names the job at the service: reconcile finds it by this. Sent
        # from a ledger, it carries the ledger's campaign id, the row's own one too, so two
        # ledgers on one API key (a test run and the real one) never share one.
        own = body.pop("callback_id", None)
        if own is not None and is_blank(own):
            own = None
        if self._campaign is not None:
            body["callback_id"] = engine_callback_id(self._campaign, key if own is None else own)
        elif own is not None:
            body["callback_id"] = own
        return PreparedJob(row.line, key, row.values, body, own_callback=own, api=api)

    def rendered(self, row: Row) -> dict[str, Any]:
        """The row's request before validation: the template rendered with its cells, or
        (no template) the JSONL body as read. Raises InputError for a cell that cannot be
        used (missing, empty, a control character)."""
        if self._template is not None:
            return self._template.render(row.values)
        # A whole body has no cells: each of its strings is checked by field path.
        if control := body_control_errors(row.values):
            raise InputError(control)
        return row.values

    def _invalid(self, row: Row, errors: Sequence[FieldError]) -> PreparedJob:
        key = self._column_key(row) or f"line-{row.line}"
        return PreparedJob(row.line, key, row.values, None, tuple(errors))


def _key_cell(value: Any) -> str | None:
    # bool is an int, but "True" as a job key is a mistake, not a key.
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        text = str(value).strip()
        return None if is_blank(text) else text
    return None
