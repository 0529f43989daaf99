"""``heygen-batch validate``: check every row without sending anything."""

from __future__ import annotations

import json
from pathlib import Path

import click

from engine.cli.errors import user_errors
from engine.cli.options import jobs_format, jobs_options
from engine.cli.preparing import make_preparer
from engine.prepare import DuplicateFilter
from engine.reader import open_rows


@click.command()
@jobs_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per row (line, key, ok, errors), then a summary object.",
)
def validate(
    jobs: str, template: Path | None, key_column: str | None, fmt: str | None, as_json: bool
) -> None:
    """Render and validate every row of JOBS; exit 1 if any row is invalid.

    Nothing is sent and no ledger is touched. Each problem names its line and
    the field at fault, e.g. ``line 7: video_inputs[0].voice.speed: must be
    between 0.5 and 1.5, got 3.0``.
    """
    file_format = jobs_format(jobs, fmt)
    counts = {"rows": 0, "valid": 0, "invalid": 0, "duplicates": 0}
    seen = DuplicateFilter()
    with user_errors():
        preparer = make_preparer(template, key_column, file_format)
        with open_rows(jobs, file_format) as (_, rows):
            for row in rows:
                job = preparer.prepare(row)
                counts["rows"] += 1
                errors = [{"field": e.path, "message": e.message} for e in job.errors]
                if seen.seen_before(job.key):
                    counts["duplicates"] += 1
                    errors.append(
                        {
                            "field": key_column or "",
                            "message": f"job key {job.key} appeared earlier in this file",
                        }
                    )
                ok = job.valid and not errors
                counts["valid" if ok else "invalid"] += 1
                if as_json:
                    click.echo(
                        json.dumps(
                            {"line": job.line, "key": job.key, "ok": ok, "errors": errors},
                            ensure_ascii=False,
                        )
                    )
                elif not ok:
                    for error in errors:
                        where = f"{error['field']}: " if error["field"] else ""
                        click.echo(f"line {job.line}: {where}{error['message']}")
    if as_json:
        click.echo(json.dumps({"summary": counts}))
    else:
        click.echo(
            f"{counts['rows']} rows: {counts['valid']} valid, {counts['invalid']} invalid"
            + (f" ({counts['duplicates']} duplicate keys)" if counts["duplicates"] else "")
            + "."
        )
    if counts["rows"] == 0:
        raise click.ClickException(f"{jobs} holds no jobs.")
    if counts["invalid"]:
        raise SystemExit(1)
