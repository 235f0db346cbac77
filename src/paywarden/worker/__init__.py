"""Background processes: the webhook delivery worker (``paywarden webhooks worker``)."""
