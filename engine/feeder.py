"""Step 4 of a run: rows of the jobs file judged against the ledger, recorded, and queued.

The feeder sits between the triage (what each row needs) and the pool (which sends):
it records what the ledger must hold, says what a user must know about each row (up
to a limit), keeps to --limit, and hands the pool each job to send.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING

from engine.errors import ConfigError
from engine.ledger import statements
from engine.ledger.kinds import KindGuard
from engine.ledger.store import Ledger, Videos
from engine.ledger.triage import Triage, Triaged, Verdict
from engine.ledger.writer import BatchWriter
from engine.prepare import Preparer
from engine.prepare.keys import idempotency_key
from engine.reader import in_chunks, open_rows
from engine.run_report import RunReport
from engine.submitter.control import RunControl
from engine.submitter.items import NewJob, SubmitItem

if TYPE_CHECKING:
    from engine.campaign import RunOptions

log = logging.getLogger(__name__)

# Rows are looked up in the ledger and recorded this many at a time.
CHUNK = 500


class Budget:
    """``--limit``: how many new submissions this run may still start."""

    def __init__(self, limit: int | None) -> None:
        self.left = limit

    def take(self) -> bool:
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class Notices:
    """Per-row warnings on stderr, up to a limit: a million bad rows must not flood a cron mail."""

    LIMIT = 50

    def __init__(self) -> None:
        self.hidden = 0
        self._shown = 0

    def say(self, text: str) -> None:
        if self._shown < self.LIMIT:
            self._shown += 1
            log.warning(text)
        else:
            self.hidden += 1

    def close(self) -> None:
        if self.hidden:
            log.warning(
                "%d more row warnings not shown; `heygen-batch validate` lists every bad row, "
                "and the ledger has each job's error.",
                self.hidden,
            )


class Feeder:
    """Classifies each prepared job against the ledger, records it, queues what must be sent."""

    def __init__(
        self,
        ledger: Ledger,
        writer: BatchWriter,
        queue: asyncio.Queue[SubmitItem | None],
        control: RunControl,
        budget: Budget,
        report: RunReport,
        unsent: Callable[[SubmitItem], None],
        videos: Videos | None,
        known_invalid: frozenset[str] = frozenset(),
    ) -> None:
        self._ledger = ledger
        #: Fingerprints of the rows an earlier run recorded invalid (see ``_invalid``).
        self._known_invalid = known_invalid
        self._salt = b""
        self._writer = writer
        self._queue = queue
        self._control = control
        self._budget = budget
        self._report = report
        self._unsent = unsent
        #: Keyed jobs: the kind of the bodies this run sends, set by the first one and
        #: recorded when it is queued (committed no later than its mark), so a run that
        #: sends nothing leaves the ledger free for either kind.
        self._kinds = KindGuard(ledger, ledger) if videos is not None else None
        self._kind_recorded = False
        #: Test and real videos mixed on a keyed ledger: the run's refusal (exit 2).
        self.refused: ConfigError | None = None
        self._columns = ledger.source_columns()
        self._campaign = ledger.campaign_id
        self._notices = Notices()

    def _add_columns(self, columns: Iterator[str] | list[str]) -> None:
        added = [c for c in dict.fromkeys(columns) if c not in self._columns]
        if added:
            self._columns += added
            self._writer.write(statements.set_source_columns(self._columns))

    async def feed(self, opts: RunOptions) -> None:
        triage = Triage(self._ledger, opts.preparer, opts.fingerprint_salt)
        self._salt = opts.fingerprint_salt
        try:
            await self._feed(triage, opts)
        finally:
            self._notices.close()

    async def _feed(self, triage: Triage, opts: RunOptions) -> None:
        with open_rows(opts.jobs, opts.fmt, opts.delimiter) as source:
            self._report.delimiter = source.delimiter
            if source.header is not None:
                self._add_columns(source.header)
            for chunk in in_chunks(source.rows, CHUNK):
                if self._control.stopping or self.refused is not None:
                    return
                if source.header is None:
                    self._add_columns([c for row in chunk for c in row.values])
                await self._act(triage.sort(chunk), opts.preparer)
                # Let the workers run between chunks even when nothing had to be queued.
                await asyncio.sleep(0)

    async def _act(self, verdicts: list[Triaged], preparer: Preparer) -> None:
        report = self._report
        for t in verdicts:
            if self.refused is not None:
                return
            report.add(t)
            job = t.job
            if t.verdict is Verdict.DUPLICATE:
                note = preparer.repeated_key(t.key)
                self._notices.say(f"line {t.line}: {note}; not sent twice")
            elif t.verdict is Verdict.INVALID:
                self._invalid(t)
            elif t.verdict is Verdict.NEW:
                await self._new(t)
            elif t.changed:
                # A test body sent, a real one now (or the other way): not "done".
                if job is not None and job.body is not None and not self._same_kind(job.body):
                    return
                self._notices.say(
                    f"line {t.line}: job {t.key} changed since it was sent; not sent again"
                )
            elif job is not None and t.fingerprint is not None:
                # Unchanged but rendered (a ledger from before fingerprints, or a new
                # template byte-for-byte equal in effect): skip the rendering next time.
                self._writer.write(statements.set_fingerprint(t.key, t.fingerprint))

    def _idempotency_key(self, key: str) -> str | None:
        """Sent by the APIs that take one (v3); every attempt of the job carries it."""
        campaign = self._campaign
        return None if campaign is None else idempotency_key(campaign, key)

    def _invalid(self, t: Triaged) -> None:
        """Record an invalid row with its fingerprint: the next run knows it unchanged.

        A row the reader could not take apart has no row fingerprint; its values and
        error stand in. One an earlier run recorded alike is counted apart
        (``RowCounts.invalid_unchanged``) and not warned about again.
        """
        job = t.job
        assert job is not None
        error = job.error_text or ""
        mark = (
            t.fingerprint
            or hashlib.blake2b(
                self._salt + repr((job.source, error)).encode(), digest_size=16
            ).hexdigest()
        )
        if mark in self._known_invalid:
            self._report.invalid_unchanged += 1
        else:
            self._notices.say(f"line {t.line}: invalid: {error}")
        if t.previous is None:
            self._writer.write(
                statements.insert_job(t.key, t.line, "invalid", job.source, None, error, mark)
            )
        elif t.previous.status == "pending":
            # Left pending with a body (a stop, a 429 beyond --max-wait, proven absent):
            # the end of this run would resend that body for a row it calls invalid.
            self._writer.write(
                statements.pending_now_invalid(t.key, t.line, job.source, error, mark)
            )

    async def _new(self, t: Triaged) -> None:
        """Record a job to send and queue it, unless --limit holds it back.

        A job the ledger has never seen is queued unrecorded: the marking stage
        inserts it already ``submitting``, one statement instead of two. One held
        back, or never marked because a stop came first, is recorded ``pending``.
        """
        job, previous = t.job, t.previous
        assert job is not None
        assert job.body is not None
        assert job.sha256 is not None
        if not self._same_kind(job.body):
            return
        if previous is not None:
            refresh = (job.sha256, job.source, t.fingerprint, job.body_json or "", job.callback_id)
            self._writer.write(statements.refresh_pending(t.key, t.line, *refresh))
        item = SubmitItem(
            t.key,
            job.body,
            job.sha256,
            previous.attempts if previous else 0,
            job.body_json or "",
            None if previous else NewJob(t.line, job.source, t.fingerprint),
            job.api,
            self._idempotency_key(t.key),
        )
        if not self._budget.take():
            self._unsent(item)
            self._report.held_by_limit += 1
            return
        if self._kinds is not None and self._kinds.kind and not self._kind_recorded:
            self._writer.write(statements.set_videos(self._kinds.kind))
            self._kind_recorded = True
        try:
            await self._queue.put(item)
        except asyncio.CancelledError:
            self._unsent(item)
            raise

    def _same_kind(self, body: Mapping[str, object]) -> bool:
        """False stops the feeding (queued jobs go on: a stop, not a cancellation)."""
        try:
            if self._kinds is not None:
                self._kinds.check(body)
        except ConfigError as err:
            self.refused = err
        return self.refused is None
