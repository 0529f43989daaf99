"""The sandbox's HTTP face: HeyGen's V2/v1 endpoints (v3 ones in ``v3.py``) plus test-only
``/_sandbox`` ones."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from engine.errors import RequestInvalid
from engine.request import validate_request
from engine.sandbox.answers import at_capacity, injected_fault, key_refusal, over_limit
from engine.sandbox.catalogue import add_catalogue
from engine.sandbox.config import SandboxConfig
from engine.sandbox.faults import Outcome, drop_connection
from engine.sandbox.media import add_media_routes, media_url
from engine.sandbox.state import InvalidToken, SandboxState, Video
from engine.sandbox.v3 import add_v3_routes
from engine.sandbox.webhooks import add_webhooks

STATE = web.AppKey("sandbox_state", SandboxState)

LIST_LIMIT_MAX = 100
#: The older error shape's generic code, used by the v1 endpoints.
V1_ERROR_CODE = 400599
RENDER_ERROR = {
    "code": "render_failed",
    "message": "Video rendering failed",
    "detail": "Simulated failure (sandbox render_failure_ratio)",
}


def create_app(
    config: SandboxConfig | None = None, *, clock: Callable[[], float] = time.time
) -> web.Application:
    """An application serving one fresh sandbox; its state is ``app[STATE]``."""
    state = SandboxState(config or SandboxConfig(), clock)
    handlers = _Handlers(state)
    app = web.Application()
    app[STATE] = state
    app.router.add_post("/v2/video/generate", handlers.generate)
    app.router.add_get("/v1/video_status.get", handlers.video_status)
    app.router.add_get("/v1/video.list", handlers.video_list)
    add_v3_routes(app.router, state)
    add_catalogue(app, handlers._refuse_key)
    app.router.add_get("/_sandbox/counters", handlers.counters)
    app.router.add_post("/_sandbox/reset", handlers.reset)
    add_media_routes(app, state)
    add_webhooks(app, state)
    return app


def _error(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}, "data": None},
        status=status,
        headers=headers,
    )


def _v1_error(status: int, message: str) -> web.Response:
    return web.json_response({"code": V1_ERROR_CODE, "message": message}, status=status)


class _Handlers:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def _refuse_key(self, request: web.Request) -> web.Response | None:
        return key_refusal(self.state, request, _error)

    async def generate(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        arrived = time.monotonic()
        state.arrival(request.headers.get("X-Api-Key", ""), arrived)
        if (refused := self._refuse_key(request)) is not None:
            return refused
        if (limited := over_limit(state, request, arrived, _error)) is not None:
            return limited
        decision = state.faults.decide()
        raw = await request.read()
        if (fault := await injected_fault(state, decision, request, _error)) is not None:
            return fault
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "invalid_parameter", "Request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "invalid_parameter", "Request body must be a JSON object")
        try:
            video_request = validate_request(body)
        except RequestInvalid as exc:
            return _error(400, "invalid_parameter", str(exc))
        if state.out_of_credit(video_request):
            return _error(400, "insufficient_credit", "Insufficient credit to create the video")
        if (full := at_capacity(state, _error)) is not None:
            return full
        video = state.create_video(video_request)
        if decision.outcome is Outcome.DROP_AFTER:
            return drop_connection(request)
        return web.json_response({"error": None, "data": {"video_id": video.video_id}})

    async def video_status(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        state.counters.status_requests += 1
        if (refused := self._refuse_key(request)) is not None:
            return refused
        video_id = request.query.get("video_id")
        if not video_id:
            return _v1_error(400, "video_id is required")
        video = state.videos.get(video_id)
        if video is None:
            return _v1_error(404, f"Video not found: {video_id}")
        origin = f"{request.scheme}://{request.host}"
        return web.json_response(
            {"code": 100, "data": self._status_data(video, origin), "message": "Success"}
        )

    def _status_data(self, video: Video, origin: str) -> dict[str, Any]:
        state = self.state
        status = state.render_status(video)
        done = status == "completed"
        # Real URLs are signed and expire; a fresh expiry on every call mirrors that.
        expires = int(state.clock() + state.config.media_url_lifetime_s)

        def url(ext: str, wanted: bool = True) -> str | None:
            if not (done and wanted):
                return None
            return media_url(origin, video.video_id, ext, expires)

        return {
            "id": video.video_id,
            "status": status,
            "video_url": url("mp4"),
            "thumbnail_url": url("jpg"),
            "gif_url": url("gif"),
            "caption_url": url("vtt", video.captioned),
            "duration": video.duration if done else None,
            "callback_id": video.callback_id,
            "created_at": int(video.created_at),
            "error": RENDER_ERROR if status == "failed" else None,
        }

    async def video_list(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        state.counters.list_requests += 1
        if (refused := self._refuse_key(request)) is not None:
            return refused
        raw_limit = request.query.get("limit") or str(LIST_LIMIT_MAX)
        if not raw_limit.isdigit() or int(raw_limit) < 1:
            return _v1_error(400, f"limit must be a positive integer, got {raw_limit!r}")
        try:
            videos, token = state.page(
                min(int(raw_limit), LIST_LIMIT_MAX), request.query.get("token") or None
            )
        except InvalidToken:
            return _v1_error(400, "Invalid paging token")
        items = [
            {
                "video_id": v.video_id,
                "video_title": v.title or "",
                "created_at": int(v.created_at),
                "status": state.render_status(v),
            }
            for v in videos
        ]
        return web.json_response({"code": 100, "data": {"videos": items, "token": token}})

    async def counters(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state.counters_view())

    async def reset(self, request: web.Request) -> web.StreamResponse:
        self.state.reset()
        return web.json_response({"reset": True})
