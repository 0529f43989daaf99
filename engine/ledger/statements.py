"""The statements the ledger's writer batches: each a (SQL, parameters) pair.

Built here, run by ``Ledger.transaction`` (grouped by ``BatchWriter``); kept apart from
the reads in ``store`` so each module says one thing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from engine.errors import one_line
from engine.ledger.database import Statement as Statement
from engine.ledger.store import HELD_BY, SET_META, Status, Videos


def json_text(value: Any) -> str:
    """A row's values as JSON: orjson's spelling, at a tenth of the cost, wherever it
    can (json's where it cannot: an integer past 64 bits in a JSONL cell)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False)


_last_stamp: tuple[int, str] = (0, "")


def now_iso() -> str:
    """UTC now to the millisecond; formatted once per millisecond, as every statement asks."""
    global _last_stamp
    ms = time.time_ns() // 1_000_000
    if ms != _last_stamp[0]:
        stamp = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
        _last_stamp = (ms, stamp)
    return _last_stamp[1]


def set_videos(kind: Videos) -> Statement:
    """Whether this ledger's jobs are test videos or real ones (see ``require_videos``)."""
    return (SET_META, ("videos", kind))


def set_source_columns(columns: Sequence[str]) -> Statement:
    """The source columns in first-seen order: the export's leading columns."""
    return (SET_META, ("source_columns", json.dumps(list(columns), ensure_ascii=False)))


def set_last_run(record: Mapping[str, Any]) -> Statement:
    """What the latest run did (time, exit code, counts): one small row, shown by ``status``."""
    return (SET_META, ("last_run", json.dumps(dict(record), ensure_ascii=False)))


def error_text(error: str | None) -> str | None:
    """Every error the ledger keeps is one short line (an export cell, a log line)."""
    return None if error is None else one_line(error)


def insert_job(
    key: str,
    line: int,
    status: Status,
    source: dict[str, Any],
    sha256: str | None,
    error: str | None,
    fingerprint: str | None = None,
    api: str = "v2",
) -> Statement:
    return (
        "INSERT INTO jobs (key, line, status, request_sha256, error, updated_at, source, "
        "row_fingerprint, api) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key,
            line,
            status,
            sha256,
            error_text(error),
            now_iso(),
            json_text(source),
            fingerprint,
            api,
        ),
    )


def pending_now_invalid(
    key: str, line: int, source: dict[str, Any], error: str | None, fingerprint: str | None
) -> Statement:
    """A pending job whose row is invalid now (blanked, edited): it is never sent with the
    body an earlier attempt stored. Only ``pending`` (nothing was made) is replaced."""
    return (
        "UPDATE jobs SET status = 'invalid', line = ?, source = ?, error = ?, body = NULL, "
        "request_sha256 = NULL, row_fingerprint = ?, updated_at = ? "
        "WHERE key = ? AND status = 'pending'",
        (line, json_text(source), error_text(error), fingerprint, now_iso(), key),
    )


def refresh_pending(
    key: str,
    line: int,
    sha256: str,
    source: dict[str, Any],
    fingerprint: str | None,
    body: str,
    callback_id: str | None,
) -> Statement:
    """A pending job read again: the file's current body and values win, nothing was sent.

    A job that keeps a body to be resent (proven absent, or marked and never sent)
    takes the new one, and its callback_id: should the row then be held back and
    missing from the next file, the body resent is the one the ledger shows.
    """
    return (
        "UPDATE jobs SET line = ?, request_sha256 = ?, source = ?, row_fingerprint = ?, "
        "body = CASE WHEN body IS NULL THEN NULL ELSE ? END, "
        "callback_id = CASE WHEN body IS NULL THEN callback_id ELSE ? END, "
        "updated_at = ? WHERE key = ? AND status = 'pending'",
        (line, sha256, json_text(source), fingerprint, body, callback_id, now_iso(), key),
    )


def set_fingerprint(key: str, fingerprint: str) -> Statement:
    """Remember an unchanged row's fingerprint, so the next run skips it without rendering."""
    return ("UPDATE jobs SET row_fingerprint = ? WHERE key = ?", (fingerprint, key))


