"""Job keys: canonical JSON hashing and the compact duplicate filter."""

from __future__ import annotations

import pytest

from engine.prepare import DuplicateFilter, body_sha256, canonical_json


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
