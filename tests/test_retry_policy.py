"""The retry policy's pure functions, alone: decisions, Retry-After, backoff, budget."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import (
    ConnectFailed,
    ConnectionDropped,
    EngineError,
    KeyRefused,
    OutOfCredit,
    RateLimited,
    RequestTimeout,
    UnreadableAnswer,
    make_status_error,
)
from engine.submitter.constants import (
    BACKOFF_BASE_S,
    BACKOFF_CAP_S,
    MAX_TOTAL_RETRY_S,
    RETRY_AFTER_MAX_S,
)
from engine.submitter.retry import (
    Step,
    backoff_delay,
    next_step,
    out_of_budget,
    parse_retry_after,
    retry_delay,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def status(code: int, body: object = None) -> EngineError:
    return make_status_error(code, body)


@pytest.mark.parametrize("code", [429, 503])
def test_load_and_unavailable_are_retried(code: int) -> None:
    assert next_step(status(code)) is Step.RETRY
    assert next_step(status(code), idempotent=True) is Step.RETRY


@pytest.mark.parametrize("code", [500, 502, 504])
def test_a_gateway_fault_is_uncertain_unless_create_is_idempotent(code: int) -> None:
    """V2 (CONTRACT 5): a 500/502/504 on generate may hide a created video; only an API
    whose create replays its first answer (v3's Idempotency-Key) sends it again."""
    assert next_step(status(code)) is Step.UNCERTAIN
    assert next_step(status(code), idempotent=True) is Step.RETRY


@pytest.mark.parametrize("code", [400, 404, 405, 409, 413, 422, 501, 505])
def test_other_statuses_fail_the_job(code: int) -> None:
    assert next_step(status(code)) is Step.FAILED
    assert next_step(status(code)) is not Step.RETRY


@pytest.mark.parametrize(
    ("code", "body", "kind"),
    [
        (401, None, KeyRefused),
        (403, None, KeyRefused),
        (402, None, OutOfCredit),
        (400, {"error": {"code": "insufficient_credit", "message": "no"}}, OutOfCredit),
        (400, {"error": {"code": "trial_video_limit_exceeded", "message": "no"}}, OutOfCredit),
        (429, {"error": {"code": "insufficient_credit", "message": "no"}}, OutOfCredit),
    ],
)
def test_refused_key_and_empty_account_abort_the_run(
    code: int, body: object, kind: type[EngineError]
) -> None:
    error = status(code, body)
    assert isinstance(error, kind)
    assert next_step(error) is Step.ABORT
    assert next_step(error) is not Step.RETRY


def test_a_connection_never_made_is_retried() -> None:
    assert next_step(ConnectFailed("refused")) is Step.RETRY


@pytest.mark.parametrize(
    "error",
    [
        ConnectionDropped("reset after the request was written"),
        RequestTimeout("no answer"),
        UnreadableAnswer("200 without a video_id"),
    ],
)
def test_a_request_that_may_have_arrived_is_uncertain_never_retried(error: EngineError) -> None:
    assert next_step(error) is Step.UNCERTAIN
    assert next_step(error) is not Step.RETRY
    # Where a resend can only replay the first answer, it is safe to send again; but an
    # answer that names no video would only come back the same.
    expected = Step.UNCERTAIN if isinstance(error, UnreadableAnswer) else Step.RETRY
    assert next_step(error, idempotent=True) is expected


# --- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        ("  2 ", 2.0),
        ("0.25", 0.25),
        ("0", 0.0),
        ("-4", 0.0),
        # Trusted as asked (issue 12 item 11): --max-wait decides, not a silent cap.
        ("3600", 3600.0),
        ("86400", 86400.0),
        ("1e12", RETRY_AFTER_MAX_S),
        ("inf", RETRY_AFTER_MAX_S),
    ],
)
def test_retry_after_in_seconds(header: str, seconds: float) -> None:
    assert parse_retry_after(header, NOW) == seconds


def test_retry_after_as_an_http_date() -> None:
    later = format_datetime(NOW + timedelta(seconds=7), usegmt=True)
    assert later.endswith("GMT")
    assert parse_retry_after(later, NOW) == 7.0


