"""The throughput baseline: the plainest aiohttp loop a user might write instead.

``python -m tests.bench_baseline BASE_URL BODIES.jsonl CONCURRENCY`` reads one V2
body a line, posts each once with ``CONCURRENCY`` workers on one session, and
prints ``{"sent": N, "ok": N}``. No ledger, no validation, no rate limit, no
retries: the upper bound the engine's bookkeeping is compared with.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp


async def post_all(base_url: str, bodies: list[dict[str, Any]], concurrency: int) -> int:
    url = base_url.rstrip("/") + "/v2/video/generate"
    pending = iter(bodies)
    ok = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok
        # One iterator shared by every worker: each body is taken exactly once.
        for body in pending:
            async with session.post(url, json=body) as response:
                answer = await response.json()
                if response.status == 200 and answer["data"]["video_id"]:
                    ok += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"X-Api-Key": "bench-not-a-key"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok


def main(argv: list[str]) -> None:
    base_url, bodies_path, concurrency = argv[0], Path(argv[1]), int(argv[2])
    with bodies_path.open(encoding="utf-8") as f:
        bodies = [json.loads(line) for line in f]
    ok = asyncio.run(post_all(base_url, bodies, concurrency))
    print(json.dumps({"sent": len(bodies), "ok": ok}))


if __name__ == "__main__":
    main(sys.argv[1:])