def insert_submitting(
    key: str,
    line: int,
    source: dict[str, Any],
    fingerprint: str | None,
    body: str,
    sha256: str,
    callback_id: str | None,
    attempted_at: float,
    service_offset: float | None = None,
    api: str = "v2",
    estimated_s: float | None = None,
) -> Statement:
    """A job seen for the first time, recorded and marked in one statement.

    What ``insert_job`` then ``mark_submitting`` would leave, for a third less work.
    ``estimated_s``: the video's length as estimated from its body (for the report).
    """
    return (
        "INSERT INTO jobs (key, line, status, request_sha256, updated_at, source, "
        "row_fingerprint, body, callback_id, attempted_at, service_offset, api, "
        "first_attempted_at, estimated_seconds) "
        "VALUES (?, ?, 'submitting', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            key,
            line,
            sha256,
            now_iso(),
            json_text(source),
            fingerprint,
            body,
            callback_id,
            attempted_at,
            service_offset,
            api,
            attempted_at,
            estimated_s,
        ),
    )


def mark_submitting(
    key: str,
    body: str,
    sha256: str,
    callback_id: str | None,
    attempted_at: float,
    service_offset: float | None = None,
    api: str = "v2",
    estimated_s: float | None = None,
) -> Statement:
    """``service_offset``: the service clock's lead over ours at ``attempted_at``, which
    puts the attempt on the service's clock whatever ours does before reconcile. The
    first attempt's time is kept: it starts the service's replay window (v3).
    ``estimated_s``: as for ``insert_submitting``."""
    return (
        "UPDATE jobs SET status = 'submitting', body = ?, request_sha256 = ?, callback_id = ?, "
        "attempted_at = ?, service_offset = ?, estimated_seconds = ?, error = NULL, "
        "updated_at = ?, api = ?, first_attempted_at = coalesce(first_attempted_at, ?) "
        "WHERE key = ?",
        (
            body,
            sha256,
            callback_id,
            attempted_at,
            service_offset,
            estimated_s,
            now_iso(),
            api,
            attempted_at,
            key,
        ),
    )


def _record_video(source: str, then: str, flagged_sent_at: str) -> str:
    """Set ``?1`` as job ``?2``'s video, unless another job holds it already.

    The service's video_ids are unique, so an answer (or a listing) giving a job the
    video of another job of the ledger is wrong about one of them: the job is then
    not recorded with it but left uncertain, its body kept, for reconcile to settle
    by its callback_id; the error names the video and the job holding it. One probe
    of the video_id index, inside the statement, so a batch of answers checks itself.
    """
    error = f"'{source} video_id ' || ?1 || ', which job ' || holder || ' {HELD_BY}; {then}'"
    return (
        "(status, video_id, error, body, sent_at) = (SELECT "
        "CASE WHEN holder IS NULL THEN 'submitted' ELSE 'uncertain' END, "
        "CASE WHEN holder IS NULL THEN ?1 END, "
        f"CASE WHEN holder IS NULL THEN NULL ELSE {error} END, "
        "CASE WHEN holder IS NULL THEN NULL ELSE jobs.body END, "
        f"CASE WHEN holder IS NULL THEN jobs.sent_at ELSE {flagged_sent_at} END "
        "FROM (SELECT (SELECT o.key FROM jobs AS o WHERE o.video_id = ?1 AND o.key <> ?2 "
        "LIMIT 1) AS holder) AS h)"
    )


_MARK_SUBMITTED = (
    "UPDATE jobs SET "
    + _record_video("the service answered with", "to be reconciled", "?4")
    + ", attempts = ?3, updated_at = ?5 WHERE key = ?2"
)
_RECONCILED_FOUND = (
    "UPDATE jobs SET "
    + _record_video("reconcile found", "still uncertain", "jobs.sent_at")
    + ", updated_at = ?3 WHERE key = ?2 AND status IN ('uncertain', 'submitting')"
)


