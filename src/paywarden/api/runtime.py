"""What every request handler shares: settings, the store, the instance secret and the
master key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property

from paywarden.authorization.risk import RiskConfig
from paywarden.config import Settings, create_master_key_file, load_master_key
from paywarden.kernel.errors import InvariantViolation
from paywarden.services import platform
from paywarden.store.unit_of_work import Store

__all__ = ["Runtime"]


@dataclass
class Runtime:
    settings: Settings
    store: Store
    _secret: bytes | None = field(default=None, repr=False)
    _master_key: bytes | None = field(default=None, repr=False)

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = self.store.run(platform.instance_secret)
        return self._secret

    @property
    def master_key(self) -> bytes:
        """The key sealing the platform's signing keys: ``PAYWARDEN_MASTER_KEY`` or the key
        file, which is created on first use when absent (as ``paywarden migrate`` does)."""
        if self._master_key is None:
            if self.settings.master_key is None:
                create_master_key_file(self.settings.master_key_file)
            self._master_key = load_master_key(self.settings)
        return self._master_key

    @cached_property
    def risk(self) -> RiskConfig:
        """The risk thresholds: the defaults, overridden by the ``risk`` setting."""
        return risk_config(self.settings)

    @cached_property
    def idempotency_retention(self) -> timedelta:
        return timedelta(hours=self.settings.idempotency_retention_h)


def risk_config(settings: Settings) -> RiskConfig:
    """``RiskConfig`` with the overrides of ``settings.risk``; a clear error for a name that
    is not a threshold or a value out of range."""
    known = set(RiskConfig.__dataclass_fields__)
    unknown = sorted(set(settings.risk) - known)
    if unknown:
        raise ValueError(f"risk: unknown threshold(s) {unknown}; known: {sorted(known)}")
    try:
        return RiskConfig(**settings.risk)  # type: ignore[arg-type]
    except InvariantViolation as error:
        raise ValueError(f"risk: {error.message}") from None
