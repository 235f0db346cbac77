"""Webhook delivery worker, `listen` and `trigger`."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the ``paywarden`` command line."""
    _ = app
