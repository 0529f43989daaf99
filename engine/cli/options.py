"""Option groups shared by several commands, and the checks that run before any work."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from engine.api.choose import API_CHOICES
from engine.errors import ConfigError
from engine.ledger.open import LedgerSpec, is_database_url
from engine.reader import JobsFormat, delimiter_from_option
from engine.service import Service, resolve_service
from engine.submitter.constants import DEFAULT_MAX_ATTEMPTS, DEFAULT_RATE, SANDBOX_RATE
from engine.submitter.rate import Rate, parse_rate

F = TypeVar("F", bound=Callable[..., Any])


def _apply(func: F, decorators: list[Callable[[F], F]]) -> F:
    for decorator in reversed(decorators):
        func = decorator(func)
    return func


def jobs_options(func: F) -> F:
    """JOBS and how its rows become requests: shared by run and validate."""
    return _apply(
        func,
        [
            click.argument("jobs", metavar="JOBS"),
            click.option(
                "--template",
                type=click.Path(path_type=Path, dir_okay=False),
                help="JSON or YAML file shaped like a V2 or v3 body, with {{ column }} "
                "placeholders.",
            ),
            click.option(
                "--api",
                type=click.Choice(API_CHOICES),
                default="auto",
                show_default=True,
                help="HeyGen API the jobs go to: auto decides by the template's (or each "
                "JSONL body's) shape: top-level video_inputs is V2, top-level type is v3.",
            ),
            click.option(
                "--key-column",
                metavar="COL",
                help="Column whose value is the job key, e.g. contact_id. Give it for a real "
                "campaign: without it the key is a hash of the rendered request, so a row "
                "edited after it was sent (a typo fixed) is a new job and a second, paid "
                "video.",
            ),
            click.option(
                "--delimiter",
                metavar="C",
                help="CSV cell delimiter: , ; | or tab (default: detected from the header).",
            ),
            click.option(
                "--format",
                "fmt",
                type=click.Choice([f.value for f in JobsFormat]),
                help="Format of JOBS when it is '-' (standard input) or has another suffix.",
            ),
        ],
    )


def service_options(func: F) -> F:
    """Where requests go: shared by run, poll and reconcile."""
    return _apply(
        func,
        [
            click.option(
                "--base-url",
                metavar="URL",
                help="API address (default: $HEYGEN_BASE_URL, else https://api.heygen.com).",
            ),
            click.option(
                "--sandbox",
                is_flag=True,
                help="Use the built-in HeyGen emulator on loopback: no key, nothing spent.",
            ),
        ],
    )


rebind_option = click.option(
    "--rebind",
    is_flag=True,
    help="The ledger's own service under a new API key or address (a rotated key, a "
    "proxy): bind the ledger to this one and go on. Never between the sandbox and a real "
    "service.",
)


def rate_option_for(default: str, what: str) -> Callable[[F], F]:
    """``--rate``, with no click default: ``resolve_rate`` fills it in, by --sandbox."""
    return click.option(
        "--rate",
        default=None,
        metavar="RATE",
        help=f"Most {what} started in any window: N/s, N/min or N/h "
        f"[default: {default}; {SANDBOX_RATE} with --sandbox].",
    )


rate_option = rate_option_for(DEFAULT_RATE, "requests")


def ledger_option(required: bool) -> Callable[[F], F]:
    """``--ledger PATH|URL`` and ``--campaign NAME``: read together by ``ledger_spec``."""
    campaign_default = "JOBS's file name" if not required else "the database's only campaign"
    return lambda func: _apply(
        func,
        [
            click.option(
                "--ledger",
                metavar="PATH|URL",
                required=required,
                help="The results ledger: a SQLite file, or a postgresql:// URL (one "
                "database holds many campaigns)."
                + ("" if required else " Default: JOBS with its suffix replaced by .ledger.db."),
            ),
            click.option(
                "--campaign",
                metavar="NAME",
                help="The campaign of a postgresql:// ledger: letters, digits and _ "
                f"(default: {campaign_default}). Not for a ledger file.",
            ),
        ],
    )


def ledger_spec(ledger: str, campaign: str | None) -> LedgerSpec:
    """The ledger ``--ledger`` and ``--campaign`` name; ``--campaign`` on a ledger file
    is a usage error (exit 2), as is a campaign name against the rule."""
    try:
        if campaign is not None and is_database_url(ledger):
            from engine.ledger.postgres.campaigns import campaign_name

            campaign = campaign_name(campaign)
        return LedgerSpec(ledger, campaign)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err


def resolve_rate(text: str | None, sandbox: bool = False, default: str = DEFAULT_RATE) -> Rate:
    """``--rate`` as given, else ``default``, else with --sandbox ``SANDBOX_RATE``: the
    emulator has no plan's limit to keep to."""
    try:
        return parse_rate(text or (SANDBOX_RATE if sandbox else default))
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--rate") from err


