"""The PostgreSQL ledger: campaigns as schemas, and the coordination of many workers."""
