"""Which character separates a CSV's cells: detected from the header, or given."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator

from engine.errors import ConfigError

# In order of preference: a header that splits equally well on two of them is
# read with the earlier (a comma header may name a column "price; net").
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

_SPELLINGS = {",": ",", ";": ";", "|": "|", "tab": "\t", "\\t": "\t", "\t": "\t"}


def delimiter_from_option(text: str) -> str:
    """The delimiter ``--delimiter`` names: ``,`` ``;`` ``|`` or ``tab`` (also ``\\t``)."""
    try:
        return _SPELLINGS[text.lower()]
    except KeyError:
        raise ConfigError(
            f"--delimiter {text!r}: give one of , ; | or tab (quote ; and | in the shell)."
        ) from None


def describe(delimiter: str) -> str:
    """How a summary names the file's layout: ``semicolon-separated``."""
    return f"{DELIMITERS.get(delimiter, repr(delimiter))}-separated"


def detect_delimiter(header_lines: Callable[[], Iterator[str]]) -> str:
    """The candidate that splits the header record into the most cells.

    ``header_lines`` gives a fresh iterator over the lines from the header on, each
    time it is called. Each candidate parses the header as csv would, so a
    delimiter inside a quoted name is not counted, and a candidate under which
    the quoting breaks ("a;b",c read on commas) counts no cells at all.

    Candidates that tie on the header ("contact_id<TAB>Name, given") are settled by
    the first data record: the one that splits it into as many cells as the header
    wins. Only that record is read ahead, and csv's field size limit bounds it.
    """
    cells = {candidate: len(_records(header_lines, candidate, 1)[0]) for candidate in DELIMITERS}
    # max keeps the first of equals: the preference order above. One cell is no
    # evidence: a one-column file, or a header no candidate parses, is read on commas.
    best = max(DELIMITERS, key=cells.__getitem__)
    if cells[best] <= 1:
        return ","
    tied = [candidate for candidate in DELIMITERS if cells[candidate] == cells[best]]
    for candidate in tied if len(tied) > 1 else ():
        first_record = _records(header_lines, candidate, 2)[1]
        if len(first_record) == cells[best]:
            return candidate
    return best


def _records(
    header_lines: Callable[[], Iterator[str]], delimiter: str, count: int
) -> list[list[str]]:
    """The first ``count`` records read on ``delimiter``; an empty one for each that is
    missing or that the quoting breaks."""
    reader = csv.reader(header_lines(), delimiter=delimiter, strict=True)
    found: list[list[str]] = []
    try:
        for record in reader:
            found.append(record)
            if len(found) == count:
                break
    except csv.Error:
        pass
    return found + [[] for _ in range(count - len(found))]
