"""A jobs file still being written (a nightly export cron has not finished) ends mid-record.

Such a record, sent, is a paid video for half a contact; the whole one arrives
in the next run. So a last record without a line end is held back when the file
may still be growing. Only the last record can lack one: the reader looks one
record ahead and decides on that one alone, and a file that stopped changing
is read whole, unterminated last line included.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import TextIO

from engine.reader.row import Row

log = logging.getLogger(__name__)

#: A file modified this recently may still be being written.
STILL_WRITING_S = 5.0

#: Why the file may still be being written, or None when it looks finished.
WritingCheck = Callable[[], str | None]


def file_writing_check(stream: TextIO, size_at_start: int) -> WritingCheck:
    """Judge the open file itself (not whatever its path names by now) when reading ends."""

    def why() -> str | None:
        now = os.fstat(stream.fileno())
        if now.st_size != size_at_start:
            return "the file changed size while it was read"
        age = time.time() - now.st_mtime
        if age < STILL_WRITING_S:
            # A modification time ahead of the clock counts as recent: holding back is safe.
            return f"the file was modified {max(age, 0.0):.0f} s ago"
        return None

    return why


def complete_rows(
    records: Iterator[tuple[Row, bool]], writing: WritingCheck | None, name: str
) -> Iterator[Row]:
    """The rows of ``records`` (each with whether its record ended with a line end),
    less a last one the writer may not have finished. ``writing`` is None for
    standard input, which is read as it comes."""
    held: Row | None = None
    ended = True
    for row, row_ended in records:
        if held is not None:
            if not ended and writing is not None:
                # A line read without its end was the end of the file then: more
                # after it is the writer's next bytes, and the record was cut in two.
                _leave(name, held, "the file grew while it was read")
                return
            yield held
        held, ended = row, row_ended
    if held is None:
        return
    if not ended and writing is not None and (why := writing()) is not None:
        _leave(name, held, why)
        return
    yield held


def _leave(name: str, row: Row, why: str) -> None:
    log.warning(
        "%s: the record on line %d is cut off (no line end after it) and %s; it may "
        "still be being written, so it and anything after it are left for the next run.",
        name,
        row.line,
        why,
    )
