"""Write one line per job: the source row's columns, then the results.

The column order is fixed by the ledger (source columns in first-seen order,
then ``RESULT_COLUMNS``), so a campaign tool can rely on it run after run.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from typing import Any, Literal, TextIO

from engine.ledger.store import JobRecord, Ledger
from engine.template.cells import marked_controls

RESULT_COLUMNS = (
    "key",
    "line",
    "status",
    "video_id",
    "video_status",
    "video_url",
    "thumbnail_url",
    "attempts",
    "error",
    "api",
    "callback_id",
    "video_page_url",
    "file_path",
)
#: What a source column named like a result column is renamed with, e.g. ``source.status``.
SOURCE_PREFIX = "source."

# A cell starting with one of these is run as a formula by spreadsheet programs.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def defuse(value: str) -> str:
    """The cell as text a spreadsheet shows and never evaluates."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def text_cell(value: Any) -> str:
    """A value as text: JSON for anything but a string, with control characters marked."""
    if value is None:
        return ""
    if isinstance(value, str):
        return marked_controls(value)
    return json.dumps(value, ensure_ascii=False)


def _results(job: JobRecord) -> dict[str, Any]:
    return {
        "key": job.key,
        "line": job.line,
        "status": job.status,
        "video_id": job.video_id,
        "video_status": job.video_status,
        "video_url": job.video_url,
        "thumbnail_url": job.thumbnail_url,
        "attempts": job.attempts,
        "error": job.error,
        "api": job.api,
        "callback_id": job.callback_id,
        "video_page_url": job.video_page_url,
        "file_path": job.file_path,
    }


def output_names(sources: Sequence[str]) -> list[str]:
    """The export's names for the source columns: a column named like a result column
    keeps its data under ``source.<name>`` (prefixed again until no name is taken twice)."""
    taken = set(RESULT_COLUMNS) | set(sources)
    names = []
    for column in sources:
        name = column
        if column in RESULT_COLUMNS:
            name = SOURCE_PREFIX + column
            while name in taken:
                name = SOURCE_PREFIX + name
            taken.add(name)
        names.append(name)
    return names


def header(ledger: Ledger) -> list[str]:
    """The export's column names: the source columns (renamed where needed), then
    ``RESULT_COLUMNS``."""
    return [*output_names(ledger.source_columns()), *RESULT_COLUMNS]


def records(ledger: Ledger) -> Iterator[list[Any]]:
    """Each job's values in ``header`` order, in source line order, as stored: a
    format turns them into its own cells (``csv_cell``, or the workbook's)."""
    sources = ledger.source_columns()
    for job in ledger.iter_jobs():
        results = _results(job)
        yield [*(job.source.get(c) for c in sources), *(results[c] for c in RESULT_COLUMNS)]


def csv_cell(value: Any) -> str:
    """A CSV cell: text, controls marked, formulas defused."""
    return defuse(text_cell(value))


def export_ledger(ledger: Ledger, out: TextIO, fmt: Literal["csv", "jsonl"]) -> int:
    """Write every job of ``ledger`` to ``out`` in source line order; returns how many."""
    names = header(ledger)
    count = 0
    if fmt == "csv":
        # RFC 4180 line ends: the writer then quotes any cell holding a CR or LF, where
        # with bare "\n" a lone CR would go out unquoted and split the row.
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([defuse(n) for n in names])
        for values in records(ledger):
            writer.writerow([csv_cell(v) for v in values])
            count += 1
    else:
        for values in records(ledger):
            out.write(json.dumps(dict(zip(names, values, strict=True)), ensure_ascii=False))
            out.write("\n")
            count += 1
    return count
