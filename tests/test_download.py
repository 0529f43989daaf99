"""download: completed videos saved under safe names, whole or not at all."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiolimiter import AsyncLimiter

from engine.api.client import HeyGenClient
from engine.delivery.download import DiskError, Downloader, DownloadResult, Kind, PartFile
from engine.errors import KeyRefused, RequestTimeout
from engine.ledger.poll import poll_once
from engine.ledger.statements import Statement
from engine.ledger.store import JobRecord, Ledger
from engine.sandbox import SandboxConfig, running_sandbox
from engine.sandbox.media import fake_media
from engine.sandbox.runner import RunningSandbox
from tests.conftest import LedgerSpec
from tests.test_reconcile import T0, job
from tests.test_sandbox import FakeClock, make_body

HOSTILE = ["c-001", "../escape", "CON", "a/b", "a_b", "x" * 300, "Jos\u00e9"]


def limiter() -> AsyncLimiter:
    return AsyncLimiter(10_000, 1)


@asynccontextmanager
async def campaign(
    store: LedgerSpec, keys: list[str], lifetime_s: float = 3600, rendering: int = 0
) -> AsyncIterator[tuple[Ledger, HeyGenClient, RunningSandbox, FakeClock]]:
    """A ledger whose ``keys`` are completed and polled (URLs stored), plus ``rendering``
    jobs still rendering; the sandbox's clock is the test's."""
    clock = FakeClock(T0)
    config = SandboxConfig(render_seconds=100, media_url_lifetime_s=lifetime_s)
    async with (
        running_sandbox(config, clock=clock) as sandbox,
        HeyGenClient(sandbox.base_url, None) as client,
    ):
        ledger = store.open()
        work: list[Statement] = []
        for i, key in enumerate(keys):
            video_id = await client.create_video(make_body(f"cb{i}"))
            work += job(key, "submitted", line=i + 1, callback_id=f"cb{i}", video_id=video_id)
        clock.now += 150
        for i in range(rendering):
            video_id = await client.create_video(make_body(f"late{i}"))
            late = f"late{i}"
            work += job(late, "submitted", line=100 + i, callback_id=late, video_id=video_id)
        work += job("never-sent", "pending", line=200)
        ledger.transaction(work)
        await poll_once(ledger, client, limiter())
        try:
            yield ledger, client, sandbox, clock
        finally:
            ledger.close()


async def download(
    ledger: Ledger, client: HeyGenClient, folder: Path, what: tuple[Kind, ...] = ("video",)
) -> DownloadResult:
    async with aiohttp.ClientSession(auto_decompress=False) as media:
        return await Downloader(ledger, client, media, limiter(), folder, what).run()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


async def test_saves_every_completed_video_under_a_safe_name(
    store: LedgerSpec, tmp_path: Path
) -> None:
    folder = tmp_path / "videos"
    async with campaign(store, HOSTILE, rendering=2) as (ledger, client, _, _):
        result = await download(ledger, client, folder, ("video", "thumbnail"))
        records = [ledger.get(key) for key in HOSTILE]
        late = ledger.get("late0")
    assert (result.saved, result.not_completed, result.errors) == (2 * len(HOSTILE), 2, 0)
    assert late is not None
    assert late.file_path is None
    check_saved(folder, records)
    names = {Path(r.file_path).name for r in records if r is not None and r.file_path}
    assert len(names) == len(HOSTILE)
    assert {"c-001.mp4", "_CON.mp4"} <= names


def check_saved(folder: Path, records: list[JobRecord | None]) -> None:
    for record in records:
        assert record is not None
        assert record.video_id is not None
        assert record.file_path is not None
        path = Path(record.file_path)
        assert path.parent == folder  # nothing escaped the folder
        assert path.read_bytes() == fake_media(record.video_id, "mp4")
        assert record.file_bytes == path.stat().st_size
        assert path.with_suffix(".jpg").read_bytes() == fake_media(record.video_id, "jpg")
    assert leftovers(folder) == []


async def test_a_rerun_skips_whole_files_and_fetches_the_others_again(
    store: LedgerSpec, tmp_path: Path
) -> None:
    folder = tmp_path / "videos"
    async with campaign(store, ["k1", "k2", "k3"]) as (ledger, client, sandbox, _):
        await download(ledger, client, folder)
        (folder / "k1.mp4").rename(folder / "k1.mp4.part")  # killed mid-file
        (folder / "k2.mp4").write_bytes(b"cut")  # damaged since
        calls = sandbox.state.counters.status_requests
        again = await download(ledger, client, folder)
        assert (again.saved, again.skipped) == (2, 1)
        assert sandbox.state.counters.status_requests == calls  # stored URLs still good
        for key in ("k1", "k2"):
            record = ledger.get(key)
            assert record is not None
            assert record.video_id is not None
            assert (folder / f"{key}.mp4").read_bytes() == fake_media(record.video_id, "mp4")
        assert leftovers(folder) == []


async def test_an_expired_url_is_refreshed_by_one_status_call(
    store: LedgerSpec, tmp_path: Path
) -> None:
    folder = tmp_path / "videos"
    async with campaign(store, ["k1", "k2"], lifetime_s=60) as (ledger, client, sandbox, clock):
        clock.now += 120  # both stored URLs (video and thumbnail) now answer 403
        calls = sandbox.state.counters.status_requests
        result = await download(ledger, client, folder, ("video", "thumbnail"))
        assert (result.saved, result.errors) == (4, 0)
        assert sandbox.state.counters.status_requests == calls + 2  # one per job
        record = ledger.get("k1")
        assert record is not None
        assert record.video_url is not None
        assert f"expires={int(clock.now) + 60}" in record.video_url  # the fresh URL is kept


async def test_captions_come_from_a_status_call(store: LedgerSpec, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    async with campaign(store, ["k1"]) as (ledger, client, _, _):
        result = await download(ledger, client, folder, ("captions",))
    # The demo body asks for no captions: the service has none to give.
    assert (result.saved, result.unavailable, result.errors) == (0, 1, 0)


class FullDisk:
    """A file whose writes fail as a full disk's do."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


