"""``heygen-batch validate``: check every row without sending anything."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import click

from engine.api.choose import ApiChoice
from engine.cli.config_file import config_option
from engine.cli.errors import UserError, epilog, user_errors
from engine.cli.options import jobs_delimiter, jobs_format, jobs_options
from engine.cli.preparing import make_preparer, reasons_text, warn_missing_columns
from engine.cli.wording import counted
from engine.errors import Reason
from engine.prepare import PreparedJob, Preparer, Repeats
from engine.reader import describe, open_rows


@dataclass
class _Counts:
    rows: int = 0
    valid: int = 0
    invalid: int = 0
    duplicates: int = 0
    invalid_by_reason: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "valid": self.valid,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "invalid_by_reason": dict(sorted(self.invalid_by_reason.items())),
        }


def _problems(
    job: PreparedJob, duplicate: bool, key_column: str | None, preparer: Preparer
) -> list[dict[str, str]]:
    """The row's problems as ``{"field", "message", "reason"}``; ``duplicate``: its key
    is a repeat."""
    errors = [
        {
            "field": e.path,
            "message": e.message or "the row cannot be used",
            "reason": str(e.reason or Reason.SCHEMA),
        }
        for e in job.errors
    ]
    if duplicate:
        errors.append(
            {
                "field": key_column or "",
                "message": f"{preparer.repeated_key(job.key)}; this row would not be sent",
                "reason": str(Reason.DUPLICATE),
            }
        )
    return errors


@click.command(
    epilog=epilog(
        "Exit codes: 0 every row makes a valid request; 1 some rows are invalid or repeat a "
        "job key; 2 usage or configuration error (unreadable file, bad template, no rows). "
        "Nothing is sent and no ledger is touched: no key is needed.",
        "heygen-batch validate jobs/demo.csv --template jobs/demo-template.json "
        "--key-column contact_id --json",
    )
)
@jobs_options
@config_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per row (line, key, ok, errors), then a summary object.",
)
@click.option(
    "--strict", is_flag=True, help="Refuse template fields the schema does not know (exit 2)."
)
def validate(
    jobs: str,
    template: Path | None,
    api: ApiChoice,
    key_column: str | None,
    delimiter: str | None,
    fmt: str | None,
    as_json: bool,
    strict: bool,
) -> None:
    """Render and validate every row of JOBS; exit 1 if any row is invalid or repeated.

    Nothing is sent and no ledger is touched. Each problem names its line and
    the field at fault, e.g. ``line 7: video_inputs[0].voice.speed: must be
    between 0.5 and 1.5, got 3.0``. A problem with the row itself (a ragged CSV
    row, a line that is not JSON) has no field.
    """
    file_format = jobs_format(jobs, fmt)
    given_delimiter = jobs_delimiter(delimiter, file_format)
    counts = _Counts()
    seen = Repeats()
    with user_errors():
        preparer = make_preparer(template, key_column, file_format, api=api, strict=strict)
        with open_rows(jobs, file_format, given_delimiter) as source:
            warn_missing_columns(preparer, source)
            for row in source.rows:
                job = preparer.prepare(row)
                duplicate = seen.key_seen(job.key)
                if not duplicate:
                    job = seen.callback_checked(job)
                errors = _problems(job, duplicate, key_column, preparer)
                counts.rows += 1
                if not job.valid:
                    counts.invalid += 1
                    counts.invalid_by_reason[str(job.reason)] += 1
                elif duplicate:
                    counts.duplicates += 1
                else:
                    counts.valid += 1
                if as_json:
                    line = {"line": job.line, "key": job.key, "ok": not errors, "errors": errors}
                    click.echo(json.dumps(line, ensure_ascii=False))
                else:
                    for error in errors:
                        where = f"{error['field']}: " if error["field"] else ""
                        click.echo(f"line {job.line}: {where}{error['message']}")
    if as_json:
        click.echo(json.dumps({"summary": {**counts.as_dict(), "delimiter": source.delimiter}}))
    else:
        layout = f" ({describe(source.delimiter)})" if source.delimiter else ""
        click.echo(
            f"{counted(counts.rows, 'row')}{layout}: {counts.valid} valid, {counts.invalid} invalid"
            + reasons_text(counts.invalid_by_reason)
            + (f", {counted(counts.duplicates, 'repeated job key')}" if counts.duplicates else "")
            + "."
        )
    if counts.rows == 0:
        raise UserError(f"{jobs} holds no jobs: it has no rows after the header.")
    if counts.invalid or counts.duplicates:
        raise SystemExit(1)
