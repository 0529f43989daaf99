"""The v3 ``POST /v3/videos`` body, as pydantic models.

Shapes and limits follow HeyGen's OpenAPI-generated schema (``heygen-com/heygen-cli``,
``gen/video.go``, ``VideoCreate``) and ``HEYGEN-V3.md``: one flat body per video whose
``type`` (``avatar``, ``image``, ``studio``, ``cinematic_avatar``) picks the variant. As
for V2, every model keeps unknown fields (``extra="allow"``), numbers and booleans are
read in lax mode (a template renders ``"speed": "{{speed}}"`` as a string), and a blank
string counts as absent where one of several fields is needed, so an empty spreadsheet
cell never passes as an audio source.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from engine.request.model import HEX_COLOUR, HEX_COLOUR_6, NOT_BLANK

#: "at most 5,000 characters" (HEYGEN-V3.md; V2 wanted "under 5,000").
MAX_SCRIPT = 5000
MAX_SCENES = 50
#: A silent image scene is held for more than 0 and at most this many seconds.
MAX_IMAGE_SECONDS = 300

NonBlank = Annotated[str, Field(pattern=NOT_BLANK)]
HexColour = Annotated[str, Field(pattern=HEX_COLOUR)]
Script = Annotated[str, Field(max_length=MAX_SCRIPT)]
Resolution = Literal["720p", "1080p", "4k"]
AspectRatio = Literal["16:9", "9:16", "4:5", "5:4", "1:1", "auto"]
Expressiveness = Literal["high", "medium", "low"]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


def _given(*values: str | None) -> list[str]:
    return [v for v in values if v]


def _one_audio(
    script: str | None, audio_url: str | None, audio_asset_id: str | None, *, needed: bool
) -> None:
    """At most one audio source (exactly one when ``needed``); blank counts as absent."""
    given = _given(script, audio_url, audio_asset_id)
    if len(given) > 1:
        raise PydanticCustomError(
            "exclusive", "give only one of script, audio_url and audio_asset_id"
        )
    if needed and not given:
        raise PydanticCustomError("needs_one_of", "needs script, audio_url or audio_asset_id")


# --- assets -------------------------------------------------------------------------------


class UrlAsset(_Schema):
    """A file by public HTTPS URL."""

    type: Literal["url"]
    url: NonBlank


class IdAsset(_Schema):
    """A file uploaded to HeyGen, by asset id."""

    type: Literal["asset_id"]
    asset_id: NonBlank


class Base64Asset(_Schema):
    """A file inline, base64-encoded, with its MIME type (``image/png``)."""

    type: Literal["base64"]
    media_type: NonBlank
    data: NonBlank


Asset = Annotated[UrlAsset | IdAsset | Base64Asset, Field(discriminator="type")]


# --- settings shared by the variants ------------------------------------------------------


class EngineSettings(_Schema):
    """Voice-engine tuning; its other fields depend on the engine and pass through."""

    engine_type: Literal["elevenlabs", "fish", "starfish"]


class VoiceSettings(_Schema):
    """Voice tuning: ``speed`` multiplier, ``pitch`` in semitones, ``volume`` 0 (silent)-1."""

    speed: float = Field(1.0, ge=0.5, le=1.5)
    pitch: float = Field(0.0, ge=-50, le=50)
    volume: float = Field(1.0, ge=0, le=1)
    locale: str | None = None
    engine_settings: EngineSettings | None = None


class Engine(_Schema):
    """The avatar engine; the service uses Avatar IV when this is left out."""

    type: Literal["avatar_iv", "avatar_v", "avatar_iii"]
    reference_look_id: str | None = None


class Caption(_Schema):
    """An SRT is always produced; ``style`` also burns captions into the video."""

    file_format: Literal["srt"] = "srt"
    style: Literal["default"] | None = None


class ColorBackground(_Schema):
    type: Literal["color"]
    value: HexColour


class ImageBackground(_Schema):
    type: Literal["image"]
    url: str | None = None
    asset_id: str | None = None

    @model_validator(mode="after")
    def _one_image(self) -> Self:
        given = _given(self.url, self.asset_id)
        if len(given) != 1:
            raise PydanticCustomError("needs_one_of", "needs exactly one of url and asset_id")
        return self


Background = Annotated[ColorBackground | ImageBackground, Field(discriminator="type")]


class WatermarkPlacement(_Schema):
    position: Literal["top_left", "top_right", "bottom_left", "bottom_right"] = "bottom_right"
    offset_x: float | None = None
    offset_y: float | None = None


class Watermark(_Schema):
    """An overlay image (an Enterprise option)."""

    image: Asset
    opacity: float = Field(1.0, ge=0, le=1)
    scale: float = Field(1.0, gt=0)
    placement: WatermarkPlacement | None = None


class _Output(_Schema):
    """What every variant but ``cinematic_avatar`` shares: output and delivery settings."""

    title: str | None = None
    callback_id: str | None = None
    callback_url: str | None = None
    resolution: Resolution | None = None
    aspect_ratio: AspectRatio | None = None
    caption: Caption | None = None
    watermark: Watermark | None = None


class _Speech(_Schema):
    """A speaking source: ``script`` (with ``voice_id``) or one audio file."""

    script: Script | None = None
    voice_id: str | None = None
    voice_settings: VoiceSettings | None = None
    audio_url: str | None = None
    audio_asset_id: str | None = None

    @model_validator(mode="after")
    def _one_audio_source(self) -> Self:
        _one_audio(self.script, self.audio_url, self.audio_asset_id, needed=True)
        return self


class _Performance(_Schema):
    expressiveness: Expressiveness | None = None
    motion_prompt: str | None = None


# --- the single-shot variants -------------------------------------------------------------


class _SingleShot(_Output, _Speech, _Performance):
    background: Background | None = None
    fit: Literal["contain", "cover"] | None = None
    remove_background: bool | None = None
    output_format: Literal["mp4", "webm"] = "mp4"
    brand_glossary_id: str | None = None


class AvatarVideoRequest(_SingleShot):
    """``type: avatar``: a HeyGen avatar or look speaks; without ``voice_id`` its own voice."""

    type: Literal["avatar"]
    avatar_id: NonBlank
    engine: Engine | None = None


class ImageVideoRequest(_SingleShot):
    """``type: image``: an arbitrary image animated to the speech."""

    type: Literal["image"]
    image: Asset


class CinematicAvatarVideoRequest(_Schema):
    """``type: cinematic_avatar``: a prompt and 1-3 avatar looks; no script or voice."""

    type: Literal["cinematic_avatar"]
    prompt: NonBlank
    avatar_id: list[NonBlank] = Field(min_length=1, max_length=3)
    duration: int | None = Field(None, ge=4, le=15)
    auto_duration: bool = False
    enhance_prompt: bool = False
    references: list[Asset] | None = None
    resolution: Literal["720p", "1080p"] = "720p"
    aspect_ratio: Literal["16:9", "9:16", "1:1"] = "16:9"
    title: str | None = None


# --- studio ---------------------------------------------------------------------------------


class StudioBackground(_Schema):
    """A scene's background: colour only, as ``#RRGGBB``."""

    type: Literal["color"]
    color: Annotated[str, Field(pattern=HEX_COLOUR_6)]


