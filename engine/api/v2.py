"""HeyGen's legacy V2 API as a pure dialect: ``POST /v2/video/generate``,
``GET /v1/video_status.get`` and ``GET /v1/video.list`` (CONTRACT section 6).

HeyGen marks these endpoints legacy (end of life 2026-11-01, shared/HEYGEN-V3.md): an
answer saying so stops the run with ``LegacyApi``, naming the move to v3.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from engine.api.port import (
    Answer,
    ApiFeatures,
    ApiName,
    HttpCall,
    RenderStatus,
    blames_address,
    render_state,
)
from engine.errors import LegacyApi, StatusError, WrongAddress
from engine.request.responses import (
    VideoListItem,
    parse_video_id,
    parse_video_list,
    parse_video_status,
)

GENERATE_PATH = "/v2/video/generate"
STATUS_PATH = "/v1/video_status.get"
LIST_PATH = "/v1/video.list"

# How HeyGen words the end of V2 (shared/HEYGEN-V3.md): the deprecation warning "will be
# removed on 2026-10-31", and the refusal of newer photo avatars "use Avatar IV or Avatar V".
_LEGACY = re.compile(
    r"will be removed|deprecat|no longer (?:supported|available)|sunset|legacy|end of life"
    r"|avatar iv or avatar v",
    re.IGNORECASE,
)


class V2Dialect:
    """The V2 create and the v1 status and list endpoints."""

    name: ApiName = "v2"
    features = ApiFeatures(
        idempotent_create=False,
        replay_window_s=None,
        bulk_status_max=0,
        test_videos=True,
        list_has_callback_id=True,
    )

    def create(self, body: str, idempotency_key: str | None) -> HttpCall:
        """V2 has no idempotency key: ``idempotency_key`` is not sent."""
        return HttpCall("POST", GENERATE_PATH, body=body.encode(), json_only=True)

    def created(self, answer: Answer) -> str | None:
        return parse_video_id(answer.body)

    def status(self, video_id: str) -> HttpCall:
        return HttpCall("GET", STATUS_PATH, params=(("video_id", video_id),))

    def parsed_status(self, answer: Answer) -> RenderStatus:
        """``ValueError`` when the answer is not a status."""
        status = parse_video_status(answer.body)
        error = status.error
        return RenderStatus(
            video_id=status.id,
            state=render_state(status.status),
            video_url=status.video_url,
            thumbnail_url=status.thumbnail_url,
            subtitle_url=status.caption_url,
            duration=status.duration,
            callback_id=status.callback_id,
            failure_code=None if error is None or error.code is None else str(error.code),
            failure_message=None if error is None else _failure_text(error.message, error.detail),
            created_at=status.created_at,
        )

    def statuses(self, video_ids: Sequence[str]) -> HttpCall:
        """``ValueError``: V2 has no bulk status (``features.bulk_status_max`` is 0)."""
        raise ValueError("V2 has no bulk status")

    def parsed_statuses(self, answer: Answer) -> dict[str, RenderStatus | None]:
        raise ValueError("V2 has no bulk status")

    def listing(self, token: str | None, limit: int, title: str | None = None) -> HttpCall:
        """``title`` is not a V2 filter: every video is listed."""
        params = [("limit", str(limit))]
        if token:
            params.append(("token", token))
        return HttpCall("GET", LIST_PATH, params=tuple(params))

    def parsed_listing(self, answer: Answer) -> tuple[list[VideoListItem], str | None]:
        return parse_video_list(answer.body)

    def create_error(self, err: StatusError) -> StatusError:
        """A create's error, read for what it blames: the legacy endpoint, the address, or
        (as it came) the job."""
        if is_legacy_answer(err):
            return LegacyApi(err.status, err.body, err.code, err.message)
        if blames_address(err):
            return WrongAddress(err.status, err.body, err.code, err.message)
        return err


def is_legacy_answer(err: StatusError) -> bool:
    """Whether V2's answer says the endpoint is gone or legacy: 410 Gone, or a
    deprecation or "use Avatar IV or Avatar V" message in any error."""
    return err.status == 410 or bool(_LEGACY.search(err.message))


def _failure_text(message: str | None, detail: object) -> str | None:
    parts = [str(p) for p in (message, detail) if p]
    return ": ".join(parts) or None
