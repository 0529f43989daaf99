"""HeyGen's v3 API as a pure dialect (shared/HEYGEN-V3.md): ``POST /v3/videos`` with an
``Idempotency-Key``, ``GET /v3/videos/{id}``, ``GET /v3/videos/statuses`` (100 ids a
call) and ``GET /v3/videos`` (``has_more``/``next_token``).

Answers are read with engine.request.v3's models, which keep unknown fields: the service
adds fields over time, and a new one must never make a good answer unreadable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from engine.api.port import (
    Answer,
    ApiFeatures,
    ApiName,
    HttpCall,
    RenderStatus,
    blames_address,
    render_state,
)
from engine.errors import StatusError, WrongAddress
from engine.request.responses import VideoListItem
from engine.request.v3 import (
    MAX_STATUS_IDS,
    V3VideoDetail,
    parse_v3_created,
    parse_v3_list,
    parse_v3_statuses,
    parse_v3_video,
)

VIDEOS_PATH = "/v3/videos"
STATUSES_PATH = "/v3/videos/statuses"
#: HeyGen's documented replay window for an Idempotency-Key.
REPLAY_WINDOW_S = 86_400.0
BULK_STATUS_MAX = MAX_STATUS_IDS
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
        try:
            return parse_v3_created(answer.body).video_id or None
        except ValueError:
            return None

    def status(self, video_id: str) -> HttpCall:
        return HttpCall("GET", f"{VIDEOS_PATH}/{quote(video_id, safe='')}")

    def parsed_status(self, answer: Answer) -> RenderStatus:
        return _detail(parse_v3_video(answer.body))

    def statuses(self, video_ids: Sequence[str]) -> HttpCall:
        if not 0 < len(video_ids) <= BULK_STATUS_MAX:
            raise ValueError(f"a bulk status call names 1 to {BULK_STATUS_MAX} videos")
        return HttpCall("GET", STATUSES_PATH, params=(("video_ids", ",".join(video_ids)),))

    def parsed_statuses(self, answer: Answer) -> dict[str, RenderStatus | None]:
        """video_id → its render, or None for ``not_found``."""
        found: dict[str, RenderStatus | None] = {}
        for item in parse_v3_statuses(answer.body).data:
            if item.video_id is None:
                raise ValueError("a bulk status item names no video")
            if item.status == _NOT_FOUND:
                found[item.video_id] = None
                continue
            error = item.error or {}
            code = error.get("code")
            found[item.video_id] = RenderStatus(
                video_id=item.video_id,
                state=render_state(item.status),
                failure_code=None if code is None else str(code),
                failure_message=_text(error.get("message")),
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
        page = parse_v3_list(answer.body)
        items = [
            VideoListItem(
                video_id=video.id,
                video_title=video.title,
                created_at=video.created_at,
                status=video.status,
            )
            for video in page.data
        ]
        return items, (page.next_token or None) if page.has_more else None

    def create_error(self, err: StatusError) -> StatusError:
        """A create's error, read for what it blames: the address, or (as it came) the job."""
        if blames_address(err):
            return WrongAddress(err.status, err.body, err.code, err.message)
        return err


def _detail(video: V3VideoDetail) -> RenderStatus:
    """A ``VideoDetail`` (status answer or list item) as the ledger keeps it."""
    return RenderStatus(
        video_id=video.id,
        state=render_state(video.status),
        video_url=video.video_url,
        thumbnail_url=video.thumbnail_url,
        video_page_url=video.video_page_url,
        subtitle_url=video.subtitle_url,
        duration=video.duration,
        failure_code=video.failure_code,
        failure_message=video.failure_message,
        created_at=video.created_at,
        title=video.title,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
