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
    alerts_out: Annotated[
        Path | None,
        typer.Option(
            help="The alert rules' provisioning file "
            "(default: dashboards/provisioning/alerting/learnstream.yaml)."
        ),
    ] = None,
) -> None:
    """Write dashboards/generated/<uid>.json for the five dashboards, and the alert rules.

    One Grafana JSON file each for ops, playback, live, learning and finance, generated from the
    panel definitions, and the alert rules of dashboards/alerts.py as a Grafana provisioning
    file; docker-compose mounts both for Grafana's file provisioning."""
    try:
        from dashboards.build import (
            ALERTS_FILE,
            GENERATED,
            alerts_stale,
            stale_files,
            write_alerts,
            write_files,
        )
    except ModuleNotFoundError as exc:
        if exc.name not in ("grafanalib", "yaml"):
            raise
        package = {"grafanalib": "grafanalib", "yaml": "PyYAML"}[exc.name]
        raise LearnstreamError(
            f"the dashboards need {package}: install learnstream[app] (requirements/app.lock)"
        ) from exc

    folder = out or GENERATED
    alerts_file = alerts_out or ALERTS_FILE
    if check:
        stale = stale_files(folder)
        alerts = alerts_stale(alerts_file)
        if stale:
            typer.echo(
                f"stale in {folder}: {', '.join(stale)}; run `learnstream dashboards build`",
                err=True,
            )
        if alerts:
            typer.echo(f"stale: {alerts_file}; run `learnstream dashboards build`", err=True)
        if stale or alerts:
            raise typer.Exit(1)
        typer.echo(f"{folder}: up to date")
        typer.echo(f"{alerts_file}: up to date")
        return
    changed = write_files(folder)
    typer.echo(f"{folder}: " + (f"wrote {', '.join(changed)}" if changed else "up to date"))
    typer.echo(f"{alerts_file}: " + ("written" if write_alerts(alerts_file) else "up to date"))
