"""`learnstream settings`, `demo` and `bench`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from learnstream.errors import LearnstreamError
from learnstream.settings import get_settings


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


def demo(
    keep: Annotated[bool, typer.Option(help="Leave the stack running afterwards.")] = False,
) -> None:
    """Run the pipeline end to end on the local defaults (stack, collector, simulated learners,
    dead letters). Stops what it started unless --keep."""
    from learnstream import demo as demo_run

    demo_run.run(get_settings(), typer.echo, keep=keep)
    typer.echo("demo: ok")


def bench(
    ctx: typer.Context,
) -> None:
    """Run the benchmarks (`make bench`); every figure is a ratio to a baseline run side by
    side. The benchmarks are development tools that live in the source checkout (bench/);
    options after `bench` go to them (`learnstream bench --help-bench`)."""
    try:
        from bench.__main__ import main as bench_main
    except ImportError as exc:
        raise LearnstreamError(
            "the benchmarks are development tools and ship with the source checkout only: "
            "run `make bench` there"
        ) from exc
    bench_main(ctx.args)
    sys.stdout.flush()
