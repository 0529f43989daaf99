"""The ledger on PostgreSQL: one database, many campaigns (one schema each), and the
coordination of many workers."""
