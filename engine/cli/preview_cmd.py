"""``heygen-batch preview``: one line's request and spoken text, sending nothing.

The command function is ``preview_command`` (as ``reconcile_command``), so the
package's names never clash with a module's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from engine.api.choose import ApiChoice
from engine.cli.errors import UserError, epilog, user_errors
from engine.cli.options import jobs_delimiter, jobs_format, jobs_options
from engine.cli.preparing import make_preparer
from engine.errors import FieldError, InputError
from engine.prepare import Preparer
from engine.prepare.spoken import spoken_parts
from engine.reader import Row, open_rows

PREVIEW_EPILOG = (
    "Exit codes: 0 the line makes a valid request; 1 it does not (the request as rendered "
    "and the errors are printed); 2 usage or configuration error (no such line, bad "
    "template). Nothing is sent and no ledger is read or written; no key is needed."
)


def _find(rows: Iterator[Row], line: int, jobs: str) -> Row:
    last: Row | None = None
    for row in rows:
        if row.line == line:
            return row
        if row.line > line:
            where = f"lines {last.line} and {row.line}" if last else f"line {row.line}"
            raise UserError(
                f"No record of {jobs} starts at line {line} (a record spanning lines, or the "
                f"header?); records start at {where}. Give --line as `validate` names it."
            )
        last = row
    end = f"its last record starts at line {last.line}" if last else "it has no records"
    raise UserError(f"{jobs} has no line {line}: {end}.")


def _show(title: str, body: Any) -> None:
    click.echo(title)
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


def _show_spoken(body: dict[str, Any]) -> None:
    parts = spoken_parts(body)
    if not parts:
        click.echo("Spoken text: none found (no video_inputs[].voice, script or scenes).")
        return
    click.echo("Spoken text:")
    for where, text in parts:
        click.echo(f"  {where}: {text}")


def _errors(line: int, errors: tuple[FieldError, ...]) -> None:
    click.echo("Errors:")
    for error in errors:
        where = f"{error.path}: " if error.path else ""
        click.echo(f"  line {line}: {where}{error.message}")


@click.command(
    name="preview",
    epilog=epilog(
        PREVIEW_EPILOG,
        "heygen-batch preview jobs/demo.csv --template jobs/demo-template.json --line 2",
    ),
)
@jobs_options
@click.option(
    "--line",
    "line",
    required=True,
    type=click.IntRange(1),
    metavar="N",
    help="The line to show, numbered as `validate` names it (in a CSV the header is line 1).",
)
def preview_command(
    jobs: str,
    template: Path | None,
    key_column: str | None,
    delimiter: str | None,
    fmt: str | None,
    api: ApiChoice,
    line: int,
) -> None:
    """Print the request one line of JOBS renders to (pretty JSON) and the text it will
    speak, and say whether it is valid; nothing is sent.

    A line that fails validation is still shown as rendered, with its errors (exit 1). The
    callback_id the engine adds when a run sends the request (the ledger's campaign id
    and the job key) is not shown: it needs the ledger.
    """
    file_format = jobs_format(jobs, fmt)
    given_delimiter = jobs_delimiter(delimiter, file_format)
    with user_errors():
        preparer = make_preparer(template, key_column, file_format, api=api)
        with open_rows(jobs, file_format, given_delimiter) as source:
            row = _find(source.rows, line, jobs)
    if not _preview(preparer, row):
        raise SystemExit(1)


def _preview(preparer: Preparer, row: Row) -> bool:
    """Print the row's request and spoken text; whether it is valid."""
    job = preparer.prepare(row)
    if job.body is not None:
        _show(f"Line {row.line} (job key {job.key}): a valid request.", job.body)
        _show_spoken(job.body)
        return True
    click.echo(f"Line {row.line}: NOT a valid request; a run records it as invalid.")
    try:
        rendered = preparer.rendered(row) if row.error is None else None
    except InputError:
        rendered = None  # a cell the template cannot use: there is no request to show
    if rendered is not None:
        _show("The request as rendered:", rendered)
        _show_spoken(rendered)
    _errors(row.line, job.errors)
    return False
