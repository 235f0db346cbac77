"""Settings: ``PAYWARDEN_*`` environment variables over an optional TOML file, read once at
the edge into one object. Nothing below the entry points reads the environment.

The TOML file is named by ``PAYWARDEN_CONFIG`` (or ``--config``); its keys are the field
names below (``database_url = "sqlite:///data/paywarden.db"``). Environment variables win.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "load_settings"]

DEFAULT_DATABASE_URL = "sqlite:///paywarden-data/paywarden.db"
# The TOML file of the settings being loaded; a context variable, not the environment.
_CONFIG_FILE: ContextVar[str | None] = ContextVar("paywarden_config_file", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYWARDEN_", extra="forbid")

    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="sqlite:///path/to.db (embedded) or postgresql://user@host:port/db",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    body_bytes_max: int = Field(1_048_576, ge=1024, description="larger bodies get 413")
    idempotency_retention_h: int = Field(
        24, ge=24, description="how long a key's response is replayed (ACP: at least 24 h)"
    )
    idempotency_lock_s: int = Field(
        30, ge=1, description="after this long an unfinished request's key may be retaken"
    )
    sqlite_synchronous: Literal["FULL", "EXTRA", "NORMAL"] = "FULL"
    database_pool_size: int = Field(20, ge=1, le=200)
    hold_expiry_interval_s: float = Field(
        30.0, gt=0, description="how often `serve` releases holds past their deadline"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    config_file: Path | None = Field(None, description="the TOML file these came from")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _CONFIG_FILE.get() or os.environ.get("PAYWARDEN_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from explicit overrides, then the environment, then the TOML file
    (``config_file``, else ``PAYWARDEN_CONFIG``). The environment is not modified."""
    path = config_file or (Path(p) if (p := os.environ.get("PAYWARDEN_CONFIG")) else None)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"no config file at {path}")
    token = _CONFIG_FILE.set(str(path) if path else None)
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    finally:
        _CONFIG_FILE.reset(token)
    settings.config_file = path
    return settings
