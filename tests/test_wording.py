"""Counts in messages agree with their noun: ``1 row``, never ``1 rows``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import cli
from engine.cli.preparing import reasons_text
from engine.cli.wording import counted
from tests.conftest import DEMO_TEMPLATE
from tests.test_reader_csv import read


def test_a_count_of_one_takes_the_singular() -> None:
    assert counted(1, "row") == "1 row"
    assert counted(0, "row") == "0 rows"
    assert counted(2, "talking photo") == "2 talking photos"
    assert counted(3, "box", "boxes") == "3 boxes"


def test_invalid_rows_by_reason_read_as_english() -> None:
    text = reasons_text({"empty_cell": 1, "control_character": 2, "schema": 3})
    assert text == " (2 control characters, 1 empty cell, 3 schema errors)"


def test_one_empty_header_cell_is_one_cell(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        read(tmp_path, b"email,name,\r\na@x,Ann,\r\n")
    [notice] = [r.getMessage() for r in caplog.records if "header ends" in r.getMessage()]
    assert "ends in 1 empty cell; that column is ignored (a row with text under it" in notice


def test_validate_of_one_row_with_a_repeated_key_says_row_and_key(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.csv"
    header = "contact_id,first_name,last_name,email,company,city,product,speed\n"
    row = "c-1,Ann,Lee,a@x.example,Acme,Oslo,the Suite,1.0\n"
    jobs.write_text(header + row + row, encoding="utf-8")
    result = CliRunner().invoke(
        cli, ["validate", str(jobs), "--template", str(DEMO_TEMPLATE), "--key-column", "contact_id"]
    )
    assert result.exit_code == 1
    assert "2 rows (comma-separated): 1 valid, 0 invalid, 1 repeated job key." in result.output
