"""Tables for settlement and payouts."""

from __future__ import annotations
