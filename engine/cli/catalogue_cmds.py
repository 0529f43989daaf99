"""``avatars`` and ``voices``: the ids a template can use, as the account sees them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import click

from engine.api.client import HeyGenClient
from engine.cli.errors import (
    ENVIRONMENT,
    SummaryCommand,
    UserError,
    abort_error,
    epilog,
    print_summary,
)
from engine.cli.options import resolve_where, service_options
from engine.cli.wording import counted
from engine.errors import AbortRun, BadRequest, ConnectFailed, EngineError
from engine.request.catalogue import AvatarList, VoiceList
from engine.service import Service, service_address

T = TypeVar("T")

CATALOGUE_EXITS = (
    "Exit codes: 0 listed; 1 the service could not answer now (try again); 2 usage or "
    "configuration error (no HEYGEN_API_KEY and no --sandbox, an address that is not "
    "HeyGen's API); 3 the service refused the key. " + ENVIRONMENT
)


def _fetch(service: Service, ask: Callable[[HeyGenClient], Awaitable[T]], path: str) -> T:
    """One GET to the service (or the in-process sandbox), its failures as exit codes."""

    async def fetch() -> T:
        async with (
            service_address(service, None) as (base_url, key),
            HeyGenClient(base_url, key, 1) as client,
        ):
            return await ask(client)

    where = "HEYGEN_BASE_URL / --base-url"
    try:
        return asyncio.run(fetch())
    except AbortRun as err:
        raise abort_error(err) from err
    except ConnectFailed as err:
        raise UserError(f"{err}. Check {where}, or try --sandbox.") from err
    except BadRequest as err:
        if err.status in (404, 405):
            raise UserError(
                f"The address has no {path} (HTTP {err.status}): not HeyGen's API? Check {where}."
            ) from err
        raise click.ClickException(f"The service refused the list: {err}") from err
    except EngineError as err:
        raise click.ClickException(f"{err}. Try again in a moment.") from err


def _table(rows: Sequence[Sequence[str | None]], header: Sequence[str]) -> None:
    """Columns aligned to their widest cell; an empty cell shows as ``-``."""
    cells = [list(header), *[[c or "-" for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header) - 1)]
    for row in cells:
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False))
        click.echo((line + "  " + row[-1]).rstrip() if widths else row[-1])


@click.command(
    cls=SummaryCommand,
    epilog=epilog(CATALOGUE_EXITS, "heygen-batch avatars --sandbox"),
)
@service_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def avatars(base_url: str | None, sandbox: bool, as_json: bool) -> None:
    """List the avatars and talking photos the account can use (GET /v2/avatars): the
    avatar_id (or talking_photo_id) a template's character names, with its name and
    gender."""
    service = resolve_where(base_url, sandbox)
    found: AvatarList = _fetch(service, HeyGenClient.avatars, "/v2/avatars")
    if as_json:
        listing = found.model_dump(mode="json", exclude_none=True)
        print_summary({**listing, "exit_code": 0, "reason": None})
        return
    _table(
        [(a.avatar_id, a.gender, a.avatar_name) for a in found.avatars],
        ("avatar_id", "gender", "name"),
    )
    if found.talking_photos:
        click.echo("")
        _table(
            [(p.talking_photo_id, p.talking_photo_name) for p in found.talking_photos],
            ("talking_photo_id", "name"),
        )
    click.echo(
        f"{counted(len(found.avatars), 'avatar')}, "
        f"{counted(len(found.talking_photos), 'talking photo')}.",
        err=True,
    )


@click.command(
    cls=SummaryCommand,
    epilog=epilog(
        CATALOGUE_EXITS,
        "heygen-batch voices | grep -i french",
    ),
)
@service_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def voices(base_url: str | None, sandbox: bool, as_json: bool) -> None:
    """List the voices the account can use (GET /v2/voices): the voice_id a template's
    voice names, with its language, gender and name."""
    service = resolve_where(base_url, sandbox)
    found: VoiceList = _fetch(service, HeyGenClient.voices, "/v2/voices")
    if as_json:
        listing = found.model_dump(mode="json", exclude_none=True)
        print_summary({**listing, "exit_code": 0, "reason": None})
        return
    _table(
        [(v.voice_id, v.language, v.gender, v.name) for v in found.voices],
        ("voice_id", "language", "gender", "name"),
    )
    click.echo(f"{counted(len(found.voices), 'voice')}.", err=True)
