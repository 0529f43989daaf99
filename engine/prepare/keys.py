"""Job keys and body fingerprints."""

from __future__ import annotations

import hashlib
import re
from array import array
from typing import Any

import orjson


def canonical_json(body: Any) -> str:
    """One spelling per body, so equal bodies hash equal whatever their key order.

    orjson spells it exactly as ``json.dumps(sort_keys=True, separators=(",", ":"),
    ensure_ascii=False)`` would, in a tenth of the time: it runs once per row.
    """
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS).decode()


def body_sha256(body: Any) -> str:
    return text_sha256(canonical_json(body))


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# A job key that may go into a callback_id as it is: readable, and within the charset
# of v3 idempotency keys (which will be made of the same two parts).
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_HASHED_KEY_CHARS = 32


def engine_callback_id(campaign: str, key: str) -> str:
    """The callback_id the engine sends for a job: made from its key when the template
    sets none, else from the template's (or a JSONL body's) own callback_id.

    It carries the ledger's campaign id, so two ledgers on one API key (two campaigns,
    a test run and a real one) never name a job alike at the service, and reconcile
    never takes another ledger's video for one of ours. A long or unusual key is
    hashed; the separator tells the two forms apart (a campaign id is [a-z0-9] only),
    so a plain key that spells a hash never meets a hashed one.
    """
    if _PLAIN_KEY.fullmatch(key):
        return f"{campaign}:{key}"
    return f"{campaign}.{text_sha256(key)[:_HASHED_KEY_CHARS]}"


def idempotency_key(campaign: str, key: str) -> str:
    """The ``Idempotency-Key`` every attempt of job ``key`` carries on v3.

    ``<campaign>:<sha256 of the key, hex>``: 77 characters of ``[0-9a-f:]`` for the
    engine's 12-character campaign ids, within HeyGen's rule (1-255 characters of
    ``A-Z a-z 0-9 _ - : .``, shared/HEYGEN-V3.md) whatever the key holds (emails,
    spaces, any Unicode, any length), and never equal for two jobs (a sha256 collision
    aside). The campaign keeps two ledgers on one API key apart, as in the callback_id.
    ``ValueError`` for a campaign id outside that character set or too long to fit.
    """
    made = f"{campaign}:{text_sha256(key)}"
    if not _IDEMPOTENCY_KEY.fullmatch(made):
        raise ValueError(f"campaign id {campaign!r} cannot make an Idempotency-Key")
    return made


_IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_\-:.]{1,255}")


class DuplicateFilter:
    """Remembers the keys seen in this file in 8 bytes of hash each (16 with lines).

    A set of key strings (or even of Python ints) costs 60-100 bytes a key, hundreds
    of MB on a 10,000,000-row file; an open-addressing table of 64-bit digests in
    one flat array costs 16 bytes a key at most (32 with the line of each key's first
    row). A false match needs a 64-bit collision among the file's own keys.
    """

    _MIN_SLOTS = 1 << 10

    def __init__(self, with_lines: bool = False) -> None:
        self._table = array("Q", bytes(8 * self._MIN_SLOTS))
        self._lines = array("Q", bytes(8 * self._MIN_SLOTS)) if with_lines else None
        self._mask = self._MIN_SLOTS - 1
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @staticmethod
    def _digest(key: str) -> int:
        digest = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
        # 0 marks an empty slot, so the one key hashing to 0 is stored as 1.
        return digest or 1

    def seen_before(self, key: str) -> bool:
        return self.first_line(key, 0) is not None

    def first_line(self, key: str, line: int) -> int | None:
        """None the first time ``key`` is seen (remembering ``line``), then that line
        (0 when lines are not kept)."""
        digest = self._digest(key)
        table = self._table
        mask = self._mask
        slot = digest & mask
        while True:
            held = table[slot]
            if held == digest:
                return self._lines[slot] if self._lines is not None else 0
            if held == 0:
                break
            slot = (slot + 1) & mask
        table[slot] = digest
        if self._lines is not None:
            self._lines[slot] = line
        self._count += 1
        if self._count * 2 > len(table):
            self._grow()
        return None

    def _grow(self) -> None:
        old, old_lines = self._table, self._lines
        size = len(old) * 2
        table = array("Q", bytes(8 * size))
        lines = array("Q", bytes(8 * size)) if old_lines is not None else None
        mask = size - 1
        for at, digest in enumerate(old):
            if digest:
                slot = digest & mask
                while table[slot]:
                    slot = (slot + 1) & mask
                table[slot] = digest
                if lines is not None and old_lines is not None:
                    lines[slot] = old_lines[at]
        self._table = table
        self._lines = lines
        self._mask = mask
