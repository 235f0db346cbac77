"""``python -m paywarden.worker``: the same as ``paywarden webhooks worker``, without loading
the rest of the command line."""

from __future__ import annotations

import typer

from paywarden.cli.webhooks import worker

if __name__ == "__main__":
    typer.run(worker)
