"""Issue 18, item 3: a template's typos are reported once, at load, with the nearest
known name; ``--strict`` refuses them; an error every row would repeat refuses the
template once (exit 2) instead of making 500 rows invalid."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from click.testing import CliRunner, Result
from pydantic import BaseModel, ConfigDict, Field

from engine.cli import cli
from engine.errors import ConfigError
from engine.prepare import Preparer
from engine.reader import Row
from engine.template import load_template
from engine.template.check import check_template, unknown_fields

TYPOS = """\
title: "Hello {{ first_name }}"
video_inputs:
  - character: {type: avatar, avatar_id: Brent, avatar_styl: normal}
    voice: {type: text, voice_id: v1, input_text: "Hi {{ first_name }}", speed: "{{ speed }}"}
    backgrond: {type: color, value: "#ffffff"}
"""
AVATAR_STYL = (
    "unknown field `avatar_styl` in video_inputs[0].character; did you mean `avatar_style`?"
)
BACKGROND = "unknown field `backgrond` in video_inputs[0]; did you mean `background`?"


def contacts(path: Path, rows: int = 500) -> str:
    lines = ["first_name,speed", *(f"Name{n},1.0" for n in range(rows))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def template(tmp_path: Path, text: str) -> str:
    path = tmp_path / "template.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def test_unknown_fields_are_reported_once_with_the_nearest_name_and_passed_through(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = contacts(tmp_path / "contacts.csv")
    result = invoke("validate", jobs, "--template", template(tmp_path, TYPOS), "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()[:-1]]
    assert len(rows) == 500
    assert all(row["ok"] for row in rows)
    messages = [r.getMessage() for r in caplog.records]
    assert sum(AVATAR_STYL in m for m in messages) == 1
    assert sum(BACKGROND in m for m in messages) == 1
    body = Preparer(load_template(Path(tmp_path / "template.yaml"))).prepare(
        Row(2, {"first_name": "Ava", "speed": "1.0"})
    )
    assert body.body is not None
    assert body.body["video_inputs"][0]["character"]["avatar_styl"] == "normal"


def test_strict_refuses_unknown_fields_in_validate_and_run(tmp_path: Path) -> None:
    jobs = contacts(tmp_path / "contacts.csv", 3)
    typos = template(tmp_path, TYPOS)
    validated = invoke("validate", jobs, "--template", typos, "--strict")
    ran = invoke("run", jobs, "--template", typos, "--sandbox", "--strict", "--no-progress")
    assert validated.exit_code == 2
    assert AVATAR_STYL in validated.output
    assert BACKGROND in validated.output
    assert "--strict" in validated.output
    assert ran.exit_code == 2
    assert AVATAR_STYL in ran.output
    assert not (tmp_path / "contacts.ledger.db").exists()  # refused before anything


@pytest.mark.parametrize(
    ("typo", "said"),
    [
        (
            ("avatar_style: normal", "avatar_style: closeup"),
            "video_inputs[0].character.avatar_style: must be one of circle, normal, closeUp, "
            "got 'closeup'",
        ),
        (
            ("input_text:", "input_txt:"),
            "video_inputs[0].voice.input_text: required",
        ),
    ],
)
def test_an_error_every_row_would_repeat_is_reported_once_for_the_template(
    tmp_path: Path, typo: tuple[str, str], said: str
) -> None:
    jobs = contacts(tmp_path / "contacts.csv")
    broken = template(tmp_path, TYPOS.replace("avatar_styl", "avatar_style").replace(*typo))
    validated = invoke("validate", jobs, "--template", broken, "--json")
    ran = invoke("run", jobs, "--template", broken, "--sandbox", "--no-progress", "--json")
    assert validated.exit_code == 2
    assert validated.output.count(said) == 1
    assert "every row would be invalid" in validated.output
    assert ran.exit_code == 2
    summary = json.loads(ran.stdout)
    assert said in summary["reason"]
    assert not (tmp_path / "contacts.ledger.db").exists()


def test_input_txt_is_named_with_its_nearest_field(tmp_path: Path) -> None:
    broken = template(tmp_path, TYPOS.replace("input_text:", "input_txt:"))
    with pytest.raises(ConfigError) as caught:
        load_template(Path(broken))
    assert "unknown field `input_txt` in video_inputs[0].voice; did you mean `input_text`?" in (
        str(caught.value)
    )


def test_errors_a_row_can_change_are_left_to_the_rows(tmp_path: Path) -> None:
    """A placeholder's value is the row's: an empty or bad cell is that row's problem."""
    text = TYPOS.replace("avatar_styl: normal", 'avatar_style: "{{ style }}"')
    jobs = tmp_path / "contacts.csv"
    jobs.write_text("first_name,speed,style\nAva,1.0,normal\nBo,9,closeUp\nCy,1.0,closeup\n")
    result = invoke("validate", str(jobs), "--template", template(tmp_path, text))
    assert result.exit_code == 1
    assert "line 3: video_inputs[0].voice.speed" in result.stdout
    assert "line 4: video_inputs[0].character.avatar_style" in result.stdout
    assert "1 valid, 2 invalid" in result.stdout


