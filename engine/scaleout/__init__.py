"""Scale-out on a PostgreSQL ledger: enqueue a campaign, and the workers that send it."""
