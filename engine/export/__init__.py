"""Step 6: the ledger joined back to its contacts, as CSV, JSONL or an Excel workbook."""

from engine.export.writer import RESULT_COLUMNS, export_ledger
from engine.export.xlsx import write_workbook

__all__ = ["RESULT_COLUMNS", "export_ledger", "write_workbook"]
