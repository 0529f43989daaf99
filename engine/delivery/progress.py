"""``download``'s progress bar on a terminal: bytes (with speed) and files."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


class DownloadBar:
    """A rich progress bar on stderr; the byte total grows as each file's length is learnt."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._files = 0
        self._done = 0
        self._bar: Progress = Progress(
            TextColumn("downloading"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[files]}"),
            console=Console(stderr=True),
        )
        self._task: TaskID = self._bar.add_task("download", total=0, files="")

    def __enter__(self) -> Self:
        self._bar.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._bar.stop()

    def _show_files(self) -> None:
        self._bar.update(self._task, files=f"{self._done}/{self._files} files")

    def set_files(self, total: int) -> None:
        self._files = total
        self._show_files()

    def add_bytes_total(self, size: int) -> None:
        total = self._bar.tasks[0].total or 0
        self._bar.update(self._task, total=total + size)

    def advance_bytes(self, size: int) -> None:
        self._bar.advance(self._task, size)

    def file_done(self) -> None:
        self._done += 1
        self._show_files()
