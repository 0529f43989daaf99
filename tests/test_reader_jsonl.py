"""JSONL rows: one object a line; a bad line is invalid and the rest go on."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.reader import JobsFormat, Row, open_rows

DATA = Path(__file__).parent / "data" / "issue4"


def read(path: Path) -> list[Row]:
    with open_rows(str(path), JobsFormat.JSONL) as source:
        assert source.header is None
        return list(source.rows)


def test_variables_keep_their_json_types_and_bad_lines_are_reported_by_line() -> None:
    rows = read(DATA / "variables.jsonl")

    assert [r.line for r in rows] == [1, 3, 4, 5]
    assert rows[0].values == {"id": 1, "name": "Ava", "script": "Hi Ava", "speed": 1.1}
    assert rows[1].error is not None
    assert "not valid JSON" in str(rows[1].error)
    assert rows[2].error is not None
    assert "one JSON object {...}, not a list" in str(rows[2].error)
    assert rows[3].values["name"] == "Noah"
    for row in rows[1:3]:
        assert row.error is not None
        assert [e.path for e in row.error.errors] == [""]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"speed": NaN}', "NaN is not a JSON value"),
        ('{"speed": Infinity}', "Infinity is not a JSON value"),
        ('"just text"', "not a string"),
        ("12", "not a number"),
        ("null", "not null"),
        ("[" * 100_000, "not valid JSON"),
        # Half a UTF-16 pair is no character: no file, ledger or export could hold it.
        ('{"name": "Zo\\ud800"}', "without its other half"),
        ('{"\\uDC00": "key"}', "without its other half"),
    ],
)
def test_lines_that_are_not_objects_are_invalid(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text(line + '\n{"ok": true}\n', encoding="utf-8")

    bad, good = read(path)

    assert bad.error is not None
    assert message in str(bad.error)
    assert (good.line, good.values) == (2, {"ok": True})


def test_bom_crlf_and_escaped_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": "x\\ny"}\r\n\r\n{"a": "\xe2\x80\xa8"}\r\n')

    rows = read(path)

    assert [(r.line, r.values) for r in rows] == [(1, {"a": "x\ny"}), (3, {"a": "\u2028"})]


def test_a_whole_pair_of_escapes_is_one_character(tmp_path: Path) -> None:
    path = tmp_path / "jobs.jsonl"
    path.write_text('{"name": "\\ud83c\\udfac Mia"}\n', encoding="utf-8")

    (row,) = read(path)

    assert row.error is None
    assert row.values == {"name": "\N{CLAPPER BOARD} Mia"}
