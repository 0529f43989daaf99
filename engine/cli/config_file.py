"""``--config campaign.yaml``: a command's options from a YAML file; flags given win.

The file's values become the command's defaults (click's ``default_map``), so a flag
on the command line overrides them with no merging of our own, and each value goes
through the option's own type. One file serves every command that takes ``--config``:
a key that is another such command's option is left to it; any other key is refused.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml

from engine.ledger.open import is_database_url

F = TypeVar("F", bound=Callable[..., Any])

CONFIG_HELP = (
    "YAML file of options by name (jobs, template, key_column, ledger, rate, sandbox, ...): "
    "one file serves run, validate, poll and download, each taking its own; flags given on the "
    "command line win; relative paths in it are read from the YAML file's folder."
)


def config_option(func: F) -> F:
    """``--config FILE``, read before every other option (it sets their defaults)."""
    return click.option(
        "--config",
        type=click.Path(path_type=Path, dir_okay=False, exists=True),
        is_eager=True,
        expose_value=False,
        callback=_load,
        metavar="FILE",
        help=CONFIG_HELP,
    )(func)


def _names(command: click.Command) -> dict[str, click.Parameter]:
    """The YAML key of each of ``command``'s parameters: the long option without its
    dashes, ``-`` as ``_`` (``key_column``, ``json``, ``format``), or an argument's name."""
    names: dict[str, click.Parameter] = {}
    for param in command.params:
        if param.name is None or param.name in ("config", "help"):
            continue
        if isinstance(param, click.Argument):
            names[param.name] = param
        for opt in param.opts:
            if opt.startswith("--"):
                names[opt[2:].replace("-", "_")] = param
    return names


def _elsewhere(ctx: click.Context) -> set[str]:
    """Keys that are options of the group's other commands that read the same file."""
    group = ctx.parent.command if ctx.parent is not None else None
    if not isinstance(group, click.Group):
        return set()
    sharing = [c for c in group.commands.values() if any(p.name == "config" for p in c.params)]
    return {name for command in sharing for name in _names(command)}


def _load(ctx: click.Context, param: click.Parameter, path: Path | None) -> None:
    if path is None:
        return
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise click.BadParameter(f"cannot read {path}: {err}", ctx, param) from err
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise click.BadParameter(
            f"{path} must be a mapping of option names to values (template: my.json).",
            ctx,
            param,
        )
    names = _names(ctx.command)
    elsewhere = _elsewhere(ctx)
    defaults: dict[str, Any] = {}
    for key, raw in data.items():
        name = str(key).replace("-", "_")
        target = names.get(name)
        if target is None:
            if name in elsewhere:
                continue
            near = difflib.get_close_matches(name, list(names), n=1)
            hint = f"did you mean '{near[0]}'?" if near else f"known: {', '.join(sorted(names))}"
            raise click.BadParameter(f"{path}: unknown key '{key}'; {hint}", ctx, param)
        assert target.name is not None
        defaults[target.name] = _value(ctx, target, str(key), raw, path)
    ctx.default_map = {**(ctx.default_map or {}), **defaults}


def _value(ctx: click.Context, target: click.Parameter, key: str, raw: Any, path: Path) -> Any:
    """The key's value, checked by the option's own type; a relative path made relative
    to the YAML file's folder."""
    if raw is None:
        raise click.BadParameter(f"{path}: key '{key}' has no value.", ctx)
    if isinstance(target.type, click.Path) or target.name in ("jobs", "ledger"):
        if not isinstance(raw, str):
            raise click.BadParameter(f"{path}: key '{key}' must be a path, got {raw!r}.", ctx)
        if raw != "-" and not is_database_url(raw) and not Path(raw).is_absolute():
            raw = str(path.parent / raw)
    try:
        target.type_cast_value(ctx, raw)
    except click.BadParameter as err:
        raise click.BadParameter(f"{path}: key '{key}': {err.message}", ctx) from err
    return raw
