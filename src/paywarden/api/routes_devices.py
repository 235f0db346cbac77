"""Devices, terminals, QR payment requests and taps."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
