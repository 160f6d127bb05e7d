"""Throwaway stacks for tests and benchmarks: real services on free ports, in a folder of
their own, never touching a stack on the default ports (so `make demo` can run beside them).

    with throwaway_stack(tmp / "stack", ["kafka", "clickhouse"]) as stack:
        bootstrap = stack.settings.kafka.bootstrap_servers
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from learnstream.settings import (
    ChainSettings,
    ClickHouseSettings,
    KafkaSettings,
    Settings,
    StackSettings,
)
from learnstream.stack.manager import Stack
from learnstream.stack.procs import free_port


def throwaway_settings(
    state_dir: Path, services: list[str] | None = None, **sections: Any
) -> Settings:
    """Settings for a stack on free ports under ``state_dir``; never the user's .env.

    ``sections`` replace whole sections (``flink=FlinkSettings(...)``, ``topics=...``)."""
    stack = sections.pop("stack", None) or StackSettings(
        state_dir=state_dir,
        services=services or ["kafka", "clickhouse", "anvil"],
        startup_timeout_s=120,
    )
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        kafka=KafkaSettings(port=free_port(), controller_port=free_port()),
        clickhouse=ClickHouseSettings(port=free_port()),
        chain=sections.pop("chain", None)
        or ChainSettings(port=free_port(), state_interval_s=1, block_time_s=None),
        stack=stack,
        **sections,
    )


@contextlib.contextmanager
def throwaway_stack(
    state_dir: Path, services: list[str] | None = None, **sections: Any
) -> Iterator[Stack]:
    """A stack started here and stopped here (only what it started)."""
    stack = Stack(throwaway_settings(state_dir, services, **sections))
    stack.up()
    try:
        yield stack
    finally:
        stack.down()
