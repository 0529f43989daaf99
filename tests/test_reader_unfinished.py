"""A jobs file read while it is still being written: its cut-off last record waits."""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.reader import JobsFormat, Row, open_rows
from engine.reader.unfinished import STILL_WRITING_S, complete_rows

HEAD = b"id,name,product\n1,Ava,the Analytics Suite\n"
CUT = b"2,Liam,the Analyt"


def write(path: Path, data: bytes, age_s: float) -> str:
    path.write_bytes(data)
    then = time.time() - age_s
    os.utime(path, (then, then))
    return str(path)


def read(path: str, fmt: JobsFormat = JobsFormat.CSV) -> list[Row]:
    with open_rows(path, fmt) as source:
        return list(source.rows)


def left_notices(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "left for the next run" in r.getMessage()]


def test_a_cut_off_last_record_in_a_file_just_written_waits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "jobs.csv", HEAD + CUT, age_s=1)

    rows = read(path)

    assert [(r.line, r.values["id"]) for r in rows] == [(2, "1")]
    [notice] = left_notices(caplog)
    assert notice.startswith(f"{path}: the record on line 3 is cut off (no line end after it)")
    assert "the file was modified" in notice


def test_an_old_file_whose_last_line_lacks_a_newline_is_read_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "jobs.csv", HEAD + CUT, age_s=STILL_WRITING_S + 1)

    rows = read(path)

    assert [r.values for r in rows][1] == {"id": "2", "name": "Liam", "product": "the Analyt"}
    assert rows[1].error is None
    assert left_notices(caplog) == []


def test_a_fresh_file_whose_records_all_end_is_read_whole(tmp_path: Path) -> None:
    path = write(tmp_path / "jobs.csv", HEAD + CUT + b"ics Suite\r\n", age_s=0)

    assert [r.values["product"] for r in read(path)] == ["the Analytics Suite"] * 2


def test_a_file_appended_to_while_it_is_read_leaves_the_cut_record_and_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = tmp_path / "jobs.csv"
    path = write(jobs, HEAD + CUT, age_s=60)

    with open_rows(path, JobsFormat.CSV) as source:
        first = next(source.rows)  # the reader has now read the cut record too
        with jobs.open("ab") as writer:
            writer.write(b"ics Suite\n3,Noah,the Analytics Suite\n")
        then = time.time() - 60  # only the growth can tell
        os.utime(jobs, (then, then))
        rest = list(source.rows)

    assert (first.line, rest) == (2, [])
    [notice] = left_notices(caplog)
    assert "line 3" in notice
    assert "grew while it was read" in notice


def test_a_file_that_changes_size_after_it_is_opened_is_judged_by_its_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    jobs = tmp_path / "jobs.csv"
    path = write(jobs, HEAD + CUT, age_s=60)

    with open_rows(path, JobsFormat.CSV) as source:
        with jobs.open("ab") as writer:
            writer.write(b"ics")  # still no line end
        then = time.time() - 60
        os.utime(jobs, (then, then))
        rows = list(source.rows)

    assert [r.line for r in rows] == [2]
    [notice] = left_notices(caplog)
    assert "changed size while it was read" in notice


def test_a_quote_still_open_at_the_end_of_a_fresh_file_waits_but_an_old_one_is_invalid(
    tmp_path: Path,
) -> None:
    data = b'id,name,product\n1,Ava,x\n2,Liam,"a script with\nline breaks, still bein'
    fresh = write(tmp_path / "fresh.csv", data, age_s=0)
    old = write(tmp_path / "old.csv", data + b"\n", age_s=60)

    assert [r.line for r in read(fresh)] == [2]
    last = read(old)[-1]
    assert last.line == 3
    assert last.error is not None
    assert "never closed" in str(last.error)


def test_a_half_written_jsonl_line_waits_in_a_fresh_file_and_is_invalid_in_an_old_one(
    tmp_path: Path,
) -> None:
    data = b'{"id": 1, "name": "Ava"}\n\n{"id": 2, "name": "Li'
    fresh = write(tmp_path / "fresh.jsonl", data, age_s=0)
    old = write(tmp_path / "old.jsonl", data, age_s=60)

    assert [r.line for r in read(fresh, JobsFormat.JSONL)] == [1]
    rows = read(old, JobsFormat.JSONL)
    assert [r.line for r in rows] == [1, 3]
    assert rows[1].error is not None
    assert "not valid JSON" in str(rows[1].error)


def test_standard_input_is_read_as_it_comes(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = io.BytesIO(HEAD + CUT)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw, encoding="utf-8"))

    rows = read("-")

    assert [r.values["product"] for r in rows] == ["the Analytics Suite", "the Analyt"]


def _records(*ends: bool) -> Iterator[tuple[Row, bool]]:
    return ((Row(n, {"n": n}), ended) for n, ended in enumerate(ends, start=2))


def _never_asked() -> str | None:
    raise AssertionError("a file whose last record ended needs no check")


def test_only_the_last_record_is_held_and_only_when_the_check_says_so() -> None:
    def writing() -> str | None:
        return "the file was modified 0 s ago"

    def finished() -> str | None:
        return None

    lines = [[r.line for r in complete_rows(_records(*ends), check, "f")] for ends, check in [
        ((True, True, False), writing),
        ((True, True, False), finished),
        ((True, True, True), _never_asked),
        ((True, True, False), None),  # standard input
        ((True, False, True), finished),  # cut mid-file: it grew, whatever the check says
        ((), _never_asked),
    ]]  # fmt: skip

    assert lines == [[2, 3], [2, 3, 4], [2, 3, 4], [2, 3, 4], [2], []]
