"""Services: one function per use case. Each takes a unit of work and commits nothing
itself; ``Store.run`` commits once, so the idempotency record written by the API around a
service lands in the same transaction as the service's effects."""
