"""The sandbox's ``GET /v2/avatars`` and ``GET /v2/voices``: a few of each, in the
service's shapes (``engine/request/catalogue.py``), so templates can be tried offline.

The first avatar and voice are the ones the demo template uses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from engine.request.catalogue import (
    AVATARS_PATH,
    VOICES_PATH,
    Avatar,
    AvatarList,
    TalkingPhoto,
    Voice,
    VoiceList,
)

_PREVIEWS = "https://sandbox.heygen.invalid/previews"

AVATARS = AvatarList(
    avatars=[
        Avatar(
            avatar_id="Brent_sitting_office_front",
            avatar_name="Brent in the office",
            gender="male",
            preview_image_url=f"{_PREVIEWS}/brent.webp",
        ),
        Avatar(
            avatar_id="Daisy-inskirt-20220818",
            avatar_name="Daisy in skirt",
            gender="female",
            preview_image_url=f"{_PREVIEWS}/daisy.webp",
        ),
        Avatar(
            avatar_id="Kayla-incasualsuit-20220818",
            avatar_name="Kayla in casual suit",
            gender="female",
            preview_image_url=f"{_PREVIEWS}/kayla.webp",
        ),
    ],
    talking_photos=[
        TalkingPhoto(
            talking_photo_id="a1b2c3d4e5f60718293a4b5c6d7e8f90",
            talking_photo_name="Founder portrait",
            preview_image_url=f"{_PREVIEWS}/founder.webp",
        )
    ],
)

VOICES = VoiceList(
    voices=[
        Voice(
            voice_id="ff2ecc8fbdef4273a28bed7b5e35bb57",
            name="Brent - Friendly",
            language="English",
            gender="male",
            preview_audio=f"{_PREVIEWS}/brent.mp3",
            support_pause=True,
            emotion_support=True,
        ),
        Voice(
            voice_id="1bd001e7e50f421d891986aad5158bc8",
            name="Sara - Lively",
            language="English",
            gender="female",
            preview_audio=f"{_PREVIEWS}/sara.mp3",
            support_pause=True,
            emotion_support=False,
        ),
        Voice(
            voice_id="2d5b0e6cf36f460aa7fc47e3eee4ba54",
            name="Léa - Calme",
            language="French",
            gender="female",
            preview_audio=f"{_PREVIEWS}/lea.mp3",
            support_pause=False,
            emotion_support=False,
        ),
    ]
)

#: The app's key check: None lets the request through, else the refusal to send.
KeyCheck = Callable[[web.Request], web.Response | None]


def add_catalogue(app: web.Application, refuse_key: KeyCheck) -> None:
    """Serve the avatar and voice lists on ``app``, behind the same key check as the rest."""

    def handler(
        listing: AvatarList | VoiceList,
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        body = {"error": None, "data": listing.model_dump(mode="json")}

        async def serve(request: web.Request) -> web.StreamResponse:
            if (refused := refuse_key(request)) is not None:
                return refused
            return web.json_response(body)

        return serve

    app.router.add_get(AVATARS_PATH, handler(AVATARS))
    app.router.add_get(VOICES_PATH, handler(VOICES))
