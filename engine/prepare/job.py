"""A job ready to be recorded and, when valid, sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.api.port import ApiName
from engine.errors import FieldError, Reason
from engine.prepare.keys import body_sha256, canonical_json, text_sha256


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
    #: The callback_id the template or body set, before the campaign id is added; None
    #: when the engine makes it from the key.
    own_callback: str | None = None
    #: The HeyGen API the body is for.
    api: ApiName = "v2"
    _json: str | None = field(default=None, repr=False, compare=False)
    _sha256: str | None = field(default=None, repr=False, compare=False)

    @property
    def valid(self) -> bool:
        return self.body is not None

    @property
    def body_json(self) -> str | None:
        """The body as sent, stored and hashed: serialised once, on first use."""
        if self._json is None and self.body is not None:
            # Frozen against callers; the caches are the only fields set after creation.
            object.__setattr__(self, "_json", canonical_json(self.body))
        return self._json

    @property
    def sha256(self) -> str | None:
        """The body's fingerprint, hashed on first use: ``validate`` never needs it."""
        if self._sha256 is None and (text := self.body_json) is not None:
            object.__setattr__(self, "_sha256", text_sha256(text))
        return self._sha256

    @property
    def reason(self) -> Reason | None:
        """Why the row is invalid, counted once: the reason of its first problem."""
        if not self.errors:
            return None
        return self.errors[0].reason or Reason.SCHEMA

    @property
    def callback_id(self) -> str | None:
        value = self.body.get("callback_id") if self.body is not None else None
        return value if isinstance(value, str) else None

    def sha256_with_callback(self, callback_id: str) -> str | None:
        """The fingerprint this body would have with another callback_id."""
        if self.body is None:
            return None
        return body_sha256({**self.body, "callback_id": callback_id})

    @property
    def engine_callback(self) -> bool:
        """The callback_id is the engine's (made from the campaign id and the key)."""
        return self.own_callback is None

    @property
    def error_text(self) -> str:
        return "; ".join(str(e) for e in self.errors)
