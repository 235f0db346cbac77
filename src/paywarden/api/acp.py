"""The Agentic Commerce Protocol (ACP 2026-04-17) checkout face."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
