"""The V2 request models: what passes, what is refused, and how the refusal reads."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from engine.errors import FieldError, RequestInvalid
from engine.request import (
    VideoRequest,
    request_json_schema,
    request_to_body,
    validate_request,
)

# Seed page 1's curl example, verbatim.
SEED_CURL_BODY: dict[str, Any] = {
    "video_inputs": [
        {
            "character": {
                "type": "avatar",
                "avatar_id": "Brent_sitting_office_front",
                "avatar_style": "normal",
            },
            "voice": {
                "type": "text",
                "input_text": "Welcome to HeyGen API",
                "voice_id": "ff2ecc8fbdef4273a28bed7b5e35bb57",
            },
        }
    ],
    "caption": False,
    "dimension": {"width": 1920, "height": 1080},
}

# Seed page 2's example: not a V2 body (no video_inputs).
SEED_PAGE2_BODY: dict[str, Any] = {
    "title": "Welcome Video",
    "character": {"type": "avatar", "avatar_id": "abc123", "settings": {}},
    "voice": {"type": "en-US-1", "settings": {}},
    "dimensions": {"width": 1920, "height": 1080},
    "script": {"text": "Hello, welcome to my video!"},
}


def problems(body: Any) -> list[tuple[str, str]]:
    with pytest.raises(RequestInvalid) as info:
        validate_request(body)
    return [(e.path, e.message) for e in info.value.errors]


def changed(path: str, value: Any) -> dict[str, Any]:
    """The seed body with one dotted path (list indexes as numbers) set to ``value``."""
    body = copy.deepcopy(SEED_CURL_BODY)
    *parents, last = path.split(".")
    node: Any = body
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = value
    return body


def test_seed_curl_example_validates_and_round_trips() -> None:
    model = validate_request(SEED_CURL_BODY)

    assert isinstance(model, VideoRequest)
    assert request_to_body(model) == SEED_CURL_BODY


def test_seed_page2_example_is_rejected_as_not_v2() -> None:
    found = problems(SEED_PAGE2_BODY)

    [message] = [m for p, m in found if p == "video_inputs"]
    assert message.startswith("required")
    assert "inside video_inputs" in message


ISSUE_12_BODY: dict[str, Any] = {
    "video_inputs": [
        {
            "character": {"type": "avatar", "avatar_id": "a1", "avatar_style": "normal"},
            "voice": {"type": "text", "input_text": "Hi", "voice_id": "v1"},
            "background": {"type": "color", "value": "#008000"},
        }
    ]
}


def test_a_body_without_dimension_validates_is_sent_as_written_and_reads_as_1920x1080() -> None:
    model = validate_request(ISSUE_12_BODY)

    assert (model.dimension.width, model.dimension.height) == (1920, 1080)
    assert request_to_body(model) == ISSUE_12_BODY


def test_a_dimension_with_one_side_takes_the_documented_default_for_the_other() -> None:
    model = validate_request({**ISSUE_12_BODY, "dimension": {"width": 1080}})

    assert (model.dimension.width, model.dimension.height) == (1080, 1080)
    assert request_to_body(model)["dimension"] == {"width": 1080}


def test_a_video_background_without_play_style_validates_and_none_is_added() -> None:
    background = {"type": "video", "url": "https://example.com/b.mp4"}
    scene = {**ISSUE_12_BODY["video_inputs"][0], "background": background}
    body = {"video_inputs": [scene]}

    model = validate_request(body)

    assert request_to_body(model)["video_inputs"][0]["background"] == background
    bounce = {**scene, "background": {**background, "play_style": "bounce"}}
    assert problems({"video_inputs": [bounce]}) == [
        (
            "video_inputs[0].background.play_style",
            "must be one of fit_to_scene, freeze, loop, once, got 'bounce'",
        )
    ]


def test_missing_video_inputs_without_old_fields_says_just_required() -> None:
    assert problems({"dimension": {"width": 1280, "height": 720}}) == [("video_inputs", "required")]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            "video_inputs.0.voice.speed",
            3.0,
            ("video_inputs[0].voice.speed", "must be between 0.5 and 1.5, got 3.0"),
        ),
        (
            "video_inputs.0.voice.speed",
            "fast",
            ("video_inputs[0].voice.speed", "must be a number, got 'fast'"),
        ),
        (
            "video_inputs.0.voice.pitch",
            2.5,
            ("video_inputs[0].voice.pitch", "must be a whole number, got 2.5"),
        ),
        (
            "video_inputs.0.voice.pitch",
            -51,
            ("video_inputs[0].voice.pitch", "must be between -50 and 50, got -51"),
        ),
        (
            "video_inputs.0.voice.emotion",
            "Angry",
            (
                "video_inputs[0].voice.emotion",
                "must be one of Excited, Friendly, Serious, Soothing, Broadcaster, got 'Angry'",
            ),
        ),
        (
            "video_inputs.0.voice.input_text",
            "   ",
            ("video_inputs[0].voice.input_text", "must not be blank"),
        ),
        (
            "video_inputs.0.voice.input_text",
            "a" * 5012,
            ("video_inputs[0].voice.input_text", "must be under 5,000 characters (got 5,012)"),
        ),
        (
            "video_inputs.0.voice.voice_id",
            "",
            ("video_inputs[0].voice.voice_id", "must not be blank"),
        ),
        (
            "video_inputs.0.character.avatar_style",
            "big",
            (
                "video_inputs[0].character.avatar_style",
                "must be one of circle, normal, closeUp, got 'big'",
            ),
        ),
        (
            "video_inputs.0.character.scale",
            5.5,
            ("video_inputs[0].character.scale", "must be between 0 and 5, got 5.5"),
        ),
        (
            "video_inputs.0.character.circle_background_color",
            "red",
            (
                "video_inputs[0].character.circle_background_color",
                "must be a hex colour like #f6f6fc, got 'red'",
            ),
        ),
        (
            "video_inputs.0.voice.type",
            "tts",
            (
                "video_inputs[0].voice.type",
                "must be one of text, audio, silence, got 'tts'",
            ),
        ),
        (
            "video_inputs.0.character.type",
            "robot",
            (
                "video_inputs[0].character.type",
                "must be one of avatar, talking_photo, got 'robot'",
            ),
        ),
        ("dimension.width", 1281, ("dimension.width", "must be an even number, got 1281")),
        ("dimension.height", 4098, ("dimension.height", "must be between 128 and 4096, got 4098")),
        ("dimension", "1080p", ("dimension", "must be an object, got '1080p'")),
        ("caption", "maybe", ("caption", "must be true or false, got 'maybe'")),
        ("title", ["a"], ("title", "must be text, got a list")),
        ("video_inputs", [], ("video_inputs", "must have 1 to 50 entries, got 0")),
        ("video_inputs", "scene", ("video_inputs", "must be a list, got 'scene'")),
        (
            "caption_mode",
            "sidecar",
            ("caption_mode", "must be one of file_only, burn_in, got 'sidecar'"),
        ),
        ("fps", 0, ("fps", "must be more than 0, got 0")),
        ("test", "perhaps", ("test", "must be true or false, got 'perhaps'")),
    ],
)
def test_each_problem_is_named_by_path_in_plain_words(
    path: str, value: Any, expected: tuple[str, str]
) -> None:
    assert problems(changed(path, value)) == [expected]


def test_long_values_are_shortened_in_messages() -> None:
    [(_, message)] = problems(changed("video_inputs.0.voice.speed", "x" * 300))

    assert len(message) < 80


def test_required_fields_inside_a_scene() -> None:
    body = changed("video_inputs.0.voice", {"type": "text"})

    assert problems(body) == [
        ("video_inputs[0].voice.voice_id", "required"),
        ("video_inputs[0].voice.input_text", "required"),
    ]


def test_missing_union_type_is_one_error_on_type() -> None:
    body = changed("video_inputs.0.voice", {"voice_id": "v", "input_text": "hi"})

    assert problems(body) == [
        ("video_inputs[0].voice.type", "required (one of text, audio, silence)")
    ]


def test_a_bad_variant_gets_only_its_own_errors_not_one_per_variant() -> None:
    body = changed("video_inputs.0.voice", {"type": "silence", "duration": 0})

    assert problems(body) == [
        ("video_inputs[0].voice.duration", "must be between 1 and 100, got 0")
    ]


@pytest.mark.parametrize(
    ("part", "value", "message"),
    [
        ("voice", {"type": "audio"}, "needs audio_url or audio_asset_id"),
        ("voice", {"type": "audio", "audio_url": ""}, "needs audio_url or audio_asset_id"),
        ("background", {"type": "image", "fit": "cover"}, "needs url or image_asset_id"),
        ("background", {"type": "video", "play_style": "loop"}, "needs url or video_asset_id"),
    ],
)
def test_asset_sources_need_a_url_or_an_asset_id(
    part: str, value: dict[str, Any], message: str
) -> None:
    assert problems(changed(f"video_inputs.0.{part}", value)) == [
        (f"video_inputs[0].{part}", message)
    ]


@pytest.mark.parametrize(
    "value",
    [
        {"type": "audio", "audio_asset_id": "a1"},
        {"type": "audio", "audio_url": "https://x.test/a.mp3"},
        {"type": "silence", "duration": 100},
    ],
)
def test_other_voices_are_accepted(value: dict[str, Any]) -> None:
    body = changed("video_inputs.0.voice", value)

    assert request_to_body(validate_request(body)) == body


def test_every_problem_is_reported_at_once() -> None:
    body = changed("video_inputs.0.voice.speed", 9)
    body["dimension"]["width"] = 99
    body["video_inputs"].append({"voice": {"type": "silence", "duration": 101}})

    assert [path for path, _ in problems(body)] == [
        "video_inputs[0].voice.speed",
        "video_inputs[1].voice.duration",
        "dimension.width",
    ]


def test_the_exception_text_is_no_pydantic_dump() -> None:
    with pytest.raises(RequestInvalid) as info:
        validate_request(changed("video_inputs.0.voice.speed", 3.0))

    text = str(info.value)
    assert text == "video_inputs[0].voice.speed: must be between 0.5 and 1.5, got 3.0"
    assert info.value.__cause__ is None
    assert info.value.errors == (
        FieldError("video_inputs[0].voice.speed", "must be between 0.5 and 1.5, got 3.0"),
    )


def test_a_body_that_is_not_an_object_is_refused_as_a_whole() -> None:
    assert problems(["video_inputs"]) == [("", "must be an object, got a list")]


def test_template_strings_are_typed_by_the_schema() -> None:
    body = changed("video_inputs.0.voice.speed", "1.1")
    body["video_inputs"][0]["voice"]["pitch"] = "5"
    body["video_inputs"][0]["character"]["scale"] = "0.8"
    body["caption"] = "true"
    body["dimension"] = {"width": "1280", "height": "720"}
    body["test"] = "false"

    sent = request_to_body(validate_request(body))

    assert sent["video_inputs"][0]["voice"]["speed"] == 1.1
    assert sent["video_inputs"][0]["voice"]["pitch"] == 5
    assert sent["video_inputs"][0]["character"]["scale"] == 0.8
    assert sent["caption"] is True
    assert sent["dimension"] == {"width": 1280, "height": 720}
    assert sent["test"] is False


def test_numbers_where_text_is_expected_become_text() -> None:
    body = changed("callback_id", 12345)
    body["video_inputs"][0]["voice"]["voice_id"] = 7

    sent = request_to_body(validate_request(body))

    assert sent["callback_id"] == "12345"
    assert sent["video_inputs"][0]["voice"]["voice_id"] == "7"


def test_unknown_fields_are_kept_everywhere() -> None:
    body = copy.deepcopy(SEED_CURL_BODY)
    body["brand_kit_id"] = "bk1"
    body["dimension"]["dpi"] = 72
    scene = body["video_inputs"][0]
    scene["transition"] = {"kind": "fade", "ms": [1, 2]}
    scene["character"]["lipsync"] = None
    scene["voice"]["locale"] = "en-GB"
    scene["background"] = {"type": "color", "value": "#000000", "blur": 3}

    assert request_to_body(validate_request(body)) == body


def test_defaults_are_not_added_to_the_body() -> None:
    model = validate_request(SEED_CURL_BODY)
    voice = model.video_inputs[0].voice

    assert voice.type == "text"
    assert voice.speed == 1.0  # the model knows the default
    assert "speed" not in request_to_body(model)["video_inputs"][0]["voice"]  # the body does not


def test_a_background_without_type_is_a_colour() -> None:
    body = changed("video_inputs.0.background", {"value": "#abc"})

    model = validate_request(body)

    assert model.video_inputs[0].background is not None
    assert model.video_inputs[0].background.type == "color"
    assert request_to_body(model) == body


def test_contract_limits_override_the_seed() -> None:
    avatar = changed("video_inputs.0.character.scale", 4.5)
    photo = changed(
        "video_inputs.0.character", {"type": "talking_photo", "talking_photo_id": "p", "scale": 2.5}
    )

    assert request_to_body(validate_request(avatar)) == avatar
    assert problems(photo) == [
        ("video_inputs[0].character.scale", "must be between 0 and 2, got 2.5")
    ]


def test_contract_top_level_fields_are_typed() -> None:
    body = {
        **SEED_CURL_BODY,
        "folder_id": "f1",
        "callback_url": "https://hooks.test/done",
        "caption_mode": "burn_in",
        "fps": "30",
        "enable_watermark": "false",
        "test": True,
    }

    model = validate_request(body)

    assert (model.fps, model.enable_watermark, model.test) == (30.0, False, True)
    assert model.caption_mode == "burn_in"


def test_fifty_scenes_pass_and_fifty_one_do_not() -> None:
    scene = SEED_CURL_BODY["video_inputs"][0]
    fifty = {**SEED_CURL_BODY, "video_inputs": [scene] * 50}

    assert len(validate_request(fifty).video_inputs) == 50
    assert problems({**fifty, "video_inputs": [scene] * 51}) == [
        ("video_inputs", "must have 1 to 50 entries, got 51")
    ]


def test_json_schema_describes_the_body() -> None:
    schema = request_json_schema()

    assert schema["required"] == ["video_inputs"]
    assert schema["$defs"]["Dimension"]["properties"]["width"]["default"] == 1920
    assert schema["properties"]["video_inputs"]["maxItems"] == 50
    assert schema["additionalProperties"] is True
    text_voice = schema["$defs"]["TextVoiceSettings"]["properties"]
    assert (text_voice["speed"]["minimum"], text_voice["speed"]["maximum"]) == (0.5, 1.5)
