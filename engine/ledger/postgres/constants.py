"""Tunable numbers of the PostgreSQL ledger."""

#: The schema shared by every campaign of a database: the registry and the fleet's tables.
SHARED_SCHEMA = "heygen_batch"
#: Prefix of a campaign's own schema: ``campaign_<name>``.
CAMPAIGN_SCHEMA_PREFIX = "campaign_"
#: Longest campaign name (so the schema name stays within PostgreSQL's 63 bytes).
CAMPAIGN_NAME_MAX = 40
#: Seconds to wait for the server when connecting before giving up.
CONNECT_TIMEOUT_S = 10
#: Rows fetched per round trip when a query's rows are streamed (export, download).
STREAM_BATCH = 2000
