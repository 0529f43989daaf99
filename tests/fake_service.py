"""A loopback fake of the service for reconcile's proofs: its own clock, and paging faults.

Unlike the sandbox, its clock may be skewed from ours (the ``Date`` header and
``created_at`` follow it), the first answer for each callback_id is lost after the
video is made, and ``video.list`` can be told to page wrongly.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.utils import formatdate

from aiohttp import web
from yarl import URL

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Paging(enum.Enum):
    TRUE = "true"
    #: Each page after the first starts one item late: the item at the boundary is lost.
    SKIP = "skip"
    #: Each page after the first starts one item early: the item at the boundary is shown twice.
    REPEAT = "repeat"
    #: The last item of each page and the first of the next change places.
    SWAP = "swap"
    #: The first two items of each page change places.
    UNSORTED = "unsorted"


@dataclass
class FakeVideo:
    video_id: str
    callback_id: str | None
    created_at: float


@dataclass
class FakeService:
    clock: Callable[[], float]
    paging: Paging = Paging.TRUE
    #: Lose the answer to the first request for each callback_id (after making the video).
    lose_first_answer: bool = True
    videos: list[FakeVideo] = field(default_factory=list)
    created: Counter[str] = field(default_factory=Counter)
    list_requests: int = 0

    def add(self, callback_id: str | None, created_at: float) -> FakeVideo:
        video = FakeVideo(f"v{len(self.videos):05d}", callback_id, created_at)
        self.videos.append(video)
        if callback_id is not None:
            self.created[callback_id] += 1
        return video

    def newest_first(self) -> list[FakeVideo]:
        return sorted(self.videos, key=lambda v: v.created_at, reverse=True)

    def page(self, limit: int, token: str | None) -> tuple[list[FakeVideo], str | None]:
        ordered = self.newest_first()
        start = int(token) if token else 0
        items = ordered[start : start + limit]
        if self.paging is Paging.SWAP:
            if start > 0:
                items[0] = ordered[start - 1]
            if start + limit < len(ordered):
                items[-1] = ordered[start + limit]
        if self.paging is Paging.UNSORTED and len(items) > 1:
            items[0], items[1] = items[1], items[0]
        after = start + limit
        if self.paging is Paging.SKIP:
            after += 1
        elif self.paging is Paging.REPEAT:
            after -= 1
        return items, (str(after) if after < len(ordered) else None)

    def app(self) -> web.Application:
        @web.middleware
        async def service_date(request: web.Request, handler: Handler) -> web.StreamResponse:
            response = await handler(request)
            response.headers["Date"] = formatdate(self.clock(), usegmt=True)
            return response

        app = web.Application(middlewares=[service_date])
        app.router.add_post("/v2/video/generate", self._generate)
        app.router.add_get("/v1/video.list", self._list)
        app.router.add_get("/v1/video_status.get", self._status)
        return app

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        callback_id = body.get("callback_id")
        video = self.add(callback_id, self.clock())
        if self.lose_first_answer and self.created[callback_id] == 1:
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return web.json_response({"error": None, "data": {"video_id": video.video_id}})

    async def _list(self, request: web.Request) -> web.StreamResponse:
        self.list_requests += 1
        items, token = self.page(int(request.query["limit"]), request.query.get("token"))
        videos = [
            {"video_id": v.video_id, "created_at": int(v.created_at), "status": "completed"}
            for v in items
        ]
        return web.json_response({"code": 100, "data": {"videos": videos, "token": token}})

    async def _status(self, request: web.Request) -> web.StreamResponse:
        video = next(v for v in self.videos if v.video_id == request.query["video_id"])
        data = {"id": video.video_id, "status": "completed", "callback_id": video.callback_id}
        return web.json_response({"code": 100, "data": data})


@asynccontextmanager
async def serving(service: FakeService) -> AsyncIterator[str]:
    """Serve ``service`` on a free loopback port; its base URL."""
    runner = web.AppRunner(service.app(), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        yield str(URL.build(scheme="http", host=host, port=port))
    finally:
        await runner.cleanup()
