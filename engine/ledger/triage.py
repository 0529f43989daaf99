"""Sort rows against the ledger: what a run sends, and why it sends nothing for the rest.

``run`` acts on the verdicts (records, queues); ``run --dry-run`` only counts them,
so both tell the same story about the same file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from engine.ledger.store import Known, Ledger
from engine.prepare import PreparedJob, Preparer, Repeats
from engine.reader import Row


class Verdict(StrEnum):
    NEW = "new"  # not sent yet: absent from the ledger, or pending there
    ALREADY_DONE = "already_done"  # submitted
    NOT_RESENT = "not_resent"  # failed or uncertain: never sent again blindly
    INVALID = "invalid"
    DUPLICATE = "duplicate"  # its key appeared earlier in this file


@dataclass(frozen=True, slots=True)
class Triaged:
    verdict: Verdict
    line: int
    key: str
    #: None when the row was recognised by its fingerprint and never rendered.
    job: PreparedJob | None
    fingerprint: str | None
    previous: Known | None = None
    #: Sent before with another body under the same key.
    changed: bool = False


@dataclass
class RowCounts:
    """How the rows of a file were judged: what ``run`` and ``run --dry-run`` report."""

    read: int = 0
    new: int = 0
    already_done: int = 0
    invalid: int = 0
    #: Of ``invalid``: rows an earlier run recorded invalid, unchanged since.
    invalid_unchanged: int = 0
    duplicates: int = 0
    changed: int = 0
    not_resent: int = 0
    held_by_limit: int = 0

    def add(self, t: Triaged) -> None:
        self.read += 1
        if t.verdict is Verdict.NEW:
            self.new += 1
        elif t.verdict is Verdict.ALREADY_DONE:
            self.already_done += 1
        elif t.verdict is Verdict.NOT_RESENT:
            self.not_resent += 1
        elif t.verdict is Verdict.INVALID:
            self.invalid += 1
        else:
            self.duplicates += 1
        self.changed += t.changed


def row_fingerprint(salt: bytes, row: Row) -> str | None:
    """A digest of everything a row's request depends on: the salt and the row's values.

    The salt covers the template's bytes and the options that shape a body, so an
    unchanged row under an unchanged template is recognised with no rendering.
    """
    if row.error is not None:
        return None
    # repr, not json.dumps: a third of the cost, and as deterministic for plain data.
    return hashlib.blake2b(salt + repr(row.values).encode(), digest_size=16).hexdigest()


class Triage:
    """Judges rows a chunk at a time, remembering the keys seen earlier in the file."""

    def __init__(self, ledger: Ledger | None, preparer: Preparer, salt: bytes) -> None:
        self._ledger = ledger
        # Bodies carry the ledger's campaign id; a dry run on an older ledger (read-only,
        # so never given one) or on none makes bodies without an engine callback_id.
        self._preparer = preparer.for_campaign(ledger.campaign_id) if ledger else preparer
        self._salt = salt
        self._seen = Repeats()
        self._fingerprints = ledger is not None and ledger.has_fingerprints

    def sort(self, rows: list[Row]) -> list[Triaged]:
        prints = [row_fingerprint(self._salt, row) for row in rows]
        submitted: dict[str, str] = {}
        if self._ledger is not None and self._fingerprints:
            submitted = self._ledger.submitted_rows([p for p in prints if p is not None])
        out: list[Triaged] = []
        rendered: list[tuple[PreparedJob, str | None]] = []
        for row, fingerprint in zip(rows, prints, strict=True):
            key = submitted.get(fingerprint) if fingerprint else None
            if key is None:
                rendered.append((self._preparer.prepare(row), fingerprint))
                continue
            # Seen before, unchanged, and its job submitted: no rendering needed.
            verdict = Verdict.DUPLICATE if self._seen.key_seen(key) else Verdict.ALREADY_DONE
            out.append(Triaged(verdict, row.line, key, None, fingerprint))
        fresh: list[tuple[PreparedJob, str | None]] = []
        for job, fingerprint in rendered:
            if self._seen.key_seen(job.key):
                out.append(Triaged(Verdict.DUPLICATE, job.line, job.key, job, fingerprint))
            else:
                fresh.append((job, fingerprint))
        known = self._ledger.lookup([j.key for j, _ in fresh]) if self._ledger else {}
        for job, fingerprint in fresh:
            previous = known.get(job.key)
            if previous is not None and previous.status == "invalid":
                previous = None  # a run clears invalid rows first: a fixed row is new
            to_send = previous is None or previous.status == "pending"
            job = self._seen.callback_checked(job, refuse=to_send)
            out.append(self._judge(job, fingerprint, previous))
        out.sort(key=lambda t: t.line)
        return out

    @staticmethod
    def _judge(job: PreparedJob, fingerprint: str | None, previous: Known | None) -> Triaged:
        if not job.valid:
            return Triaged(Verdict.INVALID, job.line, job.key, job, fingerprint, previous)
        if previous is None or previous.status == "pending":
            return Triaged(Verdict.NEW, job.line, job.key, job, fingerprint, previous)
        verdict = Verdict.ALREADY_DONE if previous.status == "submitted" else Verdict.NOT_RESENT
        changed = not _same_request(job, previous)
        return Triaged(verdict, job.line, job.key, job, fingerprint, previous, changed)


def _same_request(job: PreparedJob, previous: Known) -> bool:
    """Whether the row still renders the request the job was sent with.

    The campaign id in a callback_id is not the row's: a job sent before its ledger had
    a campaign id carries the bare key (or the template's bare callback_id, as every job
    did before the campaign id was added to those), and a dry run on such a ledger none
    of the engine's at all. The body is compared as it was sent, with that job's own
    callback_id; a template's callback_id that changed is a changed request.
    """
    if previous.request_sha256 in (None, job.sha256):
        return True
    sent_with = previous.callback_id
    if sent_with is None or sent_with == job.callback_id:
        return False
    if not job.engine_callback and sent_with != job.own_callback:
        return False
    return job.sha256_with_callback(sent_with) == previous.request_sha256
