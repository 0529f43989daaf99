"""What a request body will say, scene by scene, read from either API's shape.

V2 (``video_inputs``): each scene's ``voice`` is text (``input_text``), audio or
silence. v3 (``type``): ``script`` for an avatar video, or ``scenes[].input.script``
(``scenes[].script`` for an image scene) for a studio video. Read defensively: a body
shown before validation may have any shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _v2_voice(voice: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, what is heard) of one V2 scene's voice."""
    kind = voice.get("type")
    if kind == "text" or "input_text" in voice:
        return "input_text", str(voice.get("input_text", ""))
    if kind == "audio":
        return "audio_url", f"(audio: {voice.get('audio_url') or voice.get('audio_asset_id')})"
    if kind == "silence":
        return "duration", f"(silence: {voice.get('duration', 1)} s)"
    return None


def _v3_scene(scene: Mapping[str, Any]) -> tuple[str, str] | None:
    """(field, what is heard) of one v3 studio scene: its input's script, or its own."""
    prefix, source = ("input.", _mapping(scene["input"])) if "input" in scene else ("", scene)
    if "script" in source:
        return prefix + "script", str(source["script"])
    for field in ("audio_url", "audio_asset_id"):
        if source.get(field):
            return prefix + field, f"(audio: {source[field]})"
    if "duration" in scene:
        return "duration", f"(silence: {scene['duration']} s)"
    return None


def spoken_parts(body: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(where, text) for each part of ``body`` that is heard, in order: ``where`` is the
    field's path (``video_inputs[0].voice.input_text``, ``script``,
    ``scenes[1].input.script``); audio and silence show as ``(audio: URL)`` and
    ``(silence: N s)``. Empty when the body has no recognisable voice."""
    parts: list[tuple[str, str]] = []
    if "video_inputs" in body:
        for i, scene in enumerate(_list(body.get("video_inputs"))):
            found = _v2_voice(_mapping(_mapping(scene).get("voice")))
            if found is not None:
                parts.append((f"video_inputs[{i}].voice.{found[0]}", found[1]))
        return parts
    if "script" in body:
        parts.append(("script", str(body["script"])))
    elif body.get("audio_url") or body.get("audio_asset_id"):
        parts.append(
            ("audio_url", f"(audio: {body.get('audio_url') or body.get('audio_asset_id')})")
        )
    for i, scene in enumerate(_list(body.get("scenes"))):
        found = _v3_scene(_mapping(scene))
        if found is not None:
            parts.append((f"scenes[{i}].{found[0]}", found[1]))
    return parts
