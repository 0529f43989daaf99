"""``webhook serve``: HeyGen's ``avatar_video.success`` / ``.fail`` deliveries into the ledger.

A delivery is a hint, never the truth: once its signature checks out, one status
call says what the video really is, and only that is written. Answers: 200 for
anything handled (a video of another ledger included, so HeyGen stops resending),
401 for a missing or wrong signature, 400 for a body that is not an event, 413 for
one over ``WEBHOOK_MAX_BODY_BYTES``, 503 when the status call could not be made or
the ledger's database cannot be reached (HeyGen resends later). The secret is never
logged.

The receiver runs for days: a database that drops its connection (a restart, a
failover) is connected to again, and the delivery's statement run once more.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from engine.api.port import ApiRouter, api_name
from engine.delivery.signature import verified
from engine.errors import EngineError
from engine.ledger import render_writes
from engine.ledger.database import LedgerUnavailable
from engine.ledger.poll import render_error, render_extras
from engine.ledger.store import Ledger
from engine.submitter.constants import WEBHOOK_MAX_BODY_BYTES

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhook"
EVENTS = ("avatar_video.success", "avatar_video.fail")
_FINAL = ("completed", "failed")
_LINGER_S = 0.5
_T = TypeVar("_T")


def webhook_runner(app: web.Application) -> web.AppRunner:
    """The runner to serve the receiver with. A refused oversized body is read on for at
    most ``_LINGER_S`` (aiohttp's default is 10 s) so the client sees the 413 without
    the connection being held open for long."""
    return web.AppRunner(app, access_log=None, lingering_time=_LINGER_S)


def create_webhook_app(ledger: Ledger, status: ApiRouter, secret: str) -> web.Application:
    """The receiver: ``POST /webhook`` and ``OPTIONS /webhook`` (HeyGen's endpoint check).
    ``ledger`` stays the caller's to close; a connection made again is closed with the app."""
    receiver = _Receiver(ledger, status, secret)
    app = web.Application(client_max_size=WEBHOOK_MAX_BODY_BYTES)
    app.router.add_post(WEBHOOK_PATH, receiver.deliver)
    app.router.add_route("OPTIONS", WEBHOOK_PATH, receiver.check)
    app.on_cleanup.append(receiver.close_reopened)
    return app


class _Receiver:
    def __init__(self, ledger: Ledger, status: ApiRouter, secret: str) -> None:
        self._given = ledger
        self._ledger = ledger
        self._status = status
        self._secret = secret

    def _on_ledger(self, work: Callable[[Ledger], _T]) -> _T:
        """``work`` on the ledger; when its database dropped the connection, once more on
        a new one. Raises LedgerUnavailable when the database still cannot be used."""
        try:
            return work(self._ledger)
        except LedgerUnavailable as err:
            log.warning("webhook: %s; connecting again", err)
        fresh = self._ledger.reopen()
        self._close_reopened()
        self._ledger = fresh
        return work(fresh)

    def _close_reopened(self) -> None:
        if self._ledger is not self._given:
            with contextlib.suppress(EngineError):  # a connection already lost
                self._ledger.close()

    async def close_reopened(self, app: web.Application) -> None:
        self._close_reopened()

    async def check(self, request: web.Request) -> web.StreamResponse:
        # HeyGen checks a new endpoint with OPTIONS and a one-second timeout.
        return web.Response(status=200)

    async def deliver(self, request: web.Request) -> web.StreamResponse:
        size = request.content_length
        if size is not None and size > WEBHOOK_MAX_BODY_BYTES:
            # Refused before a byte is read, and the connection closed so the rest of
            # the body is never drained.
            refused = web.json_response({"error": "body too large"}, status=413)
            refused.force_close()
            return refused
        raw = await request.read()  # a chunked body over client_max_size: 413 from aiohttp
        if not verified(self._secret, raw, request.headers):
            log.warning("webhook: refused a delivery with a missing or wrong signature")
            return web.json_response({"error": "bad or missing signature"}, status=401)
        event = _event(raw)
        if event is None:
            return web.json_response({"error": "not a HeyGen video event"}, status=400)
        event_type, video_id = event
        if event_type not in EVENTS:
            log.info("webhook: ignoring event %s", event_type)
            return web.json_response({"ignored": event_type})
        try:
            return await self._record(video_id)
        except LedgerUnavailable as err:
            log.warning("webhook: video %s could not be recorded: %s", video_id, err)
            return web.json_response({"error": "ledger unavailable; send again"}, status=503)

    async def _record(self, video_id: str) -> web.StreamResponse:
        """Confirm ``video_id`` with the service and write what it is into the ledger."""
        job = self._on_ledger(lambda ledger: ledger.with_video_id(video_id))
        if job is None:
            log.info("webhook: video %s is not in this ledger; nothing written", video_id)
            return web.json_response({"ignored": "unknown video_id"})
        if job.video_status in _FINAL:
            # Repeated or late (a .fail after the .success): the ledger already holds the
            # truth, so no status call is spent and nothing changes.
            return web.json_response({"unchanged": job.video_status})
        try:
            status = await self._status.for_api(api_name(job.api)).video_status(video_id)
        except EngineError as err:
            log.warning("webhook: video %s could not be confirmed: %s", video_id, err)
            return web.json_response({"error": "status call failed; send again"}, status=503)
        owner = status.callback_id
        if owner is not None and job.callback_id is not None and owner != job.callback_id:
            # poll and reconcile settle whose video it is; a hint never does.
            log.warning("webhook: video %s was made for %r, not job %s", video_id, owner, job.key)
            return web.json_response({"ignored": "video of another job"})
        state = status.state
        write = render_writes.confirmed_render(
            job.key,
            state,
            status.video_url,
            status.thumbnail_url,
            render_error(status),
            render_extras(status),
        )
        self._on_ledger(lambda ledger: ledger.transaction([write]))
        log.info("webhook: job %s video %s is %s", job.key, video_id, state)
        return web.json_response({"video_status": state})


def _event(raw: bytes) -> tuple[str, str] | None:
    """(event_type, video_id) of a delivery, or None when the body is not one."""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    event_type, data = body.get("event_type"), body.get("event_data")
    video_id = data.get("video_id") if isinstance(data, dict) else None
    if not isinstance(event_type, str) or not isinstance(video_id, str) or not video_id:
        return None
    return event_type, video_id
