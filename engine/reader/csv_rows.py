"""CSV records: a header row, then one job per record."""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any, TextIO

from engine.errors import ConfigError, FieldError, RowError
from engine.reader.delimiter import DELIMITERS, describe, detect_delimiter
from engine.reader.row import Row

log = logging.getLogger(__name__)

_LINE_ENDS = ("\n", "\r")
# A line holding only these is empty under every delimiter.
_BLANK = " \r\n" + "".join(DELIMITERS)
_OPEN_QUOTE_AT_END = "unexpected end of data"
_EMPTY = "{} is empty: a CSV jobs file needs a header row and data rows."
# Excel's first line naming the delimiter ("sep=;"), which it writes and reads itself.
_SEP_LINE = re.compile(r"sep=(.)\r?\n?", re.DOTALL)
_BOM = "\ufeff"

# csv's own wording names parser states; these say what the user has to fix.
_UNCLOSED = (
    "a quoted cell that starts in this record is never closed, so everything after it "
    "to the end of the file was read into it; close the quote or double a quote "
    'inside the cell ("")'
)
_AFTER_QUOTE = (
    'text follows the closing quote of a cell; a quote inside a quoted cell is written twice ("")'
)


def _problem(err: csv.Error) -> str:
    text = str(err)
    if text.startswith("field larger than field limit"):
        return (
            f"a cell is longer than {csv.field_size_limit():,} characters "
            "(usually an unclosed quote that swallowed the lines after it)"
        )
    if text == _OPEN_QUOTE_AT_END:
        return _UNCLOSED
    # "',' expected after '"'", with whichever delimiter the file uses.
    if text.endswith("expected after '\"'"):
        return _AFTER_QUOTE
    return f"is not valid CSV: {text}"


def _blank(record: list[str]) -> bool:
    # A spreadsheet's empty rows export as blank lines or as bare commas (",,,").
    return not any(cell.strip() for cell in record)


class _Lines:
    """The stream's lines from the first non-blank one, remembering how the last one ended.

    The header's lines are read ahead once, so that each candidate delimiter can
    parse them, then handed to the real reader before the rest of the stream.
    """

    def __init__(self, first: str, stream: TextIO) -> None:
        self._ahead = [first]
        self._stream = stream
        self.ended = True

    def header(self) -> Iterator[str]:
        index = 0
        while True:
            if index == len(self._ahead):
                line = self._stream.readline()
                if not line:
                    return
                self._ahead.append(line)
            yield self._ahead[index]
            index += 1

    def __iter__(self) -> Iterator[str]:
        ahead, self._ahead = self._ahead, []
        for line in chain(ahead, self._stream):
            self.ended = line.endswith(_LINE_ENDS)
            yield line


@dataclass(frozen=True, slots=True)
class CsvHeader:
    columns: list[str]
    delimiter: str
    #: Empty cells that end the header row (a spreadsheet's unused columns).
    unnamed: int


def read_csv(
    stream: TextIO, name: str, delimiter: str | None
) -> tuple[CsvHeader, Iterator[tuple[Row, bool]]]:
    """Read the header; return it with the records after it, each with whether it ended
    with a line end. ``delimiter`` None: detect it from the header."""
    first, skipped = _first_line(stream, name)
    if sep := _SEP_LINE.fullmatch(first):
        delimiter = _named_delimiter(sep.group(1), delimiter, name)
        first, after = _first_line(stream, name)
        skipped += 1 + after
    lines = _Lines(first, stream)
    chosen = delimiter or detect_delimiter(lines.header)
    # strict: a malformed quote is reported on its record instead of silently
    # merging cells or swallowing the rest of the file into one cell.
    reader = csv.reader(lines, delimiter=chosen, strict=True)
    try:
        record = next(reader, [])
        while record and _blank(record):  # a quoted blank row: "",""
            record = next(reader, [])
    except csv.Error as err:
        raise ConfigError(
            f"{name}: the header row (line {skipped + reader.line_num}): {_problem(err)}."
        ) from err
    header = _header(record, chosen, name)
    return header, _records(reader, lines, header, skipped, name)


def _first_line(stream: TextIO, name: str) -> tuple[str, int]:
    """The first line that is not blank, and how many blank ones came before it."""
    for skipped, first in enumerate(stream):
        # Blank lines and a spreadsheet's empty rows (",,,", ";;;") before the header.
        if first.strip(_BLANK):
            return first, skipped
    raise ConfigError(_EMPTY.format(name))


