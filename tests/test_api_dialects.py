"""Each API's dialect from its case file (tests/data/api/<api>.json), as botocore's
protocol tests: a request → the HttpCall, an answer → an id, a status or an error. Pure:
no network, no event loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.api.client import dialect_for
from engine.api.port import Answer, HttpCall, RenderStatus
from engine.errors import make_status_error

CASES = Path(__file__).parent / "data" / "api"


def cases() -> list[Any]:
    found = []
    for api in ("v2", "v3"):
        for case in json.loads((CASES / f"{api}.json").read_text()):
            found.append(pytest.param(api, case, id=f"{api}: {case['name']}"))
    return found


def as_call(expected: dict[str, Any] | None) -> HttpCall | None:
    if expected is None:
        return None
    body = expected["body"]
    return HttpCall(
        expected["method"],
        expected["path"],
        tuple(tuple(p) for p in expected["params"]),  # type: ignore[misc]
        tuple(tuple(h) for h in expected["headers"]),  # type: ignore[misc]
        None if body is None else body.encode(),
        expected["json_only"],
    )


def as_status(expected: dict[str, Any] | None) -> RenderStatus | None:
    return None if expected is None else RenderStatus(**expected)


@pytest.mark.parametrize(("api", "case"), cases())
def test_dialect_case(api: str, case: dict[str, Any]) -> None:
    dialect = dialect_for(api)  # type: ignore[arg-type]
    op = case["op"]
    if op == "create":
        assert dialect.create(case["body"], case["key"]) == as_call(case["call"])
    elif op == "created":
        assert dialect.created(Answer(200, case["answer"])) == case["video_id"]
    elif op == "status":
        assert dialect.status(case["video_id"]) == as_call(case["call"])
    elif op == "parsed_status":
        assert dialect.parsed_status(Answer(200, case["answer"])) == as_status(case["status"])
    elif op == "statuses":
        assert dialect.statuses(case["ids"]) == as_call(case["call"])
    elif op == "parsed_statuses":
        found = dialect.parsed_statuses(Answer(200, case["answer"]))
        assert found == {k: as_status(v) for k, v in case["statuses"].items()}
    elif op == "listing":
        call = dialect.listing(case["token"], case["limit"], case["title"])
        assert call == as_call(case["call"])
    elif op == "parsed_listing":
        items, token = dialect.parsed_listing(Answer(200, case["answer"]))
        assert [[i.video_id, i.created_at] for i in items] == case["items"]
        assert token == case["token"]
    else:
        assert op == "create_error"
        error = dialect.create_error(make_status_error(case["status"], case["body"]))
        assert type(error).__name__ == case["error"]
        if "message" in case:
            assert error.message == case["message"]


@pytest.mark.parametrize("api", ["v2", "v3"])
def test_an_answer_in_no_shape_of_the_api_is_a_value_error(api: str) -> None:
    """The client turns these into a 502: a status that cannot be read is asked again."""
    dialect = dialect_for(api)  # type: ignore[arg-type]
    for answer in ("<html>", {"data": None}, {"data": {"id": "v", "status": "exploded"}}):
        with pytest.raises(ValueError):  # noqa: PT011 - each parser says why in its own words
            dialect.parsed_status(Answer(200, answer))


def test_v2_has_no_bulk_status() -> None:
    dialect = dialect_for("v2")
    assert dialect.features.bulk_status_max == 0
    with pytest.raises(ValueError, match="no bulk status"):
        dialect.statuses(["a", "b"])


def test_a_bulk_status_call_names_at_most_a_hundred_videos() -> None:
    dialect = dialect_for("v3")
    assert dialect.statuses([str(i) for i in range(100)]) is not None
    with pytest.raises(ValueError, match="1 to 100"):
        dialect.statuses([str(i) for i in range(101)])
