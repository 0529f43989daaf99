"""CSV records: a header row, then one job per record."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any, TextIO

from engine.errors import ConfigError, FieldError, RowError
from engine.reader.row import Row


def read_csv_header(stream: TextIO, name: str) -> tuple[list[str], Iterator[Row]]:
    """Read the header and return it with an iterator over the remaining records."""
    reader = csv.reader(stream, strict=False)
    header: list[str] | None = None
    for record in reader:
        if any(cell.strip() for cell in record):
            header = [cell.strip() for cell in record]
            break
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
    # ``reader`` is a csv reader: its ``line_num`` tells where each record started.
    width = len(header)
    last_line = reader.line_num
    for record in reader:
        line = last_line + 1
        last_line = reader.line_num
        if not record or (len(record) == 1 and not record[0].strip()):
            continue
        if len(record) != width:
            yield Row(
                line,
                {},
                RowError([FieldError("", f"has {len(record)} fields, the header has {width}")]),
            )
            continue
        yield Row(line, dict(zip(header, record, strict=True)))