def _named_delimiter(named: str, given: str | None, name: str) -> str:
    """The delimiter a ``sep=`` line names, unless --delimiter says otherwise."""
    if named not in DELIMITERS:
        raise ConfigError(
            f"{name}: the first line 'sep={named}' names a delimiter heygen-batch does not "
            "read; save the file with , ; | or tab between cells."
        )
    if given is not None and given != named:
        raise ConfigError(
            f"{name}: the first line 'sep={named}' says the file is {describe(named)}, but "
            f"--delimiter says {describe(given)}; drop --delimiter, or the sep= line."
        )
    return named


def _header(record: list[str], delimiter: str, name: str) -> CsvHeader:
    columns = [cell.strip() for cell in record]
    width = len(columns)
    while columns and not columns[-1]:
        columns.pop()
    if not columns:
        raise ConfigError(_EMPTY.format(name))
    seen: set[str] = set()
    for column in columns:
        if not column:
            raise ConfigError(f"{name}: the header has an empty column name; name every column.")
        if column in seen:
            raise ConfigError(f"{name}: the header names column '{column}' twice; rename one.")
        seen.add(column)
    return CsvHeader(columns, delimiter, width - len(columns))


def _records(
    reader: Any, lines: _Lines, header: CsvHeader, skipped: int, name: str
) -> Iterator[tuple[Row, bool]]:
    # ``reader.line_num`` counts physical lines read so far, so a record starts on
    # the line after the previous record ended, whatever line breaks its cells hold.
    columns = header.columns
    named = len(columns)
    width = named + header.unnamed
    # The header's names by their case-folded spelling, to know a repeated header.
    folded = {column.casefold(): column for column in columns}
    # Said when the rows are read, not when the header is: run's early look at the
    # header (a --key-column check) must not say it a second time.
    if header.unnamed:
        log.warning(
            "%s: the header ends in %s (a row with text under %s is invalid).",
            name,
            "1 empty cell; that column is ignored"
            if header.unnamed == 1
            else f"{header.unnamed} empty cells; those columns are ignored",
            "it" if header.unnamed == 1 else "one of them",
        )
    last_line: int = skipped + reader.line_num
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            problem = _problem(err)
            yield (
                Row(last_line + 1, {}, RowError([FieldError("", problem)])),
                (
                    # A quote still open at the end of the file: the record never ended.
                    lines.ended and str(err) != _OPEN_QUOTE_AT_END
                ),
            )
            last_line = skipped + reader.line_num
            continue
        line = last_line + 1
        last_line = skipped + reader.line_num
        if record and _bare(record[0]).casefold() in folded:
            again = _header_again(record, named, folded)
            if again is not None:
                # Two exports joined (cat a.csv b.csv): the second's header is no contact,
                # and the rows below it are in its column order, whatever the first's was.
                if again == columns:
                    log.warning("%s: line %d repeats the header row; skipped.", name, line)
                else:
                    log.warning(
                        "%s: line %d repeats the header in another column order (two "
                        "exports joined?); the rows after it are read in that order.",
                        name,
                        line,
                    )
                    columns = again
                continue
        cells = len(record)
        if cells == width and named == width:
            # The common case first: a full record whose first cell is not blank.
            if record[0].strip() or not _blank(record):
                yield Row(line, dict(zip(columns, record, strict=True))), lines.ended
            continue
        if _blank(record):
            continue
        values = dict(zip(columns, record, strict=False))
        if named <= cells <= width:
            # A spreadsheet row may stop before the unnamed columns, or fill them blank.
            yield _unnamed_cells(line, values, record, named), lines.ended
            continue
        # Said the same way for a short row and a long one, empty trailing cells or not.
        header_cells = f"{named}" if named == width else f"{named} ({width} with its empty ones)"
        message = (
            f"the row has {cells} cells but the header has {header_cells} "
            f"(a stray {DELIMITERS[header.delimiter]}, or a line break outside quotes?)"
        )
        # The cells it has are kept, so the export still joins it to its contact.
        yield Row(line, values, RowError([FieldError("", message)])), lines.ended


def _bare(cell: str) -> str:
    # A joined file's own BOM stays on its header, mid-file.
    return cell.replace(_BOM, "").strip()


def _header_again(record: list[str], named: int, folded: dict[str, str]) -> list[str] | None:
    """The header's columns in ``record``'s order when ``record`` is the header again
    (any case, any order, empty cells after it); else None."""
    if len(record) < named or any(cell.strip() for cell in record[named:]):
        return None
    cells = [_bare(cell).casefold() for cell in record[:named]]
    if len(set(cells)) != named or set(cells) != folded.keys():
        return None
    return [folded[cell] for cell in cells]


def _unnamed_cells(line: int, values: dict[str, Any], record: list[str], named: int) -> Row:
    for position in range(named, len(record)):
        if record[position].strip():
            message = (
                f"cell {position + 1} holds text but the header names no column "
                f"{position + 1}; name the column or empty the cell"
            )
            return Row(line, values, RowError([FieldError("", message)]))
    return Row(line, values)
