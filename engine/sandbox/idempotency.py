"""``Idempotency-Key`` as HeyGen keeps it on v3 creates (HEYGEN-V3.md).

A key is 1-255 characters of ``A-Z a-z 0-9 _ - : .``, scoped to its route. A repeat
within 24 hours of the first answer replays it (the same video, even for another body);
a repeat while the first request is still being handled is refused (409
``request_in_progress``); after 24 hours the key is forgotten. Only a request that
created a video leaves its key behind: one refused or faulted before any video existed
frees it, so its resend is handled afresh.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

KEY_PATTERN = re.compile(r"[A-Za-z0-9_\-:.]{1,255}")
#: Seconds a created video's key replays it (HeyGen: 24 hours).
KEY_LIFETIME_S = 24 * 3600.0


class Seen(enum.Enum):
    NEW = "new"
    IN_FLIGHT = "in_flight"
    REPLAY = "replay"


@dataclass(frozen=True)
class Claim:
    """What a key's arrival met: ``NEW`` (now in flight), ``IN_FLIGHT``, or ``REPLAY`` of
    ``video_id``."""

    seen: Seen
    video_id: str | None = None


@dataclass
class _Entry:
    at: float
    video_id: str | None  # None while the first request is in flight


@dataclass(frozen=True)
class RememberedKey:
    route: str
    key: str
    at: float
    video_id: str


def valid_key(key: str) -> bool:
    """Whether ``key`` meets HeyGen's character and length rules."""
    return KEY_PATTERN.fullmatch(key) is not None


class IdempotencyKeys:
    """The keys one sandbox has seen, per route, on its clock (unix seconds)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, str], _Entry] = {}

    def claim(self, route: str, key: str) -> Claim:
        """Look ``key`` up on ``route``; a key not (or no longer) known is taken in flight."""
        now = self._clock()
        entry = self._entries.get((route, key))
        if entry is not None and entry.video_id is not None and now - entry.at >= KEY_LIFETIME_S:
            entry = None
        if entry is None:
            self._entries[route, key] = _Entry(now, None)
            return Claim(Seen.NEW)
        if entry.video_id is None:
            return Claim(Seen.IN_FLIGHT)
        return Claim(Seen.REPLAY, entry.video_id)

    def release(self, route: str, key: str) -> None:
        """Forget an in-flight key whose request created nothing."""
        entry = self._entries.get((route, key))
        if entry is not None and entry.video_id is None:
            del self._entries[route, key]

    def settle(self, route: str, key: str, video_id: str) -> None:
        """Remember that ``key`` created ``video_id``, from now for 24 hours."""
        self._entries[route, key] = _Entry(self._clock(), video_id)

    def remembered(self) -> Iterator[RememberedKey]:
        """Every key that created a video (expired ones included), for saving."""
        for (route, key), entry in self._entries.items():
            if entry.video_id is not None:
                yield RememberedKey(route, key, entry.at, entry.video_id)

    def restore(self, saved: RememberedKey) -> None:
        self._entries[saved.route, saved.key] = _Entry(saved.at, saved.video_id)
