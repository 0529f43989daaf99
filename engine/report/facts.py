"""What a campaign report shows, read from a ledger without writing to it.

Everything here is numbers and short texts; the page (``page``) and the charts
(``charts``) only lay them out. Times are unix seconds; latencies milliseconds.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from engine.ledger.store import STATUSES, Ledger
from engine.prepare.estimate import PRICES, video_credits

#: The render outcomes, in the order they are shown; ``not polled`` is a submitted job
#: whose render nobody has asked about yet.
RENDER_OUTCOMES = ("completed", "failed", "processing", "pending", "not polled")
#: Error groups shown, and example rows per group.
ERROR_GROUPS = 20
EXAMPLES_PER_GROUP = 3


@dataclass(frozen=True, slots=True)
class Example:
    key: str
    line: int
    error: str


@dataclass(slots=True)
class ErrorGroup:
    """Jobs that ended alike: ``status`` (or ``render failed``) and the error's code."""

    status: str
    label: str
    count: int = 0
    examples: list[Example] = field(default_factory=list)


@dataclass(slots=True)
class Waits:
    """The 429s and the waits they caused, in seconds."""

    rate_limited: int = 0
    asked_total_s: float = 0.0
    asked_max_s: float = 0.0
    #: Time the pool stood paused: the union of every 429's [answer, answer + Retry-After].
    paused_s: float = 0.0
    #: Seconds between a 429's answer and the same job's next request, as measured.
    waited_max_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Spend:
    """Video seconds and credits of the completed videos: estimated before sending
    (from the spoken text) against what the service reports."""

    completed: int
    with_duration: int
    with_estimate: int
    actual_s: float
    #: Over the videos that have both figures, so the two compare like for like.
    compared: int
    compared_estimated_s: float
    compared_actual_s: float
    credits_estimated: float
    credits_actual: float
    test_videos: bool
    pairs: list[tuple[float, float]]


