"""Step 6: the ledger joined back to its contacts, as CSV or JSONL."""

from engine.export.writer import RESULT_COLUMNS, export_ledger

__all__ = ["RESULT_COLUMNS", "export_ledger"]
