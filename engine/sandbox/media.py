"""The sandbox's storage host: small fake media at the URLs its status answers give.

Each URL carries its expiry (``?expires=<unix seconds>``), checked against the
sandbox's clock, so a test can let a stored URL expire and see it refreshed.
"""

from __future__ import annotations

import hashlib

from aiohttp import web

from engine.sandbox.state import SandboxState

MEDIA_PATH = "/videos/{name}"
#: Bytes served per kind: a video spans several read chunks, so streaming is exercised.
MEDIA_SIZES = {"mp4": 200_000, "jpg": 2_000, "gif": 4_000, "vtt": 300, "srt": 300}
_TYPES = {
    "mp4": "video/mp4",
    "jpg": "image/jpeg",
    "gif": "image/gif",
    "vtt": "text/vtt",
    "srt": "application/x-subrip",
}
_EXPIRED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
    "<Message>Request has expired</Message></Error>"
)


def media_url(origin: str, video_id: str, ext: str, expires: int) -> str:
    return f"{origin}/videos/{video_id}.{ext}?expires={expires}"


def fake_media(video_id: str, ext: str) -> bytes:
    """Deterministic bytes for one video's file of one kind (the same on every call)."""
    size = MEDIA_SIZES[ext]
    block = hashlib.sha256(f"{video_id}.{ext}".encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def add_media_routes(app: web.Application, state: SandboxState) -> None:
    async def serve(request: web.Request) -> web.StreamResponse:
        video_id, _, ext = request.match_info["name"].rpartition(".")
        expires = request.query.get("expires", "")
        if not expires.isdigit() or state.clock() > int(expires):
            return web.Response(status=403, text=_EXPIRED, content_type="application/xml")
        video = state.videos.get(video_id)
        if video is None or ext not in MEDIA_SIZES or state.render_status(video) != "completed":
            return web.Response(status=404, text="Not Found")
        return web.Response(body=fake_media(video_id, ext), content_type=_TYPES[ext])

    app.router.add_get(MEDIA_PATH, serve)
