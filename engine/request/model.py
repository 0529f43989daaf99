"""The V2 ``POST /v2/video/generate`` body, as pydantic models.

Limits follow CONTRACT section 6 where it differs from the seed (avatar scale 0-5, even
dimensions 128-4096, extra top-level fields). A field HeyGen's V2 reference documents as
optional is optional here, with its documented default (``dimension`` 1920x1080). Every
model keeps unknown fields (``extra="allow"``) so a field the service accepts and we do
not know yet is sent untouched. Numbers and booleans are validated in lax mode because
templates render a whole-value placeholder as a string (``"speed": "1.1"``); numbers are
accepted where text is expected because JSONL variables may be numbers
(``"callback_id": 123``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)
from pydantic_core import PydanticCustomError

NOT_BLANK = r"\S"
HEX_COLOUR = r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$"
#: v3 studio scene backgrounds take exactly ``#RRGGBB``.
HEX_COLOUR_6 = r"^#[0-9a-fA-F]{6}$"
MAX_INPUT_TEXT = 4999  # the service wants "under 5,000 characters"

NonBlank = Annotated[str, Field(pattern=NOT_BLANK)]
HexColour = Annotated[str, Field(pattern=HEX_COLOUR)]
Fit = Literal["cover", "crop", "contain", "none"]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="allow", coerce_numbers_to_str=True)


def _needs_one_of(first: str | None, second: str | None, names: str) -> None:
    # Blank counts as absent: an empty spreadsheet cell must not pass as an asset.
    if not (first or second):
        raise PydanticCustomError("needs_one_of", "needs {names}", {"names": names})


# --- characters ---------------------------------------------------------------------------


class Offset(_Schema):
    """Position offset of the character."""

    # Frozen, so the shared default below is never copied: a default_factory would run
    # Python for every character of every row (a fifth of a row's validation).
    model_config = ConfigDict(frozen=True)

    x: float = 0.0
    y: float = 0.0


class AvatarSettings(_Schema):
    """An avatar as the scene's character."""

    type: Literal["avatar"]
    avatar_id: NonBlank
    scale: float = Field(1.0, ge=0, le=5)
    avatar_style: Literal["circle", "normal", "closeUp"] | None = "normal"
    offset: Offset = Offset()
    matting: bool | None = None
    circle_background_color: HexColour | None = None


class TalkingPhotoSettings(_Schema):
    """A talking photo as the scene's character."""

    type: Literal["talking_photo"]
    talking_photo_id: NonBlank
    scale: float = Field(1.0, ge=0, le=2)
    talking_photo_style: Literal["square", "circle"] | None = None
    offset: Offset = Offset()
    talking_style: Literal["stable", "expressive"] = "stable"
    expression: Literal["default", "happy"] = "default"
    super_resolution: bool | None = None
    matting: bool | None = None
    circle_background_color: HexColour | None = None


Character = Annotated[AvatarSettings | TalkingPhotoSettings, Field(discriminator="type")]


# --- voices -------------------------------------------------------------------------------


class TextVoiceSettings(_Schema):
    """Speech synthesised from text."""

    type: Literal["text"]
    voice_id: NonBlank
    input_text: Annotated[str, Field(pattern=NOT_BLANK, max_length=MAX_INPUT_TEXT)]
    speed: float = Field(1.0, ge=0.5, le=1.5)
    pitch: int = Field(0, ge=-50, le=50)
    emotion: Literal["Excited", "Friendly", "Serious", "Soothing", "Broadcaster"] | None = None


class AudioVoiceSettings(_Schema):
    """A recorded audio track, by URL or uploaded asset."""

    type: Literal["audio"]
    audio_url: str | None = None
    audio_asset_id: str | None = None

    @model_validator(mode="after")
    def _has_audio(self) -> Self:
        _needs_one_of(self.audio_url, self.audio_asset_id, "audio_url or audio_asset_id")
        return self


class SilenceVoiceSettings(_Schema):
    """A silent scene."""

    type: Literal["silence"]
    duration: float = Field(1.0, ge=1, le=100)


Voice = Annotated[
    TextVoiceSettings | AudioVoiceSettings | SilenceVoiceSettings, Field(discriminator="type")
]


# --- backgrounds --------------------------------------------------------------------------


class ColorBackground(_Schema):
    """A plain colour; the service's default background type."""

    type: Literal["color"] = "color"
    value: HexColour = "#f6f6fc"


class ImageBackground(_Schema):
    """An image, by URL or uploaded asset."""

    type: Literal["image"]
    url: str | None = None
    image_asset_id: str | None = None
    fit: Fit = "cover"

    @model_validator(mode="after")
    def _has_image(self) -> Self:
        _needs_one_of(self.url, self.image_asset_id, "url or image_asset_id")
        return self


class VideoBackground(_Schema):
    """A video, by URL or uploaded asset."""

    type: Literal["video"]
    url: str | None = None
    video_asset_id: str | None = None
    # Documented without a default: the service chooses when it is left out.
    play_style: Literal["fit_to_scene", "freeze", "loop", "once"] | None = None
    fit: Fit = "cover"

    @model_validator(mode="after")
    def _has_video(self) -> Self:
        _needs_one_of(self.url, self.video_asset_id, "url or video_asset_id")
        return self


def _background_type(value: Any) -> str | None:
    # The seed makes "color" the default type, so a background without one is a colour.
    if isinstance(value, Mapping):
        tag = value.get("type", "color")
        return tag if isinstance(tag, str) else str(tag)
    tag = getattr(value, "type", None)
    return tag if isinstance(tag, str) else None


Background = Annotated[
    Annotated[ColorBackground, Tag("color")]
    | Annotated[ImageBackground, Tag("image")]
    | Annotated[VideoBackground, Tag("video")],
    Discriminator(_background_type),
]


# --- the request --------------------------------------------------------------------------


class Dimension(_Schema):
    """Output size in pixels."""

    # Frozen so the request's default below is shared, as Offset's is.
    model_config = ConfigDict(frozen=True)

    width: int = Field(default=1920, ge=128, le=4096, multiple_of=2)
    height: int = Field(default=1080, ge=128, le=4096, multiple_of=2)


class VideoInput(_Schema):
    """One scene."""

    character: Character | None = None
    voice: Voice
    background: Background | None = None


class VideoRequest(_Schema):
    """A Create Avatar Video (V2) request body."""

    video_inputs: list[VideoInput] = Field(min_length=1, max_length=50)
    # The service renders 1920x1080 when it is left out; request_to_body sends only what
    # the user wrote, so this default is for readers of the model, never added to a body.
    dimension: Dimension = Dimension()
    caption: bool = False
    title: str | None = None
    callback_id: str | None = None
    folder_id: str | None = None
    callback_url: str | None = None
    caption_mode: Literal["file_only", "burn_in"] | None = None
    fps: float | None = Field(25.0, gt=0)
    enable_watermark: bool | None = False
    test: bool | None = Field(False, description="Lower quality, no credits spent.")
