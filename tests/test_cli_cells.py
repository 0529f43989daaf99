"""Issue 12 items 1-3 and issue 17 item 6 from the command line: optional V2 fields,
control characters, empty cells with their fallback, a constant callback_id."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result

from engine.cli import cli
from engine.prepare import Preparer
from engine.reader import JobsFormat, open_rows
from engine.template import load_template
from tests.conftest import ROOT
from tests.processes import counters, environment, standalone_sandbox

NO_DIMENSION = (
    '{"video_inputs":[{"character":{"type":"avatar","avatar_id":"a1","avatar_style":"normal"},'
    '"voice":{"type":"text","input_text":"Hi","voice_id":"v1"},'
    '"background":{"type":"color","value":"#008000"}}]}'
)

TEMPLATE: dict[str, Any] = {
    "title": "Welcome {{ first_name }}",
    "video_inputs": [
        {
            "character": {"type": "avatar", "avatar_id": "a1"},
            "voice": {
                "type": "text",
                "voice_id": "v1",
                "input_text": "Hi {{ first_name }}, thanks for choosing {{ product }}.",
            },
        }
    ],
}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def write_template(tmp_path: Path, template: dict[str, Any]) -> str:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(template), encoding="utf-8")
    return str(path)


def write_csv(tmp_path: Path, data: bytes) -> str:
    path = tmp_path / "jobs.csv"
    path.write_bytes(data)
    return str(path)


# Line 2 clean, line 3 a raw NUL in first_name, line 4 an empty first_name,
# line 5 a blank product, line 6 a tab in first_name (it reaches the title too).
CONTACTS = (
    b"id,first_name,product\n"
    b"c1,Ava,Analytics\n"
    b"c2,Le\x00o,Analytics\n"
    b"c3,,Analytics\n"
    b"c4,Noah,   \n"
    b"c5,Zo\te,Analytics\n"
)


# --- item 1: documented-optional fields ---------------------------------------------------


def test_a_body_without_dimension_validates_through_validate_on_a_jsonl_file(
    tmp_path: Path,
) -> None:
    jobs = tmp_path / "bodies.jsonl"
    jobs.write_text(NO_DIMENSION + "\n", encoding="utf-8")

    result = invoke("validate", str(jobs))

    assert result.exit_code == 0, result.output
    assert result.stdout == "1 row: 1 valid, 0 invalid.\n"


def test_a_body_without_dimension_is_sent_without_one(tmp_path: Path) -> None:
    jobs = tmp_path / "bodies.jsonl"
    jobs.write_text(NO_DIMENSION + "\n", encoding="utf-8")
    ledger = tmp_path / "l.db"

    result = invoke("run", str(jobs), "--ledger", str(ledger), "--sandbox", "--json")
    export = invoke("export", "--ledger", str(ledger), "--format", "jsonl")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["submitted"] == 1
    assert json.loads(export.stdout)["status"] == "submitted"


# --- items 2 and 3: control characters and empty cells ------------------------------------


def test_validate_names_line_column_and_code_point_and_counts_by_reason(tmp_path: Path) -> None:
    jobs = write_csv(tmp_path, CONTACTS)
    template = write_template(tmp_path, TEMPLATE)

    result = invoke("validate", jobs, "--template", template, "--key-column", "id")

    assert result.exit_code == 1
    nul = "column 'first_name' holds control character U+0000 (NUL); remove it from the cell"
    empty = "is empty; fill it in, or give the placeholder a fallback"
    assert result.stdout.splitlines() == [
        f"line 3: title: {nul}",
        f"line 3: video_inputs[0].voice.input_text: {nul}",
        f"line 4: title: column 'first_name' {empty}: {{{{ first_name | default(\"text\") }}}}",
        f"line 4: video_inputs[0].voice.input_text: column 'first_name' {empty}: "
        '{{ first_name | default("text") }}',
        f"line 5: video_inputs[0].voice.input_text: column 'product' {empty}: "
        '{{ product | default("text") }}',
        "line 6: title: column 'first_name' holds control character U+0009 (HT); "
        "remove it from the cell",
        "5 rows (comma-separated): 1 valid, 4 invalid (2 control characters, 2 empty cells).",
    ]


def test_validate_json_summary_counts_invalid_rows_by_reason(tmp_path: Path) -> None:
    jobs = write_csv(tmp_path, CONTACTS)
    template = write_template(tmp_path, TEMPLATE)

    result = invoke("validate", jobs, "--template", template, "--key-column", "id", "--json")

    *rows, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["ok"] for r in rows] == [True, False, False, False, False]
    assert rows[1]["errors"][0]["reason"] == "control_character"
    assert summary == {
        "summary": {
            "rows": 5,
            "valid": 1,
            "invalid": 4,
            "duplicates": 0,
            "invalid_by_reason": {"control_character": 2, "empty_cell": 2},
            "delimiter": ",",
        }
    }


def test_a_fallback_makes_the_empty_cell_rows_valid(tmp_path: Path) -> None:
    voice = dict(TEMPLATE["video_inputs"][0]["voice"])
    voice["input_text"] = (
        'Hi {{ first_name | default("there") }}, thanks for choosing '
        "{{ product | default('our product') }}."
    )
    template = {
        "title": "Welcome {{ first_name | default('friend') }}",
        "video_inputs": [{**TEMPLATE["video_inputs"][0], "voice": voice}],
    }
    jobs = write_csv(tmp_path, CONTACTS)
    path = write_template(tmp_path, template)

    result = invoke("validate", jobs, "--template", path, "--key-column", "id", "--json")
    with open_rows(jobs, JobsFormat.CSV) as source:
        bodies = [Preparer(load_template(Path(path))).prepare(row).body for row in source.rows]

    *rows, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["ok"] for r in rows] == [True, False, True, True, False]
    assert summary["summary"]["invalid_by_reason"] == {"control_character": 2}
    spoken = [b["video_inputs"][0]["voice"]["input_text"] if b else None for b in bodies]
    assert spoken[2:4] == [
        "Hi there, thanks for choosing Analytics.",
        "Hi Noah, thanks for choosing our product.",
    ]
    assert bodies[2] is not None
    assert bodies[2]["title"] == "Welcome friend"


def test_dry_run_counts_invalid_rows_by_reason_in_text_and_json(tmp_path: Path) -> None:
    jobs = write_csv(tmp_path, CONTACTS)
    template = write_template(tmp_path, TEMPLATE)
    args = ["run", jobs, "--template", template, "--key-column", "id"]
    args += ["--ledger", str(tmp_path / "l.db"), "--dry-run"]

    text = invoke(*args)
    as_json = invoke(*args, "--json")

    assert text.stdout.splitlines()[0] == (
        "Dry run: 5 rows read (comma-separated): 1 new, 0 already done, "
        "4 invalid (2 control characters, 2 empty cells), 0 repeated job keys."
    )
    summary = json.loads(as_json.stdout)
    assert summary["invalid"] == 4
    assert summary["invalid_by_reason"] == {"control_character": 2, "empty_cell": 2}


def test_a_nul_cell_is_never_sent_and_never_exported_raw(tmp_path: Path) -> None:
    jobs = write_csv(tmp_path, CONTACTS)
    template = write_template(tmp_path, TEMPLATE)
    ledger = tmp_path / "l.db"
    with standalone_sandbox(key="sk-cells") as base_url:
        result = subprocess.run(
            [sys.executable, "-m", "engine", "run", jobs, "--template", template,
             "--key-column", "id", "--ledger", str(ledger), "--base-url", base_url,
             "--no-progress", "--json"],
            capture_output=True, text=True, env=environment(HEYGEN_API_KEY="sk-cells"),
            timeout=60, check=False,
        )  # fmt: skip
        created = counters(base_url)["created"]
    out = tmp_path / "results.csv"
    exported = invoke("export", "--ledger", str(ledger), "-o", str(out))

    assert result.returncode == 1, result.stderr
    counts = json.loads(result.stdout)["counts"]
    assert (counts["submitted"], counts["invalid"]) == (1, 4)
    assert created == 1
    assert exported.exit_code == 0, exported.output
    data = out.read_bytes()
    assert b"\x00" not in data
    assert "Le\ufffdo".encode() in data
    assert b"U+0000 (NUL)" in data


# --- the template is refused when loaded --------------------------------------------------


def test_a_filter_other_than_default_exits_2_showing_the_allowed_form(tmp_path: Path) -> None:
    template = write_template(tmp_path, {**TEMPLATE, "title": "Welcome {{ first_name | upper }}"})
    jobs = write_csv(tmp_path, CONTACTS)

    result = invoke("validate", jobs, "--template", template)

    assert result.exit_code == 2
    assert "the only filter is default" in result.stderr
    assert '{{ column | default("text") }}' in result.stderr


def test_a_constant_callback_id_exits_2_when_the_template_is_loaded(tmp_path: Path) -> None:
    template = write_template(tmp_path, {**TEMPLATE, "callback_id": "spring-campaign"})
    jobs = write_csv(tmp_path, CONTACTS)

    for command in (["validate", jobs], ["run", jobs, "--sandbox", "--dry-run"]):
        result = invoke(*command, "--template", template)

        assert result.exit_code == 2
        assert 'callback_id "spring-campaign" is the same for every row' in result.stderr
        assert "must differ per row" in result.stderr
        assert "leave it out so the engine makes one per job" in result.stderr


def test_the_readme_template_gives_what_the_readme_says(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Templates") :]
    example = json.loads(section[section.index("```json") + 7 : section.index("```\n")])
    template = write_template(tmp_path, example)
    jobs = write_csv(tmp_path, CONTACTS)

    result = invoke("validate", jobs, "--template", template, "--key-column", "id")
    with open_rows(jobs, JobsFormat.CSV) as source:
        bodies = [Preparer(load_template(Path(template))).prepare(row).body for row in source.rows]

    assert bodies[2] is not None
    assert bodies[2]["video_inputs"][0]["voice"]["input_text"] == (
        "Hi there, thanks for choosing Analytics."
    )
    assert (bodies[2]["title"], bodies[2]["callback_id"]) == ("Welcome friend", "c3-spring")
    lines = result.stdout.splitlines()
    assert "line 5: video_inputs[0].voice.input_text: column 'product' is empty" in lines[2]
    assert lines[0] == (
        "line 3: title: column 'first_name' holds control character U+0000 (NUL); "
        "remove it from the cell"
    )


def test_a_column_absent_from_the_header_is_fine_when_it_has_a_fallback(tmp_path: Path) -> None:
    template = dict(TEMPLATE, title="Welcome {{ nickname | default('friend') }}")
    path = write_template(tmp_path, template)
    jobs = write_csv(tmp_path, b"id,first_name,product\nc1,Ava,Analytics\n")

    result = invoke("validate", jobs, "--template", path)

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout == "1 row (comma-separated): 1 valid, 0 invalid.\n"
