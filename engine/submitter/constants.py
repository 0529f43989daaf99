"""Every tunable number of the retry, transport and reconcile policy, in one place."""

from __future__ import annotations

DEFAULT_MAX_ATTEMPTS = 6

# --rate defaults. Submissions: 1/s is safe for every HeyGen plan. Status calls (poll)
# are cheaper for the service and many more: 5/s. The built-in sandbox has no plan to
# respect, so a trial there is not held to either.
DEFAULT_RATE = "1/s"
DEFAULT_POLL_RATE = "5/s"
SANDBOX_RATE = "50/s"
# Stop retrying one job after this long even if attempts remain.
MAX_TOTAL_RETRY_S = 300.0

BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 30.0
# A wait the service asks for (Retry-After) is honoured in full up to --max-wait; a
# longer one stops the run (exit 75) with the time to come back.
DEFAULT_MAX_WAIT_S = 600.0
# A wait longer than this is said on stderr, so a quiet run is never a stuck one.
WAIT_NOTICE_S = 5.0
# A Retry-After beyond this is a broken header, read as this long (it stops the run anyway).
RETRY_AFTER_MAX_S = 30 * 86400.0

CONNECT_TIMEOUT_S = 10.0
TOTAL_TIMEOUT_S = 60.0

# Statuses that say nothing was created: always retried.
RETRYABLE_STATUSES = frozenset({429, 503})
# 5xx that say the request was never taken: 501 (no such method) and 505 (HTTP version).
# Every other 5xx may hide a created video (a proxy's 503 and 524 included).
NOT_TAKEN_5XX = frozenset({501, 505})

# Every window is stretched by this fraction of its length, so the service, which
# sees arrivals with network jitter, never counts N+1 in its own window.
RATE_SAFETY_MARGIN = 0.01
# How late the event loop wakes a timer (epoll rounds up to whole milliseconds).
# The limiter banks this much time as spare capacity so that late wake-ups do not
# add up to a rate well below the configured one.
RATE_TIMER_SLACK_S = 0.002
# ...but never more spare capacity than this share of N, which caps what it costs.
RATE_SLACK_SHARE = 0.01

# After SIGINT/SIGTERM, in-flight requests get this long to finish.
SHUTDOWN_GRACE_S = 5.0

# Jobs are marked `submitting` ahead of the workers, enough for this long of sending
# at the configured rate, so a slow commit (a WAL checkpoint, a busy disk) never
# leaves them idle; within these multiples of --concurrency.
MARK_AHEAD_S = 0.05
MARK_AHEAD_MIN = 2
MARK_AHEAD_MAX = 8

# An error kept in the ledger (and so the export) is one line of at most this many characters.
ERROR_TEXT_MAX_CHARS = 300

# --- Reconcile (engine/ledger/reconcile.py, listing.py) and the end of a run ---------

# How long the real service may take before a created video shows in its list.
DEFAULT_GRACE_S = 120.0
# The search window opens this long before the earliest attempt, on the service's
# clock: for a local clock stepped since the attempt, or a service whose servers
# disagree with the one that wrote the Date header. Too wide costs only pages.
WINDOW_MARGIN_S = 300.0
# The list is read this many videos a page (the service's maximum)...
LIST_PAGE_SIZE = 100
# ...and, before anything is declared absent, read again this many a page, so the page
# boundaries fall elsewhere (100 and 97 put none at the same place before 9 700 videos).
CHECK_PAGE_SIZE = 97
# Never page through more than this many videos looking for a handful of jobs.
MAX_LISTED = 200_000
# A run ends by waiting out the grace of its last uncertain jobs when it ends within this.
SETTLE_WAIT_MAX_S = 300.0
# At most this many reconcile rounds (each followed by a resend or a wait) end a run.
SETTLE_ROUNDS = 6
# A v3 job is settled by replaying its Idempotency-Key only this long before the
# service's replay window (24 h from its first request) ends: our clock and the service's
# may disagree, and a replay the service has forgotten would make a second video.
REPLAY_MARGIN_S = 3600.0

# --- delivery (download, webhook serve) ---
#: Bytes read from the storage host per write to the ``.part`` file.
DOWNLOAD_CHUNK_BYTES = 256 * 1024
#: A media file may take this long to arrive in full; its connection, CONNECT_TIMEOUT_S.
DOWNLOAD_TIMEOUT_S = 30 * 60.0
#: A webhook delivery is a few hundred bytes; anything far larger is refused with 413.
WEBHOOK_MAX_BODY_BYTES = 64 * 1024

# --- Render slots (engine/submitter/slots.py): --max-rendering and --until-done ------------

# A video's first status check comes this long after its create, until a render has been
# seen to its end; then when the quickest of the last SLOT_SAMPLES renders would end.
SLOT_FIRST_CHECK_S = 1.0
SLOT_SAMPLES = 20
# A render not yet done is checked again after this share of the quickest render time,
# within these bounds: a freed slot is seen soon after, at a few calls per render.
SLOT_RECHECK_SHARE = 0.05
SLOT_RECHECK_MIN_S = 0.02
SLOT_RECHECK_MAX_S = 30.0
# A video sent longer ago than this is not counted as holding a slot at the start of a run
# (renders take minutes): a ledger of old, never polled jobs costs no status calls there.
RENDER_HORIZON_S = 24 * 3600.0
# A dry run's guess at a render's length, per second of video, for its time estimate with
# --max-rendering: HeyGen publishes no render times, so the dry run says it is a guess.
ASSUMED_RENDER_S_PER_VIDEO_S = 2.0
# A replay that met a fault of the moment is tried again by the end of a run this long after.
REPLAY_AGAIN_S = 2.0

# --- Workers on a PostgreSQL ledger (engine/scaleout) ------------------------------------

# A request a worker starts (never with less than LEASE_MARGIN_S of its lease left,
# engine/ledger/postgres/constants.py) reaches the service within its connect timeout:
# a reaped worker's jobs count their reconcile grace from the lease's end plus this.
REAPED_SENT_GRACE_S = CONNECT_TIMEOUT_S
# Reap dead workers and reconcile the campaign's uncertain jobs this often (and at a
# worker's start and end).
RECONCILE_EVERY_S = 30.0
# With nothing to claim, a worker looks again this often (others may hold the last jobs,
# a reaped worker may free some, and with --follow new ones may be enqueued).
WORKER_IDLE_S = 1.0
# Workers' starts are spaced this much wider than one machine's (RATE_SAFETY_MARGIN): a
# start granted by the database reaches the service after a trip through another
# process, whose delay varies from worker to worker (a busy host, a slow wake-up).
SHARED_RATE_MARGIN = 0.05
# enqueue reads, judges and writes a file this many rows per transaction.
ENQUEUE_CHUNK = 2000