def resolve_where(base_url: str | None, sandbox: bool) -> Service:
    try:
        return resolve_service(base_url, sandbox)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err


def default_ledger(jobs: str, ledger: str | None, campaign: str | None = None) -> LedgerSpec:
    """``--ledger`` (and ``--campaign``), else the JOBS file's own: ``JOBS.ledger.db``;
    on a database the campaign defaults to JOBS's stem (``name_from_jobs``)."""
    if ledger is None:
        if jobs == "-":
            raise click.UsageError("Reading jobs from standard input needs --ledger PATH.")
        return ledger_spec(str(Path(jobs).with_suffix(".ledger.db")), campaign)
    if campaign is None and is_database_url(ledger):
        from engine.ledger.postgres.campaigns import name_from_jobs

        try:
            campaign = name_from_jobs(jobs)
        except ConfigError as err:
            raise click.UsageError(str(err)) from err
    return ledger_spec(ledger, campaign)


def jobs_format(jobs: str, fmt: str | None) -> JobsFormat:
    from engine.reader.open_jobs import detect_format

    try:
        return detect_format(jobs, JobsFormat(fmt) if fmt else None)
    except ConfigError as err:
        raise click.UsageError(str(err)) from err


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)")
_UNIT_S = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``10m`` or ``1h`` (a number of seconds, or a number
    with a unit); raises ConfigError naming the accepted forms."""
    found = _DURATION.fullmatch(text.strip().lower())
    seconds = float(found.group(1)) * _UNIT_S[found.group(2)] if found else math.nan
    if not math.isfinite(seconds):
        raise ConfigError(
            f"'{text}' is not a duration: give seconds (600) or a number with a unit "
            "(90s, 10m, 1h)."
        )
    return seconds


class Duration(click.ParamType[float]):
    """``--max-wait``'s type: ``parse_duration``, with click's usage error (exit 2)."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(str(value))
        except ConfigError as err:
            self.fail(str(err), param, ctx)


def key_env_option(func: F) -> F:
    return click.option(
        "--key-env",
        metavar="NAME",
        help="With a PostgreSQL ledger: the environment variable the workers read the "
        "campaign's API key from [default: HEYGEN_API_KEY]; the key itself is never stored.",
    )(func)


def max_attempts_option(func: F) -> F:
    return click.option(
        "--max-attempts",
        default=DEFAULT_MAX_ATTEMPTS,
        show_default=True,
        type=click.IntRange(1, 100),
        help="Attempts per job on 429, 5xx or network faults.",
    )(func)


def concurrency_option(what: str) -> Callable[[F], F]:
    """``--concurrency``: requests in flight at once, ``what`` saying whose."""
    return click.option(
        "--concurrency",
        default=8,
        show_default=True,
        type=click.IntRange(1, 1000),
        help=f"Most requests in flight at once{what}.",
    )


def max_wait_option(func: F) -> F:
    return click.option(
        "--max-wait",
        default="10m",
        show_default=True,
        type=Duration(),
        metavar="DURATION",
        help="Longest wait for the service (a Retry-After) to accept; a longer one stops "
        "the run with exit 75 and the time to come back. Seconds, or 90s, 10m, 1h.",
    )(func)


def jobs_delimiter(text: str | None, fmt: JobsFormat) -> str | None:
    """``--delimiter`` as a character; None leaves it to be detected from the header."""
    if text is None:
        return None
    if fmt is not JobsFormat.CSV:
        raise click.UsageError(
            "--delimiter applies to CSV files only: a JSONL line is one JSON object, "
            "with no delimiter to choose. Leave --delimiter out."
        )
    try:
        return delimiter_from_option(text)
    except ConfigError as err:
        raise click.BadParameter(str(err), param_hint="--delimiter") from err
