"""``heygen-batch report``: one self-contained HTML page about a campaign's ledger."""

from engine.report.page import write_report

__all__ = ["write_report"]
