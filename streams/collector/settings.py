"""The collector's settings (the ``collector`` section)."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

from schemas.settings import SECTION


class CollectorSettings(BaseModel):
    """The HTTP collector: where it listens, who may post, and what it accepts."""

    model_config = SECTION

    host: str = Field("127.0.0.1")
    port: int = Field(8080, ge=1, le=65535)
    api_keys: dict[str, str] = Field(
        default_factory=dict,
        description='JSON {client_id: "sha256:<hex>"}; see `learnstream collector keygen`',
    )
    browser_clients: list[str] = Field(
        default_factory=list, description="Client ids whose keys may be used from browsers (CORS)"
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins allowed for browser clients, e.g. ["https://app.example"]',
    )
    max_batch_events: int = Field(500, ge=1)
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    max_past_days: float = Field(30, gt=0, description="Reject occurred_at older than this")
    max_future_s: float = Field(300, ge=0, description="Reject occurred_at further ahead than this")
    delivery_timeout_s: float = Field(30, gt=0, description="Wait this long for Kafka to confirm")
    metrics_interval_s: float = Field(10.0, gt=0, description="pipeline.metrics period")

    @field_validator("api_keys")
    @classmethod
    def _hashed(cls, value: dict[str, str]) -> dict[str, str]:
        for client, digest in value.items():
            if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
                raise ValueError(
                    f"api key of client {client!r} must be stored hashed as sha256:<64 hex>; "
                    "make one with `learnstream collector keygen <client>`"
                )
        return value

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
