"""Open a jobs file (or standard input) and stream its rows, never loading it whole."""

from __future__ import annotations

import codecs
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TextIO

from engine.errors import ConfigError
from engine.reader.csv_rows import read_csv_header
from engine.reader.jsonl_rows import read_jsonl
from engine.reader.row import Row

_CHUNK = 1 << 20


class JobsFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


def detect_format(path: str, given: JobsFormat | None) -> JobsFormat:
    if given is not None:
        return given
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return JobsFormat.CSV
    if suffix in (".jsonl", ".ndjson"):
        return JobsFormat.JSONL
    if path == "-":
        raise ConfigError("Reading jobs from standard input needs --format csv or --format jsonl.")
    raise ConfigError(f"{path}: jobs files end in .csv or .jsonl; or say which with --format.")


def _check_utf8(path: Path) -> None:
    """Refuse a non-UTF-8 file before any row is used, so a run never stops halfway through."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as raw:
        while chunk := raw.read(_CHUNK):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                line += chunk[: err.start].count(b"\n")
                raise ConfigError(
                    f"{path}: line {line} is not UTF-8 text; save the file as UTF-8 "
                    "(in Excel: 'CSV UTF-8') and run again."
                ) from err
            line += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: the file ends in the middle of a UTF-8 character.") from err


@contextmanager
def _open_text(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
        return
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"{path}: no such jobs file.")
    if file.stat().st_size == 0:
        raise ConfigError(f"{path} is empty: put at least one job in it.")
    _check_utf8(file)
    with file.open(encoding="utf-8-sig", newline="") as stream:
        yield stream


@contextmanager
def open_rows(path: str, fmt: JobsFormat) -> Iterator[tuple[list[str] | None, Iterator[Row]]]:
    """Yield the CSV header (None for JSONL) and a lazy iterator over the rows."""
    with _open_text(path) as stream:
        try:
            if fmt is JobsFormat.CSV:
                yield read_csv_header(stream, path)
            else:
                yield None, read_jsonl(stream)
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: the input is not UTF-8 text; save it as UTF-8.") from err
