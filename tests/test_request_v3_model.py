"""The v3 request models: each documented limit passes at its edge, fails past it, and
the refusal names the field by the path the user wrote."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from engine.errors import Reason, RequestInvalid
from engine.request.v3 import (
    AvatarVideoRequest,
    CinematicAvatarVideoRequest,
    ImageVideoRequest,
    StudioVideoRequest,
    v3_request_json_schema,
    v3_request_to_body,
    validate_v3_request,
)

AVATAR: dict[str, Any] = {
    "type": "avatar",
    "avatar_id": "Brent_sitting_office_front",
    "script": "Hi Ada, welcome aboard.",
    "voice_id": "v1",
    "title": "Welcome Ada",
    "callback_id": "row-1",
}
IMAGE: dict[str, Any] = {
    "type": "image",
    "image": {"type": "url", "url": "https://example.com/ada.png"},
    "audio_url": "https://example.com/hello.mp3",
}
STUDIO: dict[str, Any] = {
    "type": "studio",
    "title": "Welcome Ada",
    "callback_id": "row-1",
    "resolution": "1080p",
    "aspect_ratio": "16:9",
    "scenes": [
        {
            "type": "avatar_video",
            "input": {
                "type": "avatar",
                "avatar_id": "a1",
                "script": "Hi Ada",
                "voice_id": "v1",
                "voice_settings": {"speed": 1.1},
                "background": {"type": "color", "color": "#1a2b3c"},
            },
        },
        {"type": "image", "source": {"type": "asset_id", "asset_id": "img1"}, "duration": 3},
        {
            "type": "video",
            "source": {"type": "url", "url": "https://example.com/clip.mp4"},
            "playback": {"volume": 0.5, "mute": False},
        },
    ],
}
# An avatar body with the nested settings a limit test reaches into.
DRESSED: dict[str, Any] = {
    **AVATAR,
    "background": {"type": "color", "value": "#ffffff"},
    "engine": {"type": "avatar_v"},
    "caption": {"file_format": "srt"},
}
CINEMATIC: dict[str, Any] = {
    "type": "cinematic_avatar",
    "prompt": "Ada walks into the office and waves",
    "avatar_id": ["look1"],
}


def problems(body: Any) -> list[tuple[str, str]]:
    with pytest.raises(RequestInvalid) as info:
        validate_v3_request(body)
    return [(e.path, e.message) for e in info.value.errors]


def changed(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``body`` with one dotted path (list indexes as numbers) set to ``value``."""
    copied = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = copied
    for part in parents:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[last] = value
    return copied


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (AVATAR, AvatarVideoRequest),
        (IMAGE, ImageVideoRequest),
        (STUDIO, StudioVideoRequest),
        (CINEMATIC, CinematicAvatarVideoRequest),
    ],
)
def test_each_type_validates_to_its_model_and_is_sent_as_written(body: Any, kind: type) -> None:
    model = validate_v3_request(body)

    assert isinstance(model, kind)
    assert v3_request_to_body(model) == body


def test_unknown_fields_pass_through_at_every_level() -> None:
    body = changed(STUDIO, "x_campaign", "spring")
    body = changed(body, "scenes.0.input.x_note", 7)
    body = changed(body, "scenes.1.source.x_hint", [1, 2])

    assert v3_request_to_body(validate_v3_request(body)) == body


def test_no_default_is_added_to_the_body() -> None:
    model = validate_v3_request({**AVATAR, "voice_settings": {"pitch": 3}})

    assert isinstance(model, AvatarVideoRequest)
    assert model.voice_settings is not None
    assert model.voice_settings.speed == 1.0
    assert v3_request_to_body(model)["voice_settings"] == {"pitch": 3.0}
    assert "output_format" not in v3_request_to_body(model)


def test_placeholders_rendered_as_strings_are_read_as_numbers() -> None:
    model = validate_v3_request(changed(AVATAR, "voice_settings.speed", "1.2"))

    assert v3_request_to_body(model)["voice_settings"] == {"speed": 1.2}


