"""Merchants' profiles and stores, catalogs, import and search."""

from __future__ import annotations

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter()
