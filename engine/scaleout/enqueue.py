"""``enqueue``: a jobs file loaded into a campaign of a PostgreSQL ledger, for workers.

The reading, rendering, validation and triage are ``run``'s (``engine.ledger.triage``);
what differs is the end: every valid new row is stored ``pending`` with the body a
worker will send (its request_sha256, callback_id and API with it), so a worker needs
nothing but the ledger. Rows are judged and written ``ENQUEUE_CHUNK`` at a time, one
transaction each, like statements grouped in one ``executemany``: a million rows cost
a few hundred round trips, and memory stays flat.

Idempotent: a row whose job is already stored as it would be now writes nothing; a
changed row of a job still ``pending`` (and not held by a worker) is refreshed; one a
worker holds is left as it is and counted ``held`` (what the ledger holds after the
write decides which); a job ever marked to be sent is never touched.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

from engine.feeder import Notices
from engine.ledger import statements
from engine.ledger.statements import Statement, error_text, now_iso
from engine.ledger.store import Ledger
from engine.ledger.triage import RowCounts, Triage, Triaged, Verdict
from engine.prepare import Preparer
from engine.reader import JobsFormat, in_chunks, open_rows
from engine.submitter.constants import ENQUEUE_CHUNK

log = logging.getLogger(__name__)

# Only a job nothing was sent for, and that no worker holds, takes the file's new values.
_STILL_OURS = "WHERE jobs.status IN ('pending', 'invalid') AND jobs.claimed_by IS NULL"

_UPSERT_PENDING = (
    "INSERT INTO jobs (key, line, status, request_sha256, updated_at, source, "
    "row_fingerprint, api, body, callback_id) "
    "VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET line = excluded.line, status = 'pending', "
    "request_sha256 = excluded.request_sha256, updated_at = excluded.updated_at, "
    "source = excluded.source, row_fingerprint = excluded.row_fingerprint, "
    "api = excluded.api, body = excluded.body, callback_id = excluded.callback_id, "
    "error = NULL " + _STILL_OURS
)

_UPSERT_INVALID = (
    "INSERT INTO jobs (key, line, status, error, updated_at, source, row_fingerprint) "
    "VALUES (?, ?, 'invalid', ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET line = excluded.line, status = 'invalid', "
    "error = excluded.error, updated_at = excluded.updated_at, source = excluded.source, "
    "row_fingerprint = excluded.row_fingerprint, body = NULL, request_sha256 = NULL " + _STILL_OURS
)


@dataclass
class EnqueueReport(RowCounts):
    """How a file's rows were judged (``RowCounts``) and what was written for them."""

    ledger: str = ""
    campaign: str = ""
    delimiter: str | None = None
    #: Jobs stored for the first time, ready for a worker.
    added: int = 0
    #: Pending jobs whose row changed: they now carry the new body.
    refreshed: int = 0
    #: Pending jobs whose row changed, left as they were: a worker holds them.
    held: int = 0
    #: Pending jobs already stored as the file has them: nothing written.
    unchanged: int = 0
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> int:
        """1 when rows are invalid (those already recorded and unchanged excepted)."""
        return 1 if self.invalid - self.invalid_unchanged else 0


def enqueue(
    ledger: Ledger,
    jobs: str,
    fmt: JobsFormat,
    preparer: Preparer,
    salt: bytes,
    delimiter: str | None = None,
) -> EnqueueReport:
    """Load ``jobs`` into ``ledger`` (a campaign of a PostgreSQL ledger); see the module.

    Raises ``ConfigError`` for a file that cannot be read, and whatever the store raises
    for a database that cannot be written (nothing of the chunk at fault is kept).
    """
    started = time.monotonic()
    report = EnqueueReport(ledger=ledger.describe())
    known_invalid = frozenset(ledger.invalid_fingerprints())
    triage = Triage(ledger, preparer, salt)
    notices = Notices()
    columns = ledger.source_columns()
    try:
        with open_rows(jobs, fmt, delimiter) as source:
            report.delimiter = source.delimiter
            for chunk in in_chunks(source.rows, ENQUEUE_CHUNK):
                writes: list[Statement] = []
                changed: dict[str, str] = {}
                seen = source.header or [c for row in chunk for c in row.values]
                added = [c for c in dict.fromkeys(seen) if c not in columns]
                if added:
                    columns += added
                    writes.append(statements.set_source_columns(columns))
                for t in triage.sort(chunk):
                    report.add(t)
                    write = _judged(t, report, notices, salt, known_invalid, changed)
                    if write is not None:
                        writes.append(write)
                if writes:
                    ledger.transaction(_grouped(writes))
                _count_refreshed(ledger, changed, report)
    finally:
        notices.close()
    report.elapsed_s = time.monotonic() - started
    return report


def _count_refreshed(ledger: Ledger, changed: dict[str, str], report: EnqueueReport) -> None:
    """Count each of ``changed`` (key -> the request_sha256 written) refreshed when the
    ledger now holds its new request, else held: the upsert leaves a job a worker holds."""
    if not changed:
        return
    now = ledger.lookup(list(changed))
    for key, sha in changed.items():
        known = now.get(key)
        if known is not None and known.request_sha256 == sha:
            report.refreshed += 1
        else:
            report.held += 1


def _grouped(writes: list[Statement]) -> list[Statement]:
    """Like statements together, so the store sends each kind in one ``executemany``.

    Safe to reorder: a chunk holds each job key once (a repeated key is a duplicate,
    never written), and the metadata row is apart from the jobs.
    """
    writes.sort(key=itemgetter(0))
    return [w for _, run in groupby(writes, key=itemgetter(0)) for w in run]


def _judged(
    t: Triaged,
    report: EnqueueReport,
    notices: Notices,
    salt: bytes,
    known_invalid: frozenset[str],
    changed: dict[str, str],
) -> Statement | None:
    """The write one row's verdict needs, if any; counted in ``report``, but for a
    changed pending job: put in ``changed`` (key -> its new request_sha256), counted
    once written."""
    job, previous = t.job, t.previous
    if t.verdict is Verdict.DUPLICATE:
        notices.say(f"line {t.line}: job key {t.key} repeats an earlier row's; not enqueued twice")
        return None
    if t.verdict is Verdict.INVALID:
        assert job is not None
        error = job.error_text or ""
        mark = (
            t.fingerprint
            or hashlib.blake2b(
                salt + repr((job.source, error)).encode(), digest_size=16
            ).hexdigest()
        )
        if mark in known_invalid:
            report.invalid_unchanged += 1
            return None
        notices.say(f"line {t.line}: invalid: {error}")
        if previous is not None and previous.status != "pending":
            return None
        return (
            _UPSERT_INVALID,
            (
                t.key,
                t.line,
                error_text(error),
                now_iso(),
                statements.json_text(job.source),
                mark,
            ),
        )
    if t.verdict is Verdict.NEW:
        assert job is not None
        assert job.sha256 is not None
        if previous is not None and previous.request_sha256 == job.sha256:
            report.unchanged += 1
            return None
        if previous is None:
            report.added += 1
        else:
            changed[t.key] = job.sha256
        return (
            _UPSERT_PENDING,
            (
                t.key,
                t.line,
                job.sha256,
                now_iso(),
                statements.json_text(job.source),
                t.fingerprint,
                job.api,
                job.body_json or "",
                job.callback_id,
            ),
        )
    if t.changed:
        notices.say(f"line {t.line}: job {t.key} changed since it was sent; not sent again")
    elif job is not None and t.fingerprint is not None:
        # Unchanged and sent: the next enqueue of the file skips it without rendering.
        return statements.set_fingerprint(t.key, t.fingerprint)
    return None