# Each limit: a value at the edge that passes, one past it that fails, and the message.
LIMITS = [
    (AVATAR, "script", "a" * 5000, "a" * 5001, "must be at most 5,000 characters (got 5,001)"),
    (AVATAR, "voice_settings.speed", 0.5, 0.49, "must be between 0.5 and 1.5, got 0.49"),
    (AVATAR, "voice_settings.speed", 1.5, 1.6, "must be between 0.5 and 1.5, got 1.6"),
    (AVATAR, "voice_settings.pitch", -50, -51, "must be between -50 and 50, got -51"),
    (AVATAR, "voice_settings.pitch", 50, 50.5, "must be between -50 and 50, got 50.5"),
    (AVATAR, "voice_settings.volume", 0, -0.1, "must be between 0 and 1, got -0.1"),
    (AVATAR, "voice_settings.volume", 1, 1.01, "must be between 0 and 1, got 1.01"),
    (AVATAR, "resolution", "4k", "8k", "must be one of 720p, 1080p, 4k, got '8k'"),
    (
        AVATAR,
        "aspect_ratio",
        "auto",
        "2:1",
        "must be one of 16:9, 9:16, 4:5, 5:4, 1:1, auto, got '2:1'",
    ),
    (
        DRESSED,
        "background.value",
        "#008000",
        "green",
        "must be a hex colour like #f6f6fc, got 'green'",
    ),
    (
        DRESSED,
        "engine.type",
        "avatar_iii",
        "avatar_x",
        "must be one of avatar_iv, avatar_v, avatar_iii, got 'avatar_x'",
    ),
    (DRESSED, "caption.file_format", "srt", "vtt", "must be one of srt, got 'vtt'"),
    (DRESSED, "caption.style", "default", "fancy", "must be one of default, got 'fancy'"),
    (AVATAR, "fit", "contain", "stretch", "must be one of contain, cover, got 'stretch'"),
    (AVATAR, "title", "Welcome", {"a": 1}, "must be text, got an object"),
    (AVATAR, "avatar_id", "a1", " ", "must not be blank"),
    (STUDIO, "scenes.0.input.voice_settings.speed", 1.5, 2, "must be between 0.5 and 1.5, got 2"),
    (
        STUDIO,
        "scenes.0.input.background.color",
        "#ABCDEF",
        "#abc",
        "must be a 6-digit hex colour like #1a2b3c, got '#abc'",
    ),
    (STUDIO, "scenes.1.duration", 300, 300.5, "must be more than 0 and at most 300, got 300.5"),
    (STUDIO, "scenes.1.duration", 0.1, 0, "must be more than 0 and at most 300, got 0"),
    (STUDIO, "scenes.2.playback.volume", 0, 1.5, "must be between 0 and 1, got 1.5"),
    (STUDIO, "scenes.2.playback.mute", True, "loud", "must be true or false, got 'loud'"),
    (
        STUDIO,
        "scenes.2.source.type",
        "url",
        "ftp",
        "must be one of url, asset_id, base64, got 'ftp'",
    ),
    (CINEMATIC, "duration", 15, 16, "must be between 4 and 15, got 16"),
    (CINEMATIC, "resolution", "1080p", "4k", "must be one of 720p, 1080p, got '4k'"),
]


@pytest.mark.parametrize(
    ("body", "path", "good", "bad", "message"),
    LIMITS,
    ids=[f"{b['type']}.{p}={bad!r}"[:60] for b, p, _, bad, _ in LIMITS],
)
def test_a_limit_passes_at_its_edge_and_fails_past_it(
    body: dict[str, Any], path: str, good: Any, bad: Any, message: str
) -> None:
    validate_v3_request(changed(body, path, good))

    shown = path.replace(".0.", "[0].").replace(".1.", "[1].").replace(".2.", "[2].")
    assert problems(changed(body, path, bad)) == [(shown, message)]


def test_script_and_audio_are_exclusive_and_an_avatar_needs_one() -> None:
    both = {**AVATAR, "audio_url": "https://example.com/a.mp3"}
    neither = {k: v for k, v in AVATAR.items() if k != "script"}

    assert problems(both) == [("", "give only one of script, audio_url and audio_asset_id")]
    assert problems(neither) == [("", "needs script, audio_url or audio_asset_id")]
    validate_v3_request({**neither, "audio_asset_id": "aud1"})


def test_a_blank_script_counts_as_absent() -> None:
    assert problems({**AVATAR, "script": ""}) == [("", "needs script, audio_url or audio_asset_id")]
    validate_v3_request({**AVATAR, "script": "", "audio_asset_id": "aud1"})


def test_an_image_video_needs_one_audio_source_too() -> None:
    silent = {k: v for k, v in IMAGE.items() if k != "audio_url"}

    assert problems(silent) == [("", "needs script, audio_url or audio_asset_id")]
    assert problems({**IMAGE, "audio_asset_id": "a1"}) == [
        ("", "give only one of script, audio_url and audio_asset_id")
    ]


