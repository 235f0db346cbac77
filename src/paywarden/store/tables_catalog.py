"""Tables for merchant profiles, stores, cart keys, products, variants, stock and search."""

from __future__ import annotations
