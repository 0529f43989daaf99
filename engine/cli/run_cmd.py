"""``heygen-batch run``: submit every new job of a campaign."""

from __future__ import annotations

import asyncio
import hashlib
import os
from importlib.metadata import version
from pathlib import Path

import click

from engine.api.choose import ApiChoice
from engine.campaign import RunOptions, run_campaign
from engine.cli.config_file import config_option
from engine.cli.dry_run import preview_run
from engine.cli.errors import (
    RUN_EXIT_CODES,
    SummaryCommand,
    UserError,
    abort_error,
    abort_message,
    epilog,
    note_ledger,
    print_summary,
    user_errors,
)
from engine.cli.options import (
    concurrency_option,
    default_ledger,
    jobs_delimiter,
    jobs_format,
    jobs_options,
    key_env_option,
    ledger_option,
    max_attempts_option,
    max_wait_option,
    rate_option,
    rebind_option,
    resolve_rate,
    resolve_where,
    service_options,
)
from engine.cli.preparing import make_preparer, warn_missing_columns
from engine.cli.wording import counted
from engine.ledger.store import Videos
from engine.ledger.summary import record_run
from engine.reader import JobsFormat, describe, open_rows
from engine.run_report import RunReport
from engine.submitter.constants import DEFAULT_GRACE_S

GRACE_VARIABLE = "HEYGEN_BATCH_RECONCILE_GRACE_S"
GRACE_HELP = (
    f"{GRACE_VARIABLE}: seconds an uncertain job must be missing from the service's list "
    f"before it is sent again (default {DEFAULT_GRACE_S:g}; 0 with --sandbox)."
)


def reconcile_grace(sandbox: bool) -> float:
    """The emulator lists a video the moment it exists, so no grace is needed there."""
    if sandbox:
        return 0.0
    text = os.environ.get(GRACE_VARIABLE)
    if not text:
        return DEFAULT_GRACE_S
    try:
        return max(float(text), 0.0)
    except ValueError as err:
        raise UserError(f"{GRACE_VARIABLE}='{text}' must be a number of seconds.") from err


