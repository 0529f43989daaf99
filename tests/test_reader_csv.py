"""CSV rows: messy exports become rows with the line they start on, or row errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.reader import JobsFormat, Row, open_rows

BOM = b"\xef\xbb\xbf"


def read(
    tmp_path: Path, data: bytes, delimiter: str | None = None
) -> tuple[list[str] | None, list[Row]]:
    path = tmp_path / "jobs.csv"
    path.write_bytes(data)
    finished(path)
    with open_rows(str(path), JobsFormat.CSV, delimiter) as source:
        return source.header, list(source.rows)


def finished(path: Path) -> None:
    """Date the file a minute back: an export finished before the run began."""
    then = time.time() - 60
    os.utime(path, (then, then))


def test_a_messy_export_keeps_every_cell_and_the_line_each_record_starts_on(
    tmp_path: Path,
) -> None:
    data = BOM + (
        b"id,name,script\r\n"  # 1
        b'1,Ava,"Hello, Ava ""the great"""\r\n'  # 2
        b"\r\n"  # 3
        b'2,Liam,"Line one\r\nline two"\r\n'  # 4-5
        b"3,Noah,too,many\r\n"  # 6
        b",,\r\n"  # 7: an empty spreadsheet row
        b"4,Emma,Hi Emma\r\n"  # 8
    )
    header, rows = read(tmp_path, data)

    assert header == ["id", "name", "script"]
    assert [r.line for r in rows] == [2, 4, 6, 8]
    assert rows[0].values == {"id": "1", "name": "Ava", "script": 'Hello, Ava "the great"'}
    assert rows[1].values["script"] == "Line one\r\nline two"
    assert rows[2].error is not None
    assert rows[2].values == {"id": "3", "name": "Noah", "script": "too"}
    [problem] = rows[2].error.errors
    assert problem.path == ""
    assert "4 cells but the header has 3" in problem.message
    assert rows[3].values == {"id": "4", "name": "Emma", "script": "Hi Emma"}


def test_lf_files_without_bom_read_the_same(tmp_path: Path) -> None:
    _, rows = read(tmp_path, b'id,script\n1,"a\nb\nc"\n\n\n2,plain\n')

    assert [(r.line, r.values["script"]) for r in rows] == [(2, "a\nb\nc"), (7, "plain")]


def test_blank_lines_before_the_header_are_skipped_and_lines_still_count(tmp_path: Path) -> None:
    header, rows = read(tmp_path, b"\n\nid,name\n1,Ava\n")

    assert header == ["id", "name"]
    assert [r.line for r in rows] == [4]


def test_header_cells_are_trimmed(tmp_path: Path) -> None:
    header, rows = read(tmp_path, b" id , first name \n1,Ava\n")

    assert header == ["id", "first name"]
    assert rows[0].values == {"id": "1", "first name": "Ava"}


def test_a_short_row_is_invalid_and_the_rows_after_it_go_on(tmp_path: Path) -> None:
    _, rows = read(tmp_path, b"a,b,c\n1,2\n4,5,6\n")

    assert rows[0].line == 2
    assert rows[0].error is not None
    assert "2 cells but the header has 3" in str(rows[0].error)
    assert rows[1].values == {"a": "4", "b": "5", "c": "6"}


def test_text_after_a_closing_quote_makes_that_row_invalid_only(tmp_path: Path) -> None:
    _, rows = read(tmp_path, b'a,b\n1,"x"y\n2,"multi\nline"\n3,z\n')

    assert rows[0].line == 2
    assert rows[0].error is not None
    assert "written twice" in str(rows[0].error)
    assert [(r.line, r.values) for r in rows[1:]] == [
        (3, {"a": "2", "b": "multi\nline"}),
        (5, {"a": "3", "b": "z"}),
    ]


def test_an_unclosed_quote_is_reported_on_the_line_it_opens(tmp_path: Path) -> None:
    _, rows = read(tmp_path, b'a,b\n1,ok\n2,"never closed\n3,x\n4,y\n')

    assert rows[0].values == {"a": "1", "b": "ok"}
    assert len(rows) == 2
    assert rows[1].line == 3
    assert rows[1].error is not None
    assert "never closed" in str(rows[1].error)


def test_a_quote_inside_an_unquoted_cell_is_kept(tmp_path: Path) -> None:
    _, rows = read(tmp_path, b'a,b\n1,a 5" screen\n')

    assert rows[0].values["b"] == 'a 5" screen'


