"""Authorization: may this agent spend this much, here, now, for this user?

A user grants an agent a **mandate**: a list of constraints (limits, merchants, a time window)
in one currency and one IANA time zone. Every payment the agent asks for is evaluated against
it deterministically, by code and never by a model, and gets one of three outcomes: approve,
requires_confirmation (the user confirms on a trusted surface) or deny, each with
machine-readable reasons.

- :mod:`.constraints` — the constraint vocabulary (AP2's ``payment.*`` and paywarden's
  ``paywarden.*``) and its fail-closed parser;
- :mod:`.mandates` — the mandate, its lifecycle, its usage and the calendar periods;
- :mod:`.decision` — one evaluator per constraint, and :func:`~.decision.decide`;
- :mod:`.risk` — first-version risk rules whose thresholds are data.

Everything here is pure: ``now`` and the time zone (a ``tzinfo``) are parameters, and usage is
reserved atomically by the service, not here.
"""
