"""Reading the service's answers in every shape CONTRACT section 6 lists."""

from __future__ import annotations

from typing import Any

import pytest

from engine.request import (
    VideoListItem,
    VideoStatus,
    parse_video_id,
    parse_video_list,
    parse_video_status,
)
from engine.request.responses import FlatGenerateResponse, GenerateResponse

COMPLETED: dict[str, Any] = {
    "id": "v1",
    "status": "completed",
    "video_url": "https://files.test/v1.mp4",
    "thumbnail_url": "https://files.test/v1.jpg",
    "gif_url": None,
    "caption_url": None,
    "duration": 12.5,
    "callback_id": "row-7",
    "created_at": 1_700_000_000,
    "error": None,
}


@pytest.mark.parametrize(
    "body",
    [
        {"error": None, "data": {"video_id": "v1"}},
        {"success": True, "video_id": "v1", "status": "processing"},
        {"data": {"video_id": "v1"}},
        {"error": {"code": "odd", "message": "still made it"}, "data": {"video_id": "v1"}},
    ],
)
def test_a_video_id_anywhere_it_is_given_is_a_success(body: Any) -> None:
    assert parse_video_id(body) == "v1"


@pytest.mark.parametrize(
    "body",
    [
        {"error": {"code": "invalid_parameter", "message": "bad"}, "data": None},
        {"code": 400599, "message": "bad"},
        {"success": False, "message": "bad"},
        {"data": {"video_id": ""}},
        {"data": {"video_id": None}},
        "<html>502</html>",
        None,
        ["v1"],
    ],
)
def test_no_video_id_means_none(body: Any) -> None:
    assert parse_video_id(body) is None


def test_generate_models_read_both_success_shapes_and_the_error_envelope() -> None:
    real = GenerateResponse.model_validate({"error": None, "data": {"video_id": "v1"}})
    flat = FlatGenerateResponse.model_validate({"success": True, "video_id": "v1"})
    failed = GenerateResponse.model_validate(
        {
            "error": {"code": "invalid_parameter", "message": "m", "param": "p", "doc_url": "u"},
            "data": None,
        }
    )

    assert real.data is not None
    assert real.data.video_id == "v1"
    assert flat.video_id == "v1"
    assert failed.error is not None
    assert (failed.error.code, failed.error.param) == ("invalid_parameter", "p")


def test_a_completed_status_is_read() -> None:
    status = parse_video_status({"code": 100, "data": COMPLETED, "message": "Success"})

    assert isinstance(status, VideoStatus)
    assert (status.id, status.status, status.callback_id) == ("v1", "completed", "row-7")
    assert status.duration == 12.5
    assert status.error is None


def test_a_failed_render_carries_its_error_object_and_unknown_fields() -> None:
    data = {
        "id": "v2",
        "status": "failed",
        "error": {"code": "40119", "message": "avatar not found", "detail": "x"},
        "new_field": [1],
    }

    status = parse_video_status({"code": 100, "data": data})

    assert status.error is not None
    assert (status.error.code, status.error.message, status.error.detail) == (
        "40119",
        "avatar not found",
        "x",
    )
    assert status.model_dump(exclude_unset=True)["new_field"] == [1]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("oops", "not a JSON object"),
        ({"code": 400599, "message": "video not found"}, "video not found"),
        ({"error": {"code": "not_found", "message": "no such video"}, "data": None}, "no such"),
        ({"code": 100, "data": {"id": "v1", "status": "rendering"}}, "status: must be one of"),
        ({"code": 100, "data": {"status": "pending"}}, "id: required"),
        ({"code": 40001, "data": COMPLETED, "message": "denied"}, "denied"),
    ],
)
def test_a_malformed_or_failed_status_answer_is_a_clear_value_error(body: Any, words: str) -> None:
    with pytest.raises(ValueError, match="video status") as info:
        parse_video_status(body)

    assert words in str(info.value)


def test_a_list_page_gives_items_and_the_next_token() -> None:
    body = {
        "code": 100,
        "data": {
            "videos": [
                {"video_id": "a", "video_title": "A", "created_at": 1_700_000_000, "status": "x"},
                {"video_id": "b", "video_title": None, "created_at": "1700000001", "type": "GEN"},
            ],
            "token": "next-page",
        },
    }

    items, token = parse_video_list(body)

    assert token == "next-page"
    assert [i.video_id for i in items] == ["a", "b"]
    assert items[1].created_at == 1_700_000_001
    assert isinstance(items[0], VideoListItem)
    assert items[1].model_dump(exclude_unset=True)["type"] == "GEN"


@pytest.mark.parametrize("token", [None, ""])
def test_the_last_list_page_has_no_token(token: str | None) -> None:
    assert parse_video_list({"code": 100, "data": {"videos": [], "token": token}}) == ([], None)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"code": 100, "data": {"videos": [{"video_title": "t"}]}}, "videos[0].video_id: required"),
        ({"code": 100, "data": {"videos": "none"}}, "videos: must be a list"),
        ({"code": 401, "message": "Unauthorized"}, "Unauthorized"),
    ],
)
def test_a_malformed_list_answer_is_a_clear_value_error(body: Any, words: str) -> None:
    with pytest.raises(ValueError, match="video list") as info:
        parse_video_list(body)

    assert words in str(info.value)
