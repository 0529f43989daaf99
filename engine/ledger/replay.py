"""Settle ``uncertain`` jobs of an API with idempotent creates (v3) by replaying their key.

Within the service's replay window (24 hours from a key's first request on v3) a
create sent again with the job's Idempotency-Key can only get the first answer back
(the one video, made then) or make the one video now: so a job first sent less than
``replay_window_s - REPLAY_MARGIN_S`` ago is settled at once, with no grace period and
no listing. An older one is left to listing where the API's videos name their
callback_id; v3's do not, so there it stays ``uncertain``, saying so (``UNPROVABLE``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from engine.api.port import VideoApi
from engine.errors import AbortRun, BadRequest, EngineError, one_line
from engine.ledger import statements
from engine.ledger.statements import Statement
from engine.ledger.store import JobRecord, Ledger
from engine.prepare.keys import idempotency_key
from engine.submitter.constants import REPLAY_AGAIN_S, REPLAY_MARGIN_S
from engine.submitter.rate import Limiter

if TYPE_CHECKING:
    from engine.ledger.reconcile import ReconcileResult

log = logging.getLogger(__name__)

#: Separates a job's own error from the reason reconcile could not settle it.
UNSETTLED = "; not settled: "
# The job's own cause is cut short so that the reason, which says what to do, fits the
# one short line an error may be.
_CAUSE_CHARS = 80
#: Why a job too old to replay, on an API whose videos name no callback_id, stays uncertain.
UNPROVABLE = (
    "first sent too long ago for the service to replay its Idempotency-Key, and its "
    "videos name no callback_id: whether it made a video cannot be proven; look for it "
    "in HeyGen's dashboard"
)


REFUSED = (
    "by HeyGen's rules its first request then made no video, but that cannot be proven "
    "here; look for it in HeyGen's dashboard"
)


async def settle_by_replay(
    ledger: Ledger,
    api: VideoApi,
    limiter: Limiter,
    jobs: list[JobRecord],
    result: ReconcileResult,
    clock: Callable[[], float],
) -> tuple[list[Statement], list[JobRecord]]:
    """Replay each young job's key: the writes that settle them, and the jobs too old
    to replay (within ``REPLAY_MARGIN_S`` of the window's end, or of unknown age).

    Found (the service answers with a video): ``submitted``. Refused with a 4xx: by
    HeyGen's rules the first request then made nothing, but an answer from anything
    else on the way would look the same, and ``failed`` lets ``--retry-failed`` send it
    again: it stays ``uncertain``, saying so. Any other failure (409
    ``request_in_progress``, 5xx, no answer) leaves it ``uncertain`` for the next
    reconcile. ``AbortRun`` escapes.
    """
    window = api.features.replay_window_s
    campaign = ledger.campaign_id
    writes: list[Statement] = []
    old: list[JobRecord] = []
    for job in jobs:
        first = job.first_attempted_at or job.attempted_at
        if window is None or first is None or clock() - first >= window - REPLAY_MARGIN_S:
            old.append(job)
            continue
        if campaign is None or job.body is None:
            result.still_uncertain += 1
            writes.append(unsettled(job, "it was recorded without the body a replay sends"))
            continue
        try:
            async with limiter:
                video_id = await api.create_video(
                    job.body, idempotency_key=idempotency_key(campaign, job.key)
                )
        except AbortRun:
            raise
        except BadRequest as err:
            result.still_uncertain += 1
            refused = f"a replay of its key was refused ({err}): {REFUSED}"
            writes.append(unsettled(job, refused))
            continue
        except EngineError as err:
            log.warning("reconcile: replaying job %s's key: %s", job.key, err)
            result.still_uncertain += 1
            writes.append(unsettled(job, f"replaying its Idempotency-Key failed ({err})"))
            # A fault of the moment (a 5xx, 409 request_in_progress, no answer): the end
            # of a run replays it again shortly, as it would after a grace period.
            result.grace_ends.append(clock() + REPLAY_AGAIN_S)
            continue
        writes.append(statements.reconciled_found(job.key, video_id))
        result.found += 1
    return writes, old


def unsettled(job: JobRecord, reason: str) -> Statement:
    """The job stays uncertain; its error keeps its own cause and says why it is not settled."""
    cause = one_line((job.error or "uncertain").split(UNSETTLED, 1)[0], _CAUSE_CHARS)
    return statements.mark_outcome(job.key, "uncertain", job.attempts, cause + UNSETTLED + reason)
