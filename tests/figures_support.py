"""Figures the fault and attack suite proves (cycles survived, requests in flight at kills,
cases tried, routes covered): tests call :func:`report`, and the terminal summary of
tests/conftest.py prints them, with or without ``-s``."""

from __future__ import annotations

__all__ = ["FIGURES", "report"]

FIGURES: list[str] = []


def report(line: str) -> None:
    """Keep ``line`` for the 'figures' section of the terminal summary."""
    FIGURES.append(line)