@click.command(
    cls=SummaryCommand,
    epilog=epilog(
        f"{RUN_EXIT_CODES} {GRACE_HELP}",
        "heygen-batch run jobs/demo.csv --template jobs/demo-template.json "
        "--key-column contact_id --sandbox",
    ),
)
@jobs_options
@config_option
@ledger_option(required=False)
@service_options
@rate_option
@concurrency_option("")
@max_attempts_option
@click.option(
    "--max-rendering",
    type=click.IntRange(1),
    metavar="N",
    help="Keep at most N of this ledger's videos rendering at once (HeyGen: 10 on "
    "pay-as-you-go keys); a job is sent when a slot frees, learned by status calls.",
)
@click.option(
    "--until-done",
    is_flag=True,
    help="After the last submission keep polling (and submitting as slots free) until "
    "every video is completed or failed; a failed render makes the exit code 1.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Send once more the jobs the service refused (failed: no video was made), "
    "rendered afresh from their rows.",
)
@max_wait_option
@click.option(
    "--limit",
    type=click.IntRange(0),
    metavar="N",
    help="Submit at most N new jobs in this run (a budget cap for cron).",
)
@click.option(
    "--test-videos",
    is_flag=True,
    help='Set "test": true on every request: lower quality, no credits spent.',
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Read, render and validate everything; print what would be sent and its cost.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Refuse template fields the schema does not know; count rows still invalid and "
    "unchanged from an earlier run toward exit 1.",
)
@rebind_option
@key_env_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
@click.option("--no-progress", is_flag=True, help="Never draw the progress line.")
def run(
    jobs: str,
    template: Path | None,
    api: ApiChoice,
    key_column: str | None,
    delimiter: str | None,
    fmt: str | None,
    ledger: str | None,
    campaign: str | None,
    base_url: str | None,
    sandbox: bool,
    rate: str | None,
    concurrency: int,
    max_attempts: int,
    max_rendering: int | None,
    until_done: bool,
    retry_failed: bool,
    max_wait: float,
    limit: int | None,
    test_videos: bool,
    dry_run: bool,
    strict: bool,
    rebind: bool,
    key_env: str | None,
    as_json: bool,
    no_progress: bool,
) -> None:
    """Submit one video request per new row of JOBS (.csv or .jsonl, or - for stdin).

    Every row is rendered through --template, validated against the schema of its
    API (V2 or v3, see --api) and recorded in the ledger; rows already in the ledger
    are never sent again.
    """
    parsed_rate = resolve_rate(rate, sandbox)
    file_format = jobs_format(jobs, fmt)
    given_delimiter = jobs_delimiter(delimiter, file_format)
    spec = default_ledger(jobs, ledger, campaign)
    note_ledger(spec)
    if spec.file is None:
        # Workers may serve this campaign meanwhile: jobs are claimed under a lease, as
        # a worker's, never sent from the file directly.
        from engine.scaleout.together import enqueue_and_work, refuse_options
        from engine.scaleout.worker_report import WorkerOptions

        with user_errors():
            refuse_options(
                {
                    "--dry-run": dry_run,
                    "--limit": limit is not None,
                    "--until-done": until_done,
                    "--retry-failed": retry_failed,
                    "--test-videos": test_videos,
                    "--rebind": rebind,
                }
            )
            worker = WorkerOptions(
                url="",
                campaigns=(),
                base_url=base_url,
                sandbox=sandbox,
                rate=parsed_rate,
                concurrency=concurrency,
                max_attempts=max_attempts,
                max_wait_s=max_wait,
                grace_s=reconcile_grace(sandbox),
                progress=not no_progress and not as_json,
                max_rendering=max_rendering,
            )
            report = enqueue_and_work(
                jobs=jobs,
                file_format=file_format,
                delimiter=given_delimiter,
                preparer=make_preparer(template, key_column, file_format, False, api, strict),
                salt=fingerprint_salt(template, key_column, False),
                url=str(spec.where),
                campaign=spec.campaign,
                key_env=key_env,
                worker=worker,
                strict=strict,
            )
            record_run(
                spec,
                report.last_run(None if report.abort is None else abort_message(report.abort)),
            )
        _finish(report, as_json)
        return
    if key_env is not None:
        raise UserError(
            f"--key-env names the variable a campaign of a PostgreSQL ledger reads its key "
            f"from; {spec.file} is a ledger file, whose runs read HEYGEN_API_KEY. Leave it out."
        )
    with user_errors():
        preparer = make_preparer(template, key_column, file_format, test_videos, api, strict)
        salt = fingerprint_salt(template, key_column, test_videos)
        videos: Videos | None = None
        if key_column is not None:
            videos = "test" if test_videos else "real"
        if dry_run:
            preview_run(
                jobs,
                file_format,
                given_delimiter,
                preparer,
                spec,
                as_json,
                salt,
                limit,
                videos,
                parsed_rate,
                max_rendering,
            )
            return
        if file_format is JobsFormat.CSV and jobs != "-":
            # A --key-column typo stops here, before the lock or the ledger are touched.
            with open_rows(jobs, file_format, given_delimiter) as source:
                warn_missing_columns(preparer, source)
        service = resolve_where(base_url, sandbox)
        options = RunOptions(
            jobs=jobs,
            fmt=file_format,
            delimiter=given_delimiter,
            preparer=preparer,
            ledger=spec,
            service=service,
            rate=parsed_rate,
            concurrency=concurrency,
            max_attempts=max_attempts,
            max_wait_s=max_wait,
            max_rendering=max_rendering,
            until_done=until_done,
            retry_failed=retry_failed,
            limit=limit,
            progress=not no_progress and not as_json,
            grace_s=reconcile_grace(service.is_sandbox),
            fingerprint_salt=salt,
            videos=videos,
            strict=strict,
            rebind=rebind,
        )
        with spec.lock():
            report = asyncio.run(run_campaign(options))
            record_run(
                spec,
                report.last_run(None if report.abort is None else abort_message(report.abort)),
            )
    _finish(report, as_json)


