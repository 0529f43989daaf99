"""How long the sandbox says a requested video runs, for both APIs.

Speech is timed at 150 words a minute scaled by its speed; a file whose length is only
known by fetching it (an audio track, a v3 video clip) counts ``AUDIO_SCENE_SECONDS``.
"""

from __future__ import annotations

from engine.request.model import SilenceVoiceSettings, TextVoiceSettings, VideoRequest
from engine.request.v3.model import (
    AvatarVideoScene,
    CinematicAvatarVideoRequest,
    ImageScene,
    StudioVideoRequest,
    V3VideoRequest,
    VoiceSettings,
)

WORDS_PER_MINUTE = 150
#: An audio scene's real length is unknown without fetching it; assume this much.
AUDIO_SCENE_SECONDS = 10.0
#: ``cinematic_avatar`` without ``duration``: the service's documented default.
CINEMATIC_DEFAULT_SECONDS = 10.0


def _speech_seconds(script: str | None, settings: VoiceSettings | None) -> float:
    if not script:
        return AUDIO_SCENE_SECONDS
    speed = settings.speed if settings is not None else 1.0
    return len(script.split()) * 60 / WORDS_PER_MINUTE / speed


def estimate_duration(request: VideoRequest) -> float:
    """Seconds of a V2 video: text at 150 words/min scaled by speed, plus silences and audio."""
    seconds = 0.0
    for scene in request.video_inputs:
        voice = scene.voice
        if isinstance(voice, TextVoiceSettings):
            seconds += len(voice.input_text.split()) * 60 / WORDS_PER_MINUTE / voice.speed
        elif isinstance(voice, SilenceVoiceSettings):
            seconds += voice.duration
        else:
            seconds += AUDIO_SCENE_SECONDS
    return round(seconds, 3)


def estimate_v3_duration(request: V3VideoRequest) -> float:
    """Seconds of a v3 video: its speech, silent image scenes' ``duration``, and clips."""
    if isinstance(request, CinematicAvatarVideoRequest):
        return float(request.duration or CINEMATIC_DEFAULT_SECONDS)
    if not isinstance(request, StudioVideoRequest):
        return round(_speech_seconds(request.script, request.voice_settings), 3)
    seconds = 0.0
    for scene in request.scenes:
        if isinstance(scene, AvatarVideoScene):
            seconds += _speech_seconds(scene.input.script, scene.input.voice_settings)
        elif isinstance(scene, ImageScene) and scene.duration is not None:
            seconds += scene.duration
        elif isinstance(scene, ImageScene):
            seconds += _speech_seconds(scene.script, scene.voice_settings)
        else:
            seconds += AUDIO_SCENE_SECONDS
    return round(seconds, 3)