# --- the walk is generic over a pydantic model (so a v3 model gets it too) -------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Script(_Model):
    type: Literal["script"]
    text: str


class Prompt(_Model):
    type: Literal["prompt"] = "prompt"
    prompt: str


class Scene(_Model):
    duration: float = 1.0
    media: Annotated[Script | Prompt, Field(discriminator="type")] | None = None


class Video(_Model):
    avatar_id: str
    scenes: list[Scene] = []


def test_unknown_fields_are_found_in_any_models_nesting() -> None:
    data: dict[str, Any] = {
        "avatar_idd": "a",
        "scenes": [
            {"duraton": 2, "media": {"type": "script", "txt": "hi"}},
            {"media": {"promt": "a cat"}},  # no type: the variant with a default
            {"media": {"type": "{{ kind }}", "anything": 1}},  # unclear: not judged
        ],
    }
    assert unknown_fields(data, Video) == [
        "unknown field `avatar_idd` at the top level; did you mean `avatar_id`?",
        "unknown field `duraton` in scenes[0]; did you mean `duration`?",
        "unknown field `txt` in scenes[0].media; did you mean `text`?",
        "unknown field `promt` in scenes[1].media; did you mean `prompt`?",
    ]


def test_a_template_of_another_shape_is_not_judged_by_the_v2_model() -> None:
    v3_like = {"type": "avatar", "avatar_id": "a", "script": "Hi {{ name }}"}
    assert check_template(v3_like, "t.yaml", strict=True) == []


V3_TYPOS = """\
type: avatar
avatar_id: Daisy-inskirt-20220818
script: "Hi {{ first_name }}"
voice_settings: {sped: "{{ speed }}"}
resolutoin: 1080p
"""


def test_a_v3_template_is_checked_against_the_variant_its_type_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = contacts(tmp_path / "contacts.csv", rows=3)
    loose = invoke("validate", jobs, "--template", template(tmp_path, V3_TYPOS))
    assert loose.exit_code == 0, loose.output
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "unknown field `sped` in voice_settings; did you mean `speed`?" in messages
    assert "unknown field `resolutoin` at the top level; did you mean `resolution`?" in messages
    strict = invoke("validate", jobs, "--template", template(tmp_path, V3_TYPOS), "--strict")
    assert strict.exit_code == 2
    assert "--strict refuses" in strict.stderr


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (
            'type: avtar\navatar_id: a\nscript: "Hi {{ first_name }}"\n',
            "type: must be one of avatar, image, studio, cinematic_avatar, got 'avtar'",
        ),
        (
            'type: avatar\navatar_id: a\nscrip: "Hi {{ first_name }}"\n',
            "needs script, audio_url or audio_asset_id",
        ),
    ],
)
def test_a_v3_error_every_row_would_repeat_refuses_the_template_once(
    tmp_path: Path, text: str, said: str
) -> None:
    jobs = contacts(tmp_path / "contacts.csv", rows=30)
    result = invoke("validate", jobs, "--template", template(tmp_path, text))
    assert result.exit_code == 2
    assert said in result.stderr
    assert "line " not in result.stdout + result.stderr  # once, not per row


def test_a_v3_body_error_a_cell_can_change_stays_with_the_rows(tmp_path: Path) -> None:
    text = 'type: avatar\navatar_id: a\nscript: "{{ first_name }}"\n'
    jobs = contacts(tmp_path / "contacts.csv", rows=3)
    assert invoke("validate", jobs, "--template", template(tmp_path, text)).exit_code == 0
