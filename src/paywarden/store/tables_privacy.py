"""Tables for privacy requests (exports and erasures)."""

from __future__ import annotations
