"""Every tunable number of the PostgreSQL ledger and of the workers' coordination
(leases, shared limits, pool)."""

from __future__ import annotations

#: The schema shared by every campaign of a database: the registry and the fleet's tables.
SHARED_SCHEMA = "heygen_batch"
#: Prefix of a campaign's own schema: ``campaign_<name>``.
CAMPAIGN_SCHEMA_PREFIX = "campaign_"
#: Longest campaign name (so the schema name stays within PostgreSQL's 63 bytes).
CAMPAIGN_NAME_MAX = 40
#: Rows fetched per round trip when a query's rows are streamed (export, download).
STREAM_BATCH = 2000

# A worker's lease: how long it holds its claims without a heartbeat. Long enough that a
# busy database or a slow heartbeat does not cost a live worker its jobs; short enough
# that a dead worker's jobs wait little before another takes them.
DEFAULT_LEASE_S = 30.0
# A worker renews its lease every lease_s * HEARTBEAT_SHARE: two heartbeats may fail
# before the lease is at risk.
HEARTBEAT_SHARE = 1 / 3
# A worker never starts a send with less than this left on its lease by its own monotonic
# clock, so a request always leaves before the database could call the lease expired
# (the two clocks may drift apart a little over one lease).
LEASE_MARGIN_S = 5.0
# ... and never more than this share of the lease: a short lease (a test's few seconds)
# must leave room to send between heartbeats, when HEARTBEAT_SHARE of it has run down.
LEASE_MARGIN_SHARE = 1 / 3

# Grants are kept at least this long (and at least one period of the caller's rate):
# callers sharing an account may use different periods, up to an hour (--rate N/h).
GRANT_KEEP_S = 3600.0
# A caller's rate holds for every caller of its account until it has not asked for this
# many of its own periods: a waiting caller asks again within one period, so a live
# caller's rate never lapses, and a gone one's frees the others soon after.
RATE_HELD_PERIODS = 2.0
# No render slot free: ask again after this long (slots free when a poller sees a render
# end, which no clock can predict).
RENDER_SLOT_WAIT_S = 1.0

# How long opening a connection (or, for the fleet, waiting for one from its pool) may
# take before the database counts as unreachable.
CONNECT_TIMEOUT_S = 10.0
