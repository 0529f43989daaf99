"""download's file names: any key becomes a valid name, distinct from every other key's."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from engine.delivery.filenames import assign_stems, key_hash, safe_stem

WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"COM{n}" for n in range(1, 10)}
FORBIDDEN = set('<>:"/\\|?*')


def assert_valid(stem: str) -> None:
    name = stem + ".mp4.part"
    assert len(name.encode("utf-8")) <= 255
    assert stem not in {"", ".", ".."}
    assert not stem.startswith(".")
    assert stem == stem.rstrip(". ")
    assert not FORBIDDEN & set(stem)
    assert all(not unicodedata.category(c).startswith("C") for c in stem)
    assert stem.split(".")[0].upper() not in WINDOWS_RESERVED
    assert unicodedata.is_normalized("NFC", stem)


keys = st.text(min_size=1, max_size=400)


@given(st.lists(keys, min_size=1, max_size=30, unique=True))
def test_any_keys_get_valid_distinct_names(batch: list[str]) -> None:
    stems = assign_stems(batch)
    assert set(stems) == set(batch)
    for stem in stems.values():
        assert_valid(stem)
    # Distinct even where case does not count (NTFS, APFS by default).
    assert len({s.casefold() for s in stems.values()}) == len(batch)


@given(st.lists(keys, min_size=1, max_size=20, unique=True), st.randoms())
def test_names_do_not_depend_on_the_order_keys_come_in(batch: list[str], rnd: object) -> None:
    shuffled = list(batch)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert assign_stems(batch) == assign_stems(shuffled)


def test_hostile_keys() -> None:
    assert safe_stem("../../etc/passwd") == "_._.._etc_passwd"
    assert safe_stem("..") == "_"
    assert safe_stem("a/b\\c") == "a_b_c"
    assert safe_stem("nul\x00byte\x1f") == "nul_byte_"
    assert safe_stem("CON") == "_CON"
    assert safe_stem("com1.txt") == "_com1.txt"
    assert safe_stem("LPT9") == "_LPT9"
    assert safe_stem("CONTACT") == "CONTACT"
    assert safe_stem("trailing. . ") == "trailing"
    assert safe_stem("c-001") == "c-001"


def test_a_300_character_key_is_cut_and_keeps_a_hash() -> None:
    key = "x" * 300
    stem = safe_stem(key)
    assert stem.endswith("-" + key_hash(key))
    assert len(stem.encode()) < 255
    assert safe_stem("x" * 299 + "y") != stem


def test_unicode_forms_of_one_name_are_normalised_and_then_told_apart() -> None:
    composed, decomposed = "Jos\u00e9", "Jose\u0301"
    assert safe_stem(composed) == safe_stem(decomposed) == "Jos\u00e9"
    stems = assign_stems([composed, decomposed])
    assert stems[composed] != stems[decomposed]
    assert all(s.startswith("Jos\u00e9-") for s in stems.values())


def test_two_keys_that_become_one_name_both_get_a_hash() -> None:
    stems = assign_stems(["a/b", "a_b", "A_B", "plain"])
    assert stems["a/b"] == "a_b-" + key_hash("a/b")
    assert stems["a_b"] == "a_b-" + key_hash("a_b")
    assert stems["A_B"] == "A_B-" + key_hash("A_B")
    assert stems["plain"] == "plain"
