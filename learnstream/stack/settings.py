"""The local stack's settings (the ``stack`` section): state, cache and tool folders, Java,
time limits, and which services ``stack up`` starts."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from schemas.settings import SECTION, WorkPath

KNOWN_SERVICES = ("kafka", "clickhouse", "anvil")


class StackSettings(BaseModel):
    """The local stack manager."""

    model_config = SECTION

    state_dir: WorkPath = Field(Path(".stack"), description="PID files, logs and data.")
    jars_dir: WorkPath = Field(Path(".cache") / "jars", description="Maven-resolved jars.")
    tools_dir: WorkPath = Field(
        Path("tools") / "node_modules", description="npm-installed anvil and solcjs."
    )
    java_home: Path | None = Field(None, description="JDK/JRE 17+; default: JAVA_HOME, then PATH.")
    startup_timeout_s: float = Field(90.0, gt=0)
    stop_timeout_s: float = Field(20.0, gt=0)
    services: list[str] = Field(
        default_factory=lambda: list(KNOWN_SERVICES),
        description="Which local services `stack up` starts.",
    )

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(KNOWN_SERVICES))
        if unknown:
            raise ValueError(
                f"unknown stack services {unknown}; known: {', '.join(KNOWN_SERVICES)}"
            )
        return value
