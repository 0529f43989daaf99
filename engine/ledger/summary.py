"""A ledger at a glance, read with no lock and no network: what ``status`` prints.

Also the write side of its "last run": one ``meta`` row each run replaces at its end.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import ConfigError
from engine.ledger.database import LedgerStoreError
from engine.ledger.open import LedgerSpec
from engine.ledger.statements import set_last_run
from engine.ledger.store import STATUSES

log = logging.getLogger(__name__)

#: How many distinct errors ``status`` lists, most frequent first.
TOP_ERRORS = 5
#: The render outcome of a submitted job that was never polled.
NOT_POLLED = "not_polled"


@dataclass(frozen=True)
class Uncertain:
    """The oldest ``uncertain`` job: its key and when it was last attempted (epoch s)."""

    key: str
    line: int
    attempted_at: float | None


@dataclass(frozen=True)
class LedgerSummary:
    #: The ledger as messages name it (its path, or its database and campaign).
    ledger: str
    campaign_id: str | None
    #: Jobs by ledger status, every status present (0 when none).
    counts: dict[str, int]
    #: Submitted jobs by render outcome (``video_status``), ``not_polled`` for none yet.
    renders: dict[str, int]
    oldest_uncertain: Uncertain | None
    #: What the latest ``run`` recorded (``record_run``), or None before any.
    last_run: dict[str, Any] | None
    #: (error, how many jobs have it), most frequent first.
    top_errors: list[tuple[str, int]]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def summarise(spec: LedgerSpec) -> LedgerSummary:
    """Read the ledger ``spec`` names (read-only: nothing is written, no lock is taken, a
    run may be writing meanwhile). Raises ConfigError for a missing file, one that is
    not a ledger, or an unknown campaign; LedgerUnavailable for a server that cannot be
    reached."""
    ledger = spec.open_read_only()
    try:
        counts = ledger.counts()
        renders = {
            (status or NOT_POLLED): n
            for status, n in ledger.query(
                "SELECT video_status, count(*) FROM jobs WHERE status = 'submitted' "
                "GROUP BY video_status ORDER BY count(*) DESC"
            )
        }
        oldest = ledger.query(
            "SELECT key, line, attempted_at FROM jobs WHERE status = 'uncertain' "
            "ORDER BY attempted_at IS NULL, attempted_at, line LIMIT 1"
        )
        errors = ledger.query(
            "SELECT error, count(*) FROM jobs WHERE error IS NOT NULL AND error != '' "
            "GROUP BY error ORDER BY count(*) DESC, min(line) LIMIT ?",
            (TOP_ERRORS,),
        )
        last = ledger.meta("last_run")
        return LedgerSummary(
            ledger=ledger.describe(),
            campaign_id=ledger.campaign_id,
            counts={s: counts.get(s, 0) for s in STATUSES},
            renders=renders,
            oldest_uncertain=Uncertain(*oldest[0]) if oldest else None,
            last_run=json.loads(last) if last else None,
            top_errors=[(str(error), int(n)) for error, n in errors],
        )
    finally:
        ledger.close()


def record_run(spec: LedgerSpec, record: Mapping[str, Any]) -> None:
    """Replace the ledger's "last run" with ``record`` (small: time, exit code, counts).

    Best effort: the run's outcome is already in its jobs, so a ledger that cannot take
    this row (a full disk, a server gone) costs only the summary line, with a warning.
    """
    try:
        ledger = spec.open(create=False)
    except (ConfigError, LedgerStoreError) as err:
        log.warning("the last run was not recorded in %s: %s", spec, err)
        return
    try:
        ledger.transaction([set_last_run(record)])
    except LedgerStoreError as err:
        log.warning("the last run was not recorded in %s: %s", spec, err)
    finally:
        ledger.close()
