"""Ledger reads about jobs once sent: their renders (poll, render slots, a run's
summary), the video ids a ledger holds (reconcile), every key (download's names).
A base of ``Ledger``, kept apart so each module stays one size to read."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from engine.ledger.database import Database, Row

# Ids per ``IN (...)`` look-up, within SQLite's limit on bound parameters.
_LOOKUP_CHUNK = 900


class RenderReads:
    _db: Database

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        """The first row of a query, or None."""
        rows = self._db.execute(sql, params)
        return rows[0] if rows else None

    def keys(self) -> Iterator[str]:
        for (key,) in self._db.stream("SELECT key FROM jobs"):
            yield key

    def completed_counts(self) -> tuple[int, int]:
        """(completed, not completed) among submitted jobs that have a video."""
        completed, rest = self._db.execute(
            "SELECT count(*) FILTER (WHERE video_status = 'completed'), "
            "count(*) FILTER (WHERE coalesce(video_status, '') != 'completed') "
            "FROM jobs WHERE status = 'submitted' AND video_id IS NOT NULL"
        )[0]
        return int(completed), int(rest)

    def render_counts(self) -> dict[str, int]:
        """Submitted jobs by render state: ``completed``, ``failed``, and ``rendering``
        for the rest (not yet known to have ended)."""
        counts = {"completed": 0, "failed": 0, "rendering": 0}
        for state, n in self._db.execute(
            "SELECT video_status, count(*) FROM jobs WHERE status = 'submitted' "
            "GROUP BY video_status"
        ):
            counts[state if state in ("completed", "failed") else "rendering"] += n
        return counts

    def failed_renders(self, limit: int) -> list[tuple[str, str | None]]:
        """(key, error) of up to ``limit`` jobs whose render failed, in line order."""
        rows = self._db.execute(
            "SELECT key, error FROM jobs WHERE status = 'submitted' AND video_status = 'failed' "
            "ORDER BY line, key LIMIT ?",
            (limit,),
        )
        return [(key, error) for key, error in rows]

    def known_video_ids(self, video_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(video_ids), _LOOKUP_CHUNK):
            chunk = video_ids[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                r[0]
                for r in self._db.execute(
                    f"SELECT video_id FROM jobs WHERE video_id IN ({marks})", chunk
                )
            )
        return found

    def renders_to_check(
        self, after: str, limit: int, since: float = 0.0
    ) -> list[tuple[str, str, str | None, str]]:
        """(key, video_id, callback_id, api) of submitted jobs whose render is not final,
        in key order after ``after``: a page at a time, so polling a million jobs never
        holds them all. ``since``: only jobs last sent at or after this time
        (``time.time``)."""
        rows = self._db.execute(
            "SELECT key, video_id, callback_id, api FROM jobs WHERE key > ? "
            "AND status = 'submitted' AND video_id IS NOT NULL "
            "AND (video_status IS NULL OR video_status NOT IN ('completed', 'failed')) "
            "AND coalesce(attempted_at, 0) >= ? ORDER BY key LIMIT ?",
            (after, since, limit),
        )
        return [(key, video_id, callback_id, api) for key, video_id, callback_id, api in rows]
