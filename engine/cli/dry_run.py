"""``run --dry-run``: what a run would do and cost, with nothing written or sent."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass

import click

from engine.cli.errors import print_summary
from engine.cli.preparing import reasons_text, warn_missing_columns
from engine.cli.wording import counted
from engine.ledger.kinds import KindGuard
from engine.ledger.open import LedgerSpec
from engine.ledger.store import Ledger, Videos
from engine.ledger.triage import RowCounts, Triage, Verdict
from engine.prepare import Preparer
from engine.prepare.estimate import PRICES, CostEstimate
from engine.reader import JobsFormat, describe, in_chunks, open_rows
from engine.submitter.constants import ASSUMED_RENDER_S_PER_VIDEO_S
from engine.submitter.rate import Rate

_CHUNK = 500
# Invalid rows a dry run lists with their line and reason; `validate` lists them all.
FIRST_INVALID_SHOWN = 5


def _existing(spec: LedgerSpec) -> Ledger | None:
    """The ledger ``spec`` names, read-only, or None when it holds nothing yet (no such
    file, or no such campaign in the database: its first run would make it)."""
    if spec.file is not None:
        return Ledger.read_only(spec.file) if spec.file.exists() else None
    from engine.ledger.open import open_database_read_only

    return open_database_read_only(spec)


def preview_run(
    jobs: str,
    fmt: JobsFormat,
    delimiter: str | None,
    preparer: Preparer,
    spec: LedgerSpec,
    as_json: bool,
    fingerprint_salt: bytes,
    limit: int | None,
    videos: Videos | None,
    rate: Rate,
    max_rendering: int | None = None,
) -> None:
    """Count what ``run`` would do with the same triage, sending and writing nothing.

    Exits 1 (``SystemExit``) when rows were read but none would be sent (jobs --limit
    holds back count as sent: a later run sends them).
    """
    started = time.monotonic()
    first_invalid: list[InvalidRow] = []
    ledger = _existing(spec)
    triage = Triage(ledger, preparer, fingerprint_salt)
    counts, cost = RowCounts(), CostEstimate()
    by_reason: Counter[str] = Counter()
    try:
        # Run refuses test and real videos on one keyed ledger; so does its preview.
        kinds = KindGuard(ledger, ledger or spec) if videos is not None else None
        with open_rows(jobs, fmt, delimiter) as source:
            warn_missing_columns(preparer, source)
            for chunk in in_chunks(source.rows, _CHUNK):
                for t in triage.sort(chunk):
                    counts.add(t)
                    if t.verdict is Verdict.INVALID and t.job is not None:
                        by_reason[str(t.job.reason)] += 1
                        if len(first_invalid) < FIRST_INVALID_SHOWN:
                            first_invalid.append(
                                InvalidRow(t.line, str(t.job.reason), t.job.error_text or "")
                            )
                    body = t.job.body if t.job is not None else None
                    if kinds and body is not None and (t.verdict is Verdict.NEW or t.changed):
                        kinds.check(body)
                    if t.verdict is not Verdict.NEW:
                        continue
                    assert t.job is not None
                    assert t.job.body is not None
                    if limit is not None and cost.videos >= limit:
                        counts.held_by_limit += 1
                    else:
                        cost.add(t.job.body)
    finally:
        if ledger is not None:
            ledger.close()
    plan = _Plan(counts, by_reason, first_invalid, cost, rate, max_rendering)
    _report(plan, source.delimiter, spec, as_json, time.monotonic() - started)
    if plan.exit_code:
        raise SystemExit(plan.exit_code)


@dataclass(frozen=True)
class InvalidRow:
    line: int
    reason: str
    error: str


@dataclass(frozen=True)
class _Plan:
    counts: RowCounts
    by_reason: Counter[str]
    first_invalid: list[InvalidRow]
    cost: CostEstimate
    rate: Rate
    max_rendering: int | None = None

    @property
    def send_seconds(self) -> float:
        """How long sending takes at --rate: the requests start one rate slot apart."""
        return self.cost.videos / self.rate.per_second

    @property
    def render_seconds(self) -> float | None:
        """With --max-rendering N, the least time N slots take to render every video, at
        ``ASSUMED_RENDER_S_PER_VIDEO_S`` (a guess: HeyGen publishes no render times)."""
        if self.max_rendering is None:
            return None
        rendering = self.cost.minutes * 60 * ASSUMED_RENDER_S_PER_VIDEO_S
        return rendering / self.max_rendering

    @property
    def reason(self) -> str | None:
        c = self.counts
        # Jobs --limit holds back are still to be sent (a later run), as run counts them.
        if c.read and not c.new:
            return (
                f"{counted(c.read, 'row')} read, and none would be sent ({c.invalid} invalid, "
                f"{c.already_done} already done, {c.not_resent} failed or uncertain, "
                f"{c.duplicates} repeated)."
            )
        return None

    @property
    def exit_code(self) -> int:
        return 1 if self.reason else 0


def _report(
    plan: _Plan, delimiter: str | None, spec: LedgerSpec, as_json: bool, elapsed_s: float
) -> None:
    counts, by_reason, cost = plan.counts, plan.by_reason, plan.cost
    if as_json:
        summary = {
            **asdict(counts),
            "invalid_by_reason": dict(sorted(by_reason.items())),
            "estimate": {
                "videos": cost.videos,
                "test_videos": cost.test_videos,
                "video_minutes": round(cost.minutes, 2),
                "credits": cost.credits,
                "audio_scenes_of_unknown_length": cost.audio_scenes_unknown,
                "send_seconds": round(plan.send_seconds, 1),
                "render_seconds": None
                if plan.render_seconds is None
                else round(plan.render_seconds, 1),
                "rate": str(plan.rate),
                "basis": PRICES.basis(),
            },
            "first_invalid": [asdict(row) for row in plan.first_invalid],
            "delimiter": delimiter,
            "ledger": str(spec),
            "elapsed_s": round(elapsed_s, 3),
            "dry_run": True,
            "exit_code": plan.exit_code,
            "reason": plan.reason,
        }
        print_summary(summary)
        return
    layout = f" ({describe(delimiter)})" if delimiter else ""
    click.echo(
        f"Dry run: {counted(counts.read, 'row')} read{layout}: {counts.new} new, "
        f"{counts.already_done} already done, {counts.invalid} invalid{reasons_text(by_reason)}, "
        f"{counted(counts.duplicates, 'repeated job key')}."
    )
    for row in plan.first_invalid:
        click.echo(f"  line {row.line}: {row.reason.replace('_', ' ')}: {row.error}")
    if counts.invalid > len(plan.first_invalid):
        click.echo(
            f"  ... and {counts.invalid - len(plan.first_invalid)} more "
            "(`heygen-batch validate` lists every one)."
        )
    if counts.changed or counts.not_resent:
        click.echo(
            f"{counted(counts.changed, 'job')} changed since sent and "
            f"{counted(counts.not_resent, 'failed or uncertain job')} would not be sent again."
        )
    if counts.changed:
        click.echo(
            "  Their videos were made with the old values. To make new ones, give the "
            "campaign a new --ledger (each of its jobs is then sent, and paid, again)."
        )
    if counts.held_by_limit:
        click.echo(
            f"{counted(counts.held_by_limit, 'new job')} would wait for a later run (--limit)."
        )
    click.echo(
        f"Would send {counted(cost.videos, 'request')}: about {cost.minutes:.1f} video minutes, "
        f"about {cost.credits:g} API credits"
        + (f" ({counted(cost.test_videos, 'test video')} cost none)" if cost.test_videos else "")
        + "."
    )
    click.echo(f"Estimate basis: {PRICES.basis()}.")
    if cost.videos:
        click.echo(
            f"Sending takes about {_duration(plan.send_seconds)} at --rate {plan.rate} "
            "(rendering comes after, at the service's pace)."
        )
    if cost.videos and plan.render_seconds is not None:
        click.echo(
            f"With --max-rendering {plan.max_rendering}, rendering takes at least about "
            f"{_duration(max(plan.render_seconds, plan.send_seconds))}, guessing "
            f"{ASSUMED_RENDER_S_PER_VIDEO_S:g} s of rendering per second of video "
            "(HeyGen publishes no render times)."
        )
    if cost.audio_scenes_unknown:
        click.echo(
            f"{counted(cost.audio_scenes_unknown, 'audio scene')} not counted: length unknown."
        )
    click.echo("Nothing was sent and nothing was written.")
    if plan.reason:
        click.echo(plan.reason, err=True)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
