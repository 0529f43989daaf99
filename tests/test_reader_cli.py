"""Real-world CSVs from the command line: the delimiter, spreadsheet columns, ragged rows,
and a file still being written (issue 12 items 4-6, issue 17 item 7)."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from engine.cli import cli as heygen_batch
from tests.conftest import DEMO_CSV, DEMO_TEMPLATE
from tests.test_cli_end_to_end import cli

TEMPLATE_BODY = {
    "title": "For {{ name }}",
    "dimension": {"width": 1280, "height": 720},
    "video_inputs": [
        {
            "character": {"type": "avatar", "avatar_id": "Brent_sitting_office_front"},
            "voice": {
                "type": "text",
                "voice_id": "ff2ecc8fbdef4273a28bed7b5e35bb57",
                "input_text": "Hi {{ name }} of {{ company }}",
            },
        }
    ],
}
SEMICOLONS = (
    b'email;name;company\r\nava@x.example;Ava;"Smith; Sons"\r\nliam@x.example;Liam;Acme\r\n'
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(heygen_batch, list(args))


@pytest.fixture
def template(tmp_path: Path) -> str:
    path = tmp_path / "template.json"
    path.write_text(json.dumps(TEMPLATE_BODY), encoding="utf-8")
    return str(path)


def write(path: Path, data: bytes, age_s: float = 60) -> str:
    path.write_bytes(data)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return str(path)


def test_validate_reads_a_semicolon_export_and_names_its_delimiter(
    tmp_path: Path, template: str
) -> None:
    jobs = write(tmp_path / "jobs.csv", SEMICOLONS)

    text = invoke("validate", jobs, "--template", template)
    as_json = invoke("validate", jobs, "--template", template, "--json")

    assert text.exit_code == 0, text.output
    assert text.stdout == "2 rows (semicolon-separated): 2 valid, 0 invalid.\n"
    assert text.stderr == ""  # no word of missing columns
    assert as_json.exit_code == 0, as_json.output
    summary = json.loads(as_json.stdout.splitlines()[-1])["summary"]
    assert (summary["valid"], summary["delimiter"]) == (2, ";")


def test_dry_run_names_the_delimiter(tmp_path: Path, template: str) -> None:
    jobs = write(tmp_path / "jobs.csv", SEMICOLONS)
    ledger = str(tmp_path / "jobs.ledger.db")

    text = invoke("run", jobs, "--template", template, "--ledger", ledger, "--dry-run")
    as_json = invoke("run", jobs, "--template", template, "--ledger", ledger, "--dry-run", "--json")

    assert text.exit_code == 0, text.output
    assert text.stdout.startswith("Dry run: 2 rows read (semicolon-separated): 2 new,")
    summary = json.loads(as_json.stdout)
    assert (summary["new"], summary["delimiter"]) == (2, ";")


def test_run_names_the_delimiter_in_json_and_text(tmp_path: Path, template: str) -> None:
    jobs = write(tmp_path / "jobs.csv", SEMICOLONS)
    args = ("run", jobs, "--template", template, "--sandbox", "--rate", "50/s", "--no-progress")

    first = cli(*args, "--json")
    second = cli(*args)

    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert (summary["delimiter"], summary["counts"]["submitted"]) == (";", 2)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith("Read 2 rows (semicolon-separated): 0 new, 2 already done")


@pytest.mark.parametrize(
    ("data", "option"),
    [
        # Ties: detection alone reads commas, then semicolons.
        (b"name;company;a,b,c\nAva;Acme;1,2,3\n", ";"),
        (b"name\tcompany\ta;b;c\nAva\tAcme\t1;2;3\n", "tab"),
        (b"name\tcompany\ta;b;c\nAva\tAcme\t1;2;3\n", "\\t"),
    ],
)
def test_the_delimiter_option_overrides_detection(
    tmp_path: Path, template: str, data: bytes, option: str
) -> None:
    jobs = write(tmp_path / "jobs.csv", data)

    detected = invoke("validate", jobs, "--template", template)
    given = invoke("validate", jobs, "--template", template, "--delimiter", option)

    assert detected.exit_code == 1
    assert "the jobs file (read as " in detected.stderr
    assert "has no such column" in detected.stderr
    assert given.exit_code == 0, given.output
    assert given.stdout.startswith("1 row (")


def test_an_unknown_delimiter_is_a_usage_error(tmp_path: Path, template: str) -> None:
    jobs = write(tmp_path / "jobs.csv", SEMICOLONS)

    result = invoke("validate", jobs, "--template", template, "--delimiter", ":")

    assert result.exit_code == 2
    assert ", ; | or tab" in result.stderr


def test_delimiter_with_jsonl_is_refused_before_any_work(tmp_path: Path, template: str) -> None:
    jobs = write(tmp_path / "jobs.jsonl", b'{"name": "Ava", "company": "Acme"}\n')
    ledger = tmp_path / "jobs.ledger.db"

    checked = invoke("validate", jobs, "--template", template, "--delimiter", ";")
    ran = invoke("run", jobs, "--template", template, "--sandbox", "--delimiter", ";")

    for result in (checked, ran):
        assert result.exit_code == 2
        assert "--delimiter applies to CSV files only" in result.stderr
    assert not ledger.exists()


def test_empty_trailing_header_columns_are_ignored_with_one_notice(
    tmp_path: Path, template: str
) -> None:
    jobs = write(
        tmp_path / "jobs.csv",
        b"email,name,company,,,\r\n"
        b"ava@x.example,Ava,Acme,,,\r\n"
        b"liam@x.example,Liam,Contoso,,,\r\n"
        b"noah@x.example,Noah,Initech,,note,\r\n"
        b"emma@x.example,Emma,Globex,,,\r\n",
    )

    result = cli("validate", jobs, "--template", template)

    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "line 4: cell 5 holds text but the header names no column 5; "
        "name the column or empty the cell",
        "4 rows (comma-separated): 3 valid, 1 invalid (1 row shape).",
    ]
    assert result.stderr.count("the header ends in 3 empty cells") == 1
    assert "those columns are ignored" in result.stderr


def exported(tmp_path: Path, ledger: Path) -> list[dict[str, Any]]:
    out = tmp_path / "results.csv"
    result = cli("export", "--ledger", str(ledger), "-o", str(out))
    assert result.returncode == 0, result.stderr
    with out.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_a_ragged_row_is_exported_with_its_key_and_its_cells(tmp_path: Path) -> None:
    demo = DEMO_CSV.read_bytes()
    lines = demo.count(b"\n")
    jobs = write(tmp_path / "jobs.csv", demo + b"c-900,Short\n")
    ledger = tmp_path / "jobs.ledger.db"

    result = cli(
        "run", jobs, "--template", str(DEMO_TEMPLATE), "--key-column", "contact_id",
        "--sandbox", "--rate", "50/s", "--json",
    )  # fmt: skip

    assert result.returncode == 1, result.stderr  # one invalid row
    assert json.loads(result.stdout)["invalid"] == 1
    [short] = [r for r in exported(tmp_path, ledger) if r["status"] == "invalid"]
    assert (short["key"], short["line"], short["contact_id"], short["first_name"]) == (
        "c-900",
        str(lines + 1),
        "c-900",
        "Short",
    )
    assert short["last_name"] == ""
    assert "2 cells but the header has 8" in short["error"]


def test_a_record_cut_off_by_a_writer_waits_for_the_next_run(tmp_path: Path) -> None:
    header, first, second, *_ = DEMO_CSV.read_bytes().splitlines(keepends=True)
    cut = len(second) - 10
    path = tmp_path / "jobs.csv"
    jobs = write(path, header + first + second[:cut], age_s=0)  # cron is still writing it
    ledger = tmp_path / "jobs.ledger.db"
    args = (
        "run", jobs, "--template", str(DEMO_TEMPLATE), "--key-column", "contact_id",
        "--sandbox", "--rate", "50/s", "--json",
    )  # fmt: skip

    early = cli(*args)
    with path.open("ab") as writer:
        writer.write(second[cut:])
    complete = cli(*args)

    assert early.returncode == 0, early.stderr
    summary = json.loads(early.stdout)
    assert (summary["read"], summary["invalid"]) == (1, 0)
    assert {s: n for s, n in summary["counts"].items() if n} == {"submitted": 1}
    assert "the record on line 3 is cut off" in early.stderr
    assert "left for the next run" in early.stderr
    assert complete.returncode == 0, complete.stderr
    assert json.loads(complete.stdout)["new"] == 1
    rows = exported(tmp_path, ledger)
    assert [r["status"] for r in rows] == ["submitted", "submitted"]
    assert rows[1]["product"] == second.decode().split(",")[6]
