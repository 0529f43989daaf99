"""What a create meets before anything is made, the same on both APIs: a refused key,
the server-side rate limit, an injected fault, the service at its limit. Each answer
is written in the caller's error envelope (V2's or v3's)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Protocol

from aiohttp import web

from engine.sandbox.faults import Decision, Outcome, drop_connection, format_retry_after
from engine.sandbox.state import SandboxState


class ErrorAnswer(Protocol):
    """An API's error envelope: ``{"error": {"code", "message"}, ...}`` with a status."""

    def __call__(
        self, status: int, code: str, message: str, *, headers: Mapping[str, str] | None = None
    ) -> web.Response: ...


def retry_after(wait: float | None) -> dict[str, str]:
    return {} if wait is None else {"Retry-After": format_retry_after(wait)}


def key_refusal(
    state: SandboxState, request: web.Request, error: ErrorAnswer
) -> web.Response | None:
    """401 unless ``X-Api-Key`` is the configured key (any key when none is set)."""
    if state.key_accepted(request.headers.get("X-Api-Key", "")):
        return None
    return error(401, "unauthorized", "Invalid or missing API key (X-Api-Key)")


def over_limit(
    state: SandboxState, request: web.Request, arrived: float, error: ErrorAnswer
) -> web.Response | None:
    """429 from the account's server-side rate limit, counted as a violation of it; None
    within it."""
    wait = state.over_limit(request.headers.get("X-Api-Key", ""), arrived)
    if wait is None:
        return None
    return error(
        429, "rate_limit_exceeded", "Too many requests, slow down", headers=retry_after(wait)
    )


async def injected_fault(
    state: SandboxState, decision: Decision, request: web.Request, error: ErrorAnswer
) -> web.StreamResponse | None:
    """After the decision's latency, the fault it injects before any video is made (a
    429, a 5xx, a connection dropped); None when the create goes on."""
    if decision.latency_s:
        await asyncio.sleep(decision.latency_s)
    outcome = decision.outcome
    if outcome is Outcome.RATE_LIMITED:
        return error(
            429,
            "rate_limit_exceeded",
            "Too many requests (injected)",
            headers=retry_after(state.config.retry_after_s),
        )
    if outcome is Outcome.SERVER_ERROR:
        return error(decision.status, "internal_error", "Internal server error (injected)")
    if outcome is Outcome.DROP_BEFORE:
        return drop_connection(request)
    return None


def at_capacity(state: SandboxState, error: ErrorAnswer) -> web.Response | None:
    """The 429 a create meets while the service is at its limit (see
    ``SandboxState.refuse_create``); None when it may be made now."""
    refusal = state.refuse_create()
    if refusal is None:
        return None
    return error(
        429, "rate_limit_exceeded", refusal.message, headers=retry_after(refusal.retry_after_s)
    )
