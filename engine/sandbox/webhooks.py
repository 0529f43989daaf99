"""The sandbox's webhooks: endpoints registered by ``POST /v3/webhooks/endpoints``, and a
signed ``avatar_video.success`` / ``.fail`` delivery to each when a render ends.

Renders are computed from the clock, not run, so one task looks every
``SCAN_INTERVAL_S`` for renders that have ended; a test moves a fake clock and the
deliveries follow. Deliveries are fire-and-forget, as the service's are: a failure
is counted (``GET /_sandbox/webhooks``), never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from engine.delivery.signature import sign
from engine.sandbox.media import media_url
from engine.sandbox.state import SandboxState, Video

log = logging.getLogger(__name__)

SCAN_INTERVAL_S = 0.05
DELIVERY_TIMEOUT_S = 10.0
EVENTS = ("avatar_video.success", "avatar_video.fail")


@dataclass
class Endpoint:
    url: str
    secret: str


@dataclass
class WebhookSender:
    state: SandboxState
    #: Where this sandbox is served, for the media URL in a success event; set once bound.
    origin: str | None = None
    endpoints: list[Endpoint] = field(default_factory=list)
    delivered: int = 0
    failed: int = 0
    _waiting: dict[str, Video] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None
    _watcher: asyncio.Task[None] | None = None

    def created(self, video: Video) -> None:
        self._waiting[video.video_id] = video

    def targets(self) -> list[Endpoint]:
        config = self.state.config
        flagged = (
            [Endpoint(config.webhook_url, config.webhook_secret)]
            if config.webhook_url and config.webhook_secret
            else []
        )
        return flagged + self.endpoints

    def scan(self) -> None:
        """Start a delivery to every target for each render that has ended since."""
        targets = self.targets()
        if not targets or not self._waiting:
            return
        for video_id, video in list(self._waiting.items()):
            if self.state.videos.get(video_id) is not video:  # forgotten by a reset
                del self._waiting[video_id]
                continue
            status = self.state.render_status(video)
            if status not in ("completed", "failed"):
                continue
            del self._waiting[video_id]
            body = json.dumps(self.event(video, status)).encode()
            for target in targets:
                task = asyncio.create_task(self._deliver(target, body))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def event(self, video: Video, status: str) -> dict[str, Any]:
        data: dict[str, Any] = {"video_id": video.video_id, "callback_id": video.callback_id}
        if status == "completed":
            expires = int(self.state.clock() + self.state.config.media_url_lifetime_s)
            data["url"] = (
                media_url(self.origin, video.video_id, "mp4", expires) if self.origin else None
            )
            return {"event_type": "avatar_video.success", "event_data": data}
        data["msg"] = "Video rendering failed"
        return {"event_type": "avatar_video.fail", "event_data": data}

    async def _deliver(self, target: Endpoint, body: bytes) -> None:
        assert self._session is not None
        headers = {"Content-Type": "application/json", "signature": sign(target.secret, body)}
        try:
            async with self._session.post(target.url, data=body, headers=headers) as answer:
                ok = answer.status < 300
        except (aiohttp.ClientError, TimeoutError) as err:
            log.info("sandbox: webhook to %s failed: %s", target.url, err)
            ok = False
        if ok:
            self.delivered += 1
        else:
            self.failed += 1

    async def settled(self) -> None:
        """Wait until the deliveries started so far have ended (counted)."""
        deliveries = [t for t in self._tasks if t is not self._watcher]
        await asyncio.gather(*deliveries, return_exceptions=True)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(SCAN_INTERVAL_S)
            self.scan()

    async def start(self, app: web.Application) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=DELIVERY_TIMEOUT_S)
        )
        self._watcher = asyncio.create_task(self._watch())
        self._tasks.add(self._watcher)

    async def stop(self, app: web.Application) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()


WEBHOOKS = web.AppKey("sandbox_webhooks", WebhookSender)


def add_webhooks(app: web.Application, state: SandboxState) -> None:
    sender = WebhookSender(state)
    state.on_create.append(sender.created)
    app[WEBHOOKS] = sender
    app.on_startup.append(sender.start)
    app.on_cleanup.append(sender.stop)

    async def register(request: web.Request) -> web.StreamResponse:
        expected = state.config.api_key
        given = request.headers.get("X-Api-Key", "")
        if expected is not None and not hmac.compare_digest(given.encode(), expected.encode()):
            return _v3_error(401, "unauthorized", "Invalid or missing API key (X-Api-Key)")
        try:
            body = await request.json()
        except ValueError:
            return _v3_error(400, "invalid_parameter", "Request body is not valid JSON")
        url = body.get("url") if isinstance(body, dict) else None
        events = body.get("events", list(EVENTS)) if isinstance(body, dict) else None
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            return _v3_error(400, "invalid_parameter", "url must be an http(s) URL", "url")
        if not isinstance(events, list) or not all(isinstance(e, str) for e in events):
            return _v3_error(400, "invalid_parameter", "events must be a list of names", "events")
        endpoint = Endpoint(url, "whsec_" + secrets.token_urlsafe(24))
        sender.endpoints.append(endpoint)
        data = {
            "endpoint_id": secrets.token_hex(8),
            "url": url,
            "events": events,
            "status": "enabled",
            "created_at": int(state.clock()),
            "secret": endpoint.secret,
        }
        return web.json_response({"data": data})

    async def counts(request: web.Request) -> web.StreamResponse:
        return web.json_response({"delivered": sender.delivered, "failed": sender.failed})

    app.router.add_post("/v3/webhooks/endpoints", register)
    app.router.add_get("/_sandbox/webhooks", counts)


def _v3_error(status: int, code: str, message: str, param: str | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if param is not None:
        error["param"] = param
    return web.json_response({"error": error}, status=status)