def test_a_studio_avatar_scene_needs_one_audio_source() -> None:
    body = changed(STUDIO, "scenes.0.input.audio_url", "https://example.com/a.mp3")

    assert problems(body) == [
        ("scenes[0].input", "give only one of script, audio_url and audio_asset_id")
    ]


def test_an_image_scene_is_silent_or_narrated_never_both_nor_neither() -> None:
    narrated = changed(STUDIO, "scenes.1.script", "Look at this")
    del narrated["scenes"][1]["duration"]
    validate_v3_request(narrated)
    both = changed(STUDIO, "scenes.1.audio_url", "https://example.com/a.mp3")
    neither = copy.deepcopy(STUDIO)
    del neither["scenes"][1]["duration"]

    assert problems(both) == [
        ("scenes[1]", "give duration (silent) or an audio source (narrated), not both")
    ]
    assert problems(neither) == [
        ("scenes[1]", "needs duration, script, audio_url or audio_asset_id")
    ]


def test_an_image_background_takes_a_url_or_an_asset_id_never_both() -> None:
    good = {**AVATAR, "background": {"type": "image", "asset_id": "bg1"}}
    both = {**AVATAR, "background": {"type": "image", "asset_id": "bg1", "url": "https://x"}}

    validate_v3_request(good)
    assert problems(both) == [("background", "needs exactly one of url and asset_id")]


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, [("scenes", "must have 1 to 50 entries, got 0")]), (50, []), (51, None)],
)
def test_a_studio_video_has_1_to_50_scenes(count: int, expected: Any) -> None:
    scene = STUDIO["scenes"][1]
    body = {**STUDIO, "scenes": [scene] * count}

    if expected == []:
        validate_v3_request(body)
    else:
        assert problems(body) == (expected or [("scenes", "must have 1 to 50 entries, got 51")])


def test_a_scene_of_unknown_type_names_the_choices() -> None:
    body = changed(STUDIO, "scenes.2.type", "slide")

    assert problems(body) == [
        ("scenes[2].type", "must be one of avatar_video, image, video, got 'slide'")
    ]


def test_the_error_path_reaches_into_a_scene_input_image() -> None:
    body = copy.deepcopy(STUDIO)
    body["scenes"][0]["input"] = {
        "type": "image",
        "image": {"type": "base64", "media_type": "image/png"},
        "audio_asset_id": "a1",
    }

    assert problems(body) == [("scenes[0].input.image.data", "required")]


def test_every_problem_is_listed_with_the_schema_reason() -> None:
    body = changed(AVATAR, "voice_settings.speed", 3)
    body = changed(body, "resolution", "8k")

    with pytest.raises(RequestInvalid) as info:
        validate_v3_request(body)

    assert [e.path for e in info.value.errors] == ["voice_settings.speed", "resolution"]
    assert {e.reason for e in info.value.errors} == {Reason.SCHEMA}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"avatar_id": "a"},
            [("type", "required (one of avatar, image, studio, cinematic_avatar)")],
        ),
        (
            {"type": "talking_photo"},
            [
                (
                    "type",
                    "must be one of avatar, image, studio, cinematic_avatar, got 'talking_photo'",
                )
            ],
        ),
        (["not", "an", "object"], [("", "must be an object, got a list")]),
        ({"type": "avatar", "script": "hi"}, [("avatar_id", "required")]),
        ({"type": "studio"}, [("scenes", "required")]),
    ],
)
def test_top_level_shape_errors(body: Any, expected: list[tuple[str, str]]) -> None:
    assert problems(body) == expected


def test_a_v2_body_is_told_it_is_v2() -> None:
    v2 = {"video_inputs": [{"voice": {"type": "text", "input_text": "x", "voice_id": "v"}}]}

    [(path, message)] = problems(v2)

    assert path == "type"
    assert "V2 body" in message


def test_the_json_schema_is_a_one_of_by_type_with_the_limits() -> None:
    schema = v3_request_json_schema()
    text = json.dumps(schema)

    assert set(schema["discriminator"]["mapping"]) == {
        "avatar",
        "image",
        "studio",
        "cinematic_avatar",
    }
    studio = schema["$defs"]["StudioVideoRequest"]
    assert studio["properties"]["scenes"]["maxItems"] == 50
    assert studio["additionalProperties"] is True
    assert '"maxLength": 5000' in text
