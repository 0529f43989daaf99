"""CSV records: a header row, then one job per record."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any, TextIO

from engine.errors import ConfigError, FieldError, RowError
from engine.reader.row import Row

# csv's own wording names parser states; these say what the user has to fix.
_CSV_PROBLEMS = {
    "unexpected end of data": (
        "a quoted cell that starts in this record is never closed, so everything after it "
        "to the end of the file was read into it; close the quote or double a quote "
        'inside the cell ("")'
    ),
    "',' expected after '\"'": (
        "text follows the closing quote of a cell; "
        'a quote inside a quoted cell is written twice ("")'
    ),
}


def _problem(err: csv.Error) -> str:
    text = str(err)
    if text.startswith("field larger than field limit"):
        return (
            f"a cell is longer than {csv.field_size_limit():,} characters "
            "(usually an unclosed quote that swallowed the lines after it)"
        )
    return _CSV_PROBLEMS.get(text, f"is not valid CSV: {text}")


def _blank(record: list[str]) -> bool:
    # A spreadsheet's empty rows export as blank lines or as bare commas (",,,").
    return not any(cell.strip() for cell in record)


def read_csv_header(stream: TextIO, name: str) -> tuple[list[str], Iterator[Row]]:
    """Read the header and return it with an iterator over the remaining records."""
    # strict: a malformed quote is reported on its record instead of silently
    # merging cells or swallowing the rest of the file into one cell.
    reader = csv.reader(stream, strict=True)
    header: list[str] | None = None
    try:
        for record in reader:
            if not _blank(record):
                header = [cell.strip() for cell in record]
                break
    except csv.Error as err:
        raise ConfigError(
            f"{name}: the header row (line {reader.line_num}): {_problem(err)}."
        ) from err
    if header is None:
        raise ConfigError(f"{name} is empty: a CSV jobs file needs a header row and data rows.")
    seen: set[str] = set()
    for column in header:
        if not column:
            raise ConfigError(f"{name}: the header has an empty column name; name every column.")
        if column in seen:
            raise ConfigError(f"{name}: the header names column '{column}' twice; rename one.")
        seen.add(column)
    return header, _records(reader, header)


def _records(reader: Any, header: list[str]) -> Iterator[Row]:
    # ``reader.line_num`` counts physical lines read so far, so a record starts on
    # the line after the previous record ended, whatever line breaks its cells hold.
    width = len(header)
    last_line: int = reader.line_num
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield Row(last_line + 1, {}, RowError([FieldError("", _problem(err))]))
            last_line = reader.line_num
            continue
        line = last_line + 1
        last_line = reader.line_num
        if len(record) == width:
            # The common case first: a full record whose first cell is not blank.
            if record[0].strip() or not _blank(record):
                yield Row(line, dict(zip(header, record, strict=True)))
            continue
        if _blank(record):
            continue
        yield Row(
            line,
            {},
            RowError(
                [
                    FieldError(
                        "",
                        f"the row has {len(record)} cells but the header has {width} "
                        "(a stray comma, or a line break outside quotes?)",
                    )
                ]
            ),
        )
