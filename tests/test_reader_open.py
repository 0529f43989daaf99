"""Opening a jobs file: every unreadable input is a ConfigError naming the problem."""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

import pytest

from engine.errors import ConfigError
from engine.reader import JobsFormat, open_rows
from engine.reader.open_jobs import detect_format
from engine.reader.unfinished import STILL_WRITING_S


def rows_of(path: str, fmt: JobsFormat = JobsFormat.CSV) -> list[dict[str, object]]:
    with open_rows(path, fmt) as source:
        return [r.values for r in source.rows]


def test_a_non_utf8_file_is_refused_before_any_row_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(b"id,name\n1,Ava\n2,Jos\xe9\n")

    with pytest.raises(ConfigError, match=r"line 3 is not UTF-8 text.*CSV UTF-8"):
        rows_of(str(path))


def test_a_finished_file_cut_inside_a_utf8_character_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes(b"id,name\n1,Zo\xc3")
    # Unchanged for a while: not being written, so the cut is the file's own.
    then = time.time() - STILL_WRITING_S - 1
    os.utime(path, (then, then))

    with pytest.raises(ConfigError, match="middle of a UTF-8 character"):
        rows_of(str(path))


def test_utf16_exports_are_named(tmp_path: Path) -> None:
    path = tmp_path / "jobs.csv"
    path.write_bytes("id,name\n1,Ava\n".encode("utf-16"))

    with pytest.raises(ConfigError, match="UTF-16"):
        rows_of(str(path))


def test_missing_empty_and_directory_paths(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "folder.csv").mkdir()

    with pytest.raises(ConfigError, match="no such jobs file"):
        rows_of(str(tmp_path / "missing.csv"))
    with pytest.raises(ConfigError, match="is empty"):
        rows_of(str(tmp_path / "empty.csv"))
    with pytest.raises(ConfigError, match="is a directory"):
        rows_of(str(tmp_path / "folder.csv"))


def _fake_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> io.BytesIO:
    raw = io.BytesIO(data)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw, encoding="utf-8"))
    return raw


def test_standard_input_is_read_and_left_open(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = _fake_stdin(monkeypatch, b'\xef\xbb\xbfid,name\r\n1,"A\r\nB"\r\n')

    assert rows_of("-") == [{"id": "1", "name": "A\r\nB"}]
    assert not raw.closed


def test_standard_input_that_is_not_utf8_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_stdin(monkeypatch, b'{"a": "\xff"}\n')

    with pytest.raises(ConfigError, match="standard input: the input is not UTF-8"):
        rows_of("-", JobsFormat.JSONL)


def test_empty_standard_input_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_stdin(monkeypatch, b"")

    with pytest.raises(ConfigError, match="standard input is empty"):
        rows_of("-")


@pytest.mark.parametrize(
    ("path", "given", "expected"),
    [
        ("a.CSV", None, JobsFormat.CSV),
        ("a.ndjson", None, JobsFormat.JSONL),
        ("a.txt", JobsFormat.JSONL, JobsFormat.JSONL),
        ("-", JobsFormat.CSV, JobsFormat.CSV),
    ],
)
def test_format_from_suffix_or_flag(
    path: str, given: JobsFormat | None, expected: JobsFormat
) -> None:
    assert detect_format(path, given) is expected


@pytest.mark.parametrize(("path", "message"), [("-", "--format"), ("a.xlsx", "--format")])
def test_format_that_cannot_be_told_is_a_config_error(path: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        detect_format(path, None)
