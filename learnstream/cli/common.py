"""What the command groups share: output, time options, and the check that a part is up."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import typer

from learnstream.settings import Settings


def echo_err(line: str) -> None:
    typer.echo(line, err=True)


def log_to_stderr(level: int = logging.INFO) -> None:
    """Logging for long-running services: timestamps, to stderr (their log file under `up`)."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")


def require(
    settings: Settings, kafka: bool = False, clickhouse: bool = False, chain: bool = False
) -> None:
    """Fail early, naming the part, its address and how to start it, when a part this command
    needs does not answer (exit codes 10, 11, 12)."""
    if kafka:
        from streams.kafka import require_kafka

        require_kafka(settings.kafka.bootstrap_servers)
    if clickhouse:
        from sinks.clickhouse.client import connect

        connect(settings.clickhouse.dsn).close()
    if chain:
        from settlement.chain import chain_id

        chain_id(settings.chain.rpc_url)


def since(value: str | None) -> datetime | None:
    """An ISO timestamp, or a duration back from now such as 30m, 6h, 2d."""
    if value is None:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[:-1].isdigit() and value[-1] in units:
        return datetime.now(UTC) - timedelta(seconds=int(value[:-1]) * units[value[-1]])
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r}: use an ISO time (2026-11-28T10:00Z) or 30m/6h/2d"
        ) from exc
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no time zone: add Z for UTC")
    return parsed
