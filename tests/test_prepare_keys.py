"""Job keys: canonical JSON hashing and the compact duplicate filter."""

from __future__ import annotations

import hashlib
import re

import pytest

from engine.prepare import DuplicateFilter, body_sha256, canonical_json
from engine.prepare.keys import engine_callback_id


def test_equal_bodies_hash_equal_whatever_their_key_order() -> None:
    assert canonical_json({"b": 1, "a": {"y": "é", "x": 2}}) == '{"a":{"x":2,"y":"é"},"b":1}'
    assert body_sha256({"b": 1, "a": 2}) == body_sha256({"a": 2, "b": 1})
    assert body_sha256({"a": 1}) != body_sha256({"a": 1.5})


def test_the_filter_reports_the_second_sighting_of_each_key_only() -> None:
    seen = DuplicateFilter()
    keys = [f"key-{i}" for i in range(5000)]

    assert [seen.seen_before(k) for k in keys] == [False] * len(keys)
    assert [seen.seen_before(k) for k in keys] == [True] * len(keys)
    assert len(seen) == len(keys)
    assert not seen.seen_before("key-5000")


def test_the_filter_stays_at_most_sixteen_bytes_a_key() -> None:
    seen = DuplicateFilter()
    for i in range(20_000):
        seen.seen_before(str(i))

    assert seen._table.itemsize * len(seen._table) <= 16 * 20_000 * 2


def test_colliding_slots_probe_onwards(monkeypatch: pytest.MonkeyPatch) -> None:
    # Digests that all land in slot 0 of the starting table, distinct as numbers.
    monkeypatch.setattr(DuplicateFilter, "_digest", staticmethod(lambda key: (int(key) + 1) << 20))
    seen = DuplicateFilter()

    assert [seen.seen_before(str(i)) for i in range(600)] == [False] * 600
    assert all(seen.seen_before(str(i)) for i in range(600))


def test_an_engine_callback_id_is_the_campaign_and_a_short_plain_key_as_it_is() -> None:
    assert engine_callback_id("0a1b2c3d4e5f", "c-002") == "0a1b2c3d4e5f:c-002"
    assert engine_callback_id("0a1b2c3d4e5f", "a.b:c_D-9") == "0a1b2c3d4e5f:a.b:c_D-9"
    assert engine_callback_id("ffffffffffff", "c-002") == "ffffffffffff:c-002"


@pytest.mark.parametrize("key", ["x" * 65, "Zoë", "a b", "a/b", "line\n2", ""])
def test_a_long_or_unusual_key_is_hashed_into_the_idempotency_charset(key: str) -> None:
    made = engine_callback_id("0a1b2c3d4e5f", key)

    assert made == "0a1b2c3d4e5f." + hashlib.sha256(key.encode()).hexdigest()[:32]
    assert re.fullmatch(r"[A-Za-z0-9_\-:.]{1,255}", made)


def test_a_plain_key_spelling_a_hash_never_meets_the_hashed_key() -> None:
    long_key = "x" * 65
    spelled = hashlib.sha256(long_key.encode()).hexdigest()[:32]

    assert engine_callback_id("c1", spelled) != engine_callback_id("c1", long_key)
    assert engine_callback_id("c1", "x" * 64) == "c1:" + "x" * 64
