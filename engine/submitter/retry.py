"""The retry policy as small pure functions.

``next_step`` decides what an error means for the job, ``parse_retry_after``
reads the service's hint, ``backoff_delay`` and ``retry_delay`` compute the
wait, and ``out_of_budget`` says when to stop. Tests call ``set_testing(True)``
to make every wait zero without touching the decisions.
"""

from __future__ import annotations

import enum
import math
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from engine.errors import (
    AbortRun,
    ConnectFailed,
    EngineError,
    RateLimited,
    RequestInProgress,
    ServerError,
    StatusError,
    TransportError,
    UnreadableAnswer,
)
from engine.submitter.constants import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    MAX_TOTAL_RETRY_S,
    NOT_TAKEN_5XX,
    RETRY_AFTER_MAX_S,
    RETRYABLE_STATUSES,
)

_testing = False


def set_testing(on: bool) -> None:
    """Zero every backoff delay (for tests); decisions are unchanged."""
    global _testing
    _testing = on


class Step(enum.Enum):
    """What an error means for the job that met it."""

    RETRY = "retry"  # nothing was created, or the service asked us to come back
    UNCERTAIN = "uncertain"  # the request may have reached the service: never resend blindly
    FAILED = "failed"  # the service will answer the same way again
    ABORT = "abort"  # no request can succeed: stop the whole run


def next_step(error: EngineError, *, idempotent: bool = False) -> Step:
    """Classify ``error``: the decision that keeps one job from becoming two videos.

    ``idempotent``: whether the API's create replays its first answer when sent again
    (v3's ``Idempotency-Key``). Only then may a request that could have reached the
    service (a timeout, a drop after writing, a 500/502/504) be sent again, with the same
    key; without it (V2) the job is ``uncertain``, for reconcile.
    """
    if isinstance(error, AbortRun):
        return Step.ABORT
    maybe_created = Step.RETRY if idempotent else Step.UNCERTAIN
    if isinstance(error, RequestInProgress):
        return maybe_created
    if isinstance(error, StatusError):
        if error.status in RETRYABLE_STATUSES:
            return Step.RETRY
        return maybe_created if may_hide_a_video(error.status) else Step.FAILED
    if isinstance(error, ConnectFailed):
        return Step.RETRY
    if isinstance(error, UnreadableAnswer):
        return Step.UNCERTAIN  # a resend would only replay the answer that names no video
    if isinstance(error, TransportError):
        return maybe_created if error.maybe_sent else Step.RETRY
    return Step.FAILED


def may_hide_a_video(status: int) -> bool:
    """Whether an HTTP status may come after the service made the video: any 5xx but
    ``NOT_TAKEN_5XX`` (a gateway's 502/504, Cloudflare's 520/524, a proxy's 503)."""
    return status >= 500 and status not in NOT_TAKEN_5XX


#: The error of a job stopped after an attempt that may have made its video.
MAYBE_MADE = "an attempt may have made its video; to be settled by replaying its key"


def may_have_made(error: EngineError) -> bool:
    """Whether the request that met ``error`` may have made a video: no answer after it
    was written, or a server fault. Retried with its Idempotency-Key, such a job is left
    ``uncertain`` (never ``pending`` or ``failed``) when the run stops retrying it."""
    if isinstance(error, TransportError):
        return error.maybe_sent
    # A 409 request_in_progress says the service is taking a request with this key.
    if isinstance(error, RequestInProgress):
        return True
    return isinstance(error, ServerError) and may_hide_a_video(error.status)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date.

    Returns None when absent or unreadable; never negative (a date in the past
    means now). The wait is trusted as asked: whether the run waits that long is
    --max-wait's decision; only an absurd one is read as ``RETRY_AFTER_MAX_S``.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except ValueError:
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_MAX_S)


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with full jitter.

    delay = uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1)))

    ``attempt`` is the number of the attempt that just failed (1 for the first).
    Full jitter spreads workers that failed together over the whole interval.
    """
    if _testing:
        return 0.0
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(max(attempt - 1, 0), 32))
    return (rng or random).uniform(0.0, ceiling)


def retry_delay(error: EngineError, attempt: int, rng: random.Random | None = None) -> float:
    """The wait before the next attempt: the service's Retry-After when it sent one."""
    if _testing:
        return 0.0
    if isinstance(error, RateLimited | ServerError) and error.retry_after is not None:
        return error.retry_after
    return backoff_delay(attempt, rng)


def out_of_budget(
    attempts: int,
    max_attempts: int,
    elapsed_s: float,
    next_delay_s: float,
    max_total_s: float = MAX_TOTAL_RETRY_S,
) -> bool:
    """Stop when the attempts are spent or the next try would start after the time budget."""
    return attempts >= max_attempts or elapsed_s + next_delay_s > max_total_s
