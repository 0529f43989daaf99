"""What a campaign would cost, before it is sent."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

# A typical speaking pace for avatar voices, in words per minute at speed 1.0.
WORDS_PER_MINUTE = 150.0
# Chinese, Japanese and Korean are written without spaces between words; two such
# characters are spoken in about the time of one English word.
CJK_CHARACTERS_PER_WORD = 2.0


@dataclass(frozen=True)
class PriceTable:
    """What the service charges, as the estimate assumes it: prices change, so they live
    here only, with the date they were last checked (shown by ``run --dry-run``)."""

    as_of: str
    credits_per_minute: float
    billing_step_minutes: float

    def basis(self) -> str:
        """One line saying how an estimate is made."""
        return (
            f"{WORDS_PER_MINUTE:g} spoken words a minute at speed 1.0; "
            f"{self.credits_per_minute:g} API credit a minute of video, billed in "
            f"{self.billing_step_minutes * 60:g}-second steps, at least one step a video "
            f"(price table of {self.as_of})"
        )


# HeyGen's API bills one credit per minute of video, counted in 30-second steps.
PRICES = PriceTable(as_of="2026-11-29", credits_per_minute=1.0, billing_step_minutes=0.5)

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def spoken_words(text: str) -> float:
    """How many English-word equivalents ``text`` takes to say."""
    if text.isascii():
        # No CJK character can be in it: the scan below would cost as much as the count.
        return float(len(text.split()))
    cjk = len(_CJK.findall(text))
    if not cjk:
        return float(len(text.split()))
    return len(_CJK.sub(" ", text).split()) + cjk / CJK_CHARACTERS_PER_WORD


def video_seconds(body: dict[str, Any]) -> tuple[float, int]:
    """Estimated length of one video (V2 or v3 body), and how many scenes it has of
    unknown length (audio, or a v3 video scene)."""
    if "video_inputs" not in body:
        return _v3_seconds(body)
    seconds = 0.0
    unknown_audio = 0
    for scene in body.get("video_inputs", []):
        voice = scene.get("voice", {})
        kind = voice.get("type")
        if kind == "text":
            words = spoken_words(str(voice.get("input_text", "")))
            speed = float(voice.get("speed", 1.0) or 1.0)
            seconds += words / WORDS_PER_MINUTE * 60.0 / speed
        elif kind == "silence":
            seconds += float(voice.get("duration", 1.0))
        elif kind == "audio":
            unknown_audio += 1
    return seconds, unknown_audio


def _v3_seconds(body: dict[str, Any]) -> tuple[float, int]:
    """A v3 body: its own script (``avatar``, ``image``), or each of its ``scenes``."""
    scenes = body.get("scenes")
    if not isinstance(scenes, list):
        return _v3_speech(body)
    seconds = 0.0
    unknown = 0
    for scene in scenes:
        if not isinstance(scene, dict):
            continue
        spoken = scene.get("input") if scene.get("type") == "avatar_video" else scene
        if isinstance(spoken, dict) and "duration" in spoken and "script" not in spoken:
            seconds += float(spoken["duration"])  # a silent image scene
        elif isinstance(spoken, dict) and scene.get("type") != "video":
            more, audio = _v3_speech(spoken)
            seconds += more
            unknown += audio
        else:
            unknown += 1
    return seconds, unknown


def _v3_speech(part: dict[str, Any]) -> tuple[float, int]:
    """What a v3 body or scene says: its ``script`` at its ``voice_settings.speed``."""
    script = part.get("script")
    if not isinstance(script, str):
        return 0.0, 1 if ("audio_url" in part or "audio_asset_id" in part) else 0
    settings = part.get("voice_settings")
    speed = settings.get("speed", 1.0) if isinstance(settings, dict) else 1.0
    return spoken_words(script) / WORDS_PER_MINUTE * 60.0 / float(speed or 1.0), 0


def video_credits(seconds: float) -> float:
    """Credits for one video of ``seconds``: whole 30-second steps, at least one."""
    step = PRICES.billing_step_minutes
    steps = max(1, math.ceil(seconds / 60.0 / step))
    return steps * step * PRICES.credits_per_minute


@dataclass(slots=True)
class CostEstimate:
    videos: int = 0
    seconds: float = 0.0
    credits: float = 0.0
    audio_scenes_unknown: int = 0
    test_videos: int = 0

    def add(self, body: dict[str, Any]) -> None:
        seconds, unknown = video_seconds(body)
        self.videos += 1
        self.seconds += seconds
        self.audio_scenes_unknown += unknown
        if body.get("test"):
            # Test videos are watermarked previews: the service charges nothing for them.
            self.test_videos += 1
        else:
            self.credits += video_credits(seconds)

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0


def estimated_seconds(body: dict[str, Any]) -> float | None:
    """The video length ``body`` should give, in seconds; None when nothing in it tells
    (a body of another shape, or only audio scenes of unknown length)."""
    seconds, _ = video_seconds(body)
    return seconds or None
