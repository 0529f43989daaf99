"""``worker``: one of any number of processes that send a PostgreSQL ledger's campaigns.

A worker registers a lease (``Fleet.register``) and renews it every third of its length;
it serves each campaign in a ``Lane`` (claim, mark, send, settle), every start granted
by the account's shared limiter (``SharedLimiter``). Its ledger writes run under its
fence, so once its lease is lost (a heartbeat refused, or no heartbeat through for too
long) nothing it writes is kept and it sends nothing more; the reaper makes its jobs in
flight ``uncertain``, for reconcile. A database that cannot be reached stops it alike.

SIGTERM or SIGINT drains it: no new claim or start; requests in flight get
``SHUTDOWN_GRACE_S`` to finish (else they are recorded ``uncertain``); claims not sent
are released; the worker retires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable

from engine.api.client import HeyGenClient
from engine.errors import (
    ConfigError,
    EngineError,
    LeaseLost,
    without_password,
)
from engine.ledger.binding import account_id, bind_ledger, unsent
from engine.ledger.database import Fenced, LedgerUnavailable
from engine.ledger.open import open_ledger
from engine.ledger.postgres import campaigns as registry
from engine.ledger.postgres.connection import connect
from engine.ledger.postgres.constants import HEARTBEAT_SHARE
from engine.ledger.postgres.fleet import Fleet, Lease
from engine.ledger.store import Ledger
from engine.ledger.writer import BatchWriter, LedgerWriteFailed
from engine.progress import ProgressDisplay
from engine.scaleout.lane import Lane, LaneOptions, SharedControl
from engine.scaleout.limiter import SharedLimiter
from engine.scaleout.slots import RenderPoller
from engine.scaleout.worker_report import WorkerOptions, WorkerReport
from engine.service import Service, resolve_service, service_address
from engine.submitter.constants import (
    REAPED_SENT_GRACE_S,
)
from engine.submitter.control import let_finish
from engine.submitter.workers import marking_depth

log = logging.getLogger(__name__)

#: What stops a worker with exit 75: its lease lost, or its database out of reach.
_DATABASE_GONE = (LeaseLost, LedgerUnavailable, LedgerWriteFailed)


def campaigns_to_serve(url: str, given: tuple[str, ...]) -> dict[str, str]:
    """Campaign name -> the variable its API key is read from: those ``given`` (each must
    exist), else every campaign of the database. ConfigError when there is none."""
    conn = connect(url)
    try:
        registry.prepare_database(conn)
        names = (
            [registry.existing_campaign(conn, name, without_password(url)) for name in given]
            if given
            else registry.campaigns(conn)
        )
        if not names:
            raise ConfigError(
                f"{without_password(url)} holds no campaign yet: load one first with "
                "`heygen-batch enqueue JOBS --ledger URL`."
            )
        return {
            name: registry.key_env(conn, name) or registry.DEFAULT_KEY_ENV
            for name in dict.fromkeys(names)
        }
    finally:
        conn.close()


def _services(opts: WorkerOptions, keys: dict[str, str]) -> dict[str, Service]:
    """Campaign name -> the service it is sent to, with the key its variable holds.

    A campaign named by ``--campaign`` must have its key (ConfigError otherwise). Serving
    every campaign, one whose key variable is not set here is skipped with a warning: a
    colleague's campaign on another key must not stop the fleet from serving the rest.
    ConfigError when no campaign is left."""
    services: dict[str, Service] = {}
    refused: ConfigError | None = None
    for name, variable in keys.items():
        try:
            services[name] = resolve_service(opts.base_url, opts.sandbox, key_variable=variable)
        except ConfigError as err:
            if opts.campaigns:
                raise
            log.warning("campaign %s is not served by this worker: %s", name, err)
            refused = err
    if not services:
        assert refused is not None
        raise refused
    return services


async def serve(opts: WorkerOptions) -> WorkerReport:
    """Run one worker until its campaigns are done (or, with ``follow``, until stopped).

    Raises ConfigError (a missing campaign or key, a ledger bound to another service)
    before anything is claimed; LedgerUnavailable when the database cannot be reached
    at the start. Everything later is in the report.
    """
    started = time.monotonic()
    report = WorkerReport(ledger=without_password(opts.url))
    services = _services(opts, campaigns_to_serve(opts.url, opts.campaigns))
    fleet = await Fleet.open(opts.url)
    try:
        lease = await fleet.register(
            campaigns=[registry.schema_of(name) for name in services], lease_s=opts.lease_s
        )
        report.worker_id = lease.worker_id
        try:
            await _serve(fleet, lease, services, opts, report)
        finally:
            if not isinstance(report.stopped, LeaseLost):
                with contextlib.suppress(EngineError):
                    await fleet.retire(lease, sent_grace_s=REAPED_SENT_GRACE_S)
    finally:
        await fleet.close()
    report.elapsed_s = time.monotonic() - started
    return report


async def _serve(
    fleet: Fleet,
    lease: Lease,
    services: dict[str, Service],
    opts: WorkerOptions,
    report: WorkerReport,
) -> None:
    lanes: list[Lane] = []
    #: Campaigns this worker bound to their service (their first binding).
    bound: set[str] = set()
    stop_now = asyncio.Event()

    def stop(cause: EngineError | None) -> None:
        """Stop every lane: a signal (``cause`` None), a lost lease, a database gone."""
        if isinstance(cause, LedgerWriteFailed) and isinstance(cause.__cause__, Fenced):
            cause = LeaseLost(f"worker {lease.worker_id} lost its lease: {cause}")
        elif isinstance(cause, LedgerWriteFailed) and isinstance(
            cause.__cause__, LedgerUnavailable
        ):
            cause = cause.__cause__
        if cause is not None and report.stopped is None:
            report.stopped = cause
            log.warning("%s", cause)
        for lane in lanes:
            lane.control.interrupted = True
        stop_now.set()

    def interrupt() -> None:
        if not report.interrupted:
            log.warning("interrupted: finishing requests in flight, starting no new ones")
        report.interrupted = True
        stop(None)

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        with contextlib.ExitStack() as ledgers:
            async with contextlib.AsyncExitStack() as stack:
                for name, service in services.items():
                    ledger = open_ledger(
                        opts.url, campaign=name, create=False, guard=fleet.fence_sql(lease)
                    )
                    ledgers.callback(ledger.close)
                    if bind_ledger(ledger, service):
                        bound.add(name)
                    lanes.append(
                        await _open_lane(
                            stack, name, ledger, service, fleet, lease, opts, report, stop
                        )
                    )
                await _work(lanes, fleet, lease, opts, report, stop, stop_now)
            # The writers are closed: what they wrote is in the counts.
            _account(lanes, report)
            for lane in (lane for lane in lanes if lane.name in bound):
                counts = report.counts.get(lane.name)  # None: the database went away
                with contextlib.suppress(*_DATABASE_GONE):
                    if counts is not None:
                        unsent(lane.ledger, services[lane.name], counts, lane.control.abort)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _work(
    lanes: list[Lane],
    fleet: Fleet,
    lease: Lease,
    opts: WorkerOptions,
    report: WorkerReport,
    stop: Callable[[EngineError | None], None],
    stop_now: asyncio.Event,
) -> None:
    """Run the lanes, the heartbeat beside them, until done or stopped."""
    beside = [asyncio.create_task(_heartbeat(fleet, lease, stop))]
    if opts.max_rendering is not None:
        # One poller per account (the first lane of each), while the lanes run.
        for lane in {lane.account: lane for lane in reversed(lanes)}.values():
            poller = RenderPoller(fleet, lease, lane.account, opts.url, lane.client, lane.limiter)
            beside.append(asyncio.create_task(poller.run(lane.control)))
    try:
        with ProgressDisplay(report.stats, enabled=opts.progress):
            work = asyncio.create_task(_run_lanes(lanes))
            await _wait_or_stop(work, stop_now)
    except* _DATABASE_GONE as group:
        stop(_first_of(group))
    finally:
        for task in beside:
            task.cancel()
        for task in beside:
            with contextlib.suppress(asyncio.CancelledError, *_DATABASE_GONE):
                await task


def _first_of(group: BaseExceptionGroup[EngineError]) -> EngineError:
    """The first error in ``group``, however deep: lanes run task groups of their own,
    and a report names the error, not the group it came in."""
    found: BaseException = group
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    assert isinstance(found, EngineError)
    return found


def _account(lanes: list[Lane], report: WorkerReport) -> None:
    """What the lanes did and how their campaigns stand now, into ``report``."""
    for lane in lanes:
        report.reconciled_found += lane.found
        report.reconciled_absent += lane.absent
        report.abort = report.abort or lane.control.abort
        report.wait = report.wait or lane.control.too_long
    if report.stopped is None:
        with contextlib.suppress(*_DATABASE_GONE):
            for lane in lanes:
                report.counts[lane.name] = lane.ledger.counts()


async def _open_lane(
    stack: contextlib.AsyncExitStack,
    name: str,
    ledger: Ledger,
    service: Service,
    fleet: Fleet,
    lease: Lease,
    opts: WorkerOptions,
    report: WorkerReport,
    stop: Callable[[EngineError | None], None],
) -> Lane:
    """The lane of the campaign ``ledger`` holds: its fenced writer, client and limiter."""
    fence = fleet.fence_sql(lease)
    writer = BatchWriter(lambda: open_ledger(opts.url, campaign=name, create=False, guard=fence))
    writer.start()
    stack.push_async_callback(_close_writer, writer, stop)
    base_url, key = await stack.enter_async_context(service_address(service, None))
    client = await stack.enter_async_context(HeyGenClient(base_url, key, opts.concurrency))
    account = account_id(base_url, key)
    control = SharedControl(opts.max_wait_s, fleet, account)
    limiter = SharedLimiter(
        fleet, account, opts.rate, lease, stop, max_rendering=opts.max_rendering
    )
    lane_options = LaneOptions(
        concurrency=opts.concurrency,
        max_attempts=opts.max_attempts,
        grace_s=opts.grace_s,
        depth=marking_depth(opts.rate, opts.concurrency),
        follow=opts.follow,
        max_rendering=opts.max_rendering,
    )
    return Lane(
        name,
        registry.schema_of(name),
        ledger,
        writer,
        client,
        limiter,
        control,
        account,
        fleet,
        lease,
        report.stats,
        lane_options,
    )


async def _close_writer(writer: BatchWriter, stop: Callable[[EngineError | None], None]) -> None:
    try:
        await writer.close()
    except LedgerWriteFailed as err:
        stop(err)


async def _run_lanes(lanes: list[Lane]) -> None:
    async with asyncio.TaskGroup() as group:
        for lane in lanes:
            group.create_task(lane.run())


async def _heartbeat(
    fleet: Fleet, lease: Lease, stop: Callable[[EngineError | None], None]
) -> None:
    """Renew the lease every ``HEARTBEAT_SHARE`` of it; a refusal, or a database out of
    reach, stops the worker at once."""
    while True:
        await asyncio.sleep(lease.lease_s * HEARTBEAT_SHARE)
        try:
            renewed = await fleet.heartbeat(lease)
        except LedgerUnavailable as err:
            stop(err)
            return
        if not renewed:
            stop(LeaseLost(f"worker {lease.worker_id} lost its lease (another worker reaped it)"))
            return


async def _wait_or_stop(work: asyncio.Task[None], stopped: asyncio.Event) -> None:
    """Wait for ``work``; after a stop give requests in flight a grace period, then cancel."""
    stop = asyncio.create_task(stopped.wait())
    try:
        await asyncio.wait({work, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if work.done():
        work.result()
    else:
        await let_finish(work)
