"""Tables for the ACP face: agent bearer tokens and one-time delegated payment tokens."""

from __future__ import annotations
