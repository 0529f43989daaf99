"""Validate a v3 body, name its problems by path, and give it back as sent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import TypeAdapter, ValidationError

from engine.errors import FieldError, RequestInvalid
from engine.request.v3.model import V3VideoRequest
from engine.request.validate import field_errors

_ADAPTER: TypeAdapter[V3VideoRequest] = TypeAdapter(V3VideoRequest)
_V2_HINT = "required (this is a V2 body: video_inputs; a v3 body has type and its fields)"


def validate_v3_request(body: Mapping[str, Any]) -> V3VideoRequest:
    """The typed ``POST /v3/videos`` body, or ``RequestInvalid`` listing every problem,
    each ``FieldError`` named by the user's path (``scenes[2].input.voice_settings.speed``).
    """
    try:
        return _ADAPTER.validate_python(body)
    except ValidationError as exc:
        errors = field_errors(exc, V3VideoRequest)
        if isinstance(body, Mapping) and "type" not in body and "video_inputs" in body:
            errors = [FieldError(e.path, _V2_HINT) if e.path == "type" else e for e in errors]
        raise RequestInvalid(errors) from None


def v3_request_to_body(model: V3VideoRequest) -> dict[str, Any]:
    """The JSON body to send: the user's fields, typed, no defaults added, extras kept."""
    body: dict[str, Any] = model.model_dump(mode="json", exclude_unset=True, by_alias=True)
    return body


def v3_request_json_schema() -> dict[str, Any]:
    """JSON Schema of a ``POST /v3/videos`` body (a ``oneOf`` discriminated by ``type``)."""
    return _ADAPTER.json_schema()
