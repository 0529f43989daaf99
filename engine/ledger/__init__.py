"""Step 5: the results ledger (a SQLite file, or a campaign in PostgreSQL) that survives
crashes and drives re-runs."""

from engine.ledger.lock import LedgerBusy, ledger_lock
from engine.ledger.store import JobRecord, Ledger, Status

__all__ = ["JobRecord", "Ledger", "LedgerBusy", "Status", "ledger_lock"]
