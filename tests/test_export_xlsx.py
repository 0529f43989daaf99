"""export -o results.xlsx: a real workbook; --excel: a CSV with a BOM; conflicts refused."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from openpyxl import load_workbook

from engine.cli.export_cmd import export
from engine.export import RESULT_COLUMNS
from engine.export.xlsx import write_workbook
from engine.ledger import statements
from tests.test_export import UNICODE, make_ledger


def test_xlsx_is_a_real_workbook_with_the_csv_columns(tmp_path: Path) -> None:
    rows = [
        {"name": UNICODE["name"], "note": '=HYPERLINK("http://evil")', "city": "-Lyon"},
        {"name": "Bo", "note": "@SUM(A1)", "city": "+33 1 23"},
    ]
    make_ledger(tmp_path / "l.db", ["name", "note", "city"], rows).close()
    result = CliRunner().invoke(
        export, ["--ledger", str(tmp_path / "l.db"), "-o", str(tmp_path / "results.xlsx")]
    )
    assert result.exit_code == 0, result.output
    assert zipfile.is_zipfile(tmp_path / "results.xlsx")  # not CSV under an .xlsx name
    csv_run = CliRunner().invoke(export, ["--ledger", str(tmp_path / "l.db")])
    csv_header = next(csv.reader(io.StringIO(csv_run.stdout)))

    sheet = load_workbook(tmp_path / "results.xlsx").active
    assert sheet is not None
    table = [[c.value for c in row] for row in sheet.iter_rows()]
    assert table[0] == csv_header == ["name", "note", "city", *RESULT_COLUMNS]
    first = dict(zip(table[0], table[1], strict=True))
    # Kept as the text it is, with no "'" prefix, and typed as text: never computed.
    assert first["name"] == UNICODE["name"]
    assert first["note"] == '=HYPERLINK("http://evil")'
    assert first["city"] == "-Lyon"
    assert first["line"] == 1
    assert first["video_url"] == "https://v/1.mp4"
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            assert cell.data_type != "f"
    assert dict(zip(table[0], table[2], strict=True))["note"] == "@SUM(A1)"


def test_long_numbers_and_controls_stay_readable_in_a_workbook(tmp_path: Path) -> None:
    ledger = make_ledger(tmp_path / "l.db", ["phone", "n", "flag", "bad"], [])
    ledger.transaction(
        [
            statements.insert_job(
                "k",
                1,
                "pending",
                {"phone": 33612345678901234, "n": 7, "flag": True, "bad": "a\x00b"},
                None,
                None,
            )
        ]
    )
    write_workbook(ledger, tmp_path / "r.xlsx")
    sheet = load_workbook(tmp_path / "r.xlsx").active
    assert sheet is not None
    values = [c.value for c in next(sheet.iter_rows(min_row=2))]
    # Past Excel's 15 digits a number would be rounded: it stays exact as text.
    assert values[:4] == ["33612345678901234", 7, "true", "a\ufffdb"]


def test_a_workbook_is_written_in_flat_memory(tmp_path: Path) -> None:
    rows = [{"email": f"p{i}@x.example", "note": "x" * 1000 + str(i)} for i in range(2000)]
    ledger = make_ledger(tmp_path / "l.db", ["email", "note"], rows)
    tracemalloc.start()
    try:
        write_workbook(ledger, tmp_path / "r.xlsx")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # Two megabytes of cells went through; a workbook held in memory would hold them all.
    assert peak < 1_000_000
    workbook = load_workbook(tmp_path / "r.xlsx", read_only=True)
    try:
        sheet = workbook.active
        assert sheet is not None
        assert sum(1 for _ in sheet.iter_rows()) == 2001
    finally:
        workbook.close()


def test_excel_flag_adds_a_bom_to_csv_only_when_asked(tmp_path: Path) -> None:
    make_ledger(tmp_path / "l.db", ["name"], [{"name": "Zoë"}]).close()
    for flags, expected in (([], b"name,"), (["--excel"], b"\xef\xbb\xbfname,")):
        out = tmp_path / "r.csv"
        result = CliRunner().invoke(
            export, ["--ledger", str(tmp_path / "l.db"), "-o", str(out), *flags]
        )
        assert result.exit_code == 0, result.output
        assert out.read_bytes().startswith(expected)
        assert "Zoë".encode() in out.read_bytes()
    piped = CliRunner().invoke(export, ["--ledger", str(tmp_path / "l.db"), "--excel"])
    assert piped.stdout_bytes.startswith(b"\xef\xbb\xbfname,")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--format", "csv", "-o", "r.xlsx"], "--format csv"),
        (["--format", "xlsx", "-o", "r.jsonl"], "--format xlsx"),
        (["--format", "xlsx"], "-o results.xlsx"),
        (["-o", "r.jsonl", "--excel"], "--excel"),
        (["-o", "r.xlsx", "--excel"], "--excel"),
        (["-o", "r.xls"], "r.xlsx"),
    ],
)
def test_format_conflicts_are_refused_before_any_work(
    tmp_path: Path, args: list[str], named: str
) -> None:
    # The ledger does not even exist: the conflict is found first.
    args = [str(tmp_path / a) if a.startswith("r.") else a for a in args]
    result = CliRunner().invoke(export, ["--ledger", str(tmp_path / "none.db"), *args])
    assert result.exit_code == 2
    assert named in result.output
    assert "no such ledger" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_format_matching_the_suffix_is_fine(tmp_path: Path) -> None:
    make_ledger(tmp_path / "l.db", ["name"], [{"name": "A"}]).close()
    result = CliRunner().invoke(
        export,
        ["--ledger", str(tmp_path / "l.db"), "--format", "xlsx", "-o", str(tmp_path / "r.XLSX")],
    )
    assert result.exit_code == 0, result.output
    assert zipfile.is_zipfile(tmp_path / "r.XLSX")


def test_the_workbook_library_is_loaded_only_to_write_a_workbook() -> None:
    # Every command starts by importing the CLI: openpyxl would slow each one down.
    probe = "import sys, engine.cli; print('openpyxl' in sys.modules)"
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert found.strip() == "False"
