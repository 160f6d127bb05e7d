"""`learnstream stack up | down | status | logs | smoke`: the local services."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from learnstream.cli.common import echo_err, require
from learnstream.settings import Settings, get_settings

app = typer.Typer(
    help="The local services: Kafka broker, embedded ClickHouse (HTTP interface), anvil.",
    no_args_is_help=True,
)


def _stack(settings: Settings | None = None):  # type: ignore[no-untyped-def]
    from learnstream.stack import Stack

    return Stack(settings or get_settings(), echo=echo_err)


@app.command("up")
def stack_up(
    timeout: Annotated[
        float | None, typer.Option(help="Seconds to wait for health (default from settings).")
    ] = None,
    topics: Annotated[bool, typer.Option(help="Create the topic catalogue.")] = True,
) -> None:
    """Start the services that are not running, wait for health, create the topics."""
    outcome = _stack().up(timeout=timeout, create_topics=topics)
    for name, what in outcome.items():
        typer.echo(f"{name}: {what}")


@app.command("down")
def stack_down() -> None:
    """Stop the services this stack started (and nothing else)."""
    _stack().down()


@app.command("status")
def stack_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show each service, its state, PID and address. Exits 1 if any is not running."""
    rows = _stack().status()
    if as_json:
        typer.echo(json.dumps([row.__dict__ for row in rows], indent=2))
    else:
        typer.echo(f"{'service':<11} {'state':<10} {'pid':>7}  address")
        for row in rows:
            pid = str(row.pid) if row.pid else "-"
            typer.echo(f"{row.name:<11} {row.state:<10} {pid:>7}  {row.address}")
    if any(row.state != "running" for row in rows):
        raise typer.Exit(1)


@app.command("logs")
def stack_logs(
    service: Annotated[str, typer.Argument(help="kafka | clickhouse | anvil")],
    lines: Annotated[int, typer.Option("-n", "--lines", help="How many lines.")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing.")] = False,
) -> None:
    """Print the tail of a service's log."""
    stack = _stack()
    typer.echo(stack.logs(service, lines))
    if follow:
        path = Path(stack.service(service).log_path)
        with path.open() as f:
            f.seek(0, 2)
            while True:
                line = f.readline()
                if line:
                    typer.echo(line, nl=False)
                else:
                    time.sleep(0.5)


@app.command("smoke")
def stack_smoke(
    messages: Annotated[int, typer.Option(min=1, help="Keyed messages to round-trip.")] = 1000,
) -> None:
    """Check a running stack: Kafka keyed round trip, a ClickHouse query, the chain id."""
    from learnstream.stack import smoke

    settings = get_settings()
    require(settings, kafka=True, clickhouse=True, chain=True)
    result = smoke.run(settings, messages)
    typer.echo(
        f"kafka: {result.consumed}/{result.produced} keyed messages round-tripped in order "
        f"({result.kafka_s:.1f}s)\nclickhouse: version {result.clickhouse_version}\n"
        f"chain: chain id {result.chain_id}"
    )
