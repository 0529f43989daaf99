"""A template checked once, when it is loaded, against the request model it is shaped like.

Two kinds of problem are found here rather than once per row (CONTRACT section 3):

- a field name the model does not know (``avatar_styl``): reported with the nearest
  known name, and passed through as written unless ``--strict`` refuses it;
- an error every row would repeat (``avatar_style: closeup``, a required
  ``input_text`` spelt ``input_txt``): the template is refused (exit 2), since every
  row would be invalid for the same reason.

Both walks are generic over a pydantic model class, so they hold for any API's model.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from engine.errors import ConfigError
from engine.request.model import VideoRequest
from engine.request.v3 import (
    AvatarVideoRequest,
    CinematicAvatarVideoRequest,
    ImageVideoRequest,
    StudioVideoRequest,
)
from engine.request.validate import _members as members
from engine.request.validate import field_errors

log = logging.getLogger(__name__)

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


#: The v3 body's model for each ``type`` (``POST /v3/videos`` is a union on it).
V3_VARIANTS: dict[str, type[BaseModel]] = {
    "avatar": AvatarVideoRequest,
    "image": ImageVideoRequest,
    "studio": StudioVideoRequest,
    "cinematic_avatar": CinematicAvatarVideoRequest,
}


def model_for(data: Mapping[str, Any]) -> type[BaseModel] | None:
    """The request model a template is shaped like (V2, or the v3 variant its ``type``
    names); None when no check applies (no known shape, or a placeholder for ``type``)."""
    if "video_inputs" in data:
        return VideoRequest
    kind = data.get("type")
    return V3_VARIANTS.get(kind) if isinstance(kind, str) else None


def check_template(data: Mapping[str, Any], source: str, strict: bool) -> list[str]:
    """Report a template's unknown fields (as warnings), and refuse it for errors every
    row would repeat, or, with ``strict``, for unknown fields. Returns the warnings.

    Raises ConfigError naming each problem with its path.
    """
    model = model_for(data)
    kind = data.get("type")
    if model is None and isinstance(kind, str) and not _has_placeholder(kind):
        # "video_inputs" absent (else V2): a v3 shape whose type no variant has.
        raise ConfigError(
            f"{source}: every row would be invalid for this; fix the template:\n  type: "
            f"must be one of {', '.join(V3_VARIANTS)}, got {kind!r}"
        )
    if model is None:
        return []
    unknown = unknown_fields(data, model)
    repeated = repeated_errors(data, model)
    if repeated or (strict and unknown):
        intro = (
            "every row would be invalid for these; fix the template:"
            if repeated
            else "--strict refuses fields the schema does not know; fix or remove them:"
        )
        raise ConfigError(f"{source}: {intro}" + "".join(f"\n  {p}" for p in repeated + unknown))
    for note in unknown:
        log.warning("%s: %s (sent as written; --strict refuses it)", source, note)
    return unknown


# --- unknown fields -----------------------------------------------------------------------


def unknown_fields(data: Mapping[str, Any], model: type[BaseModel], path: str = "") -> list[str]:
    """ "unknown field `x` in <path>; did you mean `y`?" for every key of ``data`` (and
    of the objects nested in it) that ``model`` has no field for."""
    known = {info.alias or name: name for name, info in model.model_fields.items()}
    found: list[str] = []
    for key, value in data.items():
        if key not in known:
            where = f"in {path}" if path else "at the top level"
            near = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean `{near[0]}`?" if near else ""
            found.append(f"unknown field `{key}` {where}{hint}")
            continue
        annotation = model.model_fields[known[key]].annotation
        for child, child_value, child_path in _nested(annotation, value, _join(path, key)):
            found += unknown_fields(child_value, child, child_path)
    return found


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _nested(
    annotation: Any, value: Any, path: str
) -> Iterator[tuple[type[BaseModel], Mapping[str, Any], str]]:
    """The objects within ``value`` that a model of ``annotation`` describes."""
    if isinstance(value, list):
        items = next((get_args(m)[0] for m in members(annotation) if get_origin(m) is list), None)
        if items is not None:
            for index, item in enumerate(value):
                yield from _nested(items, item, f"{path}[{index}]")
        return
    if isinstance(value, Mapping):
        models = [
            m for m in members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)
        ]
        model = _variant(models, value)
        if model is not None:
            yield model, value, path


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _variant(models: list[type[BaseModel]], value: Mapping[str, Any]) -> type[BaseModel] | None:
    """The model of a (possibly discriminated) union that ``value`` is: by its ``type``,
    or, without one, the variant whose ``type`` has a default. None when unclear (a
    placeholder or unknown tag: the tag's own error says so)."""
    if len(models) == 1:
        return models[0]
    tag = value.get("type")
    for model in models:
        field = model.model_fields.get("type")
        if field is None:
            continue
        if tag is None and not field.is_required():
            return model
        if tag is not None and tag in get_args(field.annotation):
            return model
    return None


# --- errors every row would repeat --------------------------------------------------------


def repeated_errors(data: Mapping[str, Any], model: type[BaseModel]) -> list[str]:
    """The model's errors for the template itself that no row can change: at a value with
    no placeholder in it, or a required field missing from an object the template
    writes out (a row fills values, never keys)."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc, model)
    else:
        return []
    repeated = [str(e) for e in errors if _fixed(data, e.path)]
    if any(not e.path and str(e) not in repeated for e in errors):
        # An error of the whole body (``needs script, audio_url or audio_asset_id``) no
        # row changes if it stays with every placeholder filled in.
        try:
            model.model_validate(_filled(data))
        except ValidationError as exc:
            repeated += [str(e) for e in field_errors(exc, model) if not e.path]
    return list(dict.fromkeys(repeated))


def _filled(value: Any) -> Any:
    """``value`` with every string holding a placeholder replaced by one a cell could give."""
    if isinstance(value, str):
        return "1" if "{{" in value else value
    if isinstance(value, Mapping):
        return {k: _filled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v) for v in value]
    return value


def _fixed(data: Any, path: str) -> bool:
    node = data
    for key, index in _STEP.findall(path):
        if key:
            if not isinstance(node, Mapping):
                return False
            if key not in node:
                return True  # missing from an object written out: absent in every row
            node = node[key]
        else:
            if not isinstance(node, list) or int(index) >= len(node):
                return False
            node = node[int(index)]
    return not _has_placeholder(node)


def _has_placeholder(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, Mapping):
        return any(_has_placeholder(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_placeholder(v) for v in value)
    return False
