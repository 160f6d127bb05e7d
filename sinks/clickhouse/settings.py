"""ClickHouse: the DSN every client uses, and the local embedded server (the ``clickhouse``
section)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, model_validator

from schemas.settings import SECTION


class ClickHouseSettings(BaseModel):
    """The ClickHouse every client talks to, and the local embedded server."""

    model_config = SECTION

    dsn: str = Field(
        "http://127.0.0.1:8123",
        description="http(s)://[user[:password]@]host:port[/database] for the HTTP interface, "
        "or chdb:///path for single-process use.",
    )
    host: str = Field("127.0.0.1", description="Local embedded server: listen address.")
    port: int = Field(8123, ge=1, le=65535, description="Local embedded server: HTTP port.")
    user: str = Field("default", description="Local embedded server: accepted user.")
    password: SecretStr = Field(SecretStr(""), description="Local embedded server: password.")
    data_dir: Path | None = Field(
        None, description="Local embedded server: chdb data folder (default .stack/clickhouse)."
    )
    workers: int = Field(4, ge=1, description="Local embedded server: query threads.")
    pseudonym_secret: SecretStr = Field(
        SecretStr("learnstream-local-pseudonym-key"),
        description="HMAC key that turns learner ids into learner_key; set your own in production",
    )
    raw_ttl_days: int = Field(365, ge=1, description="TTL of the raw event tables")
    dlq_ttl_days: int = Field(7, ge=1, description="TTL of the dlq table (it holds raw payloads)")
    dedup_horizon_h: float = Field(
        48.0,
        ge=24,
        description="The sink stores an event_id once when its copies arrive within this long "
        "of each other (client retries); at least 24 h",
    )

    @model_validator(mode="after")
    def _default_dsn(self) -> ClickHouseSettings:
        if "dsn" not in self.model_fields_set:
            self.dsn = f"http://{self.host}:{self.port}"
        return self


def redacted(dsn: str) -> str:
    """``dsn`` without its password, for messages and logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
