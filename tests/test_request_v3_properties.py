"""Properties of the v3 models: every valid body round-trips unchanged, every number
outside its range is refused by its path, whatever the rest of the body holds."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import RequestInvalid
from engine.request.v3 import v3_request_to_body, validate_v3_request

SETTINGS = settings(max_examples=60, deadline=None)

words = st.text(st.characters(categories=("L", "N", "P", "Zs")), min_size=1, max_size=30).filter(
    lambda s: re.search(r"\S", s) is not None
)
hex6 = st.from_regex(r"\A#[0-9a-fA-F]{6}\Z")
hex_colours = st.one_of(hex6, st.from_regex(r"\A#[0-9a-fA-F]{3}\Z"))


def between(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False)


def outside(low: float, high: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False),
        st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False),
    )


extras = st.dictionaries(
    st.sampled_from(["x_campaign", "x_note", "brand"]),
    st.one_of(st.none(), st.booleans(), st.integers(), words, st.lists(st.integers(), max_size=3)),
    max_size=2,
)


def obj(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda base, more: {**more, **base},
        st.fixed_dictionaries(required, optional=optional),
        extras,
    )


assets = st.one_of(
    obj({"type": st.just("url"), "url": words}, {}),
    obj({"type": st.just("asset_id"), "asset_id": words}, {}),
    obj({"type": st.just("base64"), "media_type": words, "data": words}, {}),
)
voice_settings = obj(
    {},
    {
        "speed": between(0.5, 1.5),
        "pitch": between(-50, 50),
        "volume": between(0, 1),
        "locale": words,
        "engine_settings": obj(
            {"engine_type": st.sampled_from(["elevenlabs", "fish", "starfish"])}, {}
        ),
    },
)
scripts = st.one_of(words, st.just("a" * 5000))
# Exactly one audio source, as the service wants.
speech = st.one_of(
    st.fixed_dictionaries(
        {"script": scripts}, optional={"voice_id": words, "voice_settings": voice_settings}
    ),
    st.fixed_dictionaries({"audio_url": words}),
    st.fixed_dictionaries({"audio_asset_id": words}),
)
engines = obj({"type": st.sampled_from(["avatar_iv", "avatar_v", "avatar_iii"])}, {})
output = {
    "title": words,
    "callback_id": words,
    "callback_url": words,
    "resolution": st.sampled_from(["720p", "1080p", "4k"]),
    "aspect_ratio": st.sampled_from(["16:9", "9:16", "4:5", "5:4", "1:1", "auto"]),
    "caption": obj({}, {"file_format": st.just("srt"), "style": st.just("default")}),
}
backgrounds = st.one_of(
    obj({"type": st.just("color"), "value": hex_colours}, {}),
    obj({"type": st.just("image"), "url": words}, {}),
    obj({"type": st.just("image"), "asset_id": words}, {}),
)
single_shot = {
    **output,
    "background": backgrounds,
    "fit": st.sampled_from(["contain", "cover"]),
    "remove_background": st.booleans(),
    "output_format": st.sampled_from(["mp4", "webm"]),
    "expressiveness": st.sampled_from(["high", "medium", "low"]),
}


def with_speech(base: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(lambda b, s: {**b, **s}, base, speech)


avatar_bodies = with_speech(
    obj({"type": st.just("avatar"), "avatar_id": words}, {**single_shot, "engine": engines})
)
image_bodies = with_speech(obj({"type": st.just("image"), "image": assets}, single_shot))
avatar_inputs = with_speech(
    obj(
        {"type": st.just("avatar"), "avatar_id": words},
        {"background": obj({"type": st.just("color"), "color": hex6}, {}), "engine": engines},
    )
)
image_inputs = with_speech(obj({"type": st.just("image"), "image": assets}, {}))
avatar_scenes = obj(
    {"type": st.just("avatar_video"), "input": st.one_of(avatar_inputs, image_inputs)}, {}
)
silent_image_scenes = obj(
    {
        "type": st.just("image"),
        "source": assets,
        "duration": st.floats(0, 300, exclude_min=True, allow_nan=False),
    },
    {},
)
narrated_image_scenes = with_speech(obj({"type": st.just("image"), "source": assets}, {}))
video_scenes = obj(
    {"type": st.just("video"), "source": assets},
    {"playback": obj({}, {"volume": between(0, 1), "mute": st.booleans()})},
)
scenes = st.one_of(avatar_scenes, silent_image_scenes, narrated_image_scenes, video_scenes)
studio_bodies = obj(
    {"type": st.just("studio"), "scenes": st.lists(scenes, min_size=1, max_size=4)}, output
)
cinematic_bodies = obj(
    {
        "type": st.just("cinematic_avatar"),
        "prompt": words,
        "avatar_id": st.lists(words, min_size=1, max_size=3),
    },
    {"duration": st.integers(4, 15), "resolution": st.sampled_from(["720p", "1080p"])},
)
bodies = st.one_of(avatar_bodies, image_bodies, studio_bodies, cinematic_bodies)


def only_problem(body: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(RequestInvalid) as info:
        validate_v3_request(body)
    [error] = info.value.errors
    return error.path, error.message


@SETTINGS
@given(bodies)
def test_every_valid_body_passes_and_serialises_back_unchanged(body: dict[str, Any]) -> None:
    sent = v3_request_to_body(validate_v3_request(body))

    assert json.dumps(sent, sort_keys=True) == json.dumps(body, sort_keys=True)


@SETTINGS
@given(body=studio_bodies, settings_=voice_settings)
def test_voice_settings_given_as_text_are_typed_back(
    body: dict[str, Any], settings_: dict[str, Any]
) -> None:
    scene = {
        "type": "avatar_video",
        "input": {"type": "avatar", "avatar_id": "a", "script": "hi", "voice_settings": settings_},
    }
    body["scenes"].append(scene)
    texty = json.loads(json.dumps(body))
    numbers = ("speed", "pitch", "volume")
    texty["scenes"][-1]["input"]["voice_settings"] = {
        k: str(v) if k in numbers else v for k, v in settings_.items()
    }

    assert v3_request_to_body(validate_v3_request(texty)) == body


VOICE_RANGES = [("speed", 0.5, 1.5), ("pitch", -50, 50), ("volume", 0, 1)]


@pytest.mark.parametrize(("field", "low", "high"), VOICE_RANGES)
@SETTINGS
@given(body=studio_bodies, data=st.data())
def test_a_voice_setting_out_of_range_in_any_scene_is_refused_by_its_path(
    field: str, low: float, high: float, body: dict[str, Any], data: st.DataObject
) -> None:
    value = data.draw(outside(low, high))
    i = data.draw(st.integers(0, len(body["scenes"])))
    scene = {
        "type": "avatar_video",
        "input": {"type": "avatar", "avatar_id": "a", "script": "hi"},
    }
    body["scenes"].insert(i, scene)
    scene["input"]["voice_settings"] = {field: value}

    assert only_problem(body) == (
        f"scenes[{i}].input.voice_settings.{field}",
        f"must be between {low} and {high}, got {value}",
    )


@settings(max_examples=15, deadline=None)
@given(body=avatar_bodies, length=st.integers(5001, 5100))
def test_a_script_over_5000_characters_is_refused(body: dict[str, Any], length: int) -> None:
    for field in ("audio_url", "audio_asset_id"):
        body.pop(field, None)
    body["script"] = "a" * length

    assert only_problem(body) == ("script", f"must be at most 5,000 characters (got {length:,})")


@settings(max_examples=15, deadline=None)
@given(body=studio_bodies, count=st.integers(51, 80))
def test_more_than_fifty_scenes_is_refused(body: dict[str, Any], count: int) -> None:
    body["scenes"] = (body["scenes"] * count)[:count]

    assert only_problem(body) == ("scenes", f"must have 1 to 50 entries, got {count}")


@SETTINGS
@given(body=studio_bodies, tag=st.text(max_size=20))
def test_an_unknown_scene_type_is_one_error_naming_the_choices(
    body: dict[str, Any], tag: str
) -> None:
    if tag in ("avatar_video", "image", "video"):
        tag += "?"
    body["scenes"][0] = {"type": tag, "source": {"type": "url", "url": "u"}}

    assert only_problem(body) == (
        "scenes[0].type",
        f"must be one of avatar_video, image, video, got {tag!r}",
    )
