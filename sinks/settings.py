"""The sink runner's settings: consumer group, batches, retries, metrics (the ``sink`` section
for the ClickHouse sink; other sinks bring sections of the same shape)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.settings import SECTION


class SinkSettings(BaseModel):
    """The ClickHouse sink: its consumer group and its batches."""

    model_config = SECTION

    group_id: str = Field("learnstream-sink-clickhouse")
    batch_max_rows: int = Field(50_000, ge=1, description="Flush when a batch has this many rows")
    batch_max_s: float = Field(1.0, gt=0, description="... or when its oldest row waited this long")
    retry_max_s: float = Field(30.0, gt=0, description="Longest pause between insert retries")
    metrics_interval_s: float = Field(10.0, gt=0, description="pipeline.metrics period")
