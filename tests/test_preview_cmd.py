"""preview --line N: one line's rendered request and spoken text, shown even when invalid."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from engine.cli import cli
from engine.prepare.spoken import spoken_parts
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE

HEADER = "contact_id,first_name,last_name,email,company,city,product,speed\n"


def preview(*args: str) -> Result:
    return CliRunner().invoke(cli, ["preview", *args], env={"HEYGEN_API_KEY": None})


def shown_body(output: str, title: str) -> dict[str, object]:
    """The pretty JSON printed after ``title``, up to the spoken text."""
    text = output.split(title, 1)[1].split("Spoken text", 1)[0]
    body: dict[str, object] = json.loads(text)
    return body


def test_a_valid_line_shows_its_request_and_spoken_text(tmp_path: Path) -> None:
    result = preview(str(DEMO_CSV), "--template", str(DEMO_TEMPLATE), "--line", "3")
    assert result.exit_code == 0, result.output
    assert "Line 3 (job key " in result.output
    body = shown_body(result.output, "a valid request.\n")
    assert body["title"] == "Welcome Liam O'Connor (Contoso)"
    assert "  video_inputs[0].voice.input_text: Hi Liam! Thanks" in result.output
    assert "  video_inputs[1].voice.input_text: I have set aside a demo slot for you, Liam." in (
        result.output
    )


def test_an_invalid_line_is_shown_as_rendered_with_its_errors(tmp_path: Path) -> None:
    jobs = tmp_path / "c.csv"
    jobs.write_text(HEADER + "c-1,Ava,T,a@x.example,Co,Paris,Suite,3.0\n", encoding="utf-8")
    result = preview(str(jobs), "--template", str(DEMO_TEMPLATE), "--line", "2")
    assert result.exit_code == 1
    assert "NOT a valid request" in result.output
    body = shown_body(result.output, "The request as rendered:\n")
    assert body["title"] == "Welcome Ava T (Co)"
    assert "video_inputs[0].voice.input_text: Hi Ava! Thanks" in result.output
    assert "line 2: video_inputs[0].voice.speed: must be between 0.5 and 1.5" in result.output
    assert list(tmp_path.iterdir()) == [jobs]  # no ledger, nothing written


def test_a_line_with_an_empty_cell_gives_its_error(tmp_path: Path) -> None:
    jobs = tmp_path / "c.csv"
    jobs.write_text(HEADER + "c-1,Ava,T,a@x.example,Co,Paris,,1.0\n", encoding="utf-8")
    result = preview(str(jobs), "--template", str(DEMO_TEMPLATE), "--line", "2")
    assert result.exit_code == 1
    assert "column 'product' is empty" in result.output


def test_a_line_where_no_record_starts_is_a_usage_error(tmp_path: Path) -> None:
    jobs = tmp_path / "c.csv"
    jobs.write_text(
        HEADER + 'c-1,"Ava\nMarie",T,a@x.example,Co,Paris,Suite,1.0\nc-2,Bo,T,b@x,Co,Oslo,S,1\n',
        encoding="utf-8",
    )
    inside = preview(str(jobs), "--template", str(DEMO_TEMPLATE), "--line", "3")
    assert inside.exit_code == 2
    assert "records start at lines 2 and 4" in inside.output
    past = preview(str(jobs), "--template", str(DEMO_TEMPLATE), "--line", "9")
    assert past.exit_code == 2
    assert "has no line 9: its last record starts at line 4" in past.output


def test_whole_v3_bodies_in_jsonl_show_their_script(tmp_path: Path) -> None:
    jobs = tmp_path / "bodies.jsonl"
    body = {"type": "avatar", "avatar_id": "Brent", "voice_id": "v1", "script": "Hej Åsa 👋"}
    jobs.write_text(json.dumps(body, ensure_ascii=False) + "\n", encoding="utf-8")
    result = preview(str(jobs), "--line", "1")
    # Valid or not depends on the v3 schema; the spoken text is shown either way.
    assert "  script: Hej Åsa 👋" in result.output


def test_spoken_parts_read_either_api_by_the_body_shape() -> None:
    v2 = {
        "video_inputs": [
            {"voice": {"type": "text", "input_text": "(not audio) hello"}},
            {"voice": {"type": "silence", "duration": 2}},
            {"voice": {"type": "audio", "audio_url": "https://a/x.mp3"}},
        ]
    }
    assert spoken_parts(v2) == [
        ("video_inputs[0].voice.input_text", "(not audio) hello"),
        ("video_inputs[1].voice.duration", "(silence: 2 s)"),
        ("video_inputs[2].voice.audio_url", "(audio: https://a/x.mp3)"),
    ]
    studio = {
        "type": "studio",
        "scenes": [
            {"type": "avatar_video", "input": {"type": "avatar", "script": "One"}},
            {"type": "image", "source": {"type": "url"}, "script": "Two"},
            {"type": "image", "source": {"type": "url"}, "duration": 3},
        ],
    }
    assert spoken_parts(studio) == [
        ("scenes[0].input.script", "One"),
        ("scenes[1].script", "Two"),
        ("scenes[2].duration", "(silence: 3 s)"),
    ]
    assert spoken_parts({"video_inputs": "not a list"}) == []
