"""Named errors of the CLI and the local stack. Each message says what to do next.

The base class and the "cannot reach" errors live on the ground floor (``schemas.errors``) so
that every part can raise them; they are re-exported here for the CLI.
"""

from __future__ import annotations

from schemas.errors import (
    ChainUnreachable,
    ClickHouseUnreachable,
    KafkaUnreachable,
    LearnstreamError,
    Unreachable,
)


class StackError(LearnstreamError):
    """The local stack could not do what was asked."""


class JavaNotFoundError(StackError):
    """No Java 17+ runtime for the Kafka broker (and Flink)."""

    exit_code = 3


class PortInUseError(StackError):
    """A port a local service needs is already taken by another process."""

    exit_code = 4


class MissingArtifactError(StackError):
    """Jars or npm tools that `make setup` installs are not there."""

    exit_code = 5


class ServiceStartError(StackError):
    """A service started but did not become healthy; the message carries its log's tail."""

    exit_code = 6


__all__ = [
    "ChainUnreachable",
    "ClickHouseUnreachable",
    "JavaNotFoundError",
    "KafkaUnreachable",
    "LearnstreamError",
    "MissingArtifactError",
    "PortInUseError",
    "ServiceStartError",
    "StackError",
    "Unreachable",
]
