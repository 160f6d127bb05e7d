"""The offline report: `learnstream report --out report.html`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from learnstream.cli.common import since
from learnstream.errors import LearnstreamError
from learnstream.settings import get_settings


def report(
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
    hours: Annotated[
        float | None,
        typer.Option(help="The last this many hours, for every dashboard.", min=0.01),
    ] = None,
    since_: Annotated[
        str | None,
        typer.Option(
            "--since", help="From this ISO time (2026-11-28T10:00Z) or this long ago (6h, 2d)."
        ),
    ] = None,
    dsn: Annotated[str | None, typer.Option(help="Default: LEARNSTREAM_CLICKHOUSE__DSN.")] = None,
) -> None:
    """Run every panel of every dashboard on ClickHouse and write one self-contained HTML
    file: charts and tables, opened with no network. The range is each dashboard's own
    (6 h to 30 d) unless --hours or --since; every variable is on "All". A panel whose query
    fails is shown with its error, and the command then exits 1 naming it."""
    if hours is not None and since_ is not None:
        raise typer.BadParameter("give --hours or --since, not both")
    try:
        from dashboards.definitions import DASHBOARDS
        from dashboards.report import render_html, run_report
    except ModuleNotFoundError as exc:
        if exc.name not in ("altair", "vl_convert", "pandas"):
            raise
        raise LearnstreamError(
            "the report needs altair and vl-convert: install learnstream[app]"
        ) from exc
    from sinks.clickhouse.client import connect

    end = datetime.now(UTC)
    start = end - timedelta(hours=hours) if hours is not None else since(since_)
    if start is not None and start >= end:
        raise typer.BadParameter(f"the range starts at {start:%Y-%m-%d %H:%M} UTC, not before now")
    client = connect(dsn or get_settings().clickhouse.dsn)
    try:
        made = run_report(client, DASHBOARDS, start=start, end=end)
    finally:
        client.close()
    out.write_text(render_html(made), encoding="utf-8")
    panels = sum(len(d.panels) for d in made.dashboards)
    typer.echo(f"{out}: {len(made.dashboards)} dashboards, {panels} panels, "
               f"{out.stat().st_size // 1024} KiB")  # fmt: skip
    if made.failed:
        typer.echo(f"{len(made.failed)} panel(s) failed: {', '.join(made.failed)}", err=True)
        raise typer.Exit(1)
