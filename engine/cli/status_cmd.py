"""``heygen-batch status``: a ledger at a glance, with no network and no lock."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import click

from engine.cli.errors import SummaryCommand, epilog, note_ledger, print_summary, user_errors
from engine.cli.options import ledger_option, ledger_spec
from engine.cli.wording import counted
from engine.ledger.postgres.constants import CAMPAIGN_SCHEMA_PREFIX
from engine.ledger.summary import LedgerSummary, summarise

if TYPE_CHECKING:
    from engine.ledger.postgres.leases import WorkerRow

STATUS_EPILOG = (
    "Exit codes: 0 the summary was printed; 2 no such ledger, or not a ledger; 75 the "
    "ledger's database cannot be reached. "
    "Nothing is sent: no key or network is needed, and a run may hold the ledger meanwhile."
)


def _age(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``4m 10s``: the two largest units."""
    whole = max(int(seconds), 0)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s"


def _as_json(summary: LedgerSummary, now: float) -> dict[str, Any]:
    oldest = summary.oldest_uncertain
    return {
        "ledger": summary.ledger,
        "campaign_id": summary.campaign_id,
        "jobs": summary.total,
        "counts": summary.counts,
        "renders": summary.renders,
        "oldest_uncertain": None
        if oldest is None
        else {
            "key": oldest.key,
            "line": oldest.line,
            "age_s": None if oldest.attempted_at is None else round(now - oldest.attempted_at),
        },
        "last_run": summary.last_run,
        "top_errors": [{"error": e, "jobs": n} for e, n in summary.top_errors],
        "exit_code": 0,
        "reason": None,
    }


def _workers(url: str) -> list[WorkerRow]:
    """The workers registered on the database at ``url``, dead ones not yet reaped too."""
    from engine.ledger.postgres.fleet import Fleet

    async def read() -> list[WorkerRow]:
        fleet = await Fleet.open(url)
        try:
            return await fleet.workers()
        finally:
            await fleet.close()

    return asyncio.run(read())


def _campaign(schema: str) -> str:
    return schema.removeprefix(CAMPAIGN_SCHEMA_PREFIX)


def _stale(w: WorkerRow) -> bool:
    """Silent past its lease (both times the database's): dead or cut off; the next
    worker to reap gives its claims to others and reconciles its jobs in flight."""
    lease_s = (w.lease_until - w.heartbeat_at).total_seconds()
    return w.heartbeat_age_s > lease_s


def _workers_json(workers: list[WorkerRow]) -> list[dict[str, Any]]:
    return [
        {
            "id": w.id,
            "host": w.host,
            "pid": w.pid,
            "campaigns": [_campaign(c) for c in w.campaigns],
            "heartbeat_age_s": round(w.heartbeat_age_s, 1),
            "lease_until": w.lease_until.isoformat(),
            "lease_expired": _stale(w),
            "holding": {_campaign(c): n for c, n in w.holding.items()},
        }
        for w in workers
    ]


def _print_workers(workers: list[WorkerRow]) -> None:
    if not workers:
        click.echo("Workers: none registered.")
        return
    click.echo(f"Workers: {len(workers)}")
    for w in workers:
        held = ", ".join(f"{n} of {_campaign(c)}" for c, n in w.holding.items() if n)
        stale = " (lease expired: presumed dead, its jobs go to the next worker)"
        click.echo(
            f"  {w.id} (host {w.host}, pid {w.pid}): heartbeat {_age(w.heartbeat_age_s)} ago, "
            f"holding {held or 'no job'}" + (stale if _stale(w) else "")
        )


def _print(summary: LedgerSummary, now: float, *, workers: bool) -> None:
    counts = ", ".join(f"{n} {s}" for s, n in summary.counts.items() if n) or "no jobs yet"
    campaign = f" (campaign id {summary.campaign_id})" if summary.campaign_id else ""
    click.echo(f"Ledger {summary.ledger}{campaign}: {counted(summary.total, 'job')}: {counts}.")
    if summary.renders:
        renders = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in summary.renders.items())
        click.echo(f"Renders of submitted jobs: {renders}.")
    oldest = summary.oldest_uncertain
    if oldest is not None:
        age = "" if oldest.attempted_at is None else f", sent {_age(now - oldest.attempted_at)} ago"
        click.echo(
            f"Oldest uncertain: key {oldest.key} (line {oldest.line}{age}); "
            + ("the workers settle it." if workers else "`heygen-batch reconcile` settles it.")
        )
    last = summary.last_run
    if last is None:
        click.echo("Last run: none recorded.")
    else:
        click.echo(
            f"Last run: {last.get('finished_at')}, exit {last.get('exit_code')}: "
            f"{last.get('read')} read, {last.get('new')} new, {last.get('submitted')} "
            f"submitted, {last.get('failed')} failed, {last.get('uncertain')} uncertain "
            f"({last.get('elapsed_s')}s)." + (f" {last['reason']}" if last.get("reason") else "")
        )
    if summary.top_errors:
        click.echo("Most common errors:")
        for error, n in summary.top_errors:
            click.echo(f"  {n} jobs: {error}")


@click.command(
    cls=SummaryCommand, epilog=epilog(STATUS_EPILOG, "heygen-batch status --ledger runs/demo.db")
)
@ledger_option(required=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
def status(ledger: str, campaign: str | None, as_json: bool) -> None:
    """Summarise a ledger without touching the service: jobs by status, renders by
    outcome (video_status), the oldest uncertain job, the last run, the most common
    errors; on a PostgreSQL ledger, the workers too (heartbeat age, jobs held)."""
    spec = ledger_spec(ledger, campaign)
    note_ledger(spec)
    with user_errors():
        summary = summarise(spec)
        # A PostgreSQL ledger is served by workers: who they are and what they hold.
        workers = None if spec.file is not None else _workers(str(spec.where))
    now = time.time()
    if as_json:
        found = _as_json(summary, now)
        if workers is not None:
            found["workers"] = _workers_json(workers)
        print_summary(found)
    else:
        _print(summary, now, workers=workers is not None)
        if workers is not None:
            _print_workers(workers)