def test_retry_after_date_in_the_past_means_now_and_a_far_one_is_kept() -> None:
    assert parse_retry_after(format_datetime(NOW - timedelta(hours=1), usegmt=True), NOW) == 0.0
    far = format_datetime(NOW + timedelta(days=2), usegmt=True)
    assert parse_retry_after(far, NOW) == 2 * 86400.0


def test_retry_after_date_without_zone_is_read_as_utc() -> None:
    assert parse_retry_after("01 Mar 2025 12:00:30", NOW) == 30.0


@pytest.mark.parametrize(
    "header", [None, "", "   ", "soon", "nan", "Wed, 32 Oct 2015 07:28:00 GMT", "1 2 3"]
)
def test_unreadable_retry_after_is_ignored(header: str | None) -> None:
    assert parse_retry_after(header, NOW) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_retry_after_never_raises_and_stays_in_bounds(header: str) -> None:
    seconds = parse_retry_after(header, NOW)
    assert seconds is None or 0.0 <= seconds <= RETRY_AFTER_MAX_S


# --- backoff -------------------------------------------------------------------------------


class Extremes(random.Random):
    """Draws the top (or bottom) of every interval, to read the formula's bounds."""

    def __init__(self, top: bool) -> None:
        super().__init__(0)
        self.top = top

    def uniform(self, a: float, b: float) -> float:
        return b if self.top else a


def test_backoff_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    ceilings = [backoff_delay(attempt, Extremes(top=True)) for attempt in range(1, 10)]
    expected = [min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (n - 1)) for n in range(1, 10)]
    assert ceilings == expected
    assert ceilings[0] == BACKOFF_BASE_S
    assert ceilings[-1] == BACKOFF_CAP_S


def test_backoff_has_full_jitter_down_to_zero() -> None:
    assert backoff_delay(5, Extremes(top=False)) == 0.0
    rng = random.Random(7)
    draws = [backoff_delay(4, rng) for _ in range(500)]
    ceiling = BACKOFF_BASE_S * 8
    assert all(0.0 <= d <= ceiling for d in draws)
    # Spread over the whole interval, not bunched near the top as "equal jitter" would be.
    assert min(draws) < ceiling * 0.05
    assert max(draws) > ceiling * 0.95


def test_backoff_survives_absurd_attempt_numbers() -> None:
    assert backoff_delay(10_000, Extremes(top=True)) == BACKOFF_CAP_S


def test_retry_delay_honours_retry_after_else_backs_off() -> None:
    limited = RateLimited(429, None, None, "slow down", retry_after=4.5)
    assert retry_delay(limited, 1) == 4.5
    bare = RateLimited(429, None, None, "slow down", retry_after=None)
    assert retry_delay(bare, 3, Extremes(top=True)) == BACKOFF_BASE_S * 4
    assert retry_delay(status(503), 2, Extremes(top=True)) == BACKOFF_BASE_S * 2


@pytest.mark.usefixtures("no_backoff")
def test_no_backoff_zeroes_waits_but_not_decisions() -> None:
    limited = RateLimited(429, None, None, "slow down", retry_after=30.0)
    assert retry_delay(limited, 1) == 0.0
    assert backoff_delay(6) == 0.0
    assert next_step(limited) is Step.RETRY


# --- when to stop --------------------------------------------------------------------------


def test_stop_when_attempts_are_spent() -> None:
    assert not out_of_budget(5, 6, elapsed_s=1.0, next_delay_s=1.0)
    assert out_of_budget(6, 6, elapsed_s=1.0, next_delay_s=1.0)
    assert out_of_budget(1, 1, elapsed_s=0.0, next_delay_s=0.0)


def test_stop_when_the_next_try_would_start_past_the_time_budget() -> None:
    assert not out_of_budget(2, 6, elapsed_s=MAX_TOTAL_RETRY_S - 10, next_delay_s=10)
    assert out_of_budget(2, 6, elapsed_s=MAX_TOTAL_RETRY_S - 10, next_delay_s=10.5)
    assert out_of_budget(2, 6, elapsed_s=5.0, next_delay_s=1.0, max_total_s=5.5)
