"""Read a template file (JSON or YAML) into a plain mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError
from engine.template.check import check_template
from engine.template.compile import Template, compile_template


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: no such template file.") from err
    except IsADirectoryError as err:
        raise ConfigError(f"{path} is a directory; give the template file inside it.") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: the template is not UTF-8 text; save it as UTF-8.") from err
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the template ({err.strerror}).") from err


def _parse_yaml(path: Path, text: str) -> Any:
    try:
        # safe_load builds plain data only: a template can never run code.
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as err:
        raise ConfigError(
            f"{path}: YAML tags that build Python objects (such as !!python/object) are not "
            f"allowed in a template; use plain mappings, lists and text. ({err.problem})"
        ) from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    except RecursionError as err:
        raise ConfigError(f"{path}: nested too deeply to be a V2 request body.") from err


def _parse_json(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path}: not valid JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from err
    except RecursionError as err:
        raise ConfigError(f"{path}: nested too deeply to be a V2 request body.") from err


def load_template(path: Path, strict: bool = False) -> Template:
    """The compiled template at ``path``, checked once (``engine.template.check``): unknown
    fields are warned about (refused with ``strict``), errors every row would repeat
    refused. Raises ConfigError."""
    text = _read(path)
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    data = _parse_yaml(path, text) if yaml_file else _parse_json(path, text)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a template must be an object shaped like a V2 request body.")
    compiled = compile_template(data, str(path))
    check_template(data, str(path), strict)
    return compiled
