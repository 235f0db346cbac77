"""``paywarden bench``: paywarden's throughput measured side by side with its limits.

Each scenario runs several times in one process on one machine. A *limit* is the fastest
the layer underneath can go (a raw SQL loop on the same database, raw signature
operations, a minimal endpoint on the same HTTP stack); a *paywarden* scenario runs the
real code path and is reported as a ratio to its matching limit. Every run verifies what
it did afterwards, and a run that fails verification reports no figure.

See benchmarks/README.md for what is measured and how to read the ratios.
"""

from __future__ import annotations

__all__: list[str] = []
