"""What a cell may bring into a request: a fallback for an empty cell, no control
characters, and a callback_id that differs per row (issues 12 and 17)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import ConfigError, Reason, RowError
from engine.prepare import Preparer
from engine.reader import Row
from engine.template import compile_template
from engine.template.cells import control_name

TEMPLATE: dict[str, Any] = {
    "title": "For {{ first_name }}",
    "video_inputs": [
        {
            "character": {"type": "avatar", "avatar_id": "a1"},
            "voice": {
                "type": "text",
                "voice_id": "v1",
                "input_text": 'Hi {{ first_name | default("there") }}, {{ pitch }}',
            },
        }
    ],
}


def render(template: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return compile_template(template).render(row)


def problems(template: dict[str, Any], row: dict[str, Any]) -> list[tuple[str, str, Reason]]:
    with pytest.raises(RowError) as info:
        render(template, row)
    return [(e.path, e.message, e.reason) for e in info.value.errors if e.reason is not None]


# --- the fallback -------------------------------------------------------------------------


@pytest.mark.parametrize("cell", ["", "   ", None])
@pytest.mark.parametrize(
    "placeholder",
    [
        '{{ first_name | default("there") }}',
        "{{ first_name | default('there') }}",
        '{{first_name|default( "there" )}}',
    ],
)
def test_a_fallback_stands_in_for_an_empty_blank_or_null_cell(cell: Any, placeholder: str) -> None:
    template = {"t": f"Hi {placeholder}, welcome", "w": placeholder}

    assert render(template, {"first_name": cell}) == {"t": "Hi there, welcome", "w": "there"}


def test_a_fallback_stands_in_for_a_column_the_row_does_not_have() -> None:
    template = {"t": "Hi {{ first_name | default('there') }}"}

    assert render(template, {}) == {"t": "Hi there"}
    assert compile_template(template).required == frozenset()


def test_a_filled_cell_wins_over_its_fallback() -> None:
    assert render({"t": "Hi {{ n | default('there') }}"}, {"n": "Leo"}) == {"t": "Hi Leo"}


def test_a_fallback_is_typed_by_the_schema_like_a_cell() -> None:
    template = dict(TEMPLATE, title="{{ title | default('Welcome') }}")
    voice = template["video_inputs"][0]["voice"]
    template["video_inputs"] = [{**template["video_inputs"][0], "voice": dict(voice)}]
    template["video_inputs"][0]["voice"].update(
        input_text="Hi", speed="{{ speed | default('1.2') }}"
    )

    job = Preparer(compile_template(template)).prepare(Row(2, {"speed": " "}))

    assert job.body["video_inputs"][0]["voice"]["speed"] == 1.2
    assert job.body["title"] == "Welcome"


def test_an_empty_cell_without_fallback_makes_the_row_invalid_naming_the_column() -> None:
    found = problems(TEMPLATE, {"first_name": "", "pitch": "ok"})

    assert found == [
        (
            "title",
            "column 'first_name' is empty; fill it in, or give the placeholder a fallback: "
            '{{ first_name | default("text") }}',
            Reason.EMPTY_CELL,
        )
    ]


def test_a_missing_column_without_fallback_still_makes_the_row_invalid() -> None:
    found = problems(TEMPLATE, {"first_name": "Leo"})

    assert found == [
        (
            "video_inputs[0].voice.input_text",
            "column 'pitch' is not in this row",
            Reason.MISSING_COLUMN,
        )
    ]


@pytest.mark.parametrize(
    "text",
    [
        "{{ name | upper }}",
        "{{ name | default(there) }}",
        "{{ name | default('there\") }}",
        "{{ name | default() }}",
        "{{ name | default('a') | upper }}",
        "{{ name | default('a', true) }}",
        "{{ name | d('a') }}",
        "{{ name | }}",
        "{{ name | default }}",
    ],
)
def test_no_filter_but_a_quoted_default_is_accepted(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        compile_template({"t": f"Hi {text}"}, "t.json")

    assert str(info.value) == (
        f"t.json: t: 'Hi {text}': the only filter is default, with a quoted text: "
        '{{ column }} or {{ column | default("text") }}.'
    )


@pytest.mark.parametrize(
    "text",
    [
        "{{ a + b }}",
        "{{ a ~ b }}",
        "{{ name() }}",
        "{{ row['name'] }}",
        "{{ 'literal' }}",
        "{{ a * 2 }}",
        "{{ a == b }}",
        "{{ a, b }}",
        "{{ (a) | default('x') }}",
    ],
)
def test_no_expression_is_accepted(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        compile_template({"t": text}, "t.json")

    message = str(info.value)
    assert message.startswith(f"t.json: t: '{text}': '")
    assert "is an expression, not a column name (it holds '" in message
    assert message.endswith(
        'a placeholder holds a column name only: {{ column }} or {{ column | default("text") }}. '
        "Rename a column whose name holds such a character."
    )


# --- control characters -------------------------------------------------------------------


def test_a_nul_in_a_cell_makes_the_row_invalid_in_title_and_spoken_text() -> None:
    found = problems(TEMPLATE, {"first_name": "Le\x00o", "pitch": "ok"})

    message = "column 'first_name' holds control character U+0000 (NUL); remove it from the cell"
    assert found == [
        ("title", message, Reason.CONTROL_CHARACTER),
        ("video_inputs[0].voice.input_text", message, Reason.CONTROL_CHARACTER),
    ]


def test_tab_and_line_breaks_are_kept_in_spoken_text_only() -> None:
    template = {"title": "{{ a }}", "video_inputs": [{"voice": {"input_text": "{{ a }}"}}]}
    v3 = {"title": "x", "script": "Dear {{ a }}"}

    assert render(v3, {"a": "Leo,\r\n\tthanks"})["script"] == "Dear Leo,\r\n\tthanks"
    found = problems(template, {"a": "Leo,\r\n\tthanks"})
    assert [(path, reason) for path, _, reason in found] == [("title", Reason.CONTROL_CHARACTER)]
    assert "U+000D (CR)" in found[0][1]


@pytest.mark.parametrize(
    ("char", "name"),
    [
        ("\x1b", "U+001B (ESC)"),
        ("\x7f", "U+007F (DEL)"),
        ("\x85", "U+0085 (NEL)"),
        ("\x9f", "U+009F (APC)"),
        ("\x0b", "U+000B (VT)"),
    ],
)
def test_every_c0_and_c1_control_is_refused_even_in_spoken_text(char: str, name: str) -> None:
    template = {"video_inputs": [{"voice": {"input_text": "Hi {{ a }}"}}], "t": "{{ a }}"}

    found = problems(template, {"a": f"Leo{char}"})

    assert [(p, m) for p, m, _ in found] == [
        (
            "video_inputs[0].voice.input_text",
            f"column 'a' holds control character {name}; remove it from the cell",
        ),
        ("t", f"column 'a' holds control character {name}; remove it from the cell"),
    ]


def test_a_control_alone_in_a_cell_is_named_as_a_control_not_as_blank() -> None:
    assert problems({"t": "{{ a }}"}, {"a": "\x1f"})[0][2] is Reason.CONTROL_CHARACTER


def test_printable_text_that_is_not_ascii_passes() -> None:
    cell = "Zoë \u00a0😀 👩\u200d👩\u200d👧 \u2028 \ufeff"

    assert render({"t": "{{ a }}", "u": "x{{ a }}"}, {"a": cell}) == {"t": cell, "u": "x" + cell}


def test_a_control_inside_a_jsonl_object_variable_is_found() -> None:
    found = problems({"v": "{{ a }}"}, {"a": {"k": ["ok", "b\x07"]}})

    assert found[0][1].startswith("column 'a' holds control character U+0007 (BEL)")


def test_every_control_has_its_name() -> None:
    names = [control_name(chr(c)) for c in [*range(0x20), *range(0x7F, 0xA0)]]

    assert (names[0], names[31], names[33]) == ("U+0000 (NUL)", "U+001F (US)", "U+0080 (PAD)")
    assert len(set(names)) == 65


def test_a_whole_jsonl_body_is_checked_string_by_string_with_its_field_path() -> None:
    body = {
        "title": "Le\x00o",
        "video_inputs": [
            {
                "character": {"type": "avatar", "avatar_id": "a1"},
                "voice": {"type": "text", "voice_id": "v1", "input_text": "Hi\n\tLeo\x00"},
            }
        ],
    }

    job = Preparer(None).prepare(Row(3, body))

    assert not job.valid
    assert [(e.path, e.message, e.reason) for e in job.errors] == [
        ("title", "holds control character U+0000 (NUL); remove it", Reason.CONTROL_CHARACTER),
        (
            "video_inputs[0].voice.input_text",
            "holds control character U+0000 (NUL); remove it",
            Reason.CONTROL_CHARACTER,
        ),
    ]
    clean = Preparer(None).prepare(
        Row(
            3,
            {
                **body,
                "title": "Leo",
                "video_inputs": [
                    {
                        **body["video_inputs"][0],
                        "voice": {"type": "text", "voice_id": "v1", "input_text": "Hi\n\tLeo"},
                    }
                ],
            },
        )
    )
    assert clean.valid, clean.error_text


# --- callback_id --------------------------------------------------------------------------


@pytest.mark.parametrize("constant", ["spring-campaign", 42, "{ not a placeholder }"])
def test_a_constant_callback_id_is_refused_at_load(constant: Any) -> None:
    with pytest.raises(ConfigError) as info:
        compile_template({**TEMPLATE, "callback_id": constant}, "t.json")

    message = str(info.value)
    assert message.startswith("t.json: callback_id ")
    assert "is the same for every row" in message
    assert "must differ per row" in message
    assert "or leave it out so the engine makes one per job" in message


def test_a_callback_id_built_from_a_column_or_left_out_is_accepted() -> None:
    compile_template({**TEMPLATE, "callback_id": "spring-{{ id }}"})
    # Blank is unset, as the engine treats it: it makes one per job.
    compile_template({**TEMPLATE, "callback_id": ""})
    compile_template({**TEMPLATE, "callback_id": " "})
    compile_template({**TEMPLATE, "callback_id": None})
    compile_template(TEMPLATE)
