"""Which job the current task is sending: for the grants and render slots its start takes."""

from __future__ import annotations

from contextvars import ContextVar

#: (campaign schema, job key) of the job the current task is sending, if any; set by
#: ``engine.scaleout.slots.LaneSubmitter`` for the length of one job's send.
CURRENT_JOB: ContextVar[tuple[str, str] | None] = ContextVar("heygen_batch_job", default=None)
