"""The Idempotency-Key of a v3 job: HeyGen's character rule whatever the key column
holds, the same for every attempt, never shared by two jobs or two ledgers."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.prepare.keys import idempotency_key

# HeyGen: 1-255 characters of A-Z a-z 0-9 _ - : . (shared/HEYGEN-V3.md).
HEYGEN_RULE = re.compile(r"[A-Za-z0-9_\-:.]{1,255}")
CAMPAIGN = "0123456789ab"  # as the ledger makes them: 12 of [0-9a-f]

keys = st.one_of(
    st.text(min_size=1, max_size=400),
    st.emails(),
    st.text(alphabet="abc \t\n", min_size=1),
    st.text(min_size=300, max_size=300),
)


@given(keys)
def test_any_key_column_value_gives_a_valid_key(key: str) -> None:
    made = idempotency_key(CAMPAIGN, key)
    assert HEYGEN_RULE.fullmatch(made)
    assert made == idempotency_key(CAMPAIGN, key)  # every attempt carries the same


@given(keys, keys)
def test_two_jobs_never_share_a_key(first: str, second: str) -> None:
    if first != second:
        assert idempotency_key(CAMPAIGN, first) != idempotency_key(CAMPAIGN, second)


@given(keys)
def test_two_ledgers_never_share_a_key_for_one_job(key: str) -> None:
    assert idempotency_key(CAMPAIGN, key) != idempotency_key("ba9876543210", key)


@pytest.mark.parametrize(
    "key",
    [
        "ada@example.com",
        "Ada Lovelace",
        "Zoë 🎬 ☃",
        "x" * 300,
        "a:b.c-d_e",
        "",
    ],
)
def test_the_issue_examples(key: str) -> None:
    made = idempotency_key(CAMPAIGN, key)
    assert HEYGEN_RULE.fullmatch(made)
    assert made.startswith(CAMPAIGN + ":")


def test_emails_and_long_ids_in_one_column_give_distinct_keys() -> None:
    column = [f"user{i}@example.com" for i in range(500)] + [f"{i:0300d}" for i in range(500)]
    made = {idempotency_key(CAMPAIGN, k) for k in column}
    assert len(made) == len(column)
    assert all(HEYGEN_RULE.fullmatch(m) for m in made)


def test_a_campaign_id_outside_the_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="campaign id"):
        idempotency_key("camp aign", "k")
