"""Child processes for the benchmarks: the sandbox server and measured command runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.bench_data import KEY_COLUMN, REPO, TEMPLATE

CLI = (sys.executable, "-m", "engine")
# Any key will do for the sandbox; it never checks one unless told to.
CLIENT_ENV = {"HEYGEN_API_KEY": "bench-not-a-key"}
RUN_TIMEOUT_S = 900.0


def progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Measured:
    stdout: str
    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float

    def json(self) -> Any:
        return json.loads(self.stdout)


def measure(args: Sequence[str], env: dict[str, str] | None = None) -> Measured:
    """Run ``args`` to the end; its wall time and its own peak RSS (not any other child's).

    ``os.wait4`` gives the rusage of exactly this child, which ``RUSAGE_CHILDREN`` does
    not: that one is the maximum over every child reaped so far.
    """
    full_env = {**os.environ, **CLIENT_ENV, **(env or {})}
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, cwd=REPO, env=full_env)
        deadline = started + RUN_TIMEOUT_S
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                raise RuntimeError(f"{' '.join(args)} took longer than {RUN_TIMEOUT_S:.0f} s")
            time.sleep(0.01)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    # Linux reports ru_maxrss in KiB.
    cpu = usage.ru_utime + usage.ru_stime
    return Measured(text, proc.returncode, wall, cpu, usage.ru_maxrss / 1024)


class Sandbox:
    """``heygen-batch sandbox`` in its own process, so it never shares a loop with a client."""

    def __init__(self, proc: subprocess.Popen[str], base_url: str) -> None:
        self.proc = proc
        self.base_url = base_url

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(self.base_url + path, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def counters(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/_sandbox/counters")
        return result

    def reset(self) -> None:
        self._call("POST", "/_sandbox/reset")


@contextmanager
def sandbox(*flags: str) -> Iterator[Sandbox]:
    proc = subprocess.Popen(
        [*CLI, "sandbox", "--port", "0", *flags],
        stdout=subprocess.PIPE,
        cwd=REPO,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline().strip()
        if not first.startswith("Sandbox listening on "):
            raise RuntimeError(f"sandbox did not start: {first!r}")
        yield Sandbox(proc, first.rsplit(" ", 1)[1])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_args(jobs: Path, ledger: Path, base_url: str, rate: str, concurrency: int) -> list[str]:
    return [
        *CLI,
        "run",
        str(jobs),
        "--template",
        str(TEMPLATE),
        "--key-column",
        KEY_COLUMN,
        "--ledger",
        str(ledger),
        "--base-url",
        base_url,
        "--rate",
        rate,
        "--concurrency",
        str(concurrency),
        "--no-progress",
        "--json",
    ]