@dataclass(slots=True)
class Facts:
    ledger: str
    campaign_id: str | None
    jobs: int
    statuses: dict[str, int]
    renders: dict[str, int]
    #: Requests sent, and those after a job's first (retries, 429s included).
    requests: int
    retries: int
    retried_jobs: int
    #: Requests by outcome (``ok``, ``http 429``, ``RequestTimeout``, ...), most first.
    outcomes: dict[str, int]
    latencies_ms: list[float]
    waits: Waits
    errors: list[ErrorGroup]
    error_groups_hidden: int
    #: When each submitted job got its video_id, and when each render was seen completed.
    submitted_times: list[float]
    completed_times: list[float]
    render_s: list[float]
    spend: Spend
    #: What the report cannot show, and why.
    notes: list[str]


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` (0-1) quantile of ``values``, None when there are none."""
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    ordered = sorted(values)
    return statistics.quantiles(ordered, n=100, method="inclusive")[round(share * 100) - 1]


def _group_label(error: str) -> str:
    """The part of an error that names its kind: ``HTTP 400 invalid_parameter`` for a
    service refusal, a render failure's code, else its first clause (an invalid row's
    first field and problem), so like errors of different rows fall together."""
    if error.startswith("HTTP ") or error.startswith("gave up after "):
        return error.split(": ", 1)[0]
    if error.startswith("render failed: "):
        return error.split(": ", 2)[1]
    return error.split("; ", 1)[0]


def _errors(ledger: Ledger) -> tuple[list[ErrorGroup], int]:
    groups: dict[tuple[str, str], ErrorGroup] = {}
    rows = ledger.query(
        "SELECT key, line, status, video_status, error FROM jobs "
        "WHERE error IS NOT NULL AND (status <> 'submitted' OR video_status = 'failed') "
        "ORDER BY line, key"
    )
    for key, line, status, video_status, error in rows:
        kind = "render failed" if status == "submitted" and video_status == "failed" else status
        label = _group_label(error)
        group = groups.setdefault((kind, label), ErrorGroup(kind, label))
        group.count += 1
        if len(group.examples) < EXAMPLES_PER_GROUP:
            group.examples.append(Example(key, line, error))
    ranked = sorted(groups.values(), key=lambda g: (-g.count, g.status, g.label))
    return ranked[:ERROR_GROUPS], max(len(ranked) - ERROR_GROUPS, 0)


def _waits(ledger: Ledger) -> Waits:
    """The 429s, read with the same job's next request (a window over its attempts)."""
    waits = Waits()
    spans: list[tuple[float, float]] = []
    for ended, asked, next_start in ledger.query(
        "SELECT ended, retry_after_s, next_start FROM ("
        "SELECT outcome, retry_after_s, started_at + latency_ms / 1000.0 AS ended, "
        "lead(started_at) OVER (PARTITION BY key ORDER BY attempt) AS next_start "
        "FROM attempts) AS timed WHERE outcome = 'http 429'"
    ):
        waits.rate_limited += 1
        asked = asked or 0.0
        waits.asked_total_s += asked
        waits.asked_max_s = max(waits.asked_max_s, asked)
        spans.append((ended, ended + asked))
        if next_start is not None:
            waits.waited_max_s = max(waits.waited_max_s, next_start - ended)
    end = float("-inf")
    for start, stop in sorted(spans):
        start = max(start, end)
        if stop > start:
            waits.paused_s += stop - start
            end = stop
    return waits


def _spend(ledger: Ledger, test_videos: bool) -> Spend:
    pairs: list[tuple[float, float]] = []
    completed = with_duration = with_estimate = 0
    actual_s = credits_estimated = credits_actual = 0.0
    for estimated, actual in ledger.query(
        "SELECT estimated_seconds, duration_s FROM jobs "
        "WHERE status = 'submitted' AND video_status = 'completed'"
    ):
        completed += 1
        if actual is not None:
            with_duration += 1
            actual_s += actual
            credits_actual += video_credits(actual)
        if estimated is not None:
            with_estimate += 1
            credits_estimated += video_credits(estimated)
        if estimated is not None and actual is not None:
            pairs.append((estimated, actual))
    if test_videos:
        credits_estimated = credits_actual = 0.0
    return Spend(
        completed=completed,
        with_duration=with_duration,
        with_estimate=with_estimate,
        actual_s=actual_s,
        compared=len(pairs),
        compared_estimated_s=sum(e for e, _ in pairs),
        compared_actual_s=sum(a for _, a in pairs),
        credits_estimated=credits_estimated,
        credits_actual=credits_actual,
        test_videos=test_videos,
        pairs=pairs,
    )


def read_facts(ledger: Ledger) -> Facts:
    """Everything the report shows about ``ledger`` (read only; no job is written). A
    ledger filled by an older heygen-batch gives counts and errors, and notes what it
    cannot show."""
    meta = dict(ledger.query("SELECT name, value FROM meta"))
    statuses: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for status, n in ledger.query("SELECT status, count(*) FROM jobs GROUP BY status"):
        statuses[status] = n
    renders = dict.fromkeys(RENDER_OUTCOMES, 0)
    for video_status, n in ledger.query(
        "SELECT video_status, count(*) FROM jobs WHERE status = 'submitted' GROUP BY video_status"
    ):
        outcome = "pending" if video_status == "waiting" else video_status or "not polled"
        renders[outcome] = renders.get(outcome, 0) + n
    notes: list[str] = []
    outcomes = dict(
        ledger.query("SELECT outcome, count(*) AS n FROM attempts GROUP BY outcome ORDER BY n DESC")
    )
    requests = sum(outcomes.values())
    ((tried, retried),) = ledger.query(
        "SELECT count(*), count(*) FILTER (WHERE n > 1) FROM "
        "(SELECT count(*) AS n FROM attempts GROUP BY key) AS per_key"
    )
    latencies = [row[0] for row in ledger.query("SELECT latency_ms FROM attempts")]
    submitted_times: list[float] = []
    completed_times: list[float] = []
    render_s: list[float] = []
    # Submitted when the service answered with the video; a job found by reconcile has
    # no such answer, so its mark stands in.
    # The attempts table has no index (it would slow every run to speed up reports):
    # the answers are grouped once and joined, not looked up per job.
    for sent, video_status, ended in ledger.query(
        "SELECT coalesce(ok.answered, jobs.attempted_at), jobs.video_status, "
        "jobs.render_ended_at FROM jobs LEFT JOIN ("
        "SELECT key, max(started_at + latency_ms / 1000.0) AS answered FROM attempts "
        "WHERE outcome = 'ok' GROUP BY key) AS ok ON ok.key = jobs.key "
        "WHERE jobs.status = 'submitted'"
    ):
        if sent is not None:
            submitted_times.append(sent)
        if video_status == "completed" and ended is not None:
            completed_times.append(ended)
            if sent is not None:
                render_s.append(max(ended - sent, 0.0))
    if not requests and statuses["submitted"] + statuses["failed"] + statuses["uncertain"]:
        notes.append(
            "No request timings: the runs that filled this ledger were made by an older "
            "heygen-batch, which kept none."
        )
    errors, hidden = _errors(ledger)
    return Facts(
        ledger=ledger.describe(),
        campaign_id=meta.get("campaign_id"),
        jobs=sum(statuses.values()),
        statuses=statuses,
        renders=renders,
        requests=requests,
        retries=requests - tried,
        retried_jobs=retried,
        outcomes=outcomes,
        latencies_ms=latencies,
        waits=_waits(ledger),
        errors=errors,
        error_groups_hidden=hidden,
        submitted_times=sorted(submitted_times),
        completed_times=sorted(completed_times),
        render_s=render_s,
        spend=_spend(ledger, meta.get("videos") == "test"),
        notes=notes,
    )


#: The basis of the credit figures, shown beside them.
CREDIT_BASIS = PRICES.basis()
