"""One record read from a jobs file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.errors import RowError


@dataclass(frozen=True, slots=True)
class Row:
    """A source record and the 1-based line it starts on.

    ``error`` is set when the record itself is unusable; it then becomes an
    ``invalid`` job rather than stopping the file. ``values`` then holds what
    could be read of it (a ragged CSV row's cells, by position), so the job
    keeps its key and its contact.
    """

    line: int
    values: dict[str, Any]
    error: RowError | None = None


def in_chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """Rows in lists of ``size`` (the last may be shorter): one ledger look-up per list."""
    chunk: list[Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
