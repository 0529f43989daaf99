"""The v3 video endpoints' answers (HEYGEN-V3.md; ``gen/video.go`` in ``heygen-com/heygen-cli``).

The sandbox builds its answers from these models and the client reads them with the
``parse_v3_*`` helpers. Every model keeps unknown fields, as for V2: the service adds
fields over time and a new one must never make a good answer unreadable. Timestamps are
unix seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.errors import error_code_and_message
from engine.request.validate import field_errors

#: What ``GET /v3/videos/{id}`` and the list say.
DetailStatus = Literal["pending", "processing", "completed", "failed"]
#: What ``GET /v3/videos/statuses`` says: its own words beside v1's (documented as "same
#: values as GET /v1/video_status.get"), and ``not_found`` for an unknown or unowned id.
BULK_STATUSES = frozenset(
    {"queued", "pending", "waiting", "processing", "completed", "failed", "not_found"}
)
#: At most this many ids in one ``GET /v3/videos/statuses`` call.
MAX_STATUS_IDS = 100
#: ``limit`` of ``GET /v3/videos`` is 1 to this.
MAX_LIST_LIMIT = 100

_M = TypeVar("_M", bound=BaseModel)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class V3Error(_Answer):
    """The object of a v3 error envelope; ``param`` names the offending field."""

    code: str
    message: str | None = None
    param: str | None = None
    doc_url: str | None = None


class V3ErrorEnvelope(_Answer):
    """``{"error": {"code", "message", "param"?, "doc_url"?}}``."""

    error: V3Error


class V3Created(_Answer):
    """``data`` of ``POST /v3/videos``: the new video, ``status`` ``waiting``."""

    video_id: str
    status: str
    output_format: Literal["mp4", "webm"] = "mp4"


class V3VideoDetail(_Answer):
    """``data`` of ``GET /v3/videos/{video_id}``, and one item of ``GET /v3/videos``.

    No ``callback_id``: the service does not give it back here. URLs are presigned and
    expire; each call gives fresh ones. ``duration`` is in seconds.
    """

    id: str
    status: DetailStatus
    title: str | None = None
    created_at: int | None = None
    completed_at: int | None = None
    duration: float | None = None
    video_url: str | None = None
    captioned_video_url: str | None = None
    subtitle_url: str | None = None
    thumbnail_url: str | None = None
    gif_url: str | None = None
    video_page_url: str | None = None
    folder_id: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None


class V3StatusItem(_Answer):
    """One entry of ``GET /v3/videos/statuses``; ``error`` only when failed."""

    video_id: str | None = None
    status: str
    error: dict[str, Any] | None = None


class V3StatusPage(_Answer):
    """The whole answer of ``GET /v3/videos/statuses``."""

    data: list[V3StatusItem]
    has_more: bool = False
    next_token: str | None = None


class V3ListPage(_Answer):
    """The whole answer of ``GET /v3/videos``: newest first."""

    data: list[V3VideoDetail]
    has_more: bool = False
    next_token: str | None = None


def parse_v3_created(body: Any) -> V3Created:
    """The created video from a ``POST /v3/videos`` answer; ``ValueError`` when it holds none."""
    return _parse(_data(body, "create"), V3Created, "create")


def parse_v3_video(body: Any) -> V3VideoDetail:
    """The video from a ``GET /v3/videos/{video_id}`` answer; ``ValueError`` otherwise."""
    return _parse(_data(body, "video detail"), V3VideoDetail, "video detail")


def parse_v3_statuses(body: Any) -> V3StatusPage:
    """The page of a ``GET /v3/videos/statuses`` answer; ``ValueError`` otherwise."""
    return _parse(_page(body, "video statuses"), V3StatusPage, "video statuses")


def parse_v3_list(body: Any) -> V3ListPage:
    """The page of a ``GET /v3/videos`` answer; ``ValueError`` otherwise."""
    return _parse(_page(body, "video list"), V3ListPage, "video list")


def _data(body: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ValueError(f"{what} answer is not a JSON object but {type(body).__name__}")
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} answer holds no data: {error_code_and_message(body)[1]}")
    return data


def _page(body: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ValueError(f"{what} answer is not a JSON object but {type(body).__name__}")
    if not isinstance(body.get("data"), list):
        raise ValueError(f"{what} answer holds no list: {error_code_and_message(body)[1]}")
    return body


def _parse(data: Mapping[str, Any], model: type[_M], what: str) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(str(e) for e in field_errors(exc, model))
        raise ValueError(f"malformed {what} answer: {problems}") from None
