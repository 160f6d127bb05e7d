"""Helpers for the Flink job tests: settings for a job against a test stack, running a job to
the end of its input, and reading derived topics as a downstream consumer would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jobs.flink.runtime import RunOptions
from jobs.launch import JobProcess
from learnstream.settings import FlinkSettings, Settings
from learnstream.wiring import launcher
from streams.kafka import read_to_end

JOB_TIMEOUT_S = 300


def job_settings(base: Settings, state_dir: Path, **flink: Any) -> Settings:
    """``base`` (a test stack's settings) with the Flink jobs' state under ``state_dir``."""
    return base.model_copy(
        update={
            "flink": FlinkSettings(checkpoint_dir=state_dir / "checkpoints", **flink),
            "stack": base.stack.model_copy(update={"state_dir": state_dir}),
        }
    )


def run_to_end(settings: Settings, job: str, **options: Any) -> JobProcess:
    """Run ``job`` bounded (to the offsets that are the latest now) and wait until it is done
    and its output committed."""
    return launcher(settings).run_to_end(job, RunOptions(bounded=True, **options), JOB_TIMEOUT_S)


def read_json(bootstrap: str, topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
    """(key, value) of every committed record of ``topic`` (read_committed), in partition order."""
    return [
        (record.key, json.loads(record.value))
        for record in read_to_end(bootstrap, [topic])
        if record.value is not None
    ]
