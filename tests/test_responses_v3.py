"""Reading v3 answers: the documented shapes parse, unknown fields are kept, and an answer
that is not one of them is a ``ValueError`` that says what was wrong."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import BadRequest, OutOfCredit, make_status_error
from engine.request.v3 import (
    V3ErrorEnvelope,
    parse_v3_created,
    parse_v3_list,
    parse_v3_statuses,
    parse_v3_video,
)

DETAIL = {"id": "v1", "status": "completed", "video_page_url": "https://app/v1", "new": 1}


def test_a_create_answer_gives_its_video() -> None:
    created = parse_v3_created({"data": {"video_id": "v1", "status": "waiting"}})

    assert (created.video_id, created.status, created.output_format) == ("v1", "waiting", "mp4")


def test_a_detail_keeps_fields_the_service_adds_later() -> None:
    detail = parse_v3_video({"data": DETAIL})

    assert detail.video_page_url == "https://app/v1"
    assert detail.model_extra == {"new": 1}


def test_a_list_page_and_a_statuses_page_read_their_cursor() -> None:
    page = parse_v3_list({"data": [DETAIL], "has_more": True, "next_token": "t2"})
    bulk = parse_v3_statuses(
        {"data": [{"video_id": "v1", "status": "queued", "error": None}], "has_more": False}
    )

    assert ([v.id for v in page.data], page.has_more, page.next_token) == (["v1"], True, "t2")
    assert ([i.status for i in bulk.data], bulk.next_token) == (["queued"], None)


@pytest.mark.parametrize(
    ("reader", "body", "fragment"),
    [
        (parse_v3_video, ["not", "an", "object"], "not a JSON object but list"),
        (parse_v3_video, {"error": {"code": "not_found", "message": "Video gone"}}, "Video gone"),
        (
            parse_v3_video,
            {"data": {"id": "v1", "status": "exploded"}},
            "status: must be one of pending",
        ),
        (parse_v3_created, {"data": {"status": "waiting"}}, "video_id: required"),
        (parse_v3_list, {"data": {"id": "v1"}}, "holds no list"),
        (parse_v3_statuses, {"data": [{"video_id": "v1"}]}, "data[0].status: required"),
    ],
)
def test_an_answer_in_no_documented_shape_is_a_value_error(
    reader: Any, body: Any, fragment: str
) -> None:
    with pytest.raises(ValueError, match="answer") as info:
        reader(body)
    assert fragment in str(info.value)


def test_the_error_envelope_is_read_for_its_code_and_message() -> None:
    body = {"error": {"code": "insufficient_credit", "message": "Top up", "param": None}}

    assert V3ErrorEnvelope.model_validate(body).error.code == "insufficient_credit"
    error = make_status_error(402, body)
    assert isinstance(error, OutOfCredit)
    assert (error.code, error.message) == ("insufficient_credit", "Top up")
    invalid = make_status_error(400, {"error": {"code": "invalid_parameter", "message": "m"}})
    assert isinstance(invalid, BadRequest)
