"""The ledger on PostgreSQL: one database, many campaigns, one schema each."""
