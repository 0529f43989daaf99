"""``poll`` and ``reconcile``: commands that ask the service about videos in a ledger."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from engine.cli.errors import user_errors
from engine.cli.options import (
    ledger_option,
    rate_option,
    resolve_rate,
    resolve_where,
    service_options,
)
from engine.cli.run_cmd import reconcile_grace
from engine.ledger import Ledger, ledger_lock
from engine.ledger.poll import PollResult, poll_once
from engine.ledger.reconcile import ReconcileResult, reconcile
from engine.ledger.store import in_flight_to_uncertain
from engine.service import Service, service_address
from engine.submitter.client import HeyGenClient
from engine.submitter.rate import Rate, make_limiter

# Between rounds of --until-done: renders take minutes, so polling faster only spends rate.
POLL_INTERVAL_S = 15.0
SANDBOX_POLL_INTERVAL_S = 0.5


async def _poll(ledger: Ledger, service: Service, rate: Rate, until_done: bool) -> PollResult:
    limiter = make_limiter(rate)
    interval = SANDBOX_POLL_INTERVAL_S if service.is_sandbox else POLL_INTERVAL_S
    async with service_address(service) as (base_url, key), HeyGenClient(base_url, key) as client:
        while True:
            result = await poll_once(ledger, client, limiter)
            if not until_done or (result.rendering == 0 and result.errors == 0):
                return result
            click.echo(
                f"{result.completed} completed, {result.failed} failed, "
                f"{result.rendering} still rendering; next check in {interval:g}s",
                err=True,
            )
            await asyncio.sleep(interval)


@click.command()
@ledger_option(required=True)
@service_options
@rate_option
@click.option(
    "--until-done",
    is_flag=True,
    help="Keep polling until every submitted video is completed or failed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
def poll(
    ledger: Path, base_url: str | None, sandbox: bool, rate: str, until_done: bool, as_json: bool
) -> None:
    """Fill in video_status, video_url and thumbnail_url for submitted jobs."""
    parsed = resolve_rate(rate)
    service = resolve_where(base_url, sandbox)
    with user_errors():
        store = Ledger(ledger, create=False)
        try:
            with ledger_lock(ledger):
                result = asyncio.run(_poll(store, service, parsed, until_done))
            counts = store.counts()
        finally:
            store.close()
    summary = {
        "checked": result.checked,
        "completed": result.completed,
        "failed": result.failed,
        "rendering": result.rendering,
        "errors": result.errors,
        "counts": counts,
    }
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(
            f"Checked {result.checked} videos: {result.completed} completed, "
            f"{result.failed} failed, {result.rendering} still rendering"
            + (f", {result.errors} could not be checked" if result.errors else "")
            + "."
        )


async def _reconcile(ledger: Ledger, service: Service) -> ReconcileResult:
    limiter = make_limiter(Rate(1, 1.0) if not service.is_sandbox else Rate(1000, 1.0))
    async with service_address(service) as (base_url, key), HeyGenClient(base_url, key) as client:
        return await reconcile(ledger, client, limiter, reconcile_grace(service.is_sandbox))


@click.command(name="reconcile")
@ledger_option(required=True)
@service_options
def reconcile_command(ledger: Path, base_url: str | None, sandbox: bool) -> None:
    """Settle uncertain jobs: find the video each one created, or prove it absent."""
    service = resolve_where(base_url, sandbox)
    with user_errors():
        store = Ledger(ledger, create=False)
        try:
            with ledger_lock(ledger):
                # Holding the lock, any job still 'submitting' was left by a killed run.
                store.transaction([in_flight_to_uncertain()])
                result = asyncio.run(_reconcile(store, service))
        finally:
            store.close()
    click.echo(
        f"{result.found} found and marked submitted, {result.absent} proven absent and "
        f"pending again, {result.still_uncertain} still uncertain."
    )
    if result.still_uncertain:
        raise SystemExit(1)
