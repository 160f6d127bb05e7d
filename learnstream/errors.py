"""Named errors of the CLI, settings and local stack. Each message says what to do next."""

from __future__ import annotations


class LearnstreamError(Exception):
    """Base of learnstream's own errors; the CLI prints the message and exits non-zero."""

    exit_code = 1


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
