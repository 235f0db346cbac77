"""Device simulators: a person's glasses, phone or card, and a merchant's terminal, speaking
to a running paywarden over HTTP with their own keys (``paywarden device …``)."""
