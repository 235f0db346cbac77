"""An invariant check that survives ``python -O``.

``assert`` statements vanish under optimisation; a broken money rule must never vanish.
"""

from __future__ import annotations

from paywarden.kernel.errors import InvariantViolation

__all__ = ["invariant"]


def invariant(condition: bool, message: str) -> None:
    """Raise :class:`InvariantViolation` when ``condition`` is false."""
    if not condition:
        raise InvariantViolation(message)
