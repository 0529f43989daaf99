"""``download``: every completed video (and its captions, thumbnail) saved under a folder.

Each file is streamed to ``<name>.part``, its length checked against Content-Length,
flushed to disk, then renamed over the final name: a killed or cut-short download
never leaves a truncated file under a final name, and a re-run starts it over. A
stored URL that has expired (403/404 from the storage host, or a host no longer
there) is refreshed by one status call and tried once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Literal, Protocol, Self
from urllib.parse import urlsplit

import aiohttp
from aiolimiter import AsyncLimiter

from engine.api.port import ApiRouter, RenderStatus, api_name
from engine.delivery.filenames import assign_stems
from engine.errors import AbortRun, ConfigError, EngineError
from engine.ledger import render_writes
from engine.ledger.poll import render_error, render_extras
from engine.ledger.store import JobRecord, Ledger
from engine.submitter.constants import DOWNLOAD_CHUNK_BYTES

log = logging.getLogger(__name__)

Kind = Literal["video", "captions", "thumbnail"]
KINDS: tuple[Kind, ...] = ("video", "captions", "thumbnail")
_EXTENSIONS: dict[Kind, tuple[str, ...]] = {
    "video": (".mp4",),
    # The status's subtitle_url (v1's caption_url); .srt unless the URL says .vtt.
    "captions": (".srt", ".vtt"),
    "thumbnail": (".jpg",),
}
PART_SUFFIX = ".part"
# Completed jobs read from the ledger per page.
_PAGE = 500


class DiskError(ConfigError):
    """The folder cannot be written (full disk, no permission): the run stops, exit 2."""


class _Stale(Exception):
    """The storage host refused a stored URL (expired) or is no longer there."""


class _Failed(Exception):
    """This file could not be fetched this time; the next run tries again."""


class Progress(Protocol):
    def set_files(self, total: int) -> None: ...
    def add_bytes_total(self, size: int) -> None: ...
    def advance_bytes(self, size: int) -> None: ...
    def file_done(self) -> None: ...


class NoProgress:
    def set_files(self, total: int) -> None:
        pass

    def add_bytes_total(self, size: int) -> None:
        pass

    def advance_bytes(self, size: int) -> None:
        pass

    def file_done(self) -> None:
        pass


@dataclass(slots=True)
class DownloadResult:
    saved: int = 0
    #: Already on disk, whole, from an earlier run.
    skipped: int = 0
    #: Jobs whose render is not completed (or that have no video): nothing to fetch.
    not_completed: int = 0
    #: Files that could not be fetched this time (the log says why).
    errors: int = 0
    #: Files the service has no URL for (captions not asked for when rendering).
    unavailable: int = 0
    bytes: int = 0


class PartFile:
    """The ``.part`` file a download is written to; every OS error is a ``DiskError``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0
        self._file: IO[bytes] | None = None

    def __enter__(self) -> Self:
        try:
            self._file = self.path.open("wb")
        except OSError as err:
            raise _disk_error(self.path, err) from err
        return self

    def write(self, data: bytes) -> None:
        assert self._file is not None
        try:
            self._file.write(data)
        except OSError as err:
            raise _disk_error(self.path, err) from err
        self.written += len(data)

    def finish(self, target: Path) -> None:
        """Flush to disk and rename over ``target`` (atomic on one file system)."""
        assert self._file is not None
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            os.replace(self.path, target)
        except OSError as err:
            raise _disk_error(target, err) from err

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None and not self._file.closed:
            with contextlib.suppress(OSError):
                self._file.close()
        with contextlib.suppress(OSError):
            self.path.unlink(missing_ok=True)


def _disk_error(path: Path, err: OSError) -> DiskError:
    return DiskError(
        f"cannot write {path}: {err.strerror or err}. Free space on the disk, or give "
        "--to a folder you can write to, and run again: files already saved are kept "
        "and skipped."
    )


def _extension(kind: Kind, url: str | None) -> str:
    choices = _EXTENSIONS[kind]
    path = urlsplit(url).path.lower() if url else ""
    return next((ext for ext in choices if path.endswith(ext)), choices[0])


