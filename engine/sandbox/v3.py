"""The sandbox's v3 endpoints, in the shapes of HEYGEN-V3.md.

``POST /v3/videos`` meets the same faults, server-side rate limit and credit limit as
the V2 create, validates with the engine's own v3 models, and keeps ``Idempotency-Key``
as the service does (``idempotency.py``). ``GET /v3/videos/{id}``,
``GET /v3/videos/statuses`` and ``GET /v3/videos`` answer for every video, whichever
API made it. Every error uses the v3 envelope ``{"error": {"code", "message", "param"?}}``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from engine.errors import RequestInvalid
from engine.request.v3 import MAX_LIST_LIMIT, MAX_STATUS_IDS, validate_v3_request
from engine.sandbox.answers import at_capacity, injected_fault, key_refusal, over_limit
from engine.sandbox.faults import Decision, Outcome, drop_connection
from engine.sandbox.idempotency import Claim, Seen, valid_key
from engine.sandbox.media import media_url
from engine.sandbox.state import InvalidToken, SandboxState, Video

CREATE_ROUTE = "POST /v3/videos"
#: ``GET /v3/videos`` without ``limit`` (heygen-cli's documented default).
LIST_LIMIT_DEFAULT = 10
FAILURE = ("render_failed", "Simulated failure (sandbox render_failure_ratio)")
#: Detail and list words onto the bulk endpoint's: it says ``queued`` for ``pending``.
BULK_WORD = {"pending": "queued"}


def add_v3_routes(router: web.UrlDispatcher, state: SandboxState) -> None:
    """Serve the v3 video endpoints from ``state``."""
    handlers = _V3Handlers(state)
    router.add_post("/v3/videos", handlers.create)
    # Before the ``{video_id}`` route, which would otherwise take "statuses" as an id.
    router.add_get("/v3/videos/statuses", handlers.statuses)
    router.add_get("/v3/videos/{video_id}", handlers.detail)
    router.add_get("/v3/videos", handlers.list_videos)


def v3_error(
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if param is not None:
        error["param"] = param
    return web.json_response({"error": error}, status=status, headers=headers)


def _created(video: Video) -> web.Response:
    return web.json_response(
        {"data": {"video_id": video.video_id, "status": "waiting", "output_format": "mp4"}}
    )


class _V3Handlers:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def _refuse_key(self, request: web.Request) -> web.Response | None:
        return key_refusal(self.state, request, v3_error)

    async def create(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        arrived = time.monotonic()
        counters = state.counters
        state.arrival(request.headers.get("X-Api-Key", ""), arrived)
        counters.v3_requests += 1
        if (refused := self._refuse_key(request)) is not None:
            return refused
        key = request.headers.get("Idempotency-Key")
        if key is not None and not valid_key(key):
            return v3_error(
                400,
                "invalid_parameter",
                "Idempotency-Key must be 1-255 characters of A-Z a-z 0-9 _ - : .",
                "Idempotency-Key",
            )
        if (limited := over_limit(state, request, arrived, v3_error)) is not None:
            return limited
        decision = state.faults.decide()
        raw = await request.read()
        claim = None if key is None else state.keys.claim(CREATE_ROUTE, key)
        if claim is not None and claim.seen is Seen.IN_FLIGHT:
            counters.v3_in_progress += 1
            return v3_error(
                409, "request_in_progress", "A request with this Idempotency-Key is in progress"
            )
        owns_key = claim is not None and claim.seen is Seen.NEW
        try:
            answer = await self._create(request, raw, decision, claim, key)
        finally:
            # A key whose request created nothing (a fault, a refusal, a cancelled
            # handler) is freed, so its resend is handled afresh.
            if owns_key and key is not None:
                state.keys.release(CREATE_ROUTE, key)
        return answer

    async def _create(
        self,
        request: web.Request,
        raw: bytes,
        decision: Decision,
        claim: Claim | None,
        key: str | None,
    ) -> web.StreamResponse:
        state = self.state
        if (fault := await injected_fault(state, decision, request, v3_error)) is not None:
            return fault
        outcome = decision.outcome
        if claim is not None and claim.seen is Seen.REPLAY:
            # The first answer again, whatever this body says (HeyGen only logs a warning).
            state.counters.v3_replays += 1
            video = state.videos[str(claim.video_id)]
            return drop_connection(request) if outcome is Outcome.DROP_AFTER else _created(video)
        try:
            body = json.loads(raw)
        except ValueError:
            return v3_error(400, "invalid_parameter", "Request body is not valid JSON")
        if not isinstance(body, dict):
            return v3_error(400, "invalid_parameter", "Request body must be a JSON object")
        try:
            video_request = validate_v3_request(body)
        except RequestInvalid as exc:
            return v3_error(400, "invalid_parameter", str(exc), exc.errors[0].path or None)
        if state.out_of_credit(video_request):
            return v3_error(402, "insufficient_credit", "Insufficient credit to create the video")
        if (full := at_capacity(state, v3_error)) is not None:
            return full
        video = state.create_video(video_request)
        if key is not None:
            state.keys.settle(CREATE_ROUTE, key, video.video_id)
            by_key = state.counters.created_by_idempotency_key
            by_key[key] = by_key.get(key, 0) + 1
        return drop_connection(request) if outcome is Outcome.DROP_AFTER else _created(video)

    # --- reading ------------------------------------------------------------------------

    def _detail(self, video: Video, origin: str) -> dict[str, Any]:
        state = self.state
        status = state.render_status(video)
        done = status == "completed"
        # Real URLs are presigned and expire; a fresh expiry on every call mirrors that.
        expires = int(state.clock() + state.config.media_url_lifetime_s)

        def url(ext: str, wanted: bool = True) -> str | None:
            if not (done and wanted):
                return None
            return media_url(origin, video.video_id, ext, expires)

        ended = status in ("completed", "failed")
        return {
            "id": video.video_id,
            "status": status,
            "title": video.title,
            "created_at": int(video.created_at),
            "completed_at": int(video.created_at + state.config.render_seconds) if ended else None,
            "duration": video.duration if done else None,
            "video_url": url("mp4"),
            "captioned_video_url": url("captioned.mp4", video.captioned),
            "subtitle_url": url("srt"),
            "thumbnail_url": url("jpg"),
            "gif_url": url("gif"),
            "video_page_url": f"{origin}/share/{video.video_id}",
            "folder_id": None,
            "failure_code": FAILURE[0] if status == "failed" else None,
            "failure_message": FAILURE[1] if status == "failed" else None,
        }

    async def detail(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        state.counters.v3_status_requests += 1
        if (refused := self._refuse_key(request)) is not None:
            return refused
        video_id = request.match_info["video_id"]
        video = state.videos.get(video_id)
        if video is None:
            return v3_error(404, "not_found", f"Video not found: {video_id}")
        origin = f"{request.scheme}://{request.host}"
        return web.json_response({"data": self._detail(video, origin)})

    async def statuses(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        state.counters.v3_statuses_requests += 1
        if (refused := self._refuse_key(request)) is not None:
            return refused
        ids = [i for i in request.query.get("video_ids", "").split(",") if i]
        if not ids:
            return v3_error(400, "invalid_parameter", "video_ids is required", "video_ids")
        if len(ids) > MAX_STATUS_IDS:
            return v3_error(
                400,
                "invalid_parameter",
                f"at most {MAX_STATUS_IDS} video_ids in one call, got {len(ids)}",
                "video_ids",
            )
        items: list[dict[str, Any]] = []
        for video_id in ids:
            video = state.videos.get(video_id)
            if video is None:
                items.append({"video_id": video_id, "status": "not_found", "error": None})
                continue
            status = state.render_status(video)
            failed = status == "failed"
            error = {"code": FAILURE[0], "message": FAILURE[1]} if failed else None
            items.append(
                {"video_id": video_id, "status": BULK_WORD.get(status, status), "error": error}
            )
        return web.json_response({"data": items, "has_more": False, "next_token": None})

    async def list_videos(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        state.counters.v3_list_requests += 1
        if (refused := self._refuse_key(request)) is not None:
            return refused
        raw_limit = request.query.get("limit") or str(LIST_LIMIT_DEFAULT)
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIST_LIMIT:
            return v3_error(
                400,
                "invalid_parameter",
                f"limit must be a whole number from 1 to {MAX_LIST_LIMIT}, got {raw_limit!r}",
                "limit",
            )
        try:
            videos, token = state.page(
                int(raw_limit),
                request.query.get("token") or None,
                request.query.get("title") or None,
            )
        except InvalidToken:
            return v3_error(400, "invalid_parameter", "Invalid paging token", "token")
        origin = f"{request.scheme}://{request.host}"
        return web.json_response(
            {
                "data": [self._detail(v, origin) for v in videos],
                "has_more": token is not None,
                "next_token": token,
            }
        )
