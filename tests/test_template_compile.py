"""Templates: single-pass {{ column }} substitution, typed whole values, nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from engine.errors import ConfigError, Reason, RowError
from engine.template import compile_template


def render(template: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
    return compile_template(template).render(row)


def test_a_whole_value_placeholder_takes_the_cell_as_it_is() -> None:
    template = {"speed": "{{ speed }}", "dim": "{{dim}}", "flag": "{{ flag }}"}
    row = {"speed": 1.1, "dim": {"width": 640}, "flag": True}

    assert render(template, row) == row


def test_placeholders_inside_longer_text_become_text() -> None:
    template = {"t": "{{ n }}x{{ f }} {{ b }} {{ s }} {{ l }}", "nested": ["a{{ s }}b"]}
    row = {"n": 2, "f": 0.5, "b": False, "s": "é✓", "l": [1, "x"]}

    assert render(template, row) == {"t": '2x0.5 false é✓ [1, "x"]', "nested": ["aé✓b"]}


def test_spaces_inside_the_braces_are_optional_and_names_may_hold_spaces() -> None:
    assert render({"t": "{{a}}-{{  a  }}-{{ first name }}"}, {"a": "1", "first name": "Z"}) == {
        "t": "1-1-Z"
    }


def test_a_cell_holding_a_placeholder_is_inserted_literally_never_expanded() -> None:
    template = {"whole": "{{ a }}", "mixed": "<{{ a }}|{{ b }}>"}
    row = {"a": "{{ b }}", "b": "{{ a }} {% if %} {"}

    assert render(template, row) == {
        "whole": "{{ b }}",
        "mixed": "<{{ b }}|{{ a }} {% if %} {>",
    }


def test_literal_braces_in_the_template_text_survive() -> None:
    assert render({"t": "{x} {{ a }} }{0}{"}, {"a": "{}"}) == {"t": "{x} {} }{0}{"}


def test_two_placeholders_side_by_side_are_two_not_one_whole_value() -> None:
    assert render({"t": "{{ a }}{{ b }}", "u": "{{ a }} {{ b }}"}, {"a": 1, "b": "x"}) == {
        "t": "1x",
        "u": "1 x",
    }


def test_every_missing_column_is_reported_with_its_field_path() -> None:
    template = {
        "title": "Hi {{ name }}",
        "video_inputs": [{"voice": {"speed": "{{ speed }}", "input_text": "{{ a }}{{ b }}"}}],
    }

    with pytest.raises(RowError) as info:
        render(template, {"a": "x"})

    assert [(e.path, e.message) for e in info.value.errors] == [
        ("title", "column 'name' is not in this row"),
        ("video_inputs[0].voice.speed", "column 'speed' is not in this row"),
        ("video_inputs[0].voice.input_text", "column 'b' is not in this row"),
    ]


@pytest.mark.parametrize("template", [{"t": "a{{ x }}b"}, {"t": "{{ x }}"}])
@pytest.mark.parametrize("cell", ["", "  ", "\u00a0\u3000", None])
def test_an_empty_blank_or_null_cell_is_never_rendered_as_empty_text(
    template: dict[str, Any], cell: Any
) -> None:
    with pytest.raises(RowError) as info:
        render(template, {"x": cell})

    [error] = info.value.errors
    assert error.path == "t"
    assert error.message.startswith("column 'x' is empty; fill it in, or give the placeholder")
    assert error.reason is Reason.EMPTY_CELL


def test_constant_parts_are_shared_but_never_changed_by_rendering() -> None:
    template = {"const": {"a": [1, {"b": "c"}]}, "t": "{{ x }}"}
    compiled = compile_template(template)

    first = compiled.render({"x": "1"})
    second = compiled.render({"x": "2"})

    assert first == {"const": {"a": [1, {"b": "c"}]}, "t": "1"}
    assert second["t"] == "2"
    assert template == {"const": {"a": [1, {"b": "c"}]}, "t": "{{ x }}"}


def test_columns_and_callback_id_are_known_after_compiling() -> None:
    compiled = compile_template({"callback_id": "{{ id }}", "v": ["{{ a }} {{ b }}"]})

    assert compiled.columns == {"id", "a", "b"}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"{{ key }}": "v"}, "only values may hold"),
        ({"a": {"x{{k}}": 1}}, "a: the key 'x{{k}}' holds a placeholder"),
        ({1: "v"}, "the key 1 must be text"),
        ({"t": "{{ }}"}, "empty placeholder"),
        ({"t": "{{ {{ a }} }}"}, "unclosed or broken placeholder"),
        ({"t": "Hi {{ name }"}, "unclosed or broken placeholder"),
        ({"t": "Hi name }}"}, "unclosed or broken placeholder"),
        ({"t": "{{ name | upper }}"}, "the only filter is default"),
        ({"t": "{% if x %}a{% endif %}"}, "only {{ column }} is supported"),
        ({"t": "{# comment #}"}, "only {{ column }} is supported"),
        ({"t": float("nan")}, "JSON cannot carry"),
    ],
)
def test_what_a_template_cannot_hold_is_a_config_error_at_load(
    template: dict[Any, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        compile_template(template, "t.json")


def test_a_self_referencing_structure_is_refused_not_recursed_forever() -> None:
    loop: list[Any] = []
    loop.append(loop)

    with pytest.raises(ConfigError, match="nested too deeply"):
        compile_template({"v": loop})


def test_a_huge_structure_is_refused() -> None:
    wide = ["x"] * 200_000

    with pytest.raises(ConfigError, match="too large"):
        compile_template({"v": wide})
