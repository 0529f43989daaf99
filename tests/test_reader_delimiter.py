"""The CSV delimiter: detected from the header record, or set with --delimiter."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.reader import JobsFormat, delimiter_from_option, describe, open_rows
from tests.test_reader_csv import finished


def opened(tmp_path: Path, data: bytes, delimiter: str | None = None) -> tuple[str, list[str]]:
    path = tmp_path / "jobs.csv"
    path.write_bytes(data)
    finished(path)
    with open_rows(str(path), JobsFormat.CSV, delimiter) as source:
        assert source.delimiter is not None
        assert source.header is not None
        return source.delimiter, source.header


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"email;name;company", ";"),  # a European spreadsheet export
        (b"email,name,company", ","),
        (b"email\tname\tcompany", "\t"),
        (b"email|name|company", "|"),
        (b"email", ","),  # one column: nothing to detect, read on commas
        (b"email,name;company", ","),  # a tie goes to the comma
        (b"name,price; net,notes", ","),  # a comma header naming a column with a ';'
        (b'"email;work",name', ","),  # a delimiter inside quotes is not counted
        (b'"a;b;c";d', ";"),  # ... and a comma inside them neither
        (b'"first, last";email;company', ";"),
        (b"\xef\xbb\xbfemail;name", ";"),  # after a BOM
    ],
)
def test_the_delimiter_is_the_one_that_splits_the_header(
    tmp_path: Path, header: bytes, expected: str
) -> None:
    delimiter, _ = opened(tmp_path, header + b"\r\nx\r\n")

    assert delimiter == expected


def test_a_semicolon_export_reads_its_cells_and_quoted_semicolons(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(b'email;name;company\r\na@x.example;Ann;"Smith; Sons"\r\n')
    finished(path)

    with open_rows(str(path), JobsFormat.CSV) as source:
        rows = list(source.rows)

    assert source.header == ["email", "name", "company"]
    assert [(r.line, r.values, r.error) for r in rows] == [
        (2, {"email": "a@x.example", "name": "Ann", "company": "Smith; Sons"}, None)
    ]


def test_blank_spreadsheet_rows_before_a_semicolon_header_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(b";;;\n\nemail;name\na@x;Ann\n")
    finished(path)

    with open_rows(str(path), JobsFormat.CSV) as source:
        rows = list(source.rows)

    assert (source.delimiter, source.header) == (";", ["email", "name"])
    assert [(r.line, r.values) for r in rows] == [(4, {"email": "a@x", "name": "Ann"})]


def test_a_header_with_a_quoted_line_break_is_detected_and_lines_still_count(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(b'email;"first\nname"\na@x;Ann\n')
    finished(path)

    with open_rows(str(path), JobsFormat.CSV) as source:
        rows = list(source.rows)

    assert (source.delimiter, source.header) == (";", ["email", "first\nname"])
    assert [r.line for r in rows] == [3]


def test_the_option_overrides_detection(tmp_path: Path) -> None:
    data = b"name;company,inc\nAnn;Acme, Inc\n"

    assert opened(tmp_path, data) == (",", ["name;company", "inc"])
    assert opened(tmp_path, data, ";") == (";", ["name", "company,inc"])


def test_a_malformed_quote_in_a_semicolon_file_says_what_to_fix(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(b'a;b\n1;"x"y\n2;z\n')
    finished(path)

    with open_rows(str(path), JobsFormat.CSV) as source:
        rows = list(source.rows)

    assert rows[0].error is not None
    assert "written twice" in str(rows[0].error)
    assert rows[1].values == {"a": "2", "b": "z"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [(",", ","), (";", ";"), ("|", "|"), ("tab", "\t"), ("TAB", "\t"), ("\\t", "\t"), ("\t", "\t")],
)
def test_option_spellings(text: str, expected: str) -> None:
    assert delimiter_from_option(text) == expected


@pytest.mark.parametrize("text", [":", ",;", "comma", ""])
def test_other_option_values_are_refused_naming_the_choices(text: str) -> None:
    with pytest.raises(ConfigError, match=", ; \\| or tab"):
        delimiter_from_option(text)


def test_summaries_name_the_layout() -> None:
    assert [describe(d) for d in (",", ";", "\t", "|")] == [
        "comma-separated",
        "semicolon-separated",
        "tab-separated",
        "pipe-separated",
    ]
