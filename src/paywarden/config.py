"""Settings: ``PAYWARDEN_*`` environment variables over an optional TOML file, read once at
the edge into one object. Nothing below the entry points reads the environment.

The TOML file is named by ``PAYWARDEN_CONFIG`` (or ``--config``); its keys are the field
names below (``database_url = "sqlite:///data/paywarden.db"``). Environment variables win.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

__all__ = ["Settings", "create_master_key_file", "load_master_key", "load_settings"]

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
    group_lanes: int = Field(
        2,
        ge=1,
        le=16,
        description="groups of concurrent writes committing at once on PostgreSQL, each on"
        " its own connection (SQLite has one writer: always 1)",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="server processes of `serve`; on PostgreSQL more use more cores (SQLite"
        " has one writer: keep 1)",
    )
    risk: dict[str, int | bool] = Field(
        default_factory=dict,
        description="overrides of the risk thresholds (paywarden.authorization.risk.RiskConfig),"
        " e.g. PAYWARDEN_RISK='{\"mandate_step_up_min\": 5}' or a [risk] table in TOML",
    )
    excerpt_retention_days: int = Field(
        30, ge=1, le=3650, description="how long a mandate request's conversation excerpt is kept"
    )
    audit_checkpoint_interval_s: float = Field(
        300.0, gt=0, description="how often `serve` seals the audit log with a signed checkpoint"
    )
    hold_expiry_interval_s: float = Field(
        30.0, gt=0, description="how often `serve` releases holds past their deadline"
    )
    payout_settlement_delay_s: int = Field(
        0, ge=0, description="how long a capture stays unsettled before it can be paid out"
    )
    approval_ttl_s: int = Field(
        900, ge=1, description="how long a user has to approve a payment that needs confirmation"
    )
    approval_reauth_above: int = Field(
        10_000, ge=0, description="approving an amount above this (minor units) re-authenticates"
    )
    webhook_delivery_in_process: bool = Field(
        True, description="`serve` also delivers webhooks (else run `paywarden webhooks worker`)"
    )
    webhook_poll_interval_s: float = Field(
        1.0, gt=0, le=60, description="how often the webhook worker looks for due deliveries"
    )
    webhook_retry_base_s: float = Field(10.0, gt=0, description="first webhook retry ceiling")
    webhook_retry_cap_s: float = Field(21_600.0, gt=0, description="largest webhook retry wait")
    webhook_retry_window_s: float = Field(
        259_200.0, gt=0, description="how long a webhook is retried before it is dead-lettered"
    )
    webhook_timeout_s: float = Field(10.0, gt=0, le=60, description="one webhook POST's timeout")
    webhook_lease_s: float = Field(
        60.0, gt=0, description="a claimed delivery is sent again after this if its worker died"
    )
    public_url: str | None = Field(
        None, description="the base URL clients reach this server at (order permalinks)"
    )
    rate_limit_key_per_s: float = Field(
        100.0, ge=0, description="requests a second per API key, per process (0: no limit)"
    )
    rate_limit_key_burst: int = Field(1_000, ge=1, description="a key's bucket size")
    rate_limit_agent_per_s: float = Field(
        50.0, ge=0, description="signed requests a second per agent key, per process (0: none)"
    )
    rate_limit_agent_burst: int = Field(500, ge=1, description="an agent key's bucket size")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    mcp_agent_key_file: Path | None = Field(
        None, description="`serve` mounts the MCP server at /mcp acting as this agent (JWK file)"
    )
    mcp_tools: str | None = Field(None, description="comma-separated MCP tool allow-list (all)")
    mcp_mandate: str | None = Field(None, description="the mandate MCP payments use by default")
    config_file: Path | None = Field(None, description="the TOML file these came from")
    master_key_file: Path = Field(
        Path("paywarden-data/master.key"),
        description="the master key sealing the platform's signing keys (made by `migrate`)",
    )
    master_key: SecretStr | None = Field(
        None, description="PAYWARDEN_MASTER_KEY: base64url of 32 bytes; wins over the file"
    )

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


MASTER_KEY_BYTES = 32


def load_master_key(settings: Settings) -> bytes:
    """The 32-byte master key: ``PAYWARDEN_MASTER_KEY`` if set, else ``master_key_file``.
    Raises ``FileNotFoundError`` (run ``paywarden migrate``) or ``ValueError``."""
    if settings.master_key is not None:
        return _decode_master_key(settings.master_key.get_secret_value(), "PAYWARDEN_MASTER_KEY")
    path = settings.master_key_file
    if not path.is_file():
        raise FileNotFoundError(f"no master key at {path}: `paywarden migrate` creates one")
    return _decode_master_key(path.read_text(encoding="ascii"), str(path))


def create_master_key_file(path: Path) -> bool:
    """Write a new random master key to ``path`` (mode 0600) unless a file is there already;
    whether one was written.

    The key is written and fsynced under a temporary name, then linked into place: ``link``
    fails when ``path`` exists, so of several processes starting at once exactly one key
    wins, and no reader ever sees a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return False
    encoded = base64.urlsafe_b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).rstrip(b"=")
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), 0o600)  # whatever the umask
            file.write(encoded + b"\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the new name survives a crash too
        finally:
            os.close(directory)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _decode_master_key(text: str, source: str) -> bytes:
    value = text.strip()
    try:
        key = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        key = b""
    canonical = base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")
    if len(key) != MASTER_KEY_BYTES or canonical != value.rstrip("="):
        raise ValueError(f"{source}: the master key must be base64url of {MASTER_KEY_BYTES} bytes")
    return key
