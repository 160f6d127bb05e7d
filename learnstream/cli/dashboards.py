"""Dashboards as code: `learnstream dashboards build [--check]`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from learnstream.errors import LearnstreamError

dashboards_app = typer.Typer(
    help="Grafana dashboards generated from the panel definitions in dashboards/.",
    no_args_is_help=True,
)


@dashboards_app.command("build")
def build(
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Write nothing; exit 1 naming every file that is stale, missing or orphaned.",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder of the JSON files (default: dashboards/generated)."),
    ] = None,
) -> None:
    """Write dashboards/generated/<uid>.json for the five dashboards.

    One Grafana JSON file each for ops, playback, live, learning and finance, generated from the
    panel definitions; docker-compose mounts the folder for Grafana's file provisioning."""
    try:
        from dashboards.build import GENERATED, stale_files, write_files
    except ModuleNotFoundError as exc:
        if exc.name != "grafanalib":
            raise
        raise LearnstreamError("the dashboards need grafanalib: install learnstream[app]") from exc

    folder = out or GENERATED
    if check:
        stale = stale_files(folder)
        if stale:
            typer.echo(
                f"stale in {folder}: {', '.join(stale)}; run `learnstream dashboards build`",
                err=True,
            )
            raise typer.Exit(1)
        typer.echo(f"{folder}: up to date")
        return
    changed = write_files(folder)
    typer.echo(f"{folder}: " + (f"wrote {', '.join(changed)}" if changed else "up to date"))
