"""The service's answers (CONTRACT section 6), as models and the helpers that read them.

The sandbox builds its answers from these models; the client reads them with the
``parse_*`` helpers. Every model keeps unknown fields: the service adds fields over time
and a new one must never make a good answer unreadable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.errors import error_code_and_message
from engine.request.validate import field_errors

SUCCESS_CODE = 100

_M = TypeVar("_M", bound=BaseModel)


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class ApiError(_Answer):
    """An error object: in an error envelope, or a failed render's ``data.error``."""

    code: str | int | None = None
    message: str | None = None
    detail: Any = None
    param: str | None = None
    doc_url: str | None = None


class GenerateData(_Answer):
    video_id: str


class GenerateResponse(_Answer):
    """The real ``POST /v2/video/generate`` envelope: ``data`` on success, else ``error``."""

    error: ApiError | None = None
    data: GenerateData | None = None


class FlatGenerateResponse(_Answer):
    """The seed's flatter answer: ``{"success": true, "video_id": ...}``."""

    success: bool
    video_id: str | None = None
    status: str | None = None
    message: str | None = None


class VideoStatus(_Answer):
    """``data`` of ``GET /v1/video_status.get``."""

    id: str
    status: Literal["pending", "waiting", "processing", "completed", "failed"]
    video_url: str | None = None
    thumbnail_url: str | None = None
    gif_url: str | None = None
    caption_url: str | None = None
    duration: float | None = None
    callback_id: str | None = None
    created_at: int | None = None
    error: ApiError | None = None


class VideoListItem(_Answer):
    """One entry of ``GET /v1/video.list``; ``created_at`` is in unix seconds."""

    video_id: str
    video_title: str | None = None
    created_at: int | None = None
    status: str | None = None


class VideoListPage(_Answer):
    """``data`` of ``GET /v1/video.list``: a page of videos and the next page's token."""

    videos: list[VideoListItem] = []
    token: str | None = None


def parse_video_id(body: Any) -> str | None:
    """The new video's id, from either success shape; ``None`` when the body holds none."""
    if not isinstance(body, Mapping):
        return None
    for holder in (body.get("data"), body):
        if isinstance(holder, Mapping):
            video_id = holder.get("video_id")
            if isinstance(video_id, str) and video_id:
                return video_id
    return None


def parse_video_status(body: Any) -> VideoStatus:
    """The status from a ``{"code": 100, "data": {...}}`` answer; ``ValueError`` otherwise."""
    return parse_data(body, VideoStatus, "video status")


def parse_video_list(body: Any) -> tuple[list[VideoListItem], str | None]:
    """The page's videos and the next page's token (``None`` on the last page)."""
    page = parse_data(body, VideoListPage, "video list")
    return page.videos, page.token or None


def parse_data(body: Any, model: type[_M], what: str) -> _M:
    """``data`` of a success envelope as ``model``; ValueError naming ``what`` otherwise."""
    if not isinstance(body, Mapping):
        raise ValueError(f"{what} answer is not a JSON object but {type(body).__name__}")
    data = body.get("data")
    if body.get("code", SUCCESS_CODE) != SUCCESS_CODE or not isinstance(data, Mapping):
        raise ValueError(f"{what} answer holds no data: {error_code_and_message(body)[1]}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(str(e) for e in field_errors(exc, model))
        raise ValueError(f"malformed {what} answer: {problems}") from None
