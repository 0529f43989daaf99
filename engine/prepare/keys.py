"""Job keys and body fingerprints."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(body: Any) -> str:
    """One spelling per body, so equal bodies hash equal whatever their key order."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def body_sha256(body: Any) -> str:
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


class DuplicateFilter:
    """Remembers the keys seen in this file in 8 bytes of hash each.

    A set of full key strings would grow to hundreds of MB on a 1,000,000-row
    file; 64-bit digests keep it a fraction of that, and a false match needs a
    64-bit collision among the file's own keys.
    """

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def seen_before(self, key: str) -> bool:
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
        if digest in self._seen:
            return True
        self._seen.add(digest)
        return False
