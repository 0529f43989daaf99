"""Build the row → request preparer from the command's options."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import click

from engine.api.choose import ApiChoice
from engine.cli.wording import counted
from engine.errors import ConfigError
from engine.prepare import Preparer
from engine.reader import JobsFormat, JobsSource, describe
from engine.template import load_template


def make_preparer(
    template: Path | None,
    key_column: str | None,
    fmt: JobsFormat,
    test_videos: bool = False,
    api: ApiChoice = "auto",
    strict: bool = False,
) -> Preparer:
    """Raises ``ConfigError`` (exit 2) for a template that names no API or not ``api``."""
    if template is None and fmt is JobsFormat.CSV:
        raise ConfigError(
            "A CSV jobs file needs --template FILE: a JSON or YAML V2 or v3 body with "
            "{{ column }} placeholders (see jobs/demo-template.json, jobs/demo-template-v3.json)."
        )
    compiled = load_template(template, strict) if template is not None else None
    return Preparer(compiled, key_column, test_videos, api=api)


def warn_missing_columns(preparer: Preparer, source: JobsSource) -> None:
    """Say once, before the per-row errors, that a template column is not in the header.

    Raises ``ConfigError`` when --key-column names no column of the header.
    """
    if source.header is None:
        return
    missing = preparer.check_columns(source.header)
    if missing:
        names = ", ".join(f"'{name}'" for name in missing)
        # A wrong delimiter is the usual cause when the header reads as one column.
        split = f" (read as {describe(source.delimiter)})" if source.delimiter else ""
        click.echo(
            f"warning: the template uses {names} but the jobs file{split} has no such "
            "column; every row will be invalid.",
            err=True,
        )


#: The noun a summary counts each invalid-row reason by, where the reason's own name is none.
_REASON_NOUNS = {"schema": "schema error"}


def reasons_text(by_reason: Mapping[str, int]) -> str:
    """`` (2 empty cells, 1 schema error)``: invalid rows by reason, for a summary line."""
    if not by_reason:
        return ""
    words = (
        counted(n, _REASON_NOUNS.get(r, r.replace("_", " "))) for r, n in sorted(by_reason.items())
    )
    return f" ({', '.join(words)})"
