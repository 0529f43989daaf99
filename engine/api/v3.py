"""HeyGen's v3 API as a pure dialect (shared/HEYGEN-V3.md): ``POST /v3/videos`` with an
``Idempotency-Key``, ``GET /v3/videos/{id}``, ``GET /v3/videos/statuses`` (100 ids a
call) and ``GET /v3/videos`` (``has_more``/``next_token``).

Answers are read leniently, by field, as the V2 ones are: the service adds fields over
time, and a new one must never make a good answer unreadable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from engine.api.port import (
    Answer,
    ApiFeatures,
    ApiName,
    HttpCall,
    RenderStatus,
    render_state,
)
from engine.errors import StatusError
from engine.request.responses import VideoListItem

VIDEOS_PATH = "/v3/videos"
STATUSES_PATH = "/v3/videos/statuses"
#: HeyGen's documented replay window for an Idempotency-Key.
REPLAY_WINDOW_S = 86_400.0
#: Ids one ``GET /v3/videos/statuses`` call may name.
BULK_STATUS_MAX = 100
#: The bulk status word for a video the service does not know.
_NOT_FOUND = "not_found"


class V3Dialect:
    """The v3 video endpoints."""

    name: ApiName = "v3"
    features = ApiFeatures(
        idempotent_create=True,
        replay_window_s=REPLAY_WINDOW_S,
        bulk_status_max=BULK_STATUS_MAX,
        test_videos=False,
        list_has_callback_id=False,
    )

    def create(self, body: str, idempotency_key: str | None) -> HttpCall:
        headers = (("Idempotency-Key", idempotency_key),) if idempotency_key else ()
        return HttpCall("POST", VIDEOS_PATH, headers=headers, body=body.encode(), json_only=True)

    def created(self, answer: Answer) -> str | None:
        """``{"data": {"video_id": ..., "status": "waiting"}}``; None without an id."""
        data = _data(answer.body)
        video_id = data.get("video_id") if isinstance(data, Mapping) else None
        return video_id if isinstance(video_id, str) and video_id else None

    def status(self, video_id: str) -> HttpCall:
        return HttpCall("GET", f"{VIDEOS_PATH}/{quote(video_id, safe='')}")

    def parsed_status(self, answer: Answer) -> RenderStatus:
        data = _data(answer.body)
        if not isinstance(data, Mapping):
            raise ValueError("video status answer holds no data object")
        return _detail(data)

    def statuses(self, video_ids: Sequence[str]) -> HttpCall | None:
        if not 0 < len(video_ids) <= BULK_STATUS_MAX:
            raise ValueError(f"a bulk status call names 1 to {BULK_STATUS_MAX} videos")
        return HttpCall("GET", STATUSES_PATH, params=(("video_ids", ",".join(video_ids)),))

    def parsed_statuses(self, answer: Answer) -> dict[str, RenderStatus | None]:
        """video_id → its render, or None for ``not_found``."""
        data = _data(answer.body)
        if not isinstance(data, list):
            raise ValueError("bulk status answer holds no list")
        found: dict[str, RenderStatus | None] = {}
        for item in data:
            if not isinstance(item, Mapping) or not isinstance(item.get("video_id"), str):
                raise ValueError(f"malformed bulk status item: {str(item)[:100]}")
            word = str(item.get("status"))
            if word == _NOT_FOUND:
                found[item["video_id"]] = None
                continue
            error = item.get("error")
            code, message = _failure(error)
            found[item["video_id"]] = RenderStatus(
                video_id=item["video_id"],
                state=render_state(word),
                failure_code=code,
                failure_message=message,
            )
        return found

    def listing(self, token: str | None, limit: int, title: str | None = None) -> HttpCall:
        params = [("limit", str(limit))]
        if token:
            params.append(("token", token))
        if title is not None:
            params.append(("title", title))
        return HttpCall("GET", VIDEOS_PATH, params=tuple(params))

    def parsed_listing(self, answer: Answer) -> tuple[list[VideoListItem], str | None]:
        body = answer.body
        data = _data(body)
        if not isinstance(data, list):
            raise ValueError("video list answer holds no list")
        items = []
        for raw in data:
            if not isinstance(raw, Mapping):
                raise ValueError(f"malformed video list item: {str(raw)[:100]}")
            detail = _detail(raw)
            items.append(
                VideoListItem(
                    video_id=detail.video_id,
                    video_title=detail.title,
                    created_at=detail.created_at,
                    status=detail.state,
                )
            )
        more = isinstance(body, Mapping) and body.get("has_more") is True
        token = body.get("next_token") if isinstance(body, Mapping) else None
        return items, (str(token) if more and token else None)

    def create_error(self, err: StatusError) -> StatusError:
        return err


def _data(body: Any) -> Any:
    if not isinstance(body, Mapping):
        raise ValueError(f"answer is not a JSON object but {type(body).__name__}")
    return body.get("data")


def _detail(data: Mapping[str, Any]) -> RenderStatus:
    """A ``VideoDetail`` (status answer or list item)."""
    video_id = data.get("id", data.get("video_id"))
    if not isinstance(video_id, str) or not video_id:
        raise ValueError("video answer names no id")
    code = data.get("failure_code")
    return RenderStatus(
        video_id=video_id,
        state=render_state(str(data.get("status"))),
        video_url=_text(data.get("video_url")),
        thumbnail_url=_text(data.get("thumbnail_url")),
        video_page_url=_text(data.get("video_page_url")),
        subtitle_url=_text(data.get("subtitle_url")),
        failure_code=None if code is None else str(code),
        failure_message=_text(data.get("failure_message")),
        created_at=_unix(data.get("created_at")),
        title=_text(data.get("title")),
    )


def _failure(error: Any) -> tuple[str | None, str | None]:
    if isinstance(error, Mapping):
        code = error.get("code")
        return (None if code is None else str(code)), _text(error.get("message"))
    return None, _text(error)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _unix(value: Any) -> int | None:
    """Unix seconds from a number or an ISO 8601 time; None when neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return None
    return None
