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
from engine.reader import JobsFormat, delimiter_from_option
from engine.service import Service, resolve_service
from engine.submitter.constants import DEFAULT_RATE, SANDBOX_RATE
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


class LedgerSpec(click.Path):
    """``--ledger``: a ledger file's path (a ``Path``; relative to a ``--config`` file's
    folder there), or a PostgreSQL URL kept as given (a ``str``: a path would fold its
    ``//``)."""

    def __init__(self) -> None:
        super().__init__(path_type=Path, dir_okay=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from engine.ledger.open import is_database_url

        if isinstance(value, str) and is_database_url(value):
            return value
        return super().convert(value, param, ctx)


def ledger_option(required: bool) -> Callable[[F], F]:
    return click.option(
        "--ledger",
        type=LedgerSpec(),
        required=required,
        help="The results ledger (SQLite)."
        + ("" if required else " Default: JOBS with its suffix replaced by .ledger.db."),
    )


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


def default_ledger(jobs: str, ledger: Path | None) -> Path:
    if ledger is not None:
        return ledger
    if jobs == "-":
        raise click.UsageError("Reading jobs from standard input needs --ledger PATH.")
    return Path(jobs).with_suffix(".ledger.db")


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
