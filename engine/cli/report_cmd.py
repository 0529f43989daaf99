"""``heygen-batch report``: the campaign as one HTML page people can open anywhere."""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli.errors import UserError, user_errors
from engine.cli.options import ledger_option
from engine.cli.wording import counted


def default_output(ledger: Path) -> Path:
    """``runs/demo.db`` → ``runs/demo.report.html``."""
    return ledger.with_suffix(".report.html")


@click.command(
    epilog="Exit codes: 0 written; 2 no such ledger, or the page cannot be written. "
    "Example: heygen-batch report --ledger runs/demo.db -o runs/demo-report.html"
)
@ledger_option(required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="HTML file to write, replaced whole (default: the ledger's path with .report.html).",
)
def report(ledger: Path, output: Path | None) -> None:
    """Write one self-contained HTML page about the campaign in the ledger: counts by
    status and render outcome, submissions and completions over time, request latency,
    retries and 429 waits, errors by kind with example rows, render times, and video
    seconds with the credits they cost against the estimate. The page needs no network
    and runs no script; run `poll` first for render outcomes and video seconds.
    """
    # Imported here: the charting and template libraries are not for the other commands.
    from engine.report import write_report

    target = output or default_output(ledger)
    with user_errors():
        try:
            facts = write_report(ledger, target)
        except OSError as err:
            raise UserError(
                f"cannot write {target}: {err.strerror or err}. Choose another -o FILE.html."
            ) from err
    click.echo(f"Wrote the report of {counted(facts.jobs, 'job')} to {target}.", err=True)
