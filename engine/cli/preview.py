"""``run --dry-run``: what a run would do and cost, with nothing written or sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import click

from engine.cli.preparing import warn_missing_columns
from engine.ledger.store import Known, Ledger
from engine.prepare import DuplicateFilter, PreparedJob, Preparer
from engine.prepare.estimate import CostEstimate
from engine.reader import JobsFormat, Row, open_rows

_CHUNK = 500
# Ledger statuses a run sends again: pending was never sent, and a run starts by
# clearing invalid rows so that a row fixed since then is new.
_SENT_AGAIN = frozenset({"pending", "invalid"})


@dataclass
class _Counts:
    read: int = 0
    new: int = 0
    already_done: int = 0
    invalid: int = 0
    duplicates: int = 0
    changed: int = 0
    not_resent: int = 0


class _Plan:
    """Sorts prepared jobs the way a run would, without recording or sending any."""

    def __init__(self, ledger: Ledger | None) -> None:
        self._ledger = ledger
        self._seen = DuplicateFilter()
        self.counts = _Counts()
        self.cost = CostEstimate()

    def tally(self, chunk: list[PreparedJob]) -> None:
        counts = self.counts
        fresh: list[PreparedJob] = []
        for job in chunk:
            counts.read += 1
            if self._seen.seen_before(job.key):
                counts.duplicates += 1
            else:
                fresh.append(job)
        known: dict[str, Known] = {}
        if self._ledger is not None:
            known = self._ledger.lookup([job.key for job in fresh if job.valid])
        for job in fresh:
            previous = known.get(job.key)
            if not job.valid:
                counts.invalid += 1
            elif previous is None or previous.status in _SENT_AGAIN:
                counts.new += 1
                assert job.body is not None
                self.cost.add(job.body)
            else:
                if previous.status == "submitted":
                    counts.already_done += 1
                else:
                    counts.not_resent += 1
                if previous.request_sha256 not in (None, job.sha256):
                    counts.changed += 1


def _chunks(rows: Iterator[Row], preparer: Preparer) -> Iterator[list[PreparedJob]]:
    chunk: list[PreparedJob] = []
    for row in rows:
        chunk.append(preparer.prepare(row))
        if len(chunk) >= _CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def preview_run(
    jobs: str, fmt: JobsFormat, preparer: Preparer, ledger_path: Path, as_json: bool
) -> None:
    ledger = Ledger(ledger_path, create=False) if ledger_path.exists() else None
    plan = _Plan(ledger)
    try:
        with open_rows(jobs, fmt) as (header, rows):
            if header is not None:
                warn_missing_columns(preparer, header)
            for chunk in _chunks(rows, preparer):
                plan.tally(chunk)
    finally:
        if ledger is not None:
            ledger.close()
    _report(plan, ledger_path, as_json)


def _report(plan: _Plan, ledger_path: Path, as_json: bool) -> None:
    counts, cost = plan.counts, plan.cost
    if as_json:
        summary = {
            **asdict(counts),
            "estimate": {
                "videos": cost.videos,
                "test_videos": cost.test_videos,
                "video_minutes": round(cost.minutes, 2),
                "credits": cost.credits,
                "audio_scenes_of_unknown_length": cost.audio_scenes_unknown,
            },
            "ledger": str(ledger_path),
            "dry_run": True,
        }
        click.echo(json.dumps(summary))
        return
    click.echo(
        f"Dry run: {counts.read} rows read: {counts.new} new, "
        f"{counts.already_done} already done, {counts.invalid} invalid, "
        f"{counts.duplicates} repeated job keys."
    )
    if counts.changed or counts.not_resent:
        click.echo(
            f"{counts.changed} jobs changed since they were sent and "
            f"{counts.not_resent} failed or uncertain jobs would not be sent again."
        )
    click.echo(
        f"Would send {cost.videos} requests: about {cost.minutes:.1f} video minutes, "
        f"about {cost.credits:g} API credits"
        + (f" ({cost.test_videos} test videos cost none)" if cost.test_videos else "")
        + "."
    )
    if cost.audio_scenes_unknown:
        click.echo(
            f"{cost.audio_scenes_unknown} audio scenes are not counted: their length is unknown."
        )
    click.echo("Nothing was sent and nothing was written.")
