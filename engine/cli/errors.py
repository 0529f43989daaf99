"""How engine errors reach the user: a message with the fix, and the contract's exit code.

With ``--json`` every exit also prints one JSON object on stdout (``SummaryCommand``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import click

from engine.errors import (
    TRIAL_CAP_CODE,
    AbortRun,
    ConfigError,
    LeaseLost,
    LegacyApi,
    ServiceUnreachable,
    WrongAddress,
    one_line,
)
from engine.ledger.database import LedgerStoreError, LedgerUnavailable
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
    except (LedgerUnavailable, LeaseLost) as err:
        raise LockedError(
            f"{err}. Nothing more was sent; run again once the database answers (check "
            "--ledger); jobs caught in flight are reconciled then."
        ) from err
    except LedgerStoreError as err:
        raise UserError(f"the ledger refused a write: {err}. Nothing more was sent.") from err
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
    if isinstance(err, LegacyApi):
        return (
            f"HeyGen answered that its V2 endpoint is gone or legacy (HTTP {err.status}: "
            f"{err.message}). HeyGen retired V2 on 2026-11-01: move the template to v3 (see "
            "`heygen-batch schema --api v3` and jobs/demo-template-v3.json) and run with "
            "--api v3. Nothing more was sent and no job failed."
        )
    if err.code == TRIAL_CAP_CODE:
        return (
            f"The trial key's daily video cap is reached ({err.code}: {err.message}). It is a "
            "daily cap, not a rate: run again tomorrow, or use a paid key; unsent jobs stay "
            "pending."
        )
    if isinstance(err, ServiceUnreachable) and err.answered_before:
        return (
            f"The service stopped answering in the middle of the run ({err.message}), so the "
            "run stopped. Jobs it took before are recorded; the jobs not yet sent stay "
            "pending and none failed for it (one in flight may be uncertain: reconcile "
            "settles it). Run again when the service is back."
        )
    if isinstance(err, ServiceUnreachable):
        where = {
            "": "--base-url (none was given: the default address; is the network up?)",
            "--base-url": "--base-url",
        }.get(err.given_by, f"--base-url (the address came from {err.given_by})")
        return (
            f"No connection could be opened to the service ({err.message}). Check {where}. "
            "Nothing was sent and no job failed: they stay pending for the next run."
        )
    if isinstance(err, WrongAddress) and err.status < 300:
        return (
            f"The address answered with a page, not HeyGen's API ({err.message}; HTTP "
            f"{err.status}): a proxy or captive portal? Check --base-url / HEYGEN_BASE_URL; "
            "nothing more was sent and no job failed."
        )
    if isinstance(err, WrongAddress):
        return (
            f"The service has no video endpoint at this address (HTTP {err.status}). "
            "Check --base-url / HEYGEN_BASE_URL; if it is HeyGen's and the template is V2, "
            "the endpoint may be retired (V2 ended on 2026-11-01): move the template to v3 "
            "(--api v3, "
            "`heygen-batch schema --api v3`). Nothing more was sent and no job failed."
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


ENVIRONMENT = (
    "Environment: HEYGEN_API_KEY (the API key: never a flag, never shown; any value will do "
    "for a standalone `heygen-batch sandbox`), HEYGEN_BASE_URL (the address when --base-url "
    "is not given; default https://api.heygen.com)."
)
RUN_EXIT_CODES = (
    "Exit codes: 0 done; 1 some jobs invalid, failed or uncertain; 2 usage or configuration "
    "error; 3 key refused or out of credit; 75 try again later (the ledger is in use, or the "
    "service asked for a wait beyond --max-wait); 130 interrupted. With --json, stdout is one "
    "JSON object with exit_code and reason, whatever the exit. " + ENVIRONMENT
)


def epilog(exits: str, example: str) -> str:
    """A command's ``--help`` epilog: its exit codes (and the environment it reads), then
    an example, each a paragraph of its own; the example is not rewrapped (``\\b``), so
    it can be copied whole."""
    return f"{exits}\n\n\b\nExample:\n  {example}"


INTERRUPTED = "Interrupted: the ledger is consistent; run again to go on."
_PRINTED = "heygen_batch.summary_printed"
_STARTED = "heygen_batch.started"
_LEDGER = "heygen_batch.ledger"


def print_summary(summary: Mapping[str, Any]) -> None:
    """Print the command's one ``--json`` object; an exit after it adds no other."""
    click.echo(json.dumps(summary))
    context = click.get_current_context(silent=True)
    if context is not None:
        context.meta[_PRINTED] = True


def note_ledger(ledger: object) -> None:
    """The ledger a failure's summary names (a path, or a ``LedgerSpec``: its URL without
    password), once the command has worked it out."""
    click.get_current_context().meta[_LEDGER] = str(ledger)


class SummaryCommand(click.Command):
    """A command whose ``--json`` holds on every exit, click's own usage errors included:
    stdout gets one object with ``exit_code`` and the ``reason``, so a cron wrapper never
    parses empty input. The human message still goes to stderr, and the exit code is
    unchanged. A command that printed its own summary (``print_summary``) gets no other.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        started = time.monotonic()
        # The parser consumes ``args``: kept to look for --json if the options cannot be read.
        words = list(args)
        try:
            context = super().make_context(info_name, args, parent, **extra)
        except click.ClickException as err:
            if _asks_json(words):
                _print_failure(err.exit_code, err.format_message(), None, started)
            raise
        context.meta[_STARTED] = started
        return context

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except click.ClickException as err:
            self._failed(ctx, err.exit_code, err.format_message())
            raise
        except (KeyboardInterrupt, click.Abort) as err:
            self._failed(ctx, 130, INTERRUPTED)
            click.echo(INTERRUPTED, err=True)
            raise SystemExit(130) from err
        except Exception as err:
            self._failed(ctx, 1, f"internal error: {type(err).__name__}: {err}")
            raise

    @staticmethod
    def _failed(ctx: click.Context, exit_code: int, reason: str) -> None:
        if ctx.params.get("as_json") and not ctx.meta.get(_PRINTED):
            started = ctx.meta.get(_STARTED, time.monotonic())
            _print_failure(exit_code, reason, ctx.meta.get(_LEDGER), started)


def _asks_json(words: list[str]) -> bool:
    return "--json" in (words[: words.index("--")] if "--" in words else words)


def _print_failure(exit_code: int, reason: str, ledger: str | None, started: float) -> None:
    """The summary of a command that stopped before it had counts to give."""
    summary = {
        "ledger": ledger,
        "elapsed_s": round(time.monotonic() - started, 3),
        "counts": None,
        "exit_code": exit_code,
        "reason": one_line(reason),
    }
    click.echo(json.dumps(summary))
