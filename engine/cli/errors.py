"""How engine errors reach the user: a message with the fix, and the contract's exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from engine.errors import AbortRun, ConfigError, WrongAddress
from engine.ledger.lock import LedgerBusy
from engine.ledger.writer import LedgerWriteFailed


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
    except LedgerWriteFailed as err:
        raise UserError(
            f"{err}. Nothing more was sent. Free the disk (or fix the file) and run again: "
            "the next run reconciles any job caught in flight."
        ) from err
    except AbortRun as err:
        raise abort_error(err) from err


def abort_error(err: AbortRun) -> click.ClickException:
    """Exit 3 for a refused key or an empty account; exit 2 for a wrong address."""
    if isinstance(err, WrongAddress):
        return UserError(abort_message(err))
    return KeyRefusedError(abort_message(err))


def abort_message(err: AbortRun) -> str:
    if isinstance(err, WrongAddress):
        return (
            f"The service has no video endpoint at this address (HTTP {err.status}). "
            "Check --base-url / HEYGEN_BASE_URL; nothing more was sent and no job failed."
        )
    if err.status in (401, 403):
        return (
            f"The service refused the API key (HTTP {err.status}). Check HEYGEN_API_KEY "
            "and run again; nothing more was sent."
        )
    return (
        f"The account is out of credit ({err.code or err.status}: {err.message}). "
        "Add credit and run again; unsent jobs stay pending."
    )
