"""--api auto|v2|v3: the body's shape decides, and an explicit choice must agree."""

from __future__ import annotations

import pytest

from engine.api.choose import ShapeError, api_by_shape


@pytest.mark.parametrize(
    ("fields", "choice", "api"),
    [
        ({"video_inputs", "dimension"}, "auto", "v2"),
        ({"video_inputs"}, "v2", "v2"),
        ({"type", "avatar_id", "script"}, "auto", "v3"),
        ({"type", "scenes"}, "v3", "v3"),
    ],
)
def test_the_shape_decides(fields: set[str], choice: str, api: str) -> None:
    assert api_by_shape(fields, choice) == api  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "choice", "field", "words"),
    [
        ({"video_inputs"}, "v3", "video_inputs", "--api v3, but its top-level `video_inputs`"),
        ({"type"}, "v2", "type", "--api v2, but its top-level `type` makes it a v3 body"),
        ({"avatar_id", "script"}, "auto", "video_inputs", "neither"),
        ({"video_inputs", "type"}, "auto", "type", "both"),
        ({"title"}, "v3", "video_inputs", "neither"),
    ],
)
def test_a_shape_that_names_no_api_or_another_is_refused_naming_the_fields(
    fields: set[str], choice: str, field: str, words: str
) -> None:
    with pytest.raises(ShapeError) as caught:
        api_by_shape(fields, choice)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert words in str(caught.value)
