"""Properties over the ranges and unions: valid bodies round-trip, out-of-range ones are named."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import RequestInvalid
from engine.request import request_to_body, validate_request

SETTINGS = settings(max_examples=60, deadline=None)

words = st.text(st.characters(categories=("L", "N", "P", "Zs")), min_size=1, max_size=30).filter(
    lambda s: re.search(r"\S", s) is not None
)
hex_colours = st.from_regex(r"\A#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})\Z")


def between(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(low, high, allow_nan=False)


def outside(low: float, high: float) -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(max_value=low, exclude_max=True, allow_nan=False, allow_infinity=False),
        st.floats(min_value=high, exclude_min=True, allow_nan=False, allow_infinity=False),
    )


# Unknown fields the user may add; the names stay clear of the schema's own.
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


offsets = obj({}, {"x": between(-1, 1), "y": between(-1, 1)})
avatars = obj(
    {"type": st.just("avatar"), "avatar_id": words},
    {
        "scale": between(0, 5),
        "avatar_style": st.sampled_from(["circle", "normal", "closeUp"]),
        "offset": offsets,
        "matting": st.booleans(),
        "circle_background_color": hex_colours,
    },
)
talking_photos = obj(
    {"type": st.just("talking_photo"), "talking_photo_id": words},
    {
        "scale": between(0, 2),
        "talking_photo_style": st.sampled_from(["square", "circle"]),
        "offset": offsets,
        "talking_style": st.sampled_from(["stable", "expressive"]),
        "expression": st.sampled_from(["default", "happy"]),
        "super_resolution": st.booleans(),
        "matting": st.booleans(),
        "circle_background_color": hex_colours,
    },
)
text_voices = obj(
    {
        "type": st.just("text"),
        "voice_id": words,
        "input_text": st.one_of(words, st.just("a" * 4999)),
    },
    {
        "speed": between(0.5, 1.5),
        "pitch": st.integers(-50, 50),
        "emotion": st.sampled_from(["Excited", "Friendly", "Serious", "Soothing", "Broadcaster"]),
    },
)
audio_voices = st.one_of(
    obj({"type": st.just("audio"), "audio_url": words}, {"audio_asset_id": words}),
    obj({"type": st.just("audio"), "audio_asset_id": words}, {}),
)
silences = obj({"type": st.just("silence")}, {"duration": between(1, 100)})
fits = st.sampled_from(["cover", "crop", "contain", "none"])
colour_backgrounds = obj({}, {"type": st.just("color"), "value": hex_colours})
image_backgrounds = st.one_of(
    obj({"type": st.just("image"), "url": words}, {"image_asset_id": words, "fit": fits}),
    obj({"type": st.just("image"), "image_asset_id": words}, {"fit": fits}),
)
play_styles = st.sampled_from(["fit_to_scene", "freeze", "loop", "once"])
video_backgrounds = st.one_of(
    obj(
        {"type": st.just("video"), "url": words, "play_style": play_styles},
        {"video_asset_id": words, "fit": fits},
    ),
    obj({"type": st.just("video"), "video_asset_id": words, "play_style": play_styles}, {}),
)
scenes = obj(
    {"voice": st.one_of(text_voices, audio_voices, silences)},
    {
        "character": st.one_of(avatars, talking_photos),
        "background": st.one_of(colour_backgrounds, image_backgrounds, video_backgrounds),
    },
)
sides = st.integers(64, 2048).map(lambda n: n * 2)
bodies = obj(
    {
        "video_inputs": st.lists(scenes, min_size=1, max_size=3),
        "dimension": st.fixed_dictionaries({"width": sides, "height": sides}),
    },
    {
        "caption": st.booleans(),
        "title": words,
        "callback_id": words,
        "folder_id": words,
        "callback_url": words,
        "caption_mode": st.sampled_from(["file_only", "burn_in"]),
        "fps": between(1, 60),
        "enable_watermark": st.booleans(),
        "test": st.booleans(),
    },
)


def only_problem(body: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(RequestInvalid) as info:
        validate_request(body)
    [error] = info.value.errors
    return error.path, error.message


@SETTINGS
@given(bodies)
def test_every_valid_body_passes_and_serialises_back_unchanged(body: dict[str, Any]) -> None:
    sent = request_to_body(validate_request(body))

    assert json.dumps(sent, sort_keys=True) == json.dumps(body, sort_keys=True)


def _as_template_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)


@SETTINGS
@given(bodies)
def test_numbers_and_booleans_given_as_text_are_typed_back(body: dict[str, Any]) -> None:
    texty = json.loads(json.dumps(body))
    texty["dimension"] = {k: str(v) for k, v in body["dimension"].items()}
    if "caption" in body:
        texty["caption"] = _as_template_text(body["caption"])
    for scene in texty["video_inputs"]:
        for part, field in (("voice", "speed"), ("voice", "pitch"), ("character", "scale")):
            if field in scene.get(part, {}):
                scene[part][field] = _as_template_text(scene[part][field])

    assert request_to_body(validate_request(texty)) == body


RANGES = [
    ("voice", {"type": "text", "voice_id": "v", "input_text": "hi"}, "speed", 0.5, 1.5),
    ("voice", {"type": "silence"}, "duration", 1, 100),
    ("character", {"type": "avatar", "avatar_id": "a"}, "scale", 0, 5),
    ("character", {"type": "talking_photo", "talking_photo_id": "p"}, "scale", 0, 2),
]


@pytest.mark.parametrize(("part", "base", "field", "low", "high"), RANGES)
@SETTINGS
@given(body=bodies, data=st.data())
def test_every_out_of_range_number_is_refused_with_its_path(
    part: str,
    base: dict[str, Any],
    field: str,
    low: float,
    high: float,
    body: dict[str, Any],
    data: st.DataObject,
) -> None:
    value = data.draw(outside(low, high))
    i = data.draw(st.integers(0, len(body["video_inputs"]) - 1))
    body["video_inputs"][i][part] = {**base, field: value}

    assert only_problem(body) == (
        f"video_inputs[{i}].{part}.{field}",
        f"must be between {low} and {high}, got {value}",
    )


@SETTINGS
@given(body=bodies, data=st.data())
def test_pitch_outside_range_or_fractional_is_refused(
    body: dict[str, Any], data: st.DataObject
) -> None:
    value = data.draw(st.one_of(st.integers(max_value=-51), st.integers(min_value=51)))
    fraction = data.draw(st.floats(-50, 50).filter(lambda f: not f.is_integer()))
    body["video_inputs"][0]["voice"] = {"type": "text", "voice_id": "v", "input_text": "hi"}

    body["video_inputs"][0]["voice"]["pitch"] = value
    assert only_problem(body) == (
        "video_inputs[0].voice.pitch",
        f"must be between -50 and 50, got {value}",
    )
    body["video_inputs"][0]["voice"]["pitch"] = fraction
    assert only_problem(body) == (
        "video_inputs[0].voice.pitch",
        f"must be a whole number, got {fraction}",
    )


@SETTINGS
@given(body=bodies, side=st.sampled_from(["width", "height"]), data=st.data())
def test_dimension_out_of_range_or_odd_is_refused(
    body: dict[str, Any], side: str, data: st.DataObject
) -> None:
    even_outside = st.one_of(st.integers(max_value=63), st.integers(min_value=2049)).map(
        lambda n: n * 2
    )
    value = data.draw(even_outside)
    body["dimension"][side] = value
    assert only_problem(body) == (f"dimension.{side}", f"must be between 128 and 4096, got {value}")

    odd = data.draw(st.integers(64, 2047).map(lambda n: n * 2 + 1))
    body["dimension"][side] = odd
    assert only_problem(body) == (f"dimension.{side}", f"must be an even number, got {odd}")


@settings(max_examples=15, deadline=None)
@given(body=bodies, length=st.integers(5000, 5100))
def test_input_text_of_5000_characters_or_more_is_refused(
    body: dict[str, Any], length: int
) -> None:
    body["video_inputs"][-1]["voice"] = {
        "type": "text",
        "voice_id": "v",
        "input_text": "a" * length,
    }

    assert only_problem(body) == (
        f"video_inputs[{len(body['video_inputs']) - 1}].voice.input_text",
        f"must be under 5,000 characters (got {length:,})",
    )


@settings(max_examples=15, deadline=None)
@given(body=bodies, count=st.integers(51, 80))
def test_more_than_fifty_scenes_is_refused(body: dict[str, Any], count: int) -> None:
    body["video_inputs"] = (body["video_inputs"] * count)[:count]

    assert only_problem(body) == ("video_inputs", f"must have 1 to 50 entries, got {count}")


UNIONS = [
    ("voice", "text, audio, silence"),
    ("character", "avatar, talking_photo"),
    ("background", "color, image, video"),
]


@pytest.mark.parametrize(("part", "tags"), UNIONS)
@SETTINGS
@given(body=bodies, tag=st.text(max_size=20), data=st.data())
def test_an_unknown_union_type_is_one_error_naming_the_choices(
    part: str, tags: str, body: dict[str, Any], tag: str, data: st.DataObject
) -> None:
    if tag in tags.split(", "):
        tag += "?"
    i = data.draw(st.integers(0, len(body["video_inputs"]) - 1))
    body["video_inputs"][i][part] = {"type": tag, "voice_id": "v", "url": "u"}

    assert only_problem(body) == (
        f"video_inputs[{i}].{part}.type",
        f"must be one of {tags}, got {tag!r}",
    )


CHOICES = [
    ("character", {"type": "avatar", "avatar_id": "a"}, "avatar_style", "circle, normal, closeUp"),
    (
        "character",
        {"type": "talking_photo", "talking_photo_id": "p"},
        "expression",
        "default, happy",
    ),
    (
        "voice",
        {"type": "text", "voice_id": "v", "input_text": "hi"},
        "emotion",
        "Excited, Friendly, Serious, Soothing, Broadcaster",
    ),
    ("background", {"type": "image", "url": "u"}, "fit", "cover, crop, contain, none"),
]


@pytest.mark.parametrize(("part", "base", "field", "choices"), CHOICES)
@SETTINGS
@given(body=bodies, value=st.text(max_size=20))
def test_a_value_outside_its_choices_is_refused_with_them(
    part: str,
    base: dict[str, Any],
    field: str,
    choices: str,
    body: dict[str, Any],
    value: str,
) -> None:
    if value in choices.split(", "):
        value += "!"
    body["video_inputs"][0][part] = {**base, field: value}

    assert only_problem(body) == (
        f"video_inputs[0].{part}.{field}",
        f"must be one of {choices}, got {value!r}",
    )
