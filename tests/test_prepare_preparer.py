"""Rows become validated jobs with their key; an invalid row never stops the others."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import ConfigError, FieldError, Reason, RowError
from engine.prepare import Preparer, body_sha256
from engine.reader import Row
from engine.template import compile_template

TEMPLATE_DATA: dict[str, Any] = {
    "title": "For {{ name }}",
    "dimension": {"width": 1280, "height": 720},
    "video_inputs": [
        {
            "character": {"type": "avatar", "avatar_id": "Brent_sitting_office_front"},
            "voice": {
                "type": "text",
                "voice_id": "ff2ecc8fbdef4273a28bed7b5e35bb57",
                "input_text": "{{ script }}",
                "speed": "{{ speed }}",
            },
        }
    ],
}
TEMPLATE = compile_template(TEMPLATE_DATA)
CELLS = {"id": " c-1 ", "name": "Ava", "script": "Hello Ava", "speed": "1.1"}


CAMPAIGN = "0a1b2c3d4e5f"


def prepare(values: dict[str, Any], **options: Any) -> Any:
    options.setdefault("campaign", CAMPAIGN)
    return Preparer(options.pop("template", TEMPLATE), **options).prepare(Row(2, values))


def test_a_whole_value_cell_is_typed_by_the_schema_and_the_key_column_is_trimmed() -> None:
    job = prepare(CELLS, key_column="id")

    assert job.valid
    assert job.key == "c-1"
    assert job.line == 2
    assert job.source is CELLS
    assert job.body["video_inputs"][0]["voice"]["speed"] == 1.1
    assert job.body["callback_id"] == "0a1b2c3d4e5f:c-1"
    assert job.sha256 == body_sha256(job.body)


def test_without_a_key_column_the_key_is_the_hash_of_the_body_before_callback_id() -> None:
    job = prepare(CELLS)
    again = prepare({**CELLS, "id": "another id the template does not use"})
    other = prepare({**CELLS, "script": "Hello Liam"})

    assert len(job.key) == 32
    assert job.key == again.key
    assert job.key != other.key
    assert job.body["callback_id"] == f"0a1b2c3d4e5f:{job.key}"
    body = dict(job.body)
    del body["callback_id"]
    assert job.key == body_sha256(body)[:32]


def test_the_campaign_id_changes_the_callback_id_and_never_a_body_hash_key() -> None:
    """A ledger from before campaign ids keeps its keys: its rows are not all new."""
    one, other = prepare(CELLS), prepare(CELLS, campaign="ffffffffffff")
    without = prepare(CELLS, campaign=None)

    assert one.key == other.key == without.key
    assert other.body["callback_id"] == f"ffffffffffff:{one.key}"
    assert one.sha256 != other.sha256
    # With no ledger (validate) the engine adds no callback_id: such a body is never sent.
    assert "callback_id" not in without.body
    assert one.sha256_with_callback(other.body["callback_id"]) == other.sha256


def test_a_callback_id_the_template_sets_is_kept_and_a_blank_fallback_gets_the_engines() -> None:
    template = compile_template(dict(TEMPLATE_DATA, callback_id="{{ crm }}"))
    fallback = compile_template(dict(TEMPLATE_DATA, callback_id="{{ crm | default('') }}"))

    kept = prepare({**CELLS, "crm": "crm-9"}, template=template, key_column="id")
    blank = prepare({**CELLS, "crm": "  "}, template=template, key_column="id")
    fallen_back = prepare({**CELLS, "crm": "  "}, template=fallback, key_column="id")

    assert kept.body["callback_id"] == "0a1b2c3d4e5f:crm-9"
    assert kept.own_callback == "crm-9"
    assert not kept.engine_callback
    assert [e.reason for e in blank.errors] == [Reason.EMPTY_CELL]
    assert fallen_back.body["callback_id"] == "0a1b2c3d4e5f:c-1"
    assert fallen_back.engine_callback


def test_test_videos_set_test_on_the_body_and_change_the_hash_key() -> None:
    job = prepare(CELLS, test_videos=True)

    assert job.body["test"] is True
    assert job.key != prepare(CELLS).key


def test_schema_errors_name_their_field_and_the_key_is_still_the_key_column() -> None:
    job = prepare({**CELLS, "speed": "3"}, key_column="id")

    assert not job.valid
    assert job.sha256 is None
    assert job.key == "c-1"
    assert job.errors == (
        FieldError("video_inputs[0].voice.speed", "must be between 0.5 and 1.5, got '3'"),
    )
    assert job.errors[0].reason is Reason.SCHEMA


def test_a_missing_column_makes_the_row_invalid_never_empty_text() -> None:
    job = prepare({"name": "Ava", "speed": "1.0"})

    assert not job.valid
    assert job.key == "line-2"
    assert job.errors == (
        FieldError("video_inputs[0].voice.input_text", "column 'script' is not in this row"),
    )
    assert job.errors[0].reason is Reason.MISSING_COLUMN


@pytest.mark.parametrize("value", ["", "   ", None, True, ["x"], {"a": 1}])
def test_an_unusable_key_cell_makes_the_row_invalid(value: Any) -> None:
    job = prepare({**CELLS, "id": value}, key_column="id")

    assert not job.valid
    assert job.key == "line-2"
    assert [e.path for e in job.errors] == ["id"]


def test_a_row_without_the_key_column_is_invalid() -> None:
    job = prepare({k: v for k, v in CELLS.items() if k != "id"}, key_column="id")

    assert not job.valid
    assert job.key == "line-2"
    assert [e.path for e in job.errors] == ["id"]


def test_numbers_from_jsonl_are_keys_too() -> None:
    assert prepare({**CELLS, "id": 42}, key_column="id").key == "42"


def test_a_row_error_from_the_reader_passes_through() -> None:
    error = RowError([FieldError("", "the row has 2 cells but the header has 4")])
    job = Preparer(TEMPLATE, "id").prepare(Row(9, {}, error))

    assert not job.valid
    assert (job.line, job.key, job.errors) == (9, "line-9", error.errors)


def test_a_ragged_row_keeps_its_key_and_cells_when_its_key_cell_is_there() -> None:
    error = RowError([FieldError("", "the row has 2 cells but the header has 4")])
    cells = {"id": " c011 ", "name": "Short"}

    keyed = Preparer(TEMPLATE, "id").prepare(Row(15, cells, error))
    hashed = Preparer(TEMPLATE).prepare(Row(15, cells, error))
    blank_key = Preparer(TEMPLATE, "id").prepare(Row(15, {"id": " ", "name": "x"}, error))

    assert (keyed.valid, keyed.key, keyed.source, keyed.errors) == (
        False,
        "c011",
        cells,
        error.errors,
    )
    assert hashed.key == "line-15"  # no key column: a hash of a body it cannot have
    assert blank_key.key == "line-15"


def test_without_a_template_each_jsonl_line_is_a_whole_body() -> None:
    body = {
        "dimension": {"width": 640, "height": 480},
        "video_inputs": [{"voice": {"type": "silence", "duration": "2"}}],
    }

    job = Preparer(None, campaign="c4").prepare(Row(1, body))

    assert job.body["video_inputs"][0]["voice"]["duration"] == 2.0
    assert job.body["callback_id"] == f"c4:{job.key}"


def test_check_columns_refuses_a_missing_key_column_and_lists_missing_template_columns() -> None:
    assert Preparer(TEMPLATE, "id").check_columns(["id", "name", "script", "speed"]) == []
    assert Preparer(TEMPLATE).check_columns(["name"]) == ["script", "speed"]
    with pytest.raises(ConfigError, match="--key-column email: the jobs file has no such"):
        Preparer(TEMPLATE, "email").check_columns(["id", "name"])
