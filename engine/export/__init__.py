"""Step 6: the ledger joined back to its contacts, as CSV or JSONL (``writer``) or an
Excel workbook (``xlsx``, imported only when one is written: openpyxl takes a while)."""

from engine.export.writer import RESULT_COLUMNS, export_ledger

__all__ = ["RESULT_COLUMNS", "export_ledger"]
