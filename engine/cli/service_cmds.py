"""``poll`` and ``reconcile``: commands that ask the service about videos in a ledger.

Both hold the ledger's lock, taken before the ledger is opened: while a run (or
another poll) owns the file they exit 75 at once and touch nothing.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import click

from engine.api.client import HeyGenClient
from engine.cli.config_file import config_option
from engine.cli.errors import (
    ENVIRONMENT,
    SummaryCommand,
    UserError,
    epilog,
    note_ledger,
    print_summary,
    user_errors,
)
from engine.cli.options import (
    ledger_option,
    ledger_spec,
    rate_option_for,
    rebind_option,
    resolve_rate,
    resolve_where,
    service_options,
)
from engine.cli.run_cmd import GRACE_HELP, GRACE_VARIABLE, reconcile_grace
from engine.cli.wording import counted
from engine.ledger import Ledger
from engine.ledger.binding import bind_ledger
from engine.ledger.open import LedgerSpec
from engine.ledger.poll import PollResult, poll_once, poll_until_done
from engine.ledger.reconcile import ReconcileResult, reconcile
from engine.ledger.statements import in_flight_to_uncertain
from engine.service import Service, service_address
from engine.submitter.constants import DEFAULT_POLL_RATE
from engine.submitter.control import utc_clock
from engine.submitter.rate import Rate, make_limiter

# Between rounds of --until-done: renders take minutes, so polling faster only spends rate.
POLL_INTERVAL_S = 15.0
SANDBOX_POLL_INTERVAL_S = 0.5
INTERVAL_VARIABLE = "HEYGEN_BATCH_POLL_INTERVAL_S"
POLL_CONCURRENCY = 8


def poll_interval(sandbox: bool) -> float:
    text = os.environ.get(INTERVAL_VARIABLE)
    if not text:
        return SANDBOX_POLL_INTERVAL_S if sandbox else POLL_INTERVAL_S
    try:
        return max(float(text), 0.0)
    except ValueError as err:
        raise UserError(f"{INTERVAL_VARIABLE}='{text}' must be a number of seconds.") from err


class RoundProgress:
    """On a terminal, a line redrawn as a round's status calls come back (at most
    ``EVERY_S`` apart); elsewhere nothing: each round ends with a line of its own."""

    EVERY_S = 0.2

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._shown_at = 0.0
        self._drawn = False

    def __call__(self, result: PollResult) -> None:
        now = time.monotonic()
        if not self.enabled or now - self._shown_at < self.EVERY_S:
            return
        self._shown_at = now
        self._drawn = True
        click.echo(
            f"\rthis round: {result.checked + result.errors + result.missing} asked, "
            f"{result.completed} completed, {result.failed} failed, "
            f"{result.rendering} rendering\x1b[K",
            err=True,
            nl=False,
            color=True,  # the erase-line code, which click would strip
        )

    def clear(self) -> None:
        if self._drawn:
            click.echo("\r\x1b[K", err=True, nl=False, color=True)
            self._drawn = False


def _progress(result: PollResult) -> None:
    click.echo(
        f"{result.completed} completed, {result.failed} failed, "
        f"{result.rendering} still rendering"
        + (f", {result.errors} to ask again" if result.errors else "")
        + "; checking again shortly",
        err=True,
    )


async def _poll(
    ledger: Ledger,
    service: Service,
    rate: Rate,
    until_done: bool,
    interval_s: float,
    shown: RoundProgress,
) -> PollResult:
    limiter = make_limiter(rate)

    def between_rounds(result: PollResult) -> None:
        shown.clear()
        _progress(result)

    async with (
        service_address(service, ledger.file) as (base_url, key),
        HeyGenClient(base_url, key, POLL_CONCURRENCY) as client,
    ):
        try:
            if not until_done:
                return await poll_once(ledger, client, limiter, POLL_CONCURRENCY, shown)
            return await poll_until_done(
                ledger,
                client,
                limiter,
                interval_s,
                concurrency=POLL_CONCURRENCY,
                on_round=between_rounds,
                on_check=shown,
            )
        finally:
            shown.clear()


@click.command(
    cls=SummaryCommand,
    epilog=epilog(
        "Exit codes: 0 done, whatever the renders' outcome (failed renders are in the "
        "ledger: see `status` or `export`); 2 usage or configuration error (no key and no "
        "--sandbox, no such ledger, a ledger of another service, a bad --config key); 3 "
        "the service refused the key; 75 another run or poll holds the ledger (nothing was "
        "done); 130 interrupted (the ledger is consistent). With --json, stdout is one JSON "
        f"object with exit_code and reason, whatever the exit. {ENVIRONMENT} "
        f"{INTERVAL_VARIABLE}: seconds between --until-done rounds.",
        "heygen-batch poll --ledger runs/demo.db --sandbox --until-done",
    ),
)
@ledger_option(required=True)
@service_options
@rate_option_for(DEFAULT_POLL_RATE, "status calls")
@config_option
@click.option(
    "--until-done",
    is_flag=True,
    help="Keep polling until every submitted video is completed or failed "
    f"(every 15s; 0.5s with --sandbox; ${INTERVAL_VARIABLE} overrides).",
)
@rebind_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@click.option("--no-progress", is_flag=True, help="Never draw the progress line.")
def poll(
    ledger: str,
    campaign: str | None,
    base_url: str | None,
    sandbox: bool,
    rate: str | None,
    until_done: bool,
    as_json: bool,
    no_progress: bool,
    rebind: bool,
) -> None:
    """Fill in video_status, video_url and thumbnail_url for submitted jobs, and the
    reason in error for a failed render.

    On a terminal a line shows each round's progress; elsewhere each round of
    --until-done ends with one line on stderr.
    """
    started = time.monotonic()
    spec = ledger_spec(ledger, campaign)
    note_ledger(spec)
    parsed = resolve_rate(rate, sandbox, DEFAULT_POLL_RATE)
    service = resolve_where(base_url, sandbox)
    with user_errors():
        interval = poll_interval(service.is_sandbox)
        spec.require()
        with spec.lock():
            store = spec.open(create=False)
            try:
                bind_ledger(store, service, rebind)
                shown = RoundProgress(not no_progress and not as_json and sys.stderr.isatty())
                result = asyncio.run(_poll(store, service, parsed, until_done, interval, shown))
                counts = store.counts()
                renders = store.render_counts()
            finally:
                store.close()
    summary = {
        "checked": result.checked,
        "completed": result.completed,
        "failed": result.failed,
        "rendering": result.rendering,
        "errors": result.errors,
        "missing": result.missing,
        "counts": counts,
        "ledger": str(spec),
        "elapsed_s": round(time.monotonic() - started, 3),
        "exit_code": 0,
        "reason": None,
    }
    if as_json:
        print_summary(summary)
    elif result.checked == 0 and not (result.errors or result.missing):
        ended = renders["completed"] + renders["failed"]
        click.echo(
            f"Nothing to check: the render of every submitted job ({ended}) has ended "
            f"({renders['completed']} completed, {renders['failed']} failed)."
            if ended
            else "Nothing to check: no job of this ledger has a video yet."
        )
    else:
        click.echo(
            f"{counted(result.checked, 'status check')}: {result.completed} completed, "
            f"{result.failed} failed, {result.rendering} still rendering"
            + (f", {result.errors} could not be checked" if result.errors else "")
            + (f", {result.missing} unknown to the service" if result.missing else "")
            + (
                f", {result.not_theirs} made for another job (uncertain again: run "
                "`heygen-batch reconcile`)"
                if result.not_theirs
                else ""
            )
            + "."
        )


async def _reconcile(ledger: Ledger, service: Service) -> ReconcileResult:
    limiter = make_limiter(Rate(1, 1.0) if not service.is_sandbox else Rate(1000, 1.0))
    async with (
        service_address(service, ledger.file) as (base_url, key),
        HeyGenClient(base_url, key) as client,
    ):
        return await reconcile(ledger, client, limiter, reconcile_grace(service.is_sandbox))


def _reconcile_locked(spec: LedgerSpec, service: Service, rebind: bool) -> ReconcileResult:
    store = spec.open(create=False)
    try:
        bind_ledger(store, service, rebind)
        if not store.features.concurrent_workers:
            # Holding the lock, any job still 'submitting' was left by a killed run. Where
            # workers share the ledger, one may be sending it now: a lost worker's jobs are
            # made uncertain by its lease running out, never by a sweep like this.
            store.transaction([in_flight_to_uncertain(time.time())])
        return asyncio.run(_reconcile(store, service))
    finally:
        store.close()


@click.command(
    name="reconcile",
    epilog=epilog(
        "Exit codes: 0 no job is left uncertain; 1 some stay uncertain (the message says "
        "why and when to try again); 2 usage or configuration error (no key and no "
        "--sandbox, no such ledger); 3 the service refused the key; 75 another run holds "
        f"the ledger. {ENVIRONMENT} {GRACE_HELP}",
        "heygen-batch reconcile --ledger runs/demo.db --sandbox",
    ),
)
@ledger_option(required=True)
@service_options
@rebind_option
def reconcile_command(
    ledger: str, campaign: str | None, base_url: str | None, sandbox: bool, rebind: bool
) -> None:
    """Settle uncertain jobs: find the video each one created, or prove it absent
    (then it is pending and the next run sends it). Exits 1 while some stay uncertain."""
    spec = ledger_spec(ledger, campaign)
    service = resolve_where(base_url, sandbox)
    with user_errors():
        spec.require()
        with spec.lock():
            result = _reconcile_locked(spec, service, rebind)
    click.echo(
        f"{result.found} found and marked submitted, {result.absent} proven absent and "
        f"pending again, {result.still_uncertain} still uncertain."
    )
    if result.corrected:
        click.echo(
            f"{counted(result.corrected, 'submitted job')} had been answered with another "
            "job's video and now hold their own (by callback_id)."
        )
    if result.problem is not None:
        click.echo(
            f"Absence not proven: {result.problem}. The jobs stay uncertain (their error says "
            "why); run `reconcile` again later."
        )
    if result.grace_ends:
        # Too recent to be proven absent: the service may still be listing them.
        click.echo(
            f"{len(result.grace_ends)} were sent too recently to be proven absent (the "
            f"grace period, ${GRACE_VARIABLE}); run `reconcile` again after "
            f"{utc_clock(max(result.grace_ends))}."
        )
    if result.still_uncertain:
        raise SystemExit(1)
