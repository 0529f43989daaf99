"""How engine errors reach the user: a message with the fix, and the contract's exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from engine.errors import AbortRun, ConfigError
from engine.ledger.lock import LedgerBusy


class UserError(click.ClickException):
    """A usage or configuration problem: exit 2."""

    exit_code = 2


class LockedError(click.ClickException):
    """Another run holds the ledger: exit 75 (EX_TEMPFAIL), so cron retries later."""

    exit_code = 75


class KeyRefusedError(click.ClickException):
    exit_code = 3


@contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except ConfigError as err:
        raise UserError(str(err)) from err
    except LedgerBusy as err:
        raise LockedError(str(err)) from err
    except AbortRun as err:
        raise KeyRefusedError(abort_message(err)) from err


def abort_message(err: AbortRun) -> str:
    if err.status in (401, 403):
        return (
            f"The service refused the API key (HTTP {err.status}). Check HEYGEN_API_KEY "
            "and run again; nothing more was sent."
        )
    return (
        f"The account is out of credit ({err.code or err.status}: {err.message}). "
        "Add credit and run again; unsent jobs stay pending."
    )
