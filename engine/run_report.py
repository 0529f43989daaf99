"""What a run did, and what it means for its exit code (CONTRACT section 2)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.errors import AbortRun, WrongAddress
from engine.ledger.triage import RowCounts
from engine.submitter.control import LongWait
from engine.submitter.stats import PoolStats


@dataclass
class RunReport(RowCounts):
    ledger: str = ""
    #: The CSV's delimiter as read (None for JSONL, or before the file was opened).
    delimiter: str | None = None
    sent_submitted: int = 0
    sent_failed: int = 0
    sent_uncertain: int = 0
    #: Creates the service answered 429 ("not yet"), each a wait of the whole pool.
    not_yet: int = 0
    reconciled_found: int = 0
    reconciled_absent: int = 0
    elapsed_s: float = 0.0
    abort: AbortRun | None = None
    interrupted: bool = False
    #: The service asked for a wait beyond --max-wait, which stopped the run.
    wait: LongWait | None = None
    counts: dict[str, int] = field(default_factory=dict)
    #: --until-done: submitted jobs by render state (completed, failed, rendering), and
    #: (key, error) of the first failed renders.
    renders: dict[str, int] | None = None
    failed_renders: list[tuple[str, str | None]] = field(default_factory=list)
    #: --strict: rows still invalid and unchanged from an earlier run count too.
    strict: bool = False

    def add_sends(self, stats: PoolStats) -> None:
        """What the pool sent this run: its outcomes and the 429s it met."""
        self.sent_submitted = stats.submitted
        self.sent_failed = stats.failed
        self.sent_uncertain = stats.uncertain
        self.not_yet = stats.refusals

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        if isinstance(self.abort, WrongAddress):
            return 2
        if self.abort is not None:
            return 3
        if self.wait is not None:
            return 75
        return 1 if self._unsettled or self._unrendered else 0

    @property
    def _unsettled(self) -> int:
        # A row already recorded invalid and unchanged since is old news: a nightly cron
        # would otherwise exit 1 every night for it (CONTRACT section 2).
        excused = 0 if self.strict else self.invalid_unchanged
        return sum(self.counts.get(s, 0) for s in ("invalid", "failed", "uncertain")) - excused

    @property
    def _unrendered(self) -> int:
        """With --until-done, videos whose render failed or did not end."""
        renders = self.renders or {}
        return renders.get("failed", 0) + renders.get("rendering", 0)

    @property
    def reason(self) -> str | None:
        """Why the exit code is not 0, for a person (an abort's is the command's to say)."""
        if self.interrupted:
            return "Interrupted: the ledger is consistent; run again to go on."
        if self.wait is not None:
            return self.wait.message
        if self.abort is None and self._unsettled:
            c = self.counts
            return (
                f"{c.get('invalid', 0)} jobs invalid, {c.get('failed', 0)} failed, "
                f"{c.get('uncertain', 0)} uncertain: `heygen-batch export` shows each one's "
                "error; `heygen-batch reconcile` settles uncertain ones."
            )
        if self.abort is None and self._unrendered:
            renders = self.renders or {}
            named = "; ".join(
                f"{key}: {error or 'no reason given'}" for key, error in self.failed_renders
            )
            return (
                f"{renders.get('failed', 0)} renders failed, {renders.get('rendering', 0)} "
                "not finished" + (f" ({named})" if named else "") + ": failed renders are "
                "not sent again; `heygen-batch export` shows each one's error."
            )
        return None

    def last_run(self, abort_reason: str | None = None) -> dict[str, Any]:
        """What ``status`` shows of this run: kept in one small ledger row.
        ``abort_reason``: what the command said of ``abort`` (the run's reason then)."""
        reason = self.reason
        if self.abort is not None:
            reason = abort_reason or reason
        return {
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "exit_code": self.exit_code,
            "elapsed_s": round(self.elapsed_s, 1),
            "read": self.read,
            "new": self.new,
            "submitted": self.sent_submitted,
            "failed": self.sent_failed,
            "uncertain": self.sent_uncertain,
            "invalid": self.invalid,
            "reason": reason.strip() if reason else None,
        }
