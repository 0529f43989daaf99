"""One record read from a jobs file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import RowError


@dataclass(frozen=True, slots=True)
class Row:
    """A source record and the 1-based line it starts on.

    ``error`` is set (and ``values`` empty) when the record itself is unusable;
    it then becomes an ``invalid`` job rather than stopping the file.
    """

    line: int
    values: dict[str, Any]
    error: RowError | None = None
