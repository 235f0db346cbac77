"""Webhook endpoints, events, deliveries and re-sends."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
