"""The recommendation app's settings (the ``reco`` section)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from schemas.settings import SECTION

SIGNALS = frozenset(
    {
        "view", "view_intent", "watch_base", "watch_progress", "video_completed",
        "quiz_base", "quiz_score", "purchase",
    }
)  # fmt: skip


class RecoSettings(BaseModel):
    """The recommendation app (jobs/faust): where it serves, how it checkpoints."""

    model_config = SECTION

    host: str = Field("127.0.0.1", description="HTTP listen address of the recommendations.")
    port: int = Field(6066, ge=1, le=65535)
    group_id: str = Field("learnstream-reco", description="Faust app id and consumer group.")
    checkpoint_path: Path | None = Field(
        None, description="Models + offsets; default: <stack.state_dir>/reco/checkpoint.pkl."
    )
    checkpoint_interval_s: float = Field(10.0, gt=0)
    metrics_interval_s: float = Field(10.0, gt=0, description="reco.metrics period")
    negatives: int = Field(2, ge=0, description="Unseen courses learned as 0 per interaction.")
    rank_every: int = Field(10, ge=1, description="Recall/NDCG on every n-th interaction.")
    dedup_ttl_h: float = Field(24.0, gt=0, description="How long a seen event_id is remembered.")
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Signal weights overriding the defaults of docs/reco.md, e.g. "
        '{"purchase": 5, "view": 1, "video_completed": 0.5}.',
    )

    @field_validator("weights")
    @classmethod
    def _known_weights(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - SIGNALS)
        if unknown:
            raise ValueError(f"unknown signal weights {unknown}; known: {sorted(SIGNALS)}")
        return value

    def checkpoint_file(self, state_dir: Path) -> Path:
        """Where the models and offsets are saved."""
        return (self.checkpoint_path or state_dir / "reco" / "checkpoint.pkl").absolute()
