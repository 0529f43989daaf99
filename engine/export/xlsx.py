"""The export as an Excel workbook: the CSV's columns, streamed row by row.

openpyxl's write-only mode writes each row out as it is appended, with its strings
inline rather than in a shared table, so memory stays flat whatever the ledger's size.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from engine.export.writer import header, records, text_cell
from engine.ledger import Ledger

SHEET_TITLE = "results"
#: Excel's most characters in one cell; a longer one makes the file unreadable to it.
MAX_CELL_CHARS = 32_767
#: Past 15 significant digits Excel rounds a number (a phone number, an id): kept as text.
_EXACT_INTEGER = 10**15


def _xlsx_cell(sheet: WriteOnlyWorksheet, value: Any) -> Cell | int | float | None:
    """A number stays a number when Excel holds it exactly; anything else is a text
    cell, typed as text so that one starting with ``=`` is shown, never computed."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) < _EXACT_INTEGER:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    text = text_cell(value)
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 1] + "…"
    cell = WriteOnlyCell(sheet, value=text)
    # openpyxl types a string starting with "=" as a formula; the type is set after it.
    cell.data_type = "s"
    return cell


def write_workbook(ledger: Ledger, path: Path) -> int:
    """Write every job of ``ledger`` to a new workbook at ``path`` (one sheet,
    ``results``; a header row, then one row per job in source line order); returns how
    many jobs. A cell over 32,767 characters (Excel's limit) is cut, ending in ``…``."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(SHEET_TITLE)
    sheet.append([_xlsx_cell(sheet, name) for name in header(ledger)])
    count = 0
    for values in records(ledger):
        sheet.append([_xlsx_cell(sheet, value) for value in values])
        count += 1
    workbook.save(path)
    return count
