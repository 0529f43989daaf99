"""``heygen-batch export``: the ledger joined back to the contacts."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import click

from engine.cli.errors import user_errors
from engine.cli.options import ledger_option
from engine.export import export_ledger
from engine.ledger import Ledger


@click.command()
@ledger_option(required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File to write (default: standard output).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default=None,
    help="Output format (default: from the -o suffix, else csv).",
)
def export(ledger: Path, output: Path | None, fmt: str | None) -> None:
    """Write one line per job: the row's own columns, then key, line, status,
    video_id, video_status, video_url, thumbnail_url, attempts, error."""
    chosen = fmt or (
        "jsonl" if output and output.suffix.lower() in (".jsonl", ".ndjson") else "csv"
    )
    with user_errors():
        store = Ledger(ledger, create=False)
        try:
            if output is None:
                export_ledger(store, sys.stdout, chosen)  # type: ignore[arg-type]
                return
            output.parent.mkdir(parents=True, exist_ok=True)
            # Written beside the target and renamed: a campaign tool never reads half a file.
            fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
            try:
                with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                    count = export_ledger(store, out, chosen)  # type: ignore[arg-type]
                os.replace(tmp, output)
            except BaseException:
                os.unlink(tmp)
                raise
        finally:
            store.close()
    click.echo(f"Wrote {count} jobs to {output}.", err=True)
