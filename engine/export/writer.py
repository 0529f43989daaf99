"""Write one line per job: the source row's columns, then the results."""

from __future__ import annotations

import csv
import json
from typing import Any, Literal, TextIO

from engine.ledger.store import JobRecord, Ledger

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
)

# A cell starting with one of these is run as a formula by spreadsheet programs.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _defuse(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
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
    }


def export_ledger(ledger: Ledger, out: TextIO, fmt: Literal["csv", "jsonl"]) -> int:
    """Write every job of ``ledger`` to ``out``; returns how many."""
    sources = ledger.source_columns()
    # A contact column named like a result column keeps its data under another name.
    names = [f"source.{c}" if c in RESULT_COLUMNS else c for c in sources]
    count = 0
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names + list(RESULT_COLUMNS))
        for job in ledger.iter_jobs():
            results = _results(job)
            cells = [_cell(job.source.get(c)) for c in sources]
            cells += [_cell(results[c]) for c in RESULT_COLUMNS]
            writer.writerow([_defuse(c) for c in cells])
            count += 1
    else:
        for job in ledger.iter_jobs():
            record = {n: job.source.get(c) for n, c in zip(names, sources, strict=True)}
            record.update(_results(job))
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count
