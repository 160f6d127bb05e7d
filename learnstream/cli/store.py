"""The analytics store: `learnstream sinks migrate | clickhouse` and `learnstream sql`."""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from learnstream.cli.common import log_to_stderr, require
from learnstream.errors import LearnstreamError
from learnstream.settings import get_settings

sinks_app = typer.Typer(help="ClickHouse migrations and the sinks.", no_args_is_help=True)


@sinks_app.command("migrate")
def sinks_migrate() -> None:
    """Apply pending ClickHouse migrations (re-running is a no-op)."""
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.migrate import migrate

    settings = get_settings()
    client = connect(settings.clickhouse.dsn)
    applied = migrate(client, settings.clickhouse.raw_ttl_days, settings.clickhouse.dlq_ttl_days)
    typer.echo(f"applied {len(applied)} migrations: {applied}" if applied else "up to date")


@sinks_app.command("clickhouse")
def sinks_clickhouse(
    rebuild: Annotated[
        bool, typer.Option(help="Empty the tables and re-read every topic from the start.")
    ] = False,
    idle_exit: Annotated[
        float | None, typer.Option(help="Exit after this many idle seconds (batch jobs).")
    ] = None,
) -> None:
    """Stream every topic into ClickHouse (exactly-once effect; see docs/analytics.md)."""
    from learnstream.wiring import clickhouse_sink
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.migrate import migrate
    from sinks.clickhouse.sink import truncate_all

    log_to_stderr()
    settings = get_settings()
    require(settings, kafka=True)
    client = connect(settings.clickhouse.dsn)
    migrate(client, settings.clickhouse.raw_ttl_days, settings.clickhouse.dlq_ttl_days)
    if rebuild:
        truncate_all(client)
    client.close()
    sink = clickhouse_sink(settings, ignore_committed=rebuild)
    signal.signal(signal.SIGTERM, lambda *_: sink.stop())
    signal.signal(signal.SIGINT, lambda *_: sink.stop())
    stats = sink.run(idle_exit_s=idle_exit)
    typer.echo(f"stopped: {sum(stats.rows.values())} rows in {stats.batches} batches, "
               f"{stats.dead} dead letters")  # fmt: skip


@sinks_app.command("settlement")
def sinks_settlement(
    idle_exit: Annotated[
        float | None, typer.Option(help="Exit after this many idle seconds (batch jobs).")
    ] = None,
) -> None:
    """Turn the catalogue, pay-by-completion enrollments and completions into escrow
    transactions: deposits, and settlements on completion or at the deadline (see
    docs/settlement.md). Needs a deployed escrow (`learnstream settlement deploy`)."""
    from learnstream.wiring import settlement_sink

    log_to_stderr()
    settings = get_settings()
    require(settings, kafka=True, chain=True)
    sink = settlement_sink(settings)
    signal.signal(signal.SIGTERM, lambda *_: sink.stop())
    signal.signal(signal.SIGINT, lambda *_: sink.stop())
    sink.run(idle_exit_s=idle_exit)
    status = sink.destination.status()
    typer.echo("stopped: " + ", ".join(f"{k} {v}" for k, v in status.items()))


def sql(
    query: Annotated[
        str | None,
        typer.Argument(
            help="SQL (bind values as {name:Type}), or a ready query's name with --ready."
        ),
    ] = None,
    ready: Annotated[
        bool, typer.Option("--ready", help="QUERY names a ready query (docs/analytics.md).")
    ] = False,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="name=value, for {name:Type}.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    dsn: Annotated[str | None, typer.Option(help="Default: LEARNSTREAM_CLICKHOUSE__DSN.")] = None,
    list_ready: Annotated[bool, typer.Option("--list", help="List the ready queries.")] = False,
) -> None:
    """Run an analyst query against ClickHouse (the stack's embedded one, or a server)."""
    from schemas.errors import Unreachable
    from sinks.clickhouse.client import query_df
    from sinks.clickhouse.queries import ready_queries, ready_query

    if list_ready:
        for name in ready_queries():
            typer.echo(name)
        return
    if query is None:
        raise typer.BadParameter("give a query (or a ready query's name with --ready, or --list)")
    if ready:
        try:
            query = ready_query(query)
        except KeyError as exc:
            raise typer.BadParameter(str(exc.args[0])) from exc
    if fmt not in ("table", "csv", "json"):
        raise typer.BadParameter("--format is table, csv or json")
    params = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--param {item!r}: use name=value")
        params[name] = value
    try:
        df = query_df(query, params, dsn=dsn or get_settings().clickhouse.dsn)
    except Unreachable:
        raise
    except Exception as exc:  # the server's message is what the analyst needs
        raise LearnstreamError(str(exc).strip().splitlines()[0][:2000]) from exc
    if fmt == "csv":
        typer.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        typer.echo(df.to_json(orient="records", date_format="iso"))
    else:
        typer.echo(df.to_string(index=False) if len(df) else "(no rows)")
