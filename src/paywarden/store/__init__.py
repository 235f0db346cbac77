"""The store: one schema for SQLite and PostgreSQL, migrations, and the unit of work."""