def _finish(report: RunReport, as_json: bool) -> None:
    """Print the run's summary, and exit with its code."""
    _print_report(report, as_json)
    if report.abort is not None and not report.interrupted:
        raise abort_error(report.abort)
    if report.exit_code:
        if report.wait is not None or report.interrupted:
            click.echo(report.reason, err=True)
        raise SystemExit(report.exit_code)


def fingerprint_salt(template: Path | None, key_column: str | None, test_videos: bool) -> bytes:
    """Everything besides the row that shapes its request; a change makes every row new again."""
    parts = [
        version("heygen-batch").encode(),
        template.read_bytes() if template is not None else b"",
        (key_column or "").encode(),
        b"test" if test_videos else b"",
    ]
    return hashlib.sha256(b"\0".join(parts)).digest()


def _print_report(report: RunReport, as_json: bool) -> None:
    summary = {
        "ledger": report.ledger,
        "delimiter": report.delimiter,
        "elapsed_s": round(report.elapsed_s, 3),
        "read": report.read,
        "new": report.new,
        "already_done": report.already_done,
        "invalid": report.invalid,
        "invalid_unchanged": report.invalid_unchanged,
        "duplicates": report.duplicates,
        "changed": report.changed,
        "not_resent": report.not_resent,
        "held_by_limit": report.held_by_limit,
        "this_run": {
            "submitted": report.sent_submitted,
            "failed": report.sent_failed,
            "uncertain": report.sent_uncertain,
            "reconciled_found": report.reconciled_found,
            "reconciled_absent": report.reconciled_absent,
            "not_yet": report.not_yet,
        },
        "counts": report.counts,
        "renders": report.renders,
        "aborted": abort_message(report.abort) if report.abort else None,
        "interrupted": report.interrupted,
        "exit_code": report.exit_code,
        "reason": abort_message(report.abort)
        if report.abort is not None and not report.interrupted
        else report.reason,
    }
    if as_json:
        print_summary(summary)
        return
    c = report.counts
    layout = f" ({describe(report.delimiter)})" if report.delimiter else ""
    click.echo(
        f"Read {counted(report.read, 'row')}{layout}: {report.new} new, "
        f"{report.already_done} already done, {report.invalid} invalid, "
        f"{counted(report.duplicates, 'duplicate key')}, "
        f"{report.changed} changed since sent."
    )
    if report.invalid_unchanged:
        click.echo(
            f"{report.invalid_unchanged} of the invalid rows were invalid in an earlier run "
            "and are unchanged: "
            + (
                "--strict counts them."
                if report.strict
                else "not counted for the exit code (--strict counts them)."
            )
        )
    if report.not_resent:
        click.echo(
            f"{counted(report.not_resent, 'job')} failed or uncertain in an earlier run: failed "
            "ones are not sent again (see their error with `heygen-batch export`; "
            "`--retry-failed` sends them once more); uncertain "
            "ones are sent again only once reconcile proves the service never made them."
        )
    click.echo(
        f"This run: {report.sent_submitted} submitted, {report.sent_failed} failed, "
        f"{report.sent_uncertain} uncertain; reconciled {report.reconciled_found} found, "
        f"{report.reconciled_absent} to resend. {report.elapsed_s:.1f}s."
    )
    if report.not_yet:
        click.echo(
            f"The service answered {counted(report.not_yet, 'request')} with 429 (not yet): "
            "the run waited as it asked; no job failed for it."
        )
    click.echo("Ledger " + report.ledger + ": " + ", ".join(f"{n} {s}" for s, n in c.items() if n))
    if report.renders is not None:
        r = report.renders
        click.echo(
            f"Renders: {r['completed']} completed, {r['failed']} failed, "
            f"{r['rendering']} not finished."
        )
    if report.held_by_limit:
        click.echo(f"{counted(report.held_by_limit, 'job')} wait for the next run (--limit).")