def test_a_header_only_file_has_no_rows(tmp_path: Path) -> None:
    header, rows = read(tmp_path, b"id,name\r\n")

    assert header == ["id", "name"]
    assert rows == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\n\n  \n", "is empty"),
        (BOM, "is empty"),
        (b"id,,name\n1,2,3\n", "empty column name"),
        (b"id,name,id\n1,2,3\n", "names column 'id' twice"),
        (b'id,"name\n', "header row"),
    ],
)
def test_a_file_without_a_usable_header_is_a_config_error(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        read(tmp_path, data)


def test_empty_trailing_header_cells_are_ignored_with_one_notice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = b"email,name,,,\r\na@x,Ann,,,\r\nb@x,Bob,, ,\r\nc@x,Cy\r\n"

    header, rows = read(tmp_path, data)

    assert header == ["email", "name"]
    assert [(r.line, r.values, r.error) for r in rows] == [
        (2, {"email": "a@x", "name": "Ann"}, None),
        (3, {"email": "b@x", "name": "Bob"}, None),
        (4, {"email": "c@x", "name": "Cy"}, None),  # stops before the unnamed columns
    ]
    notices = [r.getMessage() for r in caplog.records if "empty cells" in r.getMessage()]
    assert notices == [
        f"{tmp_path / 'jobs.csv'}: the header ends in 3 empty cells; those columns are "
        "ignored (a row with text under one of them is invalid)."
    ]


def test_text_under_an_empty_header_cell_makes_that_row_invalid_naming_the_cell(
    tmp_path: Path,
) -> None:
    data = b"email,name,,\na@x,Ann,,\nb@x,Bob,,oops\nc@x,Cy,,\n"

    _, rows = read(tmp_path, data)

    assert [(r.line, r.error is None) for r in rows] == [(2, True), (3, False), (4, True)]
    bad = rows[1]
    assert bad.values == {"email": "b@x", "name": "Bob"}
    assert str(bad.error) == (
        "cell 4 holds text but the header names no column 4; name the column or empty the cell"
    )


def test_an_empty_header_cell_before_a_named_one_is_still_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty column name"):
        read(tmp_path, b"email,,name,,\na,,b,,\n")


def test_a_ragged_row_keeps_the_cells_it_has_by_position(tmp_path: Path) -> None:
    header = b"contact_id,first_name,last_name,email,company,city,product,speed\n"
    full = b"c010,Ava,T,a@x,Acme,Oslo,Suite,1.0\n"

    _, rows = read(tmp_path, header + full + b"c011,Short\n" + b"c012,A,B,C,D,E,F,G,extra\n")

    short, long = rows[1], rows[2]
    assert short.error is not None
    assert "2 cells but the header has 8" in str(short.error)
    assert short.values == {"contact_id": "c011", "first_name": "Short"}
    assert long.error is not None
    assert "9 cells but the header has 8" in str(long.error)
    assert long.values["contact_id"] == "c012"
    assert long.values["speed"] == "G"
    assert rows[0].error is None


def test_a_row_past_the_unnamed_columns_is_ragged(tmp_path: Path) -> None:
    _, rows = read(tmp_path, b"a,b,,\n1,2,,,5\n")

    assert rows[0].error is not None
    assert "5 cells but the header has 2 (4 with its empty ones)" in str(rows[0].error)
    assert rows[0].values == {"a": "1", "b": "2"}


def test_a_short_row_under_empty_trailing_header_cells_counts_them_the_same_way(
    tmp_path: Path,
) -> None:
    _, rows = read(tmp_path, b"a,b,c,,\n1\n")

    assert rows[0].error is not None
    assert "1 cells but the header has 3 (5 with its empty ones)" in str(rows[0].error)


def test_a_ragged_row_names_the_delimiter_it_was_split_on(tmp_path: Path) -> None:
    _, rows = read(tmp_path, b"a;b;c\n1;2\n")

    assert rows[0].error is not None
    assert "2 cells but the header has 3 (a stray semicolon" in str(rows[0].error)


def test_quoted_blank_rows_before_the_header_are_skipped(tmp_path: Path) -> None:
    header, rows = read(tmp_path, b'"",""\nid,name\n1,Ava\n')

    assert header == ["id", "name"]
    assert [r.line for r in rows] == [3]
