"""Open a jobs file (or standard input) and stream its rows, never loading it whole."""

from __future__ import annotations

import codecs
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TextIO

from engine.errors import ConfigError
from engine.reader.csv_rows import read_csv
from engine.reader.jsonl_rows import read_jsonl
from engine.reader.row import Row
from engine.reader.unfinished import WritingCheck, complete_rows, file_writing_check

_CHUNK = 1 << 20
_SAVE_AS_UTF8 = "save the file as UTF-8 (in Excel: 'CSV UTF-8') and run again"
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


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


def _check_utf8(path: Path, size: int) -> int:
    """Refuse a non-UTF-8 file before any row is used, so a run never stops halfway through.

    Reads the first ``size`` bytes; returns how many at their end are the start of a
    character cut off there (0 for a whole file), which a file still being written has.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    left = size
    with path.open("rb") as raw:
        first = True
        while left > 0 and (chunk := raw.read(min(_CHUNK, left))):
            left -= len(chunk)
            if first and chunk.startswith(_UTF16_BOMS):
                raise ConfigError(
                    f"{path} is UTF-16 text (Excel's 'Unicode Text'); {_SAVE_AS_UTF8}."
                )
            first = False
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                line += chunk[: err.start].count(b"\n")
                raise ConfigError(
                    f"{path}: line {line} is not UTF-8 text; {_SAVE_AS_UTF8}."
                ) from err
            line += chunk.count(b"\n")
    pending, _ = decoder.getstate()
    return len(pending)


class _Upto(io.RawIOBase):
    """The first ``limit`` bytes of a binary file: a file cut inside a character is read
    up to that character, so its last record is judged as unfinished, not as bad text."""

    def __init__(self, raw: io.BufferedReader, limit: int) -> None:
        super().__init__()
        self._raw = raw
        self._left = limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[: self._left]
        got = self._raw.readinto(view) if len(view) else 0
        self._left -= got
        return got

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()
        super().close()


def _open_file(file: Path, size: int) -> tuple[TextIO, WritingCheck]:
    cut = _check_utf8(file, size)
    if not cut:
        stream = file.open(encoding="utf-8-sig", newline="")
        return stream, file_writing_check(stream, size)
    raw = file.open("rb")
    limited = io.TextIOWrapper(
        io.BufferedReader(_Upto(raw, size - cut)), encoding="utf-8-sig", newline=""
    )
    writing = file_writing_check(limited, size)
    if writing() is None:
        limited.close()
        raise ConfigError(f"{file}: the file ends in the middle of a UTF-8 character.")
    # Its last record lacks bytes whatever the file looks like when reading ends.
    return limited, lambda: writing() or "it ends inside a UTF-8 character"


@contextmanager
def _open_stdin() -> Iterator[TextIO]:
    stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    try:
        yield stream
    finally:
        # Closing the wrapper would close the process's standard input with it.
        stream.detach()


@contextmanager
def _open_text(path: str) -> Iterator[tuple[TextIO, WritingCheck | None]]:
    """The text stream, and for a file the check of whether it is still being written."""
    if path == "-":
        with _open_stdin() as stream:
            yield stream, None
        return
    file = Path(path)
    try:
        if file.is_dir():
            raise ConfigError(f"{path} is a directory; give the jobs file inside it.")
        if not file.exists():
            raise ConfigError(f"{path}: no such jobs file.")
        size = file.stat().st_size
        if size == 0:
            raise ConfigError(f"{path} is empty: put at least one job in it.")
        stream, writing = _open_file(file, size)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the jobs file ({err.strerror}).") from err
    with stream:
        yield stream, writing


def _name(path: str) -> str:
    return "standard input" if path == "-" else path


@dataclass(frozen=True, slots=True)
class JobsSource:
    """An open jobs file: its rows, and for a CSV its columns and delimiter."""

    rows: Iterator[Row]
    header: list[str] | None = None
    delimiter: str | None = None


@contextmanager
def open_rows(path: str, fmt: JobsFormat, delimiter: str | None = None) -> Iterator[JobsSource]:
    """Open ``path`` for lazy reading; ``delimiter`` None detects a CSV's from its header."""
    name = _name(path)
    with _open_text(path) as (stream, writing):
        try:
            if fmt is JobsFormat.CSV:
                header, records = read_csv(stream, name, delimiter)
                yield JobsSource(
                    complete_rows(records, writing, name), header.columns, header.delimiter
                )
            else:
                yield JobsSource(complete_rows(read_jsonl(stream), writing, name))
        except UnicodeDecodeError as err:
            # Standard input cannot be checked ahead; a file only if it changed while read.
            raise ConfigError(f"{name}: the input is not UTF-8 text; {_SAVE_AS_UTF8}.") from err
