"""Option groups shared by several commands, and the checks that run before any work."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from engine.errors import ConfigError
from engine.reader import JobsFormat
from engine.service import Service, resolve_service
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
                help="JSON or YAML file shaped like a V2 body, with {{ column }} placeholders.",
            ),
            click.option(
                "--key-column",
                metavar="COL",
                help="Column whose value is the job key (default: a hash of the request).",
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


def rate_option(func: F) -> F:
    return click.option(
        "--rate",
        default="1/s",
        show_default=True,
        metavar="RATE",
        help="Most requests started in any window: N/s, N/min or N/h.",
    )(func)


def ledger_option(required: bool) -> Callable[[F], F]:
    return click.option(
        "--ledger",
        type=click.Path(path_type=Path, dir_okay=False),
        required=required,
        help="The results ledger (SQLite)."
        + ("" if required else " Default: JOBS with its suffix replaced by .ledger.db."),
    )


def resolve_rate(text: str) -> Rate:
    try:
        return parse_rate(text)
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
