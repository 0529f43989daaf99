"""What one file may not repeat: a job key, or a callback_id the row sets itself."""

from __future__ import annotations

from engine.errors import FieldError, Reason
from engine.prepare.job import PreparedJob
from engine.prepare.keys import DuplicateFilter


class Repeats:
    """The keys and callback_ids seen earlier in one file, for run, dry run and validate.

    Two jobs sent with one callback_id cannot be told apart at the service: reconcile
    could settle neither. The engine's own callback_ids are made from the job key, so
    only those a template or a JSONL body sets are checked.
    """

    def __init__(self) -> None:
        self._keys = DuplicateFilter()
        self._callbacks = DuplicateFilter(with_lines=True)

    def key_seen(self, key: str) -> bool:
        """Whether an earlier row had this job key (remembering it otherwise)."""
        return self._keys.seen_before(key)

    def callback_checked(self, job: PreparedJob, refuse: bool = True) -> PreparedJob:
        """``job``, or, when its own callback_id repeats an earlier row's and ``refuse``,
        the same row made invalid naming that row. A job that is not sent (already done
        in the ledger) is remembered with ``refuse`` False and left as it is."""
        own = job.own_callback
        if own is None or not job.valid:
            return job
        earlier = self._callbacks.first_line(own, job.line)
        if earlier is None or not refuse:
            return job
        error = FieldError(
            "callback_id",
            f"callback_id '{own}' is the same as line {earlier}'s; two jobs with one "
            "callback_id cannot be told apart at the service: make it differ per row, or "
            "leave callback_id out so the engine makes one per job",
            Reason.DUPLICATE,
        )
        return PreparedJob(job.line, job.key, job.source, None, (error,))
