"""Step 1 of the data's path: stream rows out of a jobs file (CSV or JSONL)."""

from engine.reader.open_jobs import JobsFormat, open_rows
from engine.reader.row import Row

__all__ = ["JobsFormat", "Row", "open_rows"]
