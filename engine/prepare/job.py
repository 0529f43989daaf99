"""A job ready to be recorded and, when valid, sent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import FieldError


@dataclass(frozen=True, slots=True)
class PreparedJob:
    """One row after rendering and validation.

    A valid job has a ``body`` and its ``sha256``; an invalid one has ``errors``
    naming the fields at fault, and is recorded but never sent.
    """

    line: int
    key: str
    source: dict[str, Any]
    body: dict[str, Any] | None
    sha256: str | None
    errors: tuple[FieldError, ...] = ()

    @property
    def valid(self) -> bool:
        return self.body is not None

    @property
    def error_text(self) -> str:
        return "; ".join(str(e) for e in self.errors)
