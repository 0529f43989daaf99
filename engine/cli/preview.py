"""``run --dry-run``: what a run would do and cost, with nothing written or sent."""

from __future__ import annotations

import json
from pathlib import Path

import click

from engine.ledger.store import Ledger
from engine.prepare import DuplicateFilter, Preparer
from engine.prepare.estimate import CostEstimate
from engine.reader import JobsFormat, open_rows

_CHUNK = 500


def preview_run(
    jobs: str, fmt: JobsFormat, preparer: Preparer, ledger_path: Path, as_json: bool
) -> None:
    ledger = Ledger(ledger_path, create=False) if ledger_path.exists() else None
    counts = {"read": 0, "new": 0, "already_done": 0, "invalid": 0, "duplicates": 0}
    cost = CostEstimate()
    seen = DuplicateFilter()
    with open_rows(jobs, fmt) as (_, rows):
        chunk = []
        for row in rows:
            chunk.append(preparer.prepare(row))
            if len(chunk) >= _CHUNK:
                _tally(chunk, ledger, seen, counts, cost)
                chunk = []
        _tally(chunk, ledger, seen, counts, cost)
    if ledger is not None:
        ledger.close()
    summary = {
        **counts,
        "estimate": {
            "videos": cost.videos,
            "video_minutes": round(cost.minutes, 2),
            "credits": cost.credits,
            "audio_scenes_of_unknown_length": cost.audio_scenes_unknown,
        },
        "ledger": str(ledger_path),
        "dry_run": True,
    }
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(
        f"Dry run: {counts['read']} rows read: {counts['new']} new, "
        f"{counts['already_done']} already done, {counts['invalid']} invalid, "
        f"{counts['duplicates']} duplicate keys."
    )
    click.echo(
        f"Would send {cost.videos} requests: about {cost.minutes:.1f} video minutes, "
        f"about {cost.credits:g} API credits."
    )
    if cost.audio_scenes_unknown:
        click.echo(
            f"{cost.audio_scenes_unknown} audio scenes are not counted: their length is unknown."
        )
    click.echo("Nothing was sent and nothing was written.")


def _tally(chunk, ledger, seen, counts, cost) -> None:  # type: ignore[no-untyped-def]
    known = ledger.lookup([j.key for j in chunk]) if ledger is not None else {}
    for job in chunk:
        counts["read"] += 1
        if seen.seen_before(job.key):
            counts["duplicates"] += 1
        elif not job.valid:
            counts["invalid"] += 1
        elif job.key in known and known[job.key].status != "pending":
            counts["already_done"] += 1
        else:
            counts["new"] += 1
            assert job.body is not None
            cost.add(job.body)
