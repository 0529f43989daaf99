"""A job ready to be recorded and, when valid, sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import FieldError
from engine.prepare.keys import body_sha256


@dataclass(frozen=True, slots=True)
class PreparedJob:
    """One row after rendering and validation.

    A valid job has a ``body`` (and so a ``sha256``); an invalid one has ``errors``
    naming the fields at fault, and is recorded but never sent.
    """

    line: int
    key: str
    source: dict[str, Any]
    body: dict[str, Any] | None
    errors: tuple[FieldError, ...] = ()
    _sha256: str | None = field(default=None, repr=False, compare=False)

    @property
    def valid(self) -> bool:
        return self.body is not None

    @property
    def sha256(self) -> str | None:
        """The body's fingerprint, hashed on first use: ``validate`` never needs it."""
        if self._sha256 is None and self.body is not None:
            # Frozen against callers; the cache is the one field set after creation.
            object.__setattr__(self, "_sha256", body_sha256(self.body))
        return self._sha256

    @property
    def error_text(self) -> str:
        return "; ".join(str(e) for e in self.errors)
