"""The run's live counts, for the progress line and the summary."""

from __future__ import annotations

from dataclasses import dataclass

from engine.ledger.store import Status


@dataclass(slots=True)
class PoolStats:
    """Live counts for the progress display and the summary."""

    in_flight: int = 0
    submitted: int = 0
    failed: int = 0
    uncertain: int = 0
    first_send: float | None = None
    last_send: float | None = None
    #: Uncertain jobs whose reconcile grace the run is waiting out, and until when
    #: (``time.monotonic``); see engine.settling.
    settling: int = 0
    settling_until: float | None = None
    #: 429s met ("not yet": they fail no job), and until when (``time.monotonic``) the
    #: pool is paused for the service's Retry-After.
    refusals: int = 0
    service_wait_until: float | None = None
    #: Render slots (engine/submitter/slots.py), when the run tracks renders: videos
    #: rendering, renders ended this run, workers waiting for a slot, the quickest
    #: render seen (seconds), and --max-rendering.
    rendering: int = 0
    rendered: int = 0
    render_failed: int = 0
    waiting_slot: int = 0
    render_estimate_s: float | None = None
    slots: int | None = None

    @property
    def done(self) -> int:
        """Jobs this run settled one way or another (not those handed back as pending)."""
        return self.submitted + self.failed + self.uncertain

    def record(self, status: Status) -> None:
        if status == "submitted":
            self.submitted += 1
        elif status == "failed":
            self.failed += 1
        elif status == "uncertain":
            self.uncertain += 1
