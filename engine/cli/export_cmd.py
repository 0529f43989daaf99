"""``heygen-batch export``: the ledger joined back to the contacts."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Literal

import click

from engine.cli.errors import user_errors
from engine.cli.options import ledger_option
from engine.export import export_ledger
from engine.ledger import Ledger

Format = Literal["csv", "jsonl"]


def _write_file(store: Ledger, output: Path, fmt: Format) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a campaign tool never reads half a file.
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        # mkstemp makes the file private; the result is for other tools to read.
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            count = export_ledger(store, out, fmt)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, output)
    except BaseException:
        os.unlink(tmp)
        raise
    return count


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_stdout(store: Ledger, fmt: Format) -> int:
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        return export_ledger(store, sys.stdout, fmt)
    sys.stdout.flush()
    # UTF-8 whatever the locale says: names and emoji must reach the pipe intact.
    out = io.TextIOWrapper(buffer, encoding="utf-8", newline="")
    try:
        return export_ledger(store, out, fmt)
    finally:
        out.flush()
        out.detach()


@click.command()
@ledger_option(required=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="File to write, replaced whole at the end (default, or -: standard output).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    default=None,
    help="Output format (default: from the -o suffix, .jsonl or .ndjson, else csv).",
)
def export(ledger: Path, output: Path | None, fmt: str | None) -> None:
    """Write one line per job, in source order: the row's own columns first (in the
    order first seen), then key, line, status, video_id, video_status, video_url,
    thumbnail_url, attempts, error, api, callback_id, video_page_url, file_path.

    A source column named like one of those result columns is exported as
    source.<name> (for example source.status), so its data is kept. In CSV, a cell
    starting with =, +, -, @, tab or CR is prefixed with ' so that spreadsheets never
    run it as a formula; text is UTF-8 throughout.
    """
    if output == Path("-"):
        output = None  # as JOBS - is standard input
    chosen: Format = "csv"
    if fmt == "jsonl" or (
        fmt is None and output is not None and output.suffix.lower() in (".jsonl", ".ndjson")
    ):
        chosen = "jsonl"
    with user_errors():
        store = Ledger(ledger, create=False)
        try:
            if output is None:
                _write_stdout(store, chosen)
                return
            count = _write_file(store, output, chosen)
        finally:
            store.close()
    click.echo(f"Wrote {count} jobs to {output}.", err=True)