async def test_a_full_disk_stops_the_run_and_leaves_no_file(
    store: LedgerSpec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "videos"
    real_write = PartFile.write

    def write(self: PartFile, data: bytes) -> None:
        if self.written:  # the disk fills up after the first chunk
            self._file = FullDisk(self._file)
        real_write(self, data)

    monkeypatch.setattr(PartFile, "write", write)
    async with campaign(store, ["k1", "k2", "k3"]) as (ledger, client, _, _):
        with pytest.raises(DiskError, match=r"No space left on device.*Free space"):
            await download(ledger, client, folder)
        assert list(folder.iterdir()) == []  # no final name, no .part
        for key in ("k1", "k2", "k3"):
            record = ledger.get(key)
            assert record is not None
            assert record.file_path is None


async def test_a_folder_that_cannot_be_made_is_a_disk_error(
    store: LedgerSpec, tmp_path: Path
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    async with campaign(store, ["k1"]) as (ledger, client, _, _):
        with pytest.raises(DiskError, match="give --to a folder"):
            await download(ledger, client, blocker / "videos")


@asynccontextmanager
async def short_server(claimed: int, sent: bytes) -> AsyncIterator[str]:
    """A storage host that promises ``claimed`` bytes, sends ``sent`` and hangs up."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(claimed)})
        await response.prepare(request)
        await response.write(sent)
        assert request.transport is not None
        request.transport.close()
        return response

    app = web.Application()
    app.router.add_get("/v.mp4", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}/v.mp4"
    finally:
        await runner.cleanup()


async def test_a_download_cut_short_is_never_renamed(store: LedgerSpec, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    async with (
        campaign(store, ["k1"]) as (ledger, client, _, _),
        short_server(1000, b"x" * 400) as url,
    ):
        ledger.transaction([("UPDATE jobs SET video_url = ? WHERE key = 'k1'", (url,))])
        result = await download(ledger, client, folder)
        assert (result.saved, result.errors) == (0, 1)
        assert list(folder.iterdir()) == []
        record = ledger.get("k1")
        assert record is not None
        assert record.file_path is None


def test_the_progress_bar_counts_bytes_and_files() -> None:
    from engine.delivery.progress import DownloadBar

    bar = DownloadBar()
    bar.set_files(2)
    bar.add_bytes_total(100)
    bar.add_bytes_total(50)
    bar.advance_bytes(120)
    bar.file_done()
    [task] = bar._bar.tasks
    assert (task.total, task.completed, task.fields["files"]) == (150, 120, "1/2 files")


class RefusedKey:
    def for_api(self, api: str) -> RefusedKey:
        return self

    async def video_status(self, video_id: str) -> Any:
        raise KeyRefused(401, None, "unauthorized", "Invalid API key")


async def test_a_refused_key_stops_the_download(store: LedgerSpec, tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    async with campaign(store, ["k1", "k2"], lifetime_s=60) as (ledger, _, _, clock):
        clock.now += 120  # stored URLs expired: a status call is needed, and refused
        async with aiohttp.ClientSession() as media:
            downloader = Downloader(ledger, RefusedKey(), media, limiter(), folder)
            with pytest.raises(KeyRefused):
                await downloader.run()
    assert leftovers(folder) == []


class Unreachable:
    def for_api(self, api: str) -> Unreachable:
        return self

    def __init__(self) -> None:
        self.calls = 0

    async def video_status(self, video_id: str) -> Any:
        self.calls += 1
        raise RequestTimeout("no answer in time")


async def test_a_failed_refresh_is_not_asked_again_for_the_same_job(
    store: LedgerSpec, tmp_path: Path
) -> None:
    folder = tmp_path / "videos"
    status = Unreachable()
    async with campaign(store, ["k1"], lifetime_s=60) as (ledger, _, _, clock):
        clock.now += 120
        async with aiohttp.ClientSession() as media:
            downloader = Downloader(
                ledger, status, media, limiter(), folder, ("video", "thumbnail")
            )
            result = await downloader.run()
    assert (result.saved, result.errors, status.calls) == (0, 2, 1)
    assert leftovers(folder) == []
