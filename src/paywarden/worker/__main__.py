"""``python -m paywarden.worker``: the same as ``paywarden webhooks worker``."""

from __future__ import annotations

import sys

from paywarden.cli.main import app

if __name__ == "__main__":
    app(["webhooks", "worker", *sys.argv[1:]], prog_name="paywarden")
