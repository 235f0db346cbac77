"""Tables for webhook endpoints, deliveries and attempts."""

from __future__ import annotations
