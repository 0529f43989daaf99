"""The ledger writes that follow a job after it is sent: its render as the service
reports it (poll, webhook, download), the file ``download`` saved, and one row per
request for the campaign report. Each a (SQL, parameters) pair, as in ``statements``."""

from __future__ import annotations

import time
from dataclasses import dataclass

from engine.errors import EngineError, RateLimited, StatusError, one_line
from engine.ledger.statements import Statement, error_text, now_iso


@dataclass(frozen=True, slots=True)
class RenderExtras:
    """What a status answer may tell of a render beyond its state and URLs (None: not
    given): v3's page and subtitles, a failed render's code and message, the video's
    length in seconds."""

    video_page_url: str | None = None
    subtitle_url: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    duration_s: float | None = None


def render_update(
    key: str,
    video_status: str,
    video_url: str | None,
    thumbnail_url: str | None,
    error: str | None,
    extras: RenderExtras = RenderExtras(),
) -> Statement:
    """The render's state and URLs as last answered (URLs expire: the latest win); a
    page URL or failure given once is kept; the first time it is seen ``completed`` or
    ``failed`` is kept too (``render_ended_at``, unix seconds: the report's render time),
    and the video's ``duration_s`` when the service gives one."""
    return (
        "UPDATE jobs SET video_status = ?1, video_url = ?2, thumbnail_url = ?3, "
        "video_page_url = coalesce(?4, video_page_url), subtitle_url = ?5, "
        "failure_code = coalesce(?6, failure_code), "
        "failure_message = coalesce(?7, failure_message), "
        "error = coalesce(?8, error), duration_s = coalesce(?9, duration_s), "
        "render_ended_at = CASE WHEN ?1 IN ('completed', 'failed') "
        "THEN coalesce(render_ended_at, ?10) END, updated_at = ?11 WHERE key = ?12",
        (
            video_status,
            video_url,
            thumbnail_url,
            extras.video_page_url,
            extras.subtitle_url,
            extras.failure_code,
            None if extras.failure_message is None else one_line(extras.failure_message),
            error_text(error),
            extras.duration_s,
            time.time(),
            now_iso(),
            key,
        ),
    )


def confirmed_render(
    key: str,
    video_status: str,
    video_url: str | None,
    thumbnail_url: str | None,
    error: str | None,
    extras: RenderExtras = RenderExtras(),
) -> Statement:
    """``render_update`` that never moves a final render (completed, failed) back: a
    webhook delivered late or twice must not undo what a later answer settled."""
    sql, params = render_update(key, video_status, video_url, thumbnail_url, error, extras)
    return (
        sql + " AND coalesce(video_status, '') NOT IN ('completed', 'failed')",
        params,
    )


def record_file(key: str, path: str, size: int) -> Statement:
    """Where ``download`` saved the job's video, and its length in bytes."""
    return (
        "UPDATE jobs SET file_path = ?, file_bytes = ?, updated_at = ? WHERE key = ?",
        (path, size, now_iso(), key),
    )


_ATTEMPT = (
    "INSERT INTO attempts (key, attempt, started_at, latency_ms, outcome, code, retry_after_s) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def record_attempt(
    key: str, attempt: int, started_at: float, latency_s: float, error: EngineError | None
) -> Statement:
    """One request of job ``key`` (its ``attempt``-th, counted over runs), started at unix
    ``started_at`` and answered ``latency_s`` later: ``ok``, ``http <status>`` with the
    service's error code (and a 429's Retry-After in seconds), or the class of the
    transport error (``RequestTimeout``, ``ConnectionDropped``, ...)."""
    code: str | None = None
    retry_after: float | None = None
    if error is None:
        outcome = "ok"
    elif isinstance(error, StatusError):
        outcome = f"http {error.status}"
        code = error.code
        if isinstance(error, RateLimited):
            retry_after = error.retry_after
    else:
        outcome = type(error).__name__
    return (_ATTEMPT, (key, attempt, started_at, latency_s * 1000.0, outcome, code, retry_after))
