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
    """
    cells: dict[str, int] = {}
    for candidate in DELIMITERS:
        try:
            record = next(csv.reader(header_lines(), delimiter=candidate, strict=True), [])
        except csv.Error:
            record = []
        cells[candidate] = len(record)
    # max keeps the first of equals: the preference order above. One cell is no
    # evidence: a one-column file, or a header no candidate parses, is read on commas.
    best = max(DELIMITERS, key=cells.__getitem__)
    return best if cells[best] > 1 else ","
