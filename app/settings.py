"""Settings from the environment (and `.env` in the dev profile only), one profile per environment."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.src.resilience.policy import ProviderPolicy
from app.src.utils.logs import LogFormat

Profile = Literal["dev", "test", "stage", "prod"]
ProviderName = Literal["payments", "catalog", "notify"]
PROVIDERS: tuple[ProviderName, ...] = get_args(ProviderName)  # the order `make run` gives their simulators ports

DEPLOYED_PROFILES: frozenset[str] = frozenset({"stage", "prod"})
TOKEN_KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """How to reach one provider: `<NAME>_URL`, `<NAME>_API_KEY` and `<NAME>_POLICY`."""

    name: ProviderName
    url: str | None
    api_key: str | None
    policy: ProviderPolicy


def usable_cpus() -> int:
    """The CPUs this process may run on: a container's cpuset or `taskset`, where `os.cpu_count()` gives the host's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


class Settings(BaseSettings):
    """Every setting is read from the environment variable of the same name, upper-cased."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    profile: Profile = "dev"
    db_uri: SecretStr | None = None
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_read_pool_size: int = Field(default=10, ge=1, le=200)
    db_connect_timeout: float = Field(default=5.0, gt=0)
    db_statement_timeout: float = Field(default=15.0, gt=0)
    ready_timeout: float = Field(default=2.0, gt=0)
    ready_cache_seconds: float = Field(default=1.0, ge=0)
    listen_host: str = "127.0.0.1"
    listen_port: int = Field(default=8443, ge=0, le=65535)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    token_keys: SecretStr | None = None
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    body_timeout: float = Field(default=10.0, gt=0)
    head_timeout: float = Field(default=10.0, gt=0)
    max_url_bytes: int = Field(default=8 * 1024, ge=256)
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    max_headers: int = Field(default=100, ge=8)
    connections_per_peer: int | None = Field(default=100, ge=1)
    shutdown_timeout: int = Field(default=20, gt=0)
    payments_url: str | None = Field(default=None, pattern=r"^https?://")
    payments_api_key: SecretStr | None = None
    catalog_url: str | None = Field(default=None, pattern=r"^https?://")
    catalog_api_key: SecretStr | None = None
    notify_url: str | None = Field(default=None, pattern=r"^https?://")
    notify_api_key: SecretStr | None = None
    payments_policy: ProviderPolicy = ProviderPolicy()
    catalog_policy: ProviderPolicy = ProviderPolicy()
    notify_policy: ProviderPolicy = ProviderPolicy()
    simulator_base_port: int = Field(default=9101, ge=1024, le=65533)
    access_token_seconds: int = Field(default=15 * 60, ge=30)
    session_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    login_failures_per_hour: int = Field(default=100, ge=1)
    login_failures_per_burst: int = Field(default=10, ge=1)
    login_burst_seconds: int = Field(default=300, ge=1)
    password_hash_concurrency: int = Field(default_factory=usable_cpus, ge=1)
    password_hash_queue: int = Field(default=8, ge=0)
    totp_issuer: str = "Proving Ground"
    inbound_concurrency: int = Field(default=16, ge=1)
    inbound_min_concurrency: int | None = Field(default=None, ge=1)  # unset: an eighth of inbound_concurrency
    inbound_busy_target: float | None = Field(default=0.95, gt=0, le=1)
    inbound_max_wait: float = Field(default=0.1, ge=0)
    inbound_standing_wait: float = Field(default=0.01, ge=0)
    inbound_queue: int = Field(default=4, ge=0)
    inbound_retry_after: int = Field(default=1, ge=1)
    client_rate: float | None = Field(default=50.0, gt=0)
    client_burst: int = Field(default=100, ge=1)
    client_rate_max_clients: int = Field(default=100_000, ge=1)
    address_rate: float | None = Field(default=1.0, gt=0)
    address_burst: int = Field(default=30, ge=1)
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = ()
    public_url: str = Field(default="https://localhost:8443", pattern=r"^https?://")
    login_alerts_per_hour: int = Field(default=3, ge=0)
    outbox_max_pending: int = Field(default=10_000, ge=1)
    outbox_max_attempts: int = Field(default=8, ge=1)
    outbox_concurrency: int = Field(default=4, ge=1)
    outbox_backoff_base: float = Field(default=1.0, gt=0)
    outbox_backoff_cap: float = Field(default=300.0, gt=0)
    outbox_retention_days: int = Field(default=7, ge=1)
    cleanup_every_seconds: int = Field(default=3600, ge=1)
    job_runs_retention_days: int = Field(default=7, ge=1)
    catalog_sync_seconds: int = Field(default=60, ge=1)
    catalog_page_size: int = Field(default=100, ge=1, le=100)
    catalog_max_pages: int = Field(default=1000, ge=1)
    catalog_versions_kept: int = Field(default=3, ge=2, le=10)
    catalog_poll_seconds: float = Field(default=5.0, gt=0)
    idempotency_retention_hours: int = Field(default=24, ge=1, le=24 * 30)
    idempotency_lease_seconds: float = Field(default=60.0, gt=0)
    payments_webhook_secrets: SecretStr | None = None
    payments_reconcile_seconds: int = Field(default=30, ge=1)
    payments_reconcile_after_seconds: float = Field(default=60.0, gt=0)
    metrics_token: SecretStr | None = None
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: LogFormat = "json"
    data_dir: Path = Path(".data")

    @field_validator("client_rate", "address_rate", "connections_per_peer", "inbound_busy_target", mode="before")
    @classmethod
    def _can_be_off(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in {"", "off", "none", "null"}:
            return None
        return value

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _explicit_origins_only(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if origin == "*":
                raise ValueError("CORS_ORIGINS must list origins explicitly; '*' is not allowed")
            if origin.startswith("re:") and not origin.endswith(r"\Z"):
                raise ValueError(rf"a regular-expression origin must end in \Z so it cannot match a suffix: {origin}")
        return origins

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, networks: tuple[str, ...]) -> tuple[str, ...]:
        for network in networks:
            try:
                ipaddress.ip_network(network)
            except ValueError:
                raise ValueError(f"TRUSTED_PROXIES: {network!r} is not an address or a network (CIDR)") from None
        return networks

    @field_validator("token_keys")
    @classmethod
    def _token_keys_well_formed(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_token_keys(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _limit_floor_under_its_ceiling(self) -> Settings:
        if self.inbound_min_concurrency is not None and self.inbound_min_concurrency > self.inbound_concurrency:
            raise ValueError(
                f"INBOUND_MIN_CONCURRENCY ({self.inbound_min_concurrency}) must not exceed INBOUND_CONCURRENCY "
                f"({self.inbound_concurrency})"
            )
        return self

    @model_validator(mode="after")
    def _deployed_profiles_need_secrets(self) -> Settings:
        if self.profile not in DEPLOYED_PROFILES:
            return self
        missing = [
            name
            for name, value in (
                ("DB_URI", self.db_uri),
                ("TOKEN_KEYS", self.token_keys),
                ("TLS_CERT_FILE", self.tls_cert_file),
                ("TLS_KEY_FILE", self.tls_key_file),
            )
            if value is None
        ]
        if missing:
            raise ValueError(f"the {self.profile} profile needs {', '.join(missing)}")
        unreadable = [str(path) for path in (self.tls_cert_file, self.tls_key_file) if path and not path.is_file()]
        if unreadable:
            raise ValueError(f"TLS files not found: {', '.join(unreadable)}")
        return self

    @property
    def inbound_concurrency_floor(self) -> int:
        """The least the concurrency limit shrinks to while the event loop is busy."""
        if self.inbound_min_concurrency is not None:
            return self.inbound_min_concurrency
        return max(1, self.inbound_concurrency // 8)

    @property
    def uses_tls(self) -> bool:
        return self.tls_cert_file is not None and self.tls_key_file is not None

    def token_key_ring(self) -> list[tuple[str, bytes]] | None:
        return None if self.token_keys is None else parse_token_keys(self.token_keys.get_secret_value())

    def provider(self, name: ProviderName) -> ProviderSettings:
        api_key: SecretStr | None = getattr(self, f"{name}_api_key")
        return ProviderSettings(
            name,
            getattr(self, f"{name}_url"),
            None if api_key is None else api_key.get_secret_value(),
            getattr(self, f"{name}_policy"),
        )

    @property
    def embedded_database_dir(self) -> Path:
        return self.data_dir / "postgres"


def new_token_key() -> str:
    """A fresh `kid:key` entry for TOKEN_KEYS (put it first to seal with it; keep the old ones to open theirs)."""
    kid = "k" + secrets.token_hex(4)
    return f"{kid}:{base64.urlsafe_b64encode(secrets.token_bytes(TOKEN_KEY_BYTES)).decode().rstrip('=')}"


def parse_token_keys(raw: str) -> list[tuple[str, bytes]]:
    """`kid:base64url(32 bytes)` entries separated by commas; the first one encrypts."""
    ring: list[tuple[str, bytes]] = []
    for entry in filter(None, (part.strip() for part in raw.split(","))):
        kid, _, encoded = entry.partition(":")
        if not _KEY_ID.fullmatch(kid):
            raise ValueError("TOKEN_KEYS: each entry is <kid>:<base64url key>, kid of letters, digits, '-' or '_'")
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"TOKEN_KEYS: key {kid!r} is not base64url") from None
        if len(key) != TOKEN_KEY_BYTES:
            raise ValueError(f"TOKEN_KEYS: key {kid!r} must be {TOKEN_KEY_BYTES} bytes")
        if any(existing == kid for existing, _ in ring):
            raise ValueError(f"TOKEN_KEYS: key id {kid!r} is listed twice")
        ring.append((kid, key))
    if not ring:
        raise ValueError("TOKEN_KEYS is set but lists no key")
    return ring


class ProfileNotSetError(ValueError):
    def __init__(self) -> None:
        super().__init__(
            "PROFILE is not set: say which environment this is (dev, test, stage or prod); "
            "`make run` (python -m app dev) sets dev"
        )


def environment_without_settings(environment: Mapping[str, str]) -> dict[str, str]:
    """`environment` without what the service reads (its settings, SECRETS_DIR, OpenTelemetry's variables): for a
    child process configured only by what its caller adds."""
    ours = {name.upper() for name in Settings.model_fields} | {"SECRETS_DIR"}
    return {name: value for name, value in environment.items() if name not in ours and not name.startswith("OTEL_")}


def load_settings(*, profile_required: bool = False, **overrides: Any) -> Settings:
    """Read settings from the environment; `.env` is read only when the profile (from the environment) is dev.
    `profile_required`: a process that serves must be told its profile, or it would run with dev's defaults
    (a key that lasts the process, `.env`, an embedded database) wherever it was deployed."""
    if profile_required and "profile" not in overrides and not os.environ.get("PROFILE"):
        raise ProfileNotSetError
    profile = overrides.get("profile") or os.environ.get("PROFILE", "dev")
    env_file = ".env" if profile == "dev" else None
    secrets_dir = os.environ.get("SECRETS_DIR")
    return Settings(_env_file=env_file, _secrets_dir=secrets_dir, **overrides)
