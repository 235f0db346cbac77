"""Tables for checkout sessions, orders, order refunds."""

from __future__ import annotations
