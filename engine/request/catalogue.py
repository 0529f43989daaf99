"""What an account can use in a template: V2 ``GET /v2/avatars`` and ``GET /v2/voices``.

HeyGen documents both answers as ``{"error": null, "data": {...}}``: avatars as
``data.avatars`` (``avatar_id``, ``avatar_name``, ``gender``, ``preview_image_url``) and
``data.talking_photos`` (``talking_photo_id``, ``talking_photo_name``,
``preview_image_url``); voices as ``data.voices`` (``voice_id``, ``language``, ``gender``,
``name``, ``preview_audio``, ``support_pause``, ``emotion_support``). Unknown fields
are kept, and every field but the id may be missing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from engine.request.responses import parse_data

AVATARS_PATH = "/v2/avatars"
VOICES_PATH = "/v2/voices"


class _Item(BaseModel):
    model_config = ConfigDict(extra="allow")


class Avatar(_Item):
    avatar_id: str
    avatar_name: str | None = None
    gender: str | None = None
    preview_image_url: str | None = None


class TalkingPhoto(_Item):
    talking_photo_id: str
    talking_photo_name: str | None = None
    preview_image_url: str | None = None


class AvatarList(_Item):
    avatars: list[Avatar] = []
    talking_photos: list[TalkingPhoto] = []


class Voice(_Item):
    voice_id: str
    name: str | None = None
    language: str | None = None
    gender: str | None = None
    preview_audio: str | None = None
    support_pause: bool | None = None
    emotion_support: bool | None = None


class VoiceList(_Item):
    voices: list[Voice] = []


def parse_avatars(body: Any) -> AvatarList:
    """``data`` of a ``GET /v2/avatars`` answer; ValueError when it is not one."""
    return parse_data(body, AvatarList, "avatar list")


def parse_voices(body: Any) -> VoiceList:
    """``data`` of a ``GET /v2/voices`` answer; ValueError when it is not one."""
    return parse_data(body, VoiceList, "voice list")
