"""Who is calling: the principals of the contracts table, after authentication."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["Principal", "PrincipalType"]


class PrincipalType(StrEnum):
    ADMIN = "admin"
    USER = "user"
    MERCHANT = "merchant"
    PLATFORM = "platform"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class Principal:
    type: PrincipalType
    id: str | None  # usr_/mer_/plt_/agt_ id; None for admin
    livemode: bool
    key_id: str
    api_version: str

    @property
    def is_admin(self) -> bool:
        return self.type is PrincipalType.ADMIN

    @property
    def scope(self) -> str:
        """What idempotency keys are scoped to: the principal, not the key that spoke."""
        mode = "live" if self.livemode else "test"
        return f"{self.type.value}:{self.id or 'platform'}:{mode}"
