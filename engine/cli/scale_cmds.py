"""``heygen-batch enqueue`` and ``heygen-batch worker``: a campaign on a PostgreSQL
ledger, loaded once and sent by any number of workers on any number of hosts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from engine.api.choose import ApiChoice
from engine.cli.errors import (
    ENVIRONMENT,
    SummaryCommand,
    UserError,
    abort_error,
    abort_message,
    epilog,
    print_summary,
    user_errors,
)
from engine.cli.options import (
    Duration,
    concurrency_option,
    jobs_delimiter,
    jobs_format,
    jobs_options,
    key_env_option,
    max_attempts_option,
    max_wait_option,
    rate_option,
    resolve_rate,
    service_options,
)
from engine.cli.preparing import make_preparer, warn_missing_columns
from engine.cli.run_cmd import GRACE_HELP, fingerprint_salt, reconcile_grace
from engine.cli.wording import counted
from engine.ledger.open import is_database_url, open_ledger
from engine.reader import JobsFormat, describe, open_rows

EXAMPLE_URL = "postgresql://heygen@db.internal/heygen"
DATABASE_ONLY = (
    "{command} needs a PostgreSQL ledger (--ledger postgresql://...), shared by the "
    "workers; '{ledger}' is not one. On one machine, `heygen-batch run` does it all "
    "with a ledger file."
)

ENQUEUE_EXITS = (
    "Exit codes: 0 the file is loaded; 1 loaded, but some rows are invalid (rows recorded "
    "invalid earlier and unchanged excepted); 2 usage or configuration error (a ledger that "
    "is not a postgresql:// URL, a bad template or file); 75 the database cannot be "
    "reached (nothing of the chunk being written was kept: run it again). With --json, "
    "stdout is one JSON object with exit_code and reason. Nothing is sent: no API key is "
    "needed here; the workers read it from the variable --key-env names."
)
WORKER_EXITS = (
    "Exit codes: 0 the campaigns have nothing left to send (with --follow, only a signal "
    "ends it); 1 jobs are left uncertain that no reconcile could settle yet; 2 usage or "
    "configuration error (no such campaign, no key, a ledger bound to another service, an "
    "address that is not HeyGen's API); 3 key refused or out of credit; 75 the database "
    "cannot be reached or the worker's lease was lost (it sent nothing more; start it "
    "again), or the service asked for a wait beyond --max-wait; 130 interrupted (SIGTERM, "
    "SIGINT: requests in flight finished or recorded uncertain, claims released). With "
    "--json, stdout is one JSON object with exit_code and reason. "
    + ENVIRONMENT.replace(
        "HEYGEN_API_KEY (", "HEYGEN_API_KEY, or the variable `enqueue --key-env` named ("
    )
    + " "
    + GRACE_HELP
)


def _database_only(command: str, ledger: str) -> None:
    if not is_database_url(ledger):
        raise UserError(DATABASE_ONLY.format(command=command, ledger=ledger))


@click.command(
    cls=SummaryCommand,
    epilog=epilog(
        ENQUEUE_EXITS,
        "heygen-batch enqueue jobs/demo.csv --template jobs/demo-template.json "
        f"--key-column contact_id --ledger {EXAMPLE_URL}",
    ),
)
@jobs_options
@click.option(
    "--ledger",
    required=True,
    metavar="URL",
    help="The PostgreSQL ledger: postgresql://user@host/database.",
)
@click.option(
    "--campaign",
    metavar="NAME",
    help="The campaign to load (letters, digits, _). Default: JOBS's name without its "
    "suffix, lowered.",
)
@key_env_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
def enqueue(
    jobs: str,
    template: Path | None,
    api: ApiChoice,
    key_column: str | None,
    delimiter: str | None,
    fmt: str | None,
    ledger: str,
    campaign: str | None,
    key_env: str | None,
    as_json: bool,
) -> None:
    """Load the rows of JOBS (.csv or .jsonl, or - for stdin) into a campaign of a
    PostgreSQL ledger, for `heygen-batch worker` to send.

    Each row is rendered and validated as `run` does; a valid one is stored pending with
    the request a worker will send. Loading the same file again adds nothing; a changed
    row of a job not sent yet is refreshed; a job already sent is never touched.
    """
    from engine.ledger.postgres.campaigns import name_from_jobs
    from engine.scaleout.enqueue import enqueue as load

    _database_only("enqueue", ledger)
    file_format = jobs_format(jobs, fmt)
    given_delimiter = jobs_delimiter(delimiter, file_format)
    with user_errors():
        preparer = make_preparer(template, key_column, file_format, False, api, False)
        salt = fingerprint_salt(template, key_column, False)
        if file_format is JobsFormat.CSV and jobs != "-":
            with open_rows(jobs, file_format, given_delimiter) as source:
                warn_missing_columns(preparer, source)
        name = campaign or name_from_jobs(jobs)
        opened = open_ledger(ledger, campaign=name, create=True, key_env=key_env)
        try:
            report = load(opened, jobs, file_format, preparer, salt, given_delimiter)
        finally:
            opened.close()
    report.campaign = name
    reason = (
        f"{counted(report.invalid - report.invalid_unchanged, 'row')} invalid: "
        "`heygen-batch validate` lists each one's reason"
        if report.exit_code
        else None
    )
    if as_json:
        print_summary(
            {
                "ledger": report.ledger,
                "campaign": name,
                "delimiter": report.delimiter,
                "read": report.read,
                "added": report.added,
                "refreshed": report.refreshed,
                "held": report.held,
                "unchanged": report.unchanged,
                "already_done": report.already_done,
                "not_resent": report.not_resent,
                "changed": report.changed,
                "invalid": report.invalid,
                "invalid_unchanged": report.invalid_unchanged,
                "duplicates": report.duplicates,
                "elapsed_s": round(report.elapsed_s, 3),
                "exit_code": report.exit_code,
                "reason": reason,
            }
        )
    else:
        layout = f" ({describe(report.delimiter)})" if report.delimiter else ""
        click.echo(
            f"Read {counted(report.read, 'row')}{layout} into {report.ledger}: "
            f"{report.added} added, {report.refreshed} refreshed, "
            f"{report.unchanged} already waiting, {report.already_done} already sent, "
            f"{report.invalid} invalid, {counted(report.duplicates, 'duplicate key')}. "
            f"{report.elapsed_s:.1f}s."
        )
        if report.changed:
            click.echo(f"{counted(report.changed, 'job')} changed since sent: not sent again.")
        if report.held:
            click.echo(
                f"{counted(report.held, 'job')} changed but held by a worker, left as they "
                "were (it may be sending them): enqueue the file again to refresh those it "
                "lets go."
            )
        if reason:
            click.echo(reason + ".", err=True)
    if report.exit_code:
        raise SystemExit(report.exit_code)


@click.command(
    cls=SummaryCommand,
    epilog=epilog(
        WORKER_EXITS,
        f"heygen-batch worker --ledger {EXAMPLE_URL} --rate 2/s --max-rendering 10",
    ),
)
@click.option(
    "--ledger",
    required=True,
    metavar="URL",
    help="The PostgreSQL ledger: postgresql://user@host/database.",
)
@click.option(
    "--campaign",
    "campaigns",
    multiple=True,
    metavar="NAME",
    help="A campaign to serve (repeat for more). Default: every campaign of the database.",
)
@service_options
@rate_option
@concurrency_option(" from this worker")
@max_attempts_option
@click.option(
    "--max-rendering",
    type=click.IntRange(1),
    metavar="N",
    help="Keep at most N videos of the API key rendering at once, every worker together "
    "(HeyGen: 10 on pay-as-you-go keys); a job is sent when a slot frees, learned by "
    "bulk status calls.",
)
@max_wait_option
@click.option(
    "--lease",
    "lease_s",
    default="30s",
    show_default=True,
    type=Duration(),
    metavar="DURATION",
    help="How long the worker holds its jobs without a heartbeat (sent every third of "
    "it); a worker silent longer is taken for dead and its jobs are reconciled.",
)
@click.option(
    "--follow",
    is_flag=True,
    help="Keep serving when the campaigns are done, for jobs enqueued later (a service).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@click.option("--no-progress", is_flag=True, help="Never draw the progress line.")
def worker(
    ledger: str,
    campaigns: tuple[str, ...],
    base_url: str | None,
    sandbox: bool,
    rate: str | None,
    concurrency: int,
    max_attempts: int,
    max_rendering: int | None,
    max_wait: float,
    lease_s: float,
    follow: bool,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Send the pending jobs of a PostgreSQL ledger's campaigns, together with any number
    of other workers on any number of hosts.

    --rate holds for every worker of an API key together, measured by the database's
    clock; a 429 pauses them all. A job is committed submitting before its request
    leaves, and a worker that dies mid-request costs no duplicate: its jobs become
    uncertain and are reconciled.
    """
    from engine.scaleout.worker import serve
    from engine.scaleout.worker_report import WorkerOptions

    _database_only("worker", ledger)
    if lease_s <= 0:
        raise click.BadParameter("a lease must last longer than 0 s.", param_hint="--lease")
    options = WorkerOptions(
        url=ledger,
        campaigns=campaigns,
        base_url=base_url,
        sandbox=sandbox,
        rate=resolve_rate(rate, sandbox),
        concurrency=concurrency,
        max_attempts=max_attempts,
        max_wait_s=max_wait,
        lease_s=lease_s,
        grace_s=reconcile_grace(sandbox),
        follow=follow,
        progress=not no_progress and not as_json,
        max_rendering=max_rendering,
    )
    with user_errors():
        report = asyncio.run(serve(options))
    stats = report.stats
    summary: dict[str, Any] = {
        "ledger": report.ledger,
        "worker": report.worker_id,
        "campaigns": report.counts,
        "this_run": {
            "submitted": stats.submitted,
            "failed": stats.failed,
            "uncertain": stats.uncertain,
            "reconciled_found": report.reconciled_found,
            "reconciled_absent": report.reconciled_absent,
            "not_yet": stats.refusals,
        },
        "elapsed_s": round(report.elapsed_s, 3),
        "exit_code": report.exit_code,
        "reason": abort_message(report.abort)
        if report.abort is not None and not report.interrupted
        else report.reason,
    }
    if as_json:
        print_summary(summary)
    else:
        click.echo(
            f"Worker {report.worker_id}: {stats.submitted} submitted, {stats.failed} failed, "
            f"{stats.uncertain} uncertain; reconciled {report.reconciled_found} found, "
            f"{report.reconciled_absent} to resend. {report.elapsed_s:.1f}s."
        )
        for name, counts in report.counts.items():
            held = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no jobs"
            click.echo(f"Campaign {name}: {held}.")
    if report.abort is not None and not report.interrupted and report.stopped is None:
        raise abort_error(report.abort)
    if report.exit_code:
        if report.reason:
            click.echo(report.reason, err=True)
        raise SystemExit(report.exit_code)
