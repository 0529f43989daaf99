"""Step 1 of the data's path: stream rows out of a jobs file (CSV or JSONL)."""

from engine.reader.open_jobs import JobsFormat, open_rows
from engine.reader.row import Row, in_chunks

__all__ = ["JobsFormat", "Row", "in_chunks", "open_rows"]
