"""The `learnstream` command line: one module per command group.

| group | module |
|---|---|
| `stack up/down/status/logs/smoke` | :mod:`learnstream.cli.stack` |
| `collector`, `catalog`, `simulate`, `dlq` | :mod:`learnstream.cli.ingest` |
| `sinks`, `sql` | :mod:`learnstream.cli.store` |
| `jobs run`, `reco replay` | :mod:`learnstream.cli.jobs` |
| `settings`, `demo`, `bench` | :mod:`learnstream.cli.tools` |
| `live` | :mod:`learnstream.cli.live` |
| `dashboards build` | :mod:`learnstream.cli.dashboards` |
| `report` | :mod:`learnstream.cli.report` |

Every error of learnstream's own (``LearnstreamError``) becomes one line on stderr and its exit
code: 1 in general, 2 for bad usage, 3-6 for the local stack, 10-12 for Kafka, ClickHouse or the
chain not answering.
"""

from __future__ import annotations

import sys

import typer

from learnstream.cli import (
    dashboards,
    ingest,
    jobs,
    live,
    report,
    settlement,
    stack,
    store,
    tools,
)
from learnstream.errors import LearnstreamError

app = typer.Typer(
    help="learnstream: learner events through Kafka, Flink and Faust into ClickHouse and "
    "pay-by-completion settlement.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(stack.app, name="stack")
app.add_typer(ingest.collector_app, name="collector")
app.add_typer(ingest.catalog_app, name="catalog")
app.add_typer(store.sinks_app, name="sinks")
app.add_typer(jobs.jobs_app, name="jobs")
app.add_typer(jobs.reco_app, name="reco")
app.add_typer(ingest.dlq_app, name="dlq")
app.add_typer(settlement.settlement_app, name="settlement")
app.add_typer(dashboards.dashboards_app, name="dashboards")
app.command("simulate")(ingest.simulate)
app.command("bench", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    tools.bench
)
app.command("sql")(store.sql)
app.command("settings")(tools.show_settings)
app.command("demo")(tools.demo)
app.command("live")(live.live)
app.command("report")(report.report)


def main() -> None:
    try:
        app()
    except LearnstreamError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
