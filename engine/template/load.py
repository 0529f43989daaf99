"""Read a template file (JSON or YAML) into a plain mapping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from engine.errors import ConfigError
from engine.template.compile import Template, compile_template


def load_template(path: Path) -> Template:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: no such template file.") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: the template is not UTF-8 text.") from err
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the template ({err.strerror}).") from err
    data: Any
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            # safe_load builds plain data only: a template can never run code.
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from err
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f"{path}: not valid JSON at line {err.lineno} column {err.colno}: {err.msg}"
            ) from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a template must be an object shaped like a V2 request body.")
    return compile_template(data, str(path))
