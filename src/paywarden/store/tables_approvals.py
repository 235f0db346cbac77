"""Tables for step-up approvals."""

from __future__ import annotations
