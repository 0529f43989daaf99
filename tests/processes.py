"""Standalone processes the integration tests drive: the sandbox, and its counters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEYGEN_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@contextmanager
def standalone_sandbox(*flags: str, key: str | None = None) -> Iterator[str]:
    """``heygen-batch sandbox --port 0`` in a subprocess; yields its base URL."""
    env = environment(**({"HEYGEN_SANDBOX_KEY": key} if key else {}))
    process = subprocess.Popen(
        [sys.executable, "-m", "engine", "sandbox", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Sandbox listening on "), line
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def counters(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url + "/_sandbox/counters", timeout=10) as answer:
        result: dict[str, Any] = json.load(answer)
        return result
