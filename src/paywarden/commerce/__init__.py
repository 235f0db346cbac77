"""The commerce domain: what is being bought, from whom, at what price (pure: no I/O)."""
