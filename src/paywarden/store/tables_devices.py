"""Tables for devices, terminals, tap tokens and counters, QR requests."""

from __future__ import annotations
