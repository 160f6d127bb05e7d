"""Kafka: where every client finds it, and how the local broker runs (the ``kafka`` section)."""

from __future__ import annotations

from pydantic import BaseModel, Field, model_validator

from schemas.settings import SECTION


class KafkaSettings(BaseModel):
    """Where clients find Kafka, and how the local broker runs."""

    model_config = SECTION

    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list that every client uses."
    )
    host: str = Field("127.0.0.1", description="Local broker: listen address.")
    port: int = Field(9092, ge=1, le=65535, description="Local broker: client port.")
    controller_port: int = Field(9093, ge=1, le=65535, description="Local broker: KRaft port.")
    heap: str = Field("512m", pattern=r"^\d+[kmg]$", description="Local broker: JVM -Xmx/-Xms.")
    cluster_id: str = Field(
        "bGVhcm5zdHJlYW0tbG9jYQ",
        min_length=22,
        max_length=22,
        description="Local broker: KRaft cluster id used when formatting storage.",
    )

    @model_validator(mode="after")
    def _default_bootstrap(self) -> KafkaSettings:
        # A moved local broker moves its clients too, unless they were pointed elsewhere.
        if "bootstrap_servers" not in self.model_fields_set:
            self.bootstrap_servers = f"{self.host}:{self.port}"
        return self