def mark_submitted(key: str, video_id: str, attempts: int) -> Statement:
    """The service's answer; flagged, the job's grace counts from the answer."""
    return (_MARK_SUBMITTED, (video_id, key, attempts, time.time(), now_iso()))


def mark_outcome(
    key: str, status: Status, attempts: int, error: str | None, sent_at: float | None = None
) -> Statement:
    """failed, uncertain or back to pending; the stored body stays for an uncertain resend.

    ``sent_at``: the last moment the request may have reached the service (uncertain).
    """
    keep_body = status in ("uncertain", "pending")
    return (
        "UPDATE jobs SET status = ?, attempts = ?, error = ?, updated_at = ?, "
        "sent_at = coalesce(?, sent_at)"
        + ("" if keep_body else ", body = NULL")
        + " WHERE key = ?",
        (status, attempts, error_text(error), now_iso(), sent_at, key),
    )


def reconciled_found(key: str, video_id: str) -> Statement:
    return (_RECONCILED_FOUND, (video_id, key, now_iso()))


def repoint_video(key: str, recorded: str, own: str) -> Statement:
    """Job ``key`` was recorded with ``recorded``, yet ``own`` is the video the service
    made for it (its status names the job's callback_id): the answer named the wrong
    video. The job takes its own, unless another job already holds that one; its render
    progress, which was the other video's, is dropped for the next poll to fill in.
    """
    error = (
        f"the service answered with video {recorded}, but its video is {own} "
        "(by callback_id); corrected by reconcile"
    )
    return (
        "UPDATE jobs SET video_id = ?1, video_status = NULL, video_url = NULL, "
        "thumbnail_url = NULL, error = ?4, updated_at = ?5 "
        "WHERE key = ?2 AND video_id = ?3 AND NOT EXISTS "
        "(SELECT 1 FROM jobs AS o WHERE o.video_id = ?1 AND o.key <> ?2)",
        (own, key, recorded, error_text(error), now_iso()),
    )


def not_its_video(key: str, video_id: str, owner: str) -> Statement:
    """The status of job ``key``'s video names another callback_id, ``owner``: the answer
    named a video made for someone else. The job goes back to ``uncertain`` without it,
    for reconcile to find its own video by its callback_id (or prove there is none)."""
    error = (
        f"the service answered with video {video_id}, which was made for callback_id "
        f"{owner!r}; to be reconciled"
    )
    return (
        "UPDATE jobs SET status = 'uncertain', video_id = NULL, video_status = NULL, "
        "video_url = NULL, thumbnail_url = NULL, error = ?, updated_at = ? "
        "WHERE key = ? AND video_id = ? AND status = 'submitted'",
        (error_text(error), now_iso(), key, video_id),
    )


def reconciled_absent(key: str) -> Statement:
    return (
        "UPDATE jobs SET status = 'pending', error = NULL, updated_at = ? "
        "WHERE key = ? AND status = 'uncertain'",
        (now_iso(), key),
    )


def in_flight_to_uncertain(now: float) -> Statement:
    """After a crash, every job caught in flight may or may not exist at the service.

    When its request left is unknown, only that it was before ``now``: the grace
    before it may be declared absent counts from there.
    """
    return (
        "UPDATE jobs SET status = 'uncertain', sent_at = ?, "
        "error = 'interrupted while in flight; to be reconciled', updated_at = ? "
        "WHERE status = 'submitting'",
        (now, now_iso()),
    )


def failed_to_pending() -> Statement:
    """``--retry-failed``: a ``failed`` job was refused by the service (or gave up before
    any video was made), so sending it once more cannot make a second video. As
    ``pending`` it is rendered afresh from its row, like any job not sent yet."""
    return (
        "UPDATE jobs SET status = 'pending', error = NULL, updated_at = ? WHERE status = 'failed'",
        (now_iso(),),
    )


def clear_invalid() -> Statement:
    """Invalid rows are re-judged on every run, so a fixed row is not stuck as invalid."""
    return ("DELETE FROM jobs WHERE status = 'invalid'", ())
