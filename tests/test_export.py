"""export: source columns first, then the results; formulas defused; Unicode intact."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.cli.export_cmd import export
from engine.export import RESULT_COLUMNS, export_ledger
from engine.export.writer import output_names
from engine.ledger import render_writes, statements
from engine.ledger.statements import Statement
from engine.ledger.store import Ledger
from tests.conftest import LedgerSpec
from tests.test_crash_resume import cli_env

UNICODE = {
    "name": "Zoë Ñúñez-Łukasz 🎬🚀",
    "greeting": "مرحبا بك يا صديقي",  # right to left
    "note": "日本語のメモ\nsecond line, with a comma",
}


def make_ledger(where: Path | LedgerSpec, columns: list[str], rows: list[dict[str, Any]]) -> Ledger:
    ledger = where.open() if isinstance(where, LedgerSpec) else Ledger(where)
    work: list[Statement] = [statements.set_source_columns(columns)]
    for line, row in enumerate(rows, start=1):
        key = f"k{line}"
        work.append(statements.insert_job(key, line, "pending", row, "sha", None))
        work.append(statements.mark_submitting(key, "{}", "sha", key, 1.0))
        work.append(statements.mark_submitted(key, f"vid{line}", 1))
        work.append(
            render_writes.render_update(key, "completed", f"https://v/{line}.mp4", None, None)
        )
    ledger.transaction(work)
    return ledger


def export_csv(ledger: Ledger) -> list[list[str]]:
    out = io.StringIO(newline="")
    export_ledger(ledger, out, "csv")
    return list(csv.reader(io.StringIO(out.getvalue(), newline="")))


def test_source_columns_first_then_results_in_source_order(store: LedgerSpec) -> None:
    rows = [{"email": f"p{i}@x.example", "first": f"P{i}"} for i in range(3)]
    # Recorded out of line order, as a resumed run may; the export follows the file.
    ledger = make_ledger(store, ["email", "first"], rows)
    ledger.transaction(
        [statements.insert_job("early", 0, "invalid", {"email": "bad"}, None, "oops")]
    )
    table = export_csv(ledger)
    assert table[0] == ["email", "first", *RESULT_COLUMNS]
    assert [r[0] for r in table[1:]] == ["bad", "p0@x.example", "p1@x.example", "p2@x.example"]
    first = dict(zip(table[0], table[2], strict=True))
    assert first == {
        "email": "p0@x.example",
        "first": "P0",
        "key": "k1",
        "line": "1",
        "status": "submitted",
        "video_id": "vid1",
        "video_status": "completed",
        "video_url": "https://v/1.mp4",
        "thumbnail_url": "",
        "attempts": "1",
        "error": "",
        "api": "v2",
        "callback_id": "k1",
        "video_page_url": "",
        "file_path": "",
    }
    invalid = dict(zip(table[0], table[1], strict=True))
    assert (invalid["first"], invalid["status"], invalid["error"]) == ("", "invalid", "oops")
    ledger.close()


def test_formula_cells_are_defused_in_csv_only(store: LedgerSpec) -> None:
    values = ["=1+1", "+33 6 12", "-2", "@SUM(A1)", "\tx", "\rx", "a=b", "plain", ""]
    rows = [{"cell": v} for v in values]
    ledger = make_ledger(store, ["cell"], rows)
    table = export_csv(ledger)
    assert [r[0] for r in table[1:]] == [
        "'=1+1",
        "'+33 6 12",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "'\rx",
        "a=b",
        "plain",
        "",
    ]
    # A result can start like a formula too (an error message from the service).
    ledger.transaction([statements.mark_outcome("k1", "failed", 1, "=HYPERLINK(evil)")])
    header, first = export_csv(ledger)[:2]
    assert dict(zip(header, first, strict=True))["error"] == "'=HYPERLINK(evil)"
    out = io.StringIO()
    export_ledger(ledger, out, "jsonl")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["cell"] for r in records] == values  # JSONL is data, not a spreadsheet
    ledger.close()


def test_unicode_survives_csv_jsonl_and_stdout(tmp_path: Path, store: LedgerSpec) -> None:
    make_ledger(store, list(UNICODE), [UNICODE]).close()
    out_csv, out_jsonl = tmp_path / "out.csv", tmp_path / "out.jsonl"
    for target in (out_csv, out_jsonl):
        done = CliRunner().invoke(export, [*store.args(), "-o", str(target)])
        assert done.exit_code == 0, done.output
    with out_csv.open(encoding="utf-8", newline="") as f:
        row = next(csv.DictReader(f))
    assert {k: row[k] for k in UNICODE} == UNICODE
    record = json.loads(out_jsonl.read_text(encoding="utf-8"))
    assert {k: record[k] for k in UNICODE} == UNICODE
    assert "🎬" in out_jsonl.read_text(encoding="utf-8")  # not \\u escapes

    # Standard output is UTF-8 even where the locale says otherwise.
    piped = subprocess.run(
        [sys.executable, "-m", "engine", "export", *store.args()],
        capture_output=True,
        env=cli_env(LC_ALL="C", LANG="C", PYTHONIOENCODING="ascii", PYTHONUTF8="0"),
        check=True,
    )
    row = next(csv.DictReader(io.StringIO(piped.stdout.decode("utf-8"), newline="")))
    assert {k: row[k] for k in UNICODE} == UNICODE


def test_a_source_column_named_like_a_result_keeps_its_data(store: LedgerSpec) -> None:
    columns = ["status", "source.status", "email"]
    row = {"status": "VIP", "source.status": "from CRM", "email": "a@x.example"}
    ledger = make_ledger(store, columns, [row])
    assert output_names(columns) == ["source.source.status", "source.status", "email"]
    header, values = export_csv(ledger)
    record = dict(zip(header, values, strict=True))
    assert len(header) == len(set(header)) == 3 + len(RESULT_COLUMNS)
    assert (record["source.source.status"], record["source.status"]) == ("VIP", "from CRM")
    assert record["status"] == "submitted"
    out = io.StringIO()
    export_ledger(ledger, out, "jsonl")
    assert json.loads(out.getvalue())["source.source.status"] == "VIP"
    ledger.close()


def test_jsonl_jobs_with_differing_keys_export_the_union_of_columns(tmp_path: Path) -> None:
    template = tmp_path / "t.json"
    template.write_text(
        json.dumps(
            {
                "dimension": {"width": 1280, "height": 720},
                "video_inputs": [
                    {
                        "character": {"type": "avatar", "avatar_id": "a1"},
                        "voice": {"type": "text", "voice_id": "v1", "input_text": "Hi {{name}}"},
                    }
                ],
            }
        )
    )
    jobs = tmp_path / "jobs.jsonl"
    lines = [
        {"name": "Ann", "email": "ann@x.example"},
        {"name": "Bo", "company": "Acme", "score": 7},
        {"email": "cy@x.example", "name": "Cy", "tags": ["a", "b"]},
    ]
    jobs.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    ran = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine",
            "run",
            str(jobs),
            "--template",
            str(template),
            "--sandbox",
            "--rate",
            "100/s",
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
    )
    assert ran.returncode == 0, ran.stderr
    ledger = Ledger(tmp_path / "jobs.ledger.db")
    table = export_csv(ledger)
    assert table[0] == ["name", "email", "company", "score", "tags", *RESULT_COLUMNS]
    assert [r[:5] for r in table[1:]] == [
        ["Ann", "ann@x.example", "", "", ""],
        ["Bo", "", "Acme", "7", ""],
        ["Cy", "cy@x.example", "", "", '["a", "b"]'],
    ]
    out = io.StringIO()
    export_ledger(ledger, out, "jsonl")
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert list(records[1])[:5] == ["name", "email", "company", "score", "tags"]
    assert (records[1]["score"], records[1]["email"], records[2]["tags"]) == (7, None, ["a", "b"])
    ledger.close()


def test_the_file_is_replaced_whole_and_readable_by_others(tmp_path: Path) -> None:
    ledger_path = tmp_path / "l.db"
    make_ledger(ledger_path, ["a"], [{"a": "1"}, {"a": "2"}]).close()
    target = tmp_path / "results" / "out.csv"
    for _ in range(2):
        done = CliRunner().invoke(export, ["--ledger", str(ledger_path), "-o", str(target)])
        assert done.exit_code == 0, done.output
    first = target.read_bytes()
    CliRunner().invoke(export, ["--ledger", str(ledger_path), "-o", str(target)])
    assert target.read_bytes() == first  # stable from one export to the next
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.csv"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_missing_ledger_is_a_usage_error(tmp_path: Path) -> None:
    done = CliRunner().invoke(export, ["--ledger", str(tmp_path / "nope.db")])
    assert done.exit_code == 2
    assert "no such ledger" in done.output
    assert list(tmp_path.iterdir()) == []


def test_dash_as_the_output_is_standard_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As JOBS - is standard input; it once wrote a file named "-"."""
    ledger_path = tmp_path / "l.db"
    make_ledger(ledger_path, list(UNICODE), [UNICODE]).close()
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(export, ["--ledger", str(ledger_path), "-o", "-"])
    assert done.exit_code == 0, done.output
    assert not (tmp_path / "-").exists()
    assert UNICODE["name"] in done.stdout
