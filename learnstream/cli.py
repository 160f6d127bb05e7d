"""The `learnstream` command line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from learnstream.errors import LearnstreamError
from learnstream.settings import Settings, get_settings

app = typer.Typer(
    help="learnstream: learner events through Kafka, Flink and Faust into ClickHouse and "
    "pay-by-completion settlement.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stack_app = typer.Typer(
    help="The local services: Kafka broker, embedded ClickHouse (HTTP interface), anvil.",
    no_args_is_help=True,
)
app.add_typer(stack_app, name="stack")


def _echo(line: str) -> None:
    typer.echo(line, err=True)


def _stack(settings: Settings | None = None):  # type: ignore[no-untyped-def]
    from learnstream.stack import Stack

    return Stack(settings or get_settings(), echo=_echo)


@stack_app.command("up")
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


@stack_app.command("down")
def stack_down() -> None:
    """Stop the services this stack started (and nothing else)."""
    _stack().down()


@stack_app.command("status")
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


@stack_app.command("logs")
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


@stack_app.command("smoke")
def stack_smoke(
    messages: Annotated[int, typer.Option(min=1, help="Keyed messages to round-trip.")] = 1000,
) -> None:
    """Check a running stack: Kafka keyed round trip, a ClickHouse query, the chain id."""
    from streams import smoke

    result = smoke.run(get_settings(), messages)
    typer.echo(
        f"kafka: {result.consumed}/{result.produced} keyed messages round-tripped in order "
        f"({result.kafka_s:.1f}s)\nclickhouse: version {result.clickhouse_version}\n"
        f"chain: chain id {result.chain_id}"
    )


@app.command("settings")
def show_settings(
    env_example: Annotated[
        bool, typer.Option("--env-example", help="Print .env.example (every variable) instead.")
    ] = False,
) -> None:
    """Print the effective settings as JSON (secrets masked)."""
    from learnstream.settings import env_example as render_env_example

    if env_example:
        typer.echo(render_env_example(), nl=False)
    else:
        typer.echo(get_settings().model_dump_json(indent=2))


@app.command("demo")
def demo(
    keep: Annotated[bool, typer.Option(help="Leave the stack running afterwards.")] = False,
) -> None:
    """Run the pipeline end to end on the local defaults.

    Today: start the stack, run the smoke round trip, stop what the demo started.
    """
    stack = _stack()
    outcome = stack.up()
    try:
        stack_smoke(messages=1000)
    finally:
        started = [name for name, what in outcome.items() if what == "started"]
        if not keep and started:
            stack.down(started)
    typer.echo("demo: ok")


def main() -> None:
    try:
        app()
    except LearnstreamError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
