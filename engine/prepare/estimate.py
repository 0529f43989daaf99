"""What a campaign would cost, before it is sent."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# A typical speaking pace for avatar voices, in words per minute at speed 1.0.
WORDS_PER_MINUTE = 150.0
# HeyGen's API bills one credit per minute of video, counted in 30-second steps.
CREDITS_PER_MINUTE = 1.0
BILLING_STEP_MINUTES = 0.5


def video_seconds(body: dict[str, Any]) -> tuple[float, int]:
    """Estimated length of one video, and how many audio scenes it has of unknown length."""
    seconds = 0.0
    unknown_audio = 0
    for scene in body.get("video_inputs", []):
        voice = scene.get("voice", {})
        kind = voice.get("type")
        if kind == "text":
            words = len(str(voice.get("input_text", "")).split())
            speed = float(voice.get("speed", 1.0) or 1.0)
            seconds += words / WORDS_PER_MINUTE * 60.0 / speed
        elif kind == "silence":
            seconds += float(voice.get("duration", 1.0))
        elif kind == "audio":
            unknown_audio += 1
    return seconds, unknown_audio


@dataclass(slots=True)
class CostEstimate:
    videos: int = 0
    seconds: float = 0.0
    credits: float = 0.0
    audio_scenes_unknown: int = 0

    def add(self, body: dict[str, Any]) -> None:
        seconds, unknown = video_seconds(body)
        self.videos += 1
        self.seconds += seconds
        self.audio_scenes_unknown += unknown
        if not body.get("test"):
            steps = max(1, math.ceil(seconds / 60.0 / BILLING_STEP_MINUTES))
            self.credits += steps * BILLING_STEP_MINUTES * CREDITS_PER_MINUTE

    @property
    def minutes(self) -> float:
        return self.seconds / 60.0
