"""What the pool works on: a job to send (``SubmitItem``), the ledger row a new one gets
(``NewJob``), and the interfaces it sends through (each API's creator, render slots)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from engine.api.port import ApiFeatures, ApiName
from engine.submitter.control import RunControl


class VideoCreator(Protocol):
    @property
    def features(self) -> ApiFeatures: ...

    async def create_video(self, body: str, *, idempotency_key: str | None = None) -> str: ...


class Creators(Protocol):
    """Each API's creator: a job goes to the API its ledger row records."""

    def for_api(self, api: ApiName) -> VideoCreator: ...


class SlotGate(Protocol):
    """Render slots (engine.submitter.slots.RenderTracker): a job takes one before it is
    sent and keeps it for its video's render, or gives it back when none was made."""

    @property
    def free(self) -> bool: ...

    async def acquire(self, control: RunControl) -> bool: ...

    def release(self) -> None: ...

    def started(self, key: str, video_id: str, callback_id: str | None, api: ApiName) -> None: ...


@dataclass(frozen=True, slots=True)
class NewJob:
    """What the ledger records of a job it does not hold yet, written with its mark."""

    line: int
    source: dict[str, Any]
    fingerprint: str | None


@dataclass(frozen=True, slots=True)
class SubmitItem:
    key: str
    body: dict[str, Any]
    sha256: str
    prior_attempts: int = 0
    #: The body serialised once, for the ledger and the request alike.
    body_json: str = ""
    #: Set when the ledger has no row for the job yet: marking it inserts one.
    new: NewJob | None = None
    #: The API the job goes to, and the Idempotency-Key every attempt carries (v3).
    api: ApiName = "v2"
    idempotency_key: str | None = None

    @property
    def payload(self) -> str:
        return self.body_json or json.dumps(self.body, ensure_ascii=False)
