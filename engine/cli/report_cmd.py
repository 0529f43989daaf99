"""``heygen-batch report``: the campaign as one HTML page people can open anywhere."""

from __future__ import annotations

from pathlib import Path

import click

from engine.cli.errors import UserError, user_errors
from engine.cli.options import ledger_option, ledger_spec
from engine.cli.wording import counted
from engine.ledger.open import LedgerSpec


def default_output(spec: LedgerSpec) -> Path:
    """``runs/demo.db`` → ``runs/demo.report.html``; a database's campaign ``spring`` →
    ``spring.report.html`` in the current folder."""
    if spec.file is not None:
        return spec.file.with_suffix(".report.html")
    return Path(f"{spec.campaign or 'campaign'}.report.html")


@click.command(
    epilog="Exit codes: 0 written; 2 no such ledger, or the page cannot be written. "
    "Example: heygen-batch report --ledger runs/demo.db -o runs/demo-report.html"
)
@ledger_option(required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="HTML file to write, replaced whole (default: the ledger's path with .report.html; "
    "for a database, CAMPAIGN.report.html here).",
)
def report(ledger: str, campaign: str | None, output: Path | None) -> None:
    """Write one self-contained HTML page about the campaign in the ledger: counts by
    status and render outcome, submissions and completions over time, request latency,
    retries and 429 waits, errors by kind with example rows, render times, and video
    seconds with the credits they cost against the estimate. The page needs no network
    and runs no script; run `poll` first for render outcomes and video seconds.
    """
    # Imported here: the charting and template libraries are not for the other commands.
    from engine.report import write_report

    spec = ledger_spec(ledger, campaign)
    with user_errors():
        # Opened to write, as every command opens it, so an older ledger file gets the
        # current schema (as ``export`` does); the report itself writes nothing.
        store = spec.open(create=False)
        target = output or default_output(LedgerSpec(spec.where, store.campaign))
        try:
            facts = write_report(store, target)
        except OSError as err:
            raise UserError(
                f"cannot write {target}: {err.strerror or err}. Choose another -o FILE.html."
            ) from err
        finally:
            store.close()
    click.echo(f"Wrote the report of {counted(facts.jobs, 'job')} to {target}.", err=True)
