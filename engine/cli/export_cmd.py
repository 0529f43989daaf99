"""``heygen-batch export``: the ledger joined back to the contacts."""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Literal

import click

from engine.cli.errors import UserError, epilog, user_errors
from engine.cli.options import ledger_option, ledger_spec
from engine.cli.wording import counted
from engine.export import export_ledger
from engine.ledger import Ledger

Format = Literal["csv", "jsonl", "xlsx"]
#: What each output suffix says the format is.
_SUFFIX_FORMATS: dict[str, Format] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".xlsx": "xlsx",
}
#: Read by spreadsheets as UTF-8 text rather than the system's code page.
BOM = "\ufeff"


def choose_format(output: Path | None, fmt: str | None, excel: bool) -> Format:
    """The export's format from ``--format`` and the ``-o`` suffix; a conflict between
    them, or ``--excel`` on anything but CSV, is a UserError (exit 2), before any work."""
    suffix = output.suffix.lower() if output is not None else ""
    if output is not None and suffix in (".xls", ".xlsm", ".xlsb"):
        raise UserError(
            f"-o {output}: only .xlsx workbooks are written; name it {output.with_suffix('.xlsx')}."
        )
    by_suffix = _SUFFIX_FORMATS.get(suffix)
    if fmt is not None and by_suffix is not None and fmt != by_suffix:
        raise UserError(
            f"--format {fmt} and -o {output} (a {by_suffix} name) disagree: leave --format "
            f"out, or name the file with .{fmt}."
        )
    chosen: Format = by_suffix or _as_format(fmt)
    if chosen == "xlsx" and output is None:
        raise UserError("A workbook cannot go to standard output: give -o results.xlsx.")
    if excel and chosen != "csv":
        raise UserError(
            f"--excel adds a byte order mark to CSV; {chosen} needs none. Leave --excel out."
        )
    return chosen


def _as_format(fmt: str | None) -> Format:
    if fmt == "jsonl":
        return "jsonl"
    return "xlsx" if fmt == "xlsx" else "csv"


def _write_file(store: Ledger, output: Path, fmt: Format, bom: bool) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a campaign tool never reads half a file.
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        # mkstemp makes the file private; the result is for other tools to read.
        os.chmod(tmp, 0o666 & ~_umask())
        if fmt == "xlsx":
            # Imported here: openpyxl would add half a second to every command's start.
            from engine.export.xlsx import write_workbook

            os.close(fd)
            count = write_workbook(store, Path(tmp))
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        else:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
                if bom:
                    out.write(BOM)
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


def _write_stdout(store: Ledger, fmt: Literal["csv", "jsonl"], bom: bool) -> int:
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        if bom:
            sys.stdout.write(BOM)
        return export_ledger(store, sys.stdout, fmt)
    sys.stdout.flush()
    # UTF-8 whatever the locale says: names and emoji must reach the pipe intact.
    out = io.TextIOWrapper(buffer, encoding="utf-8", newline="")
    try:
        if bom:
            out.write(BOM)
        return export_ledger(store, out, fmt)
    finally:
        out.flush()
        out.detach()


@click.command(
    epilog=epilog(
        "Exit codes: 0 written; 2 usage error (no such ledger, --format and the -o suffix "
        "disagree, --excel on JSONL or a workbook). Nothing is sent: no key is needed.",
        "heygen-batch export --ledger runs/demo.db -o runs/demo-results.xlsx",
    )
)
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
    type=click.Choice(["csv", "jsonl", "xlsx"]),
    default=None,
    help="Output format (default: from the -o suffix: .jsonl or .ndjson, .xlsx, else csv).",
)
@click.option(
    "--excel",
    is_flag=True,
    help="Start the CSV with a UTF-8 byte order mark, so Excel shows accents and emoji.",
)
def export(
    ledger: str, campaign: str | None, output: Path | None, fmt: str | None, excel: bool
) -> None:
    """Write one line per job, in source order: the row's own columns first (in the
    order first seen), then key, line, status, video_id, video_status, video_url,
    thumbnail_url, attempts, error, api, callback_id, video_page_url, file_path.

    A source column named like one of those result columns is exported as
    source.<name> (for example source.status), so its data is kept. In CSV, a cell
    starting with =, +, -, @, tab or CR is prefixed with ' so that spreadsheets never
    run it as a formula; text is UTF-8 throughout. An .xlsx workbook has the same
    columns, with every text cell typed as text (never a formula) and no prefix.
    """
    if output == Path("-"):
        output = None  # as JOBS - is standard input
    chosen = choose_format(output, fmt, excel)
    spec = ledger_spec(ledger, campaign)
    with user_errors():
        store = spec.open(create=False)
        try:
            if output is None:
                assert chosen != "xlsx"  # choose_format refuses a workbook on stdout
                _write_stdout(store, chosen, excel)
                return
            count = _write_file(store, output, chosen, excel)
        finally:
            store.close()
    click.echo(f"Wrote {counted(count, 'job')} to {output}.", err=True)
