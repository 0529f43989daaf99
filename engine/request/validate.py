"""Validate a rendered body and say what is wrong in words a marketing-ops person reads.

Pydantic's own messages name types and locations the user never wrote (``'text'`` tags,
``Input should be ...``); here each error becomes ``path: message`` with the path as the
user wrote it (``video_inputs[0].voice.speed``) and the offending value when short.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, MaxLen, MinLen
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from engine.errors import FieldError, RequestInvalid
from engine.request.model import HEX_COLOUR, HEX_COLOUR_6, MAX_INPUT_TEXT, NOT_BLANK, VideoRequest

_V1_KEYS = frozenset({"character", "voice", "script"})
_V1_HINT = "required (character and voice go inside video_inputs, one entry per scene)"


def validate_request(body: Mapping[str, Any]) -> VideoRequest:
    """The typed request, or ``RequestInvalid`` listing every problem found."""
    try:
        return VideoRequest.model_validate(body)
    except ValidationError as exc:
        errors = field_errors(exc, VideoRequest)
        if isinstance(body, Mapping) and "video_inputs" not in body and _V1_KEYS & body.keys():
            errors = [
                FieldError(e.path, _V1_HINT) if e.path == "video_inputs" else e for e in errors
            ]
        raise RequestInvalid(errors) from None


def request_to_body(model: VideoRequest) -> dict[str, Any]:
    """The JSON body to send: the user's fields, typed, no defaults added, extras kept."""
    return model.model_dump(mode="json", exclude_unset=True, by_alias=True)


def request_json_schema() -> dict[str, Any]:
    """JSON Schema of a V2 request body."""
    return VideoRequest.model_json_schema()


def field_errors(exc: ValidationError, root: Any) -> list[FieldError]:
    """One plain-English ``FieldError`` per pydantic error of a ``root`` validation.

    ``root`` is the model validated, or the annotation a ``TypeAdapter`` validated (a
    discriminated union of models, as the v3 body is).
    """
    return [_field_error(err, root) for err in exc.errors(include_url=False)]


# --- locating an error in the models ------------------------------------------------------


def _members(annotation: Any) -> tuple[Any, ...]:
    """The alternatives of an annotation, without ``None`` and ``Annotated`` wrappers."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin in (Union, UnionType):
        return tuple(m for arg in get_args(annotation) for m in _members(arg))
    return () if annotation is type(None) else (annotation,)


def _variants(members: tuple[Any, ...]) -> dict[str, type[BaseModel]]:
    """A discriminated union's models by their ``type`` tag (empty if not such a union)."""
    models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
    if len(models) < 2:
        return {}
    return {get_args(m.model_fields["type"].annotation)[0]: m for m in models}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _locate(root: Any, loc: tuple[int | str, ...]) -> tuple[str, FieldInfo | None, Any]:
    """The user's path for ``loc``, the field it ends at, and that field's annotation.

    Pydantic puts a discriminated union's tag in ``loc`` (``voice.text.speed``); the user
    never wrote it, so it is skipped.
    """
    path = ""
    info: FieldInfo | None = None
    node: Any = root
    for part in loc:
        members = _members(node)
        if isinstance(part, int):
            path += f"[{part}]"
            info = None
            node = next((get_args(m)[0] for m in members if get_origin(m) is list), None)
            continue
        variants = _variants(members)
        if part in variants:
            node = variants[part]
            continue
        model = next((m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), None)
        info = model.model_fields.get(part) if model is not None else None
        node = info.annotation if info is not None else None
        path = _join(path, part)
    return path, info, node


# --- wording ------------------------------------------------------------------------------


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


def _bounds(info: FieldInfo | None) -> tuple[Any, Any, bool]:
    """Lower and upper bound of a field (upper ``None`` when open), and if the lower is strict."""
    low: Any = None
    high: Any = None
    strict = False
    for rule in info.metadata if info is not None else ():
        if isinstance(rule, Ge):
            low = rule.ge
        elif isinstance(rule, MinLen):
            low = rule.min_length
        elif isinstance(rule, Gt):
            low, strict = rule.gt, True
        elif isinstance(rule, Le):
            high = rule.le
        elif isinstance(rule, MaxLen):
            high = rule.max_length
    return low, high, strict


def _range_message(info: FieldInfo | None, got: str) -> str:
    low, high, strict = _bounds(info)
    if high is None:
        return f"must be {'more than' if strict else 'at least'} {low}, got {got}"
    if strict:
        return f"must be more than {low} and at most {high}, got {got}"
    return f"must be between {low} and {high}, got {got}"


def _choices(node: Any, fallback: str) -> str:
    literals = [a for m in _members(node) if get_origin(m) is Literal for a in get_args(m)]
    return ", ".join(map(str, literals)) if literals else fallback


_PLAIN = {
    "missing": "required",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "multiple_of": "must be an even number",
}
_PATTERNS = {
    NOT_BLANK: "must not be blank",
    HEX_COLOUR: "must be a hex colour like #f6f6fc",
    HEX_COLOUR_6: "must be a 6-digit hex colour like #1a2b3c",
}


def _length_message(limit: int, length: int) -> str:
    # V2's text limit is documented as "under 5,000"; others as "at most".
    if limit == MAX_INPUT_TEXT:
        return f"must be under {limit + 1:,} characters (got {length:,})"
    return f"must be at most {limit:,} characters (got {length:,})"


def _field_error(err: ErrorDetails, root: Any) -> FieldError:
    path, info, node = _locate(root, err["loc"])
    kind, value, ctx = err["type"], err["input"], err.get("ctx", {})
    got = _show(value)
    if kind == "missing":
        return FieldError(path, "required")
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        if not isinstance(value, Mapping):
            return FieldError(path, f"must be an object, got {got}")
        tags = ", ".join(_variants(_members(node)))
        if kind == "union_tag_not_found":
            return FieldError(_join(path, "type"), f"required (one of {tags})")
        return FieldError(_join(path, "type"), f"must be one of {tags}, got {_show(ctx['tag'])}")
    if kind in _PLAIN:
        return FieldError(path, f"{_PLAIN[kind]}, got {got}")
    if kind == "literal_error":
        return FieldError(path, f"must be one of {_choices(node, ctx['expected'])}, got {got}")
    if kind in ("greater_than", "greater_than_equal", "less_than_equal"):
        return FieldError(path, _range_message(info, got))
    if kind == "string_pattern_mismatch" and ctx["pattern"] in _PATTERNS:
        message = _PATTERNS[ctx["pattern"]]
        return FieldError(path, message if ctx["pattern"] == NOT_BLANK else f"{message}, got {got}")
    if kind == "string_too_long":
        return FieldError(path, _length_message(ctx["max_length"], len(value)))
    if kind in ("too_short", "too_long"):
        low, high, _ = _bounds(info)
        return FieldError(path, f"must have {low} to {high} entries, got {ctx['actual_length']}")
    return FieldError(path, err["msg"][:1].lower() + err["msg"][1:])
