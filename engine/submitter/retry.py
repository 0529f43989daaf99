"""The retry policy as small pure functions.

``should_retry`` decides, ``parse_retry_after`` reads the service's hint and
``backoff_delay`` computes the wait. Tests call ``set_testing(True)`` to make
every wait zero without touching the decisions.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from engine.errors import (
    AbortRun,
    ConnectFailed,
    EngineError,
    RateLimited,
    ServerError,
    TransportError,
)
from engine.submitter.constants import BACKOFF_BASE_S, BACKOFF_CAP_S, RETRY_AFTER_CAP_S

_testing = False


def set_testing(on: bool) -> None:
    """Zero every backoff delay (for tests); decisions are unchanged."""
    global _testing
    _testing = on


def should_retry(error: EngineError) -> bool:
    """Retry only what cannot have created a video, or was refused for load.

    429 and 5xx are retried. A connection that failed before the request was
    written is retried. A dropped connection or timeout after the request may
    have been written is *not*: the job becomes ``uncertain`` instead.
    """
    if isinstance(error, AbortRun):
        return False
    if isinstance(error, RateLimited | ServerError):
        return True
    if isinstance(error, TransportError):
        return isinstance(error, ConnectFailed)
    return False


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns None when absent or unreadable; the result is capped at
    ``RETRY_AFTER_CAP_S`` and never negative.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_S)


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter.

    delay = uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))

    ``attempt`` is the number of the attempt that just failed (1 for the first).
    """
    if _testing:
        return 0.0
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(attempt - 1, 0))
    return (rng or random).uniform(0.0, ceiling)


def retry_delay(error: EngineError, attempt: int, rng: random.Random | None = None) -> float:
    """The wait before the next attempt: the service's Retry-After when it sent one."""
    if _testing:
        return 0.0
    if isinstance(error, RateLimited) and error.retry_after is not None:
        return error.retry_after
    return backoff_delay(attempt, rng)
