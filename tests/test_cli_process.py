"""What the real ``heygen-batch`` process sets up before any command runs."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

import engine.cli
from engine.cli import GC_YOUNG_THRESHOLD, main


def test_the_process_freezes_start_up_objects_and_collects_young_ones_less_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, object] = {}

    def command(**kwargs: object) -> None:
        seen["threshold"] = gc.get_threshold()[0]
        seen["frozen"] = gc.get_freeze_count()

    monkeypatch.setattr(engine.cli, "cli", command)
    before = gc.get_threshold()
    try:
        main()
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    assert seen["threshold"] == GC_YOUNG_THRESHOLD
    assert isinstance(seen["frozen"], int)
    assert seen["frozen"] > 10_000  # pydantic, aiohttp and click, loaded at import


def test_start_up_leaves_the_sandbox_server_and_rich_unimported() -> None:
    """Every run starts a process; aiohttp's server half and rich cost it 70 ms it rarely
    needs (the sandbox command and a terminal's progress line import them when used)."""
    probe = "import sys, engine.cli; print(sorted({'aiohttp.web', 'rich'} & set(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
