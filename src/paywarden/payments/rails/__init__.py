"""Payment rails: where money enters and leaves paywarden. Only the sandbox exists today."""
