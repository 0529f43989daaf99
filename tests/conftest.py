"""Shared fixtures: a zero-backoff switch, the fixed aioresponses, paths to the demo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses

from engine.submitter import retry

ROOT = Path(__file__).resolve().parent.parent
DEMO_CSV = ROOT / "jobs" / "demo.csv"
DEMO_TEMPLATE = ROOT / "jobs" / "demo-template.json"


class MockedResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 builds responses without the ``stream_writer`` that aiohttp
    3.14 requires (pnuckowski/aioresponses#289); a request it answers was never
    written, so a writer that reports no output is the truth."""

    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class FixedAioresponses(aioresponses):
    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", MockedResponse)
        super().add(*args, **kwargs)


@pytest.fixture
def http() -> Iterator[FixedAioresponses]:
    """Fake HTTP at the transport: every request is answered (or refused) by the test."""
    with FixedAioresponses() as mocked:
        yield mocked


@pytest.fixture
def no_backoff() -> Iterator[None]:
    retry.set_testing(True)
    yield
    retry.set_testing(False)