class Downloader:
    """Saves the files of every completed job of ``ledger`` under ``folder``.

    ``status`` refreshes expired URLs (and gives caption URLs, which the ledger does not
    keep), one call per job at most, paced by ``limiter``; ``session`` fetches media and
    must not carry the API key. Raises ``DiskError`` when the folder cannot be written,
    ``AbortRun`` when the service refuses the key.
    """

    def __init__(
        self,
        ledger: Ledger,
        status: ApiRouter,
        session: aiohttp.ClientSession,
        limiter: AsyncLimiter,
        folder: Path,
        what: Iterable[Kind] = ("video",),
        *,
        concurrency: int = 4,
        progress: Progress | None = None,
    ) -> None:
        self._ledger = ledger
        self._status = status
        self._session = session
        self._limiter = limiter
        self._folder = folder
        self._what = tuple(k for k in KINDS if k in set(what))
        self._concurrency = max(concurrency, 1)
        self._progress = progress or NoProgress()
        self.result = DownloadResult()

    async def run(self) -> DownloadResult:
        try:
            self._folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _disk_error(self._folder, err) from err
        if not os.access(self._folder, os.W_OK | os.X_OK):
            raise _disk_error(self._folder, PermissionError(13, "Permission denied"))
        # Every key of the ledger, not only the completed ones: a name then stays the
        # same when other jobs complete later.
        stems = assign_stems(self._ledger.keys())
        completed, self.result.not_completed = self._ledger.completed_counts()
        self._progress.set_files(completed * len(self._what))
        queue: asyncio.Queue[JobRecord | None] = asyncio.Queue(self._concurrency * 2)
        stop: EngineError | None = None
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._feed(queue))
                for _ in range(self._concurrency):
                    group.create_task(self._work(queue, stems))
        except* (DiskError, AbortRun) as errors:
            stop = errors.exceptions[0]  # type: ignore[assignment]
        if stop is not None:
            raise stop
        return self.result

    async def _feed(self, queue: asyncio.Queue[JobRecord | None]) -> None:
        after = ""
        while page := self._ledger.completed_after(after, _PAGE):
            for job in page:
                await queue.put(job)
            after = page[-1].key
        # Not in a finally: after a failure the task group cancels the workers, and a
        # cancelled feeder waiting on a full queue would wait forever.
        for _ in range(self._concurrency):
            await queue.put(None)

    async def _work(self, queue: asyncio.Queue[JobRecord | None], stems: dict[str, str]) -> None:
        while (job := await queue.get()) is not None:
            await _Job(self, job, stems[job.key]).run()

    async def refresh(self, job: JobRecord) -> RenderStatus:
        assert job.video_id is not None
        async with self._limiter:
            try:
                status = await self._status.for_api(api_name(job.api)).video_status(job.video_id)
            except AbortRun:
                raise
            except EngineError as err:
                raise _Failed(f"status call failed: {err}") from err
        self._ledger.transaction(
            [
                render_writes.render_update(
                    job.key,
                    status.state,
                    status.video_url,
                    status.thumbnail_url,
                    render_error(status),
                    render_extras(status),
                )
            ]
        )
        return status

    async def fetch(self, url: str, target: Path) -> int:
        """Stream ``url`` to ``target`` through its ``.part`` file; the bytes saved."""
        progress = self._progress
        try:
            async with self._session.get(url) as answer:
                if answer.status in (403, 404):
                    raise _Stale(f"HTTP {answer.status}")
                if answer.status >= 300:
                    raise _Failed(f"HTTP {answer.status} from {urlsplit(url).netloc}")
                expected = answer.content_length
                if expected is not None:
                    progress.add_bytes_total(expected)
                with PartFile(target.with_name(target.name + PART_SUFFIX)) as part:
                    async for chunk in answer.content.iter_chunked(DOWNLOAD_CHUNK_BYTES):
                        part.write(chunk)
                        progress.advance_bytes(len(chunk))
                    if expected is not None and part.written != expected:
                        raise _Failed(f"cut short: {part.written} of {expected} bytes arrived")
                    part.finish(target)
                    return part.written
        except aiohttp.ClientConnectorError as err:
            raise _Stale(f"cannot connect to {urlsplit(url).netloc}") from err
        except (aiohttp.ClientError, TimeoutError) as err:
            raise _Failed(f"{type(err).__name__} from {urlsplit(url).netloc}") from err


class _Job:
    """One job's files: each fetched from its stored URL, refreshed at most once."""

    def __init__(self, owner: Downloader, job: JobRecord, stem: str) -> None:
        self._owner = owner
        self._job = job
        self._stem = stem
        self._fresh: RenderStatus | None = None
        self._refresh_failed: _Failed | None = None

    async def _refresh(self) -> None:
        # One status call per job at most, even when it fails: the other files of the
        # job wait for the next run rather than ask again.
        if self._refresh_failed is not None:
            raise self._refresh_failed
        try:
            self._fresh = await self._owner.refresh(self._job)
        except _Failed as err:
            self._refresh_failed = err
            raise

    def _url(self, kind: Kind) -> str | None:
        source = self._fresh or self._job
        if kind == "video":
            return source.video_url
        if kind == "thumbnail":
            return source.thumbnail_url
        return self._fresh.subtitle_url if self._fresh is not None else None

    def _done(self, kind: Kind) -> bool:
        folder, job = self._owner._folder, self._job
        if kind == "video":
            path = folder / (self._stem + ".mp4")
            if job.file_path != str(path) or job.file_bytes is None:
                return False
            with contextlib.suppress(OSError):
                return path.stat().st_size == job.file_bytes
            return False
        return any((folder / (self._stem + ext)).is_file() for ext in _EXTENSIONS[kind])

    async def run(self) -> None:
        result = self._owner.result
        for kind in self._owner._what:
            if self._done(kind):
                result.skipped += 1
                self._owner._progress.file_done()
                continue
            try:
                await self._save(kind)
            except _Failed as err:
                result.errors += 1
                log.warning("%s of job %s not saved: %s", kind, self._job.key, err)

    async def _save(self, kind: Kind) -> None:
        owner, result = self._owner, self._owner.result
        if self._url(kind) is None and self._fresh is None:
            await self._refresh()
        for last_try in (self._fresh is not None, True):
            url = self._url(kind)
            if url is None:
                result.unavailable += 1
                return
            target = owner._folder / (self._stem + _extension(kind, url))
            try:
                size = await owner.fetch(url, target)
                break
            except _Stale as err:
                if last_try:
                    raise _Failed(f"{err} even after a fresh URL") from err
                await self._refresh()
        result.saved += 1
        result.bytes += size
        owner._progress.file_done()
        if kind == "video":
            owner._ledger.transaction([render_writes.record_file(self._job.key, str(target), size)])
