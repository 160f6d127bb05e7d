"""The Flink jobs' settings (the ``flink`` section), and what a job process reads.

A job process (``python -m jobs.flink.<job>``, locally or on a cluster with ``flink run -py``) is
an entry point of its own: :class:`JobSettings` reads the two sections it needs from the same
``LEARNSTREAM_*`` variables as the rest of learnstream.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.settings import SECTION, WorkPath
from streams.settings import KafkaSettings

# Where checkpoints go when neither the setting nor the launcher says (the stack's state folder
# under the working directory).
DEFAULT_CHECKPOINTS = Path(".stack") / "flink" / "checkpoints"


class FlinkSettings(BaseModel):
    """The PyFlink jobs (jobs/flink): where they run and their streaming semantics."""

    model_config = SECTION

    python: WorkPath = Field(
        Path(".venv-flink") / "bin" / "python",
        description="The Flink environment's interpreter (client and Python workers).",
    )
    parallelism: int = Field(1, ge=1, description="Default operator parallelism.")
    heap: str = Field("1g", pattern=r"^\d+[kmg]$", description="Mini-cluster JVM -Xmx.")
    checkpoint_interval_s: float = Field(
        5.0, gt=0, description="Checkpoint interval: the latency floor of the derived topics."
    )
    checkpoint_dir: Path | None = Field(
        None, description="Retained checkpoints; default: <stack.state_dir>/flink/checkpoints."
    )
    transaction_timeout_ms: int = Field(
        900_000,
        ge=60_000,
        le=900_000,
        description="Kafka sink transaction timeout; at most the broker's "
        "transaction.max.timeout.ms.",
    )
    allowed_lateness_s: float = Field(
        120.0, ge=0, description="QoS: events this far behind their partition's newest still count."
    )
    dedup_ttl_h: float = Field(24.0, gt=0, description="How long a seen event_id is remembered.")
    window_state_ttl_h: float = Field(
        1.0,
        gt=0,
        description="QoS: how long a minute's aggregate state is kept after its last update.",
    )
    score_step: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Emit completion.scores when a score moves at least this much.",
    )

    def checkpoints(self, job: str, state_dir: Path | None = None) -> Path:
        """The folder of ``job``'s retained checkpoints."""
        if self.checkpoint_dir is not None:
            base = self.checkpoint_dir
        elif state_dir is not None:
            base = state_dir / "flink" / "checkpoints"
        else:
            base = DEFAULT_CHECKPOINTS
        return base.absolute() / job


class JobSettings(BaseSettings):
    """The settings a Flink job process reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="LEARNSTREAM_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    flink: FlinkSettings = Field(default_factory=FlinkSettings)