class StudioAvatarInput(_Speech, _Performance):
    type: Literal["avatar"]
    avatar_id: NonBlank
    background: StudioBackground | None = None
    engine: Engine | None = None


class StudioImageInput(_Speech, _Performance):
    type: Literal["image"]
    image: Asset


class AvatarVideoScene(_Schema):
    """A speaking scene: an avatar, or an image animated to the speech."""

    type: Literal["avatar_video"]
    input: Annotated[StudioAvatarInput | StudioImageInput, Field(discriminator="type")]


class ImageScene(_Schema):
    """A still image: silent for ``duration`` seconds, or narrated by one audio source."""

    type: Literal["image"]
    source: Asset
    duration: float | None = Field(None, gt=0, le=MAX_IMAGE_SECONDS)
    script: Script | None = None
    voice_id: str | None = None
    voice_settings: VoiceSettings | None = None
    audio_url: str | None = None
    audio_asset_id: str | None = None

    @model_validator(mode="after")
    def _silent_or_narrated(self) -> Self:
        narrated = bool(_given(self.script, self.audio_url, self.audio_asset_id))
        if narrated and self.duration is not None:
            raise PydanticCustomError(
                "exclusive", "give duration (silent) or an audio source (narrated), not both"
            )
        _one_audio(self.script, self.audio_url, self.audio_asset_id, needed=False)
        if not narrated and self.duration is None:
            raise PydanticCustomError(
                "needs_one_of", "needs duration, script, audio_url or audio_asset_id"
            )
        return self


class Playback(_Schema):
    """A clip's sound: ``volume`` 0 (silent) to 1 (source level), or ``mute``."""

    volume: float = Field(1.0, ge=0, le=1)
    mute: bool = False


class VideoScene(_Schema):
    """A video clip."""

    type: Literal["video"]
    source: Asset
    playback: Playback | None = None


Scene = Annotated[AvatarVideoScene | ImageScene | VideoScene, Field(discriminator="type")]


class StudioVideoRequest(_Output):
    """``type: studio``: 1-50 whole-frame scenes in one video; output settings are global."""

    type: Literal["studio"]
    scenes: list[Scene] = Field(min_length=1, max_length=MAX_SCENES)


V3VideoRequest = Annotated[
    AvatarVideoRequest | ImageVideoRequest | StudioVideoRequest | CinematicAvatarVideoRequest,
    Field(discriminator="type"),
]
"""A ``POST /v3/videos`` body: one of the four variants, by its ``type``."""
