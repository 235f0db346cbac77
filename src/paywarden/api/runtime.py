"""What every request handler shares: settings, the store, and the instance secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from paywarden.config import Settings
from paywarden.services import platform
from paywarden.store.unit_of_work import Store

__all__ = ["Runtime"]


@dataclass
class Runtime:
    settings: Settings
    store: Store
    _secret: bytes | None = field(default=None, repr=False)

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = self.store.run(platform.instance_secret)
        return self._secret

    @cached_property
    def idempotency_retention(self) -> timedelta:
        return timedelta(hours=self.settings.idempotency_retention_h)
