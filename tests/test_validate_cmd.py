"""``heygen-batch validate``: every row's result, a summary, and the contract's exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engine.cli import cli
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE

DATA = Path(__file__).parent / "data" / "issue4"
TEMPLATE = str(DATA / "template.json")


def validate(*args: str, stdin: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, ["validate", *args], input=stdin)


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


MESSY = (
    b"\xef\xbb\xbfid,name,script,speed\r\n"  # 1
    b'a,Ava,"Hi, Ava ""A"" \xf0\x9f\x98\x80",1.1\r\n'  # 2
    b'b,Liam,"Two\r\nlines",9\r\n'  # 3-4: speed out of range
    b"\r\n"  # 5
    b"c,Noah,ragged\r\n"  # 6
    b"a,Zoe,again,1.0\r\n"  # 7: key a again
    b"d,Emma,,1.0\r\n"  # 8: blank input_text
)


def test_json_gives_one_object_per_row_then_a_summary(tmp_path: Path) -> None:
    jobs = write(tmp_path, "jobs.csv", MESSY)

    result = validate(jobs, "--template", TEMPLATE, "--key-column", "id", "--json")

    assert result.exit_code == 1, result.output
    *rows, summary = json_lines(result)
    assert [(r["line"], r["key"], r["ok"]) for r in rows] == [
        (2, "a", True),
        (3, "b", False),
        (6, "c", False),  # ragged, but its key cell is there
        (7, "a", False),
        (8, "d", False),
    ]
    assert rows[0]["errors"] == []
    assert rows[1]["errors"] == [
        {
            "field": "video_inputs[0].voice.speed",
            "message": "must be between 0.5 and 1.5, got '9'",
            "reason": "schema",
        }
    ]
    [ragged] = rows[2]["errors"]
    assert ragged["field"] == ""
    assert "3 cells but the header has 4" in ragged["message"]
    assert ragged["reason"] == "row_shape"
    assert rows[3]["errors"] == [
        {
            "field": "id",
            "message": "job key a appeared earlier in this file; this row would not be sent",
            "reason": "duplicate",
        }
    ]
    assert rows[4]["errors"] == [
        {
            "field": "video_inputs[0].voice.input_text",
            "message": "column 'script' is empty; fill it in, or give the placeholder a "
            'fallback: {{ script | default("text") }}',
            "reason": "empty_cell",
        }
    ]
    assert summary == {
        "summary": {
            "rows": 5,
            "valid": 1,
            "invalid": 3,
            "duplicates": 1,
            "invalid_by_reason": {"empty_cell": 1, "row_shape": 1, "schema": 1},
            "delimiter": ",",
        }
    }


def test_text_output_names_line_and_field_of_each_problem(tmp_path: Path) -> None:
    jobs = write(tmp_path, "jobs.csv", MESSY)

    result = validate(jobs, "--template", TEMPLATE, "--key-column", "id")

    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "line 3: video_inputs[0].voice.speed: must be between 0.5 and 1.5, got '9'"
    assert lines[1].startswith("line 6: the row has 3 cells but the header has 4")
    assert (
        lines[2]
        == "line 7: id: job key a appeared earlier in this file; this row would not be sent"
    )
    assert lines[-1] == (
        "5 rows (comma-separated): 1 valid, 3 invalid (1 empty cell, 1 row shape, 1 schema error), "
        "1 repeated job key."
    )


def test_a_clean_file_exits_0() -> None:
    result = validate(str(DEMO_CSV), "--template", str(DEMO_TEMPLATE), "--key-column", "contact_id")

    assert result.exit_code == 0, result.output
    assert result.stdout == "12 rows (comma-separated): 12 valid, 0 invalid.\n"


def test_the_same_body_twice_without_a_key_column_is_a_repeat(tmp_path: Path) -> None:
    jobs = write(tmp_path, "jobs.csv", b"name,script,speed\nA,Hi,1\nA,Hi,1.0\nA,Hi,1.1\n")

    result = validate(jobs, "--template", TEMPLATE, "--json")

    *rows, summary = json_lines(result)
    assert [r["ok"] for r in rows] == [True, False, True]
    assert rows[0]["key"] == rows[1]["key"]
    assert rows[1]["errors"][0]["field"] == ""
    assert summary["summary"]["duplicates"] == 1
    assert result.exit_code == 1


def test_jsonl_with_a_template_and_whole_bodies_without_one() -> None:
    with_template = validate(str(DATA / "variables.jsonl"), "--template", TEMPLATE, "--json")
    bodies = validate(str(DATA / "bodies.jsonl"), "--json")

    *rows, summary = json_lines(with_template)
    assert [(r["line"], r["ok"]) for r in rows] == [(1, True), (3, False), (4, False), (5, True)]
    assert [e["field"] for r in rows for e in r["errors"]] == ["", ""]
    assert summary["summary"] == {
        "rows": 4,
        "valid": 2,
        "invalid": 2,
        "duplicates": 0,
        "delimiter": None,
        "invalid_by_reason": {"row_shape": 2},
    }
    *rows, _ = json_lines(bodies)
    assert [r["ok"] for r in rows] == [True, False, True]
    assert rows[1]["errors"] == [
        {
            "field": "dimension.width",
            "message": "must be an even number, got 1281",
            "reason": "schema",
        }
    ]
    assert rows[2]["key"] != "mine"


def test_a_template_column_missing_from_the_header_is_warned_once(tmp_path: Path) -> None:
    jobs = write(tmp_path, "jobs.csv", b"name,speed\nA,1\nB,1\n")

    result = validate(jobs, "--template", TEMPLATE)

    assert result.exit_code == 1
    assert result.stderr.count("warning: the template uses 'script'") == 1
    assert result.stdout.count("column 'script' is not in this row") == 2


@pytest.mark.parametrize(
    ("name", "data", "extra", "message"),
    [
        ("jobs.csv", b"id,name\n1,Jos\xe9\n", [], "line 2 is not UTF-8"),
        ("jobs.csv", b"", [], "is empty"),
        ("jobs.csv", b"name,script,speed\r\n", [], "holds no jobs"),
        ("jobs.jsonl", b"\n\n", [], "holds no jobs"),
        ("jobs.csv", b"name\nA\n", ["--key-column", "email"], "--key-column email"),
        ("jobs.txt", b"a\n", [], "--format"),
    ],
)
def test_unusable_input_exits_2_with_a_message(
    tmp_path: Path, name: str, data: bytes, extra: list[str], message: str
) -> None:
    jobs = write(tmp_path, name, data)

    result = validate(jobs, "--template", TEMPLATE, *extra)

    assert result.exit_code == 2, result.output
    assert message in result.stderr


def test_missing_path_directory_and_csv_without_template_exit_2(tmp_path: Path) -> None:
    (tmp_path / "dir.csv").mkdir()

    for args, message in [
        ([str(tmp_path / "nope.csv"), "--template", TEMPLATE], "no such jobs file"),
        ([str(tmp_path / "dir.csv"), "--template", TEMPLATE], "is a directory"),
        ([str(DEMO_CSV)], "needs --template"),
        ([str(DEMO_CSV), "--template", str(DATA / "python-object.yaml")], "not allowed"),
    ]:
        result = validate(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr


def test_standard_input_with_format(tmp_path: Path) -> None:
    good = validate(
        "-", "--format", "csv", "--template", TEMPLATE, stdin=b"name,script,speed\nA,Hi,1\n"
    )
    no_format = validate("-", "--template", TEMPLATE, stdin=b"name\n")
    not_utf8 = validate("-", "--format", "jsonl", "--template", TEMPLATE, stdin=b'{"a": "\xff"}\n')

    assert good.exit_code == 0, good.output
    assert good.stdout == "1 row (comma-separated): 1 valid, 0 invalid.\n"
    assert no_format.exit_code == 2
    assert "--format" in no_format.stderr
    assert not_utf8.exit_code == 2
    assert "not UTF-8" in not_utf8.stderr


def test_the_real_process_exits_2_on_non_utf8(tmp_path: Path) -> None:
    jobs = write(tmp_path, "jobs.csv", b"name,script,speed\nJos\xe9,Hi,1\n")

    done = subprocess.run(
        [sys.executable, "-m", "engine", "validate", jobs, "--template", TEMPLATE],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    assert "line 2 is not UTF-8 text" in done.stderr
    assert done.stdout == ""


def test_a_repeated_request_without_a_key_column_suggests_one(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(
        "email,name,script\na@x.example,Ann,Hello\nb@x.example,Ann,Hello\n", encoding="utf-8"
    )
    template = tmp_path / "t.json"
    template.write_text(
        json.dumps(
            {
                "video_inputs": [
                    {
                        "character": {"type": "avatar", "avatar_id": "a1"},
                        "voice": {
                            "type": "text",
                            "voice_id": "v1",
                            "input_text": "{{ script }}, {{ name }}",
                        },
                    }
                ]
            }
        ),
        encoding="utf-8",
    )

    result = CliRunner().invoke(cli, ["validate", str(jobs), "--template", str(template)])

    assert result.exit_code == 1
    assert "line 3: the same request as an earlier row" in result.stdout
    assert "give --key-column to key them by contact" in result.stdout
