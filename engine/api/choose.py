"""Which HeyGen API a body goes to, by its shape (CONTRACT section 2, ``--api``).

A body with a top-level ``video_inputs`` is V2 (``POST /v2/video/generate``); one with
a top-level ``type`` is v3 (``POST /v3/videos``). ``auto`` takes what the shape says;
an explicit choice must agree with it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

from engine.api.port import ApiName
from engine.request import request_to_body, validate_request
from engine.request.v3 import v3_request_to_body, validate_v3_request

ApiChoice = Literal["auto", "v2", "v3"]
API_CHOICES: tuple[ApiChoice, ...] = ("auto", "v2", "v3")

#: The top-level field that makes a body each API's.
SHAPE_FIELDS: dict[ApiName, str] = {"v2": "video_inputs", "v3": "type"}


class ShapeError(ValueError):
    """The body's shape names no API, or not the one asked for; ``field`` decided."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def api_by_shape(fields: Collection[str], choice: ApiChoice) -> ApiName:
    """The API a body with these top-level ``fields`` goes to.

    Raises ``ShapeError`` saying which fields decided when the body has both shapes'
    fields or neither, or when ``choice`` is not ``auto`` and the shape says otherwise.
    """
    shapes = [api for api, field in SHAPE_FIELDS.items() if field in fields]
    v2, v3 = SHAPE_FIELDS["v2"], SHAPE_FIELDS["v3"]
    if len(shapes) > 1:
        raise ShapeError(
            v3, f"it has both a top-level `{v2}` (a V2 body) and a top-level `{v3}` (a v3 body)"
        )
    if not shapes:
        raise ShapeError(
            v2,
            f"it has neither a top-level `{v2}` (a V2 body) nor a top-level `{v3}` (a v3 body)",
        )
    found = shapes[0]
    if choice != "auto" and choice != found:
        raise ShapeError(
            SHAPE_FIELDS[found],
            f"--api {choice}, but its top-level `{SHAPE_FIELDS[found]}` makes it a "
            f"{found} body (a {choice} body has a top-level `{SHAPE_FIELDS[choice]}`)",
        )
    return found


def _v2_body(raw: Mapping[str, Any]) -> dict[str, Any]:
    return request_to_body(validate_request(raw))


def _v3_body(raw: Mapping[str, Any]) -> dict[str, Any]:
    return v3_request_to_body(validate_v3_request(raw))


_BODIES: dict[ApiName, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "v2": _v2_body,
    "v3": _v3_body,
}


def validated_body(api: ApiName, raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` checked against ``api``'s request model, as it is sent (unknown fields
    kept); ``RequestInvalid`` naming each field at fault."""
    return _BODIES[api](raw)
