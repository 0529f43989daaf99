"""Step 1 of the data's path: stream rows out of a jobs file (CSV or JSONL)."""

from engine.reader.delimiter import delimiter_from_option, describe
from engine.reader.open_jobs import JobsFormat, JobsSource, open_rows
from engine.reader.row import Row, in_chunks

__all__ = [
    "JobsFormat",
    "JobsSource",
    "Row",
    "delimiter_from_option",
    "describe",
    "in_chunks",
    "open_rows",
]
