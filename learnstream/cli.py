"""The `learnstream` command line."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
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
collector_app = typer.Typer(
    help="The HTTP collector. Without a subcommand: run it.", invoke_without_command=True
)
app.add_typer(collector_app, name="collector")
catalog_app = typer.Typer(help="The course catalogue (course.catalog).", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
sinks_app = typer.Typer(help="ClickHouse migrations and the sinks.", no_args_is_help=True)
app.add_typer(sinks_app, name="sinks")
jobs_app = typer.Typer(
    help="The Flink jobs and the Faust recommendation app.", no_args_is_help=True
)
app.add_typer(jobs_app, name="jobs")
reco_app = typer.Typer(help="The online recommendation models.", no_args_is_help=True)
app.add_typer(reco_app, name="reco")
dlq_app = typer.Typer(help="Inspect and replay the dead-letter topic.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


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


@collector_app.callback()
def collector(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Listen address (default from settings).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one core each).")] = 1,
) -> None:
    """Run the HTTP collector (POST /v1/events, /v1/xapi/statements, /v1/cmcd)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from streams.collector import create_app

    settings = get_settings()
    if not settings.collector.api_keys:
        raise LearnstreamError(
            "no API keys configured: create one with `learnstream collector keygen <client>` "
            "and set LEARNSTREAM_COLLECTOR__API_KEYS"
        )
    uvicorn.run(
        create_app(settings) if workers == 1 else "streams.collector.app:app_from_settings",
        factory=workers > 1,
        workers=workers,
        host=host or settings.collector.host,
        port=port or settings.collector.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="info",
    )


@collector_app.command("keygen")
def collector_keygen(
    client: Annotated[str, typer.Argument(help="Client id, e.g. web-player or ios-app.")],
) -> None:
    """Make an API key for a client: prints the key (give it to the client, once) and the
    LEARNSTREAM_COLLECTOR__API_KEYS entry to store (only the hash)."""
    from streams.collector import generate_key, hash_key

    key = generate_key()
    typer.echo(f"key for {client}: {key}")
    typer.echo(f"settings entry: {json.dumps({client: hash_key(key)})}")


def _since(value: str | None) -> datetime | None:
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


ReasonOpt = Annotated[str | None, typer.Option(help="malformed_json | unknown_type | invalid")]
SinceOpt = Annotated[str | None, typer.Option(help="ISO time or 30m/6h/2d back from now.")]
ClientOpt = Annotated[str | None, typer.Option("--client", help="Only this client id.")]


def _selected(reason: str | None, since: str | None, client: str | None, ids: list[str]):  # type: ignore[no-untyped-def]
    from streams import dlq

    contents = dlq.read_all(get_settings().kafka.bootstrap_servers)
    chosen = dlq.select(contents.letters, reason, _since(since), None, client, ids)
    return contents, chosen


@dlq_app.command("list")
def dlq_list(
    reason: ReasonOpt = None,
    since: SinceOpt = None,
    client: ClientOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many (newest).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Dead letters by reason and time, newest last, with whether each was replayed."""
    contents, chosen = _selected(reason, since, client, [])
    chosen = sorted(chosen, key=lambda letter: letter.record.received_at)[-limit:]
    for letter in chosen:
        rec = letter.record
        replayed = rec.dlq_id in contents.replayed
        if as_json:
            data = json.loads(rec.model_dump_json(exclude={"raw"}))
            typer.echo(json.dumps({**data, "replayed": replayed}))
        else:
            mark = "replayed" if replayed else ""
            typer.echo(
                f"{rec.received_at:%Y-%m-%dT%H:%M:%SZ}  {rec.reason:<14} {rec.client_id:<12} "
                f"{rec.dlq_id}  {mark:<8} {rec.detail[:90]}"
            )
    reasons = {
        r: sum(1 for x in chosen if x.record.reason == r)
        for r in ("malformed_json", "unknown_type", "invalid")
    }
    typer.echo(f"{len(chosen)} shown; by reason: {reasons}", err=True)


@dlq_app.command("show")
def dlq_show(dlq_id: Annotated[str, typer.Argument(help="The dead letter's id.")]) -> None:
    """One dead letter in full, raw payload included."""
    contents, chosen = _selected(None, None, None, [dlq_id])
    if not chosen:
        raise LearnstreamError(f"no dead letter {dlq_id} in the DLQ topic")
    letter = chosen[0]
    data = json.loads(letter.record.model_dump_json())
    data["partition"], data["offset"] = letter.partition, letter.offset
    marker = contents.replayed.get(letter.record.dlq_id)
    data["replayed"] = json.loads(marker.model_dump_json()) if marker else None
    typer.echo(json.dumps(data, indent=2))


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[
        list[str] | None, typer.Argument(help="Dead-letter ids (default: all selected).")
    ] = None,
    reason: ReasonOpt = None,
    since: SinceOpt = None,
    client: ClientOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only say what would happen.")] = False,
) -> None:
    """Run selected dead letters through validation again; write what passes, exactly once."""
    from streams.dlq import Replayer

    contents, chosen = _selected(reason, since, client, ids or [])
    results = Replayer(get_settings()).replay(chosen, contents, dry_run=dry_run)
    for result in results:
        typer.echo(f"{result.dlq_id}  {result.outcome:<16} {result.detail[:100]}")
    counts = {
        o: sum(1 for r in results if r.outcome == o)
        for o in ("replayed", "would_replay", "already_replayed", "still_rejected")
    }
    typer.echo(f"{len(results)} selected: {counts}", err=True)


@catalog_app.command("load")
def catalog_load(
    path: Annotated[Path, typer.Argument(help="JSON array, one object, or JSON Lines of courses.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only.")] = False,
) -> None:
    """Validate a catalogue file and publish every course to course.catalog."""
    from streams.catalog import CatalogError, load_courses, publish_catalog

    try:
        courses = load_courses(path)
    except CatalogError as exc:
        raise LearnstreamError(str(exc)) from exc
    if dry_run:
        typer.echo(f"{len(courses)} courses valid in {path}")
        return
    from streams.kafka import make_producer

    ids = publish_catalog(make_producer(get_settings().kafka.bootstrap_servers), courses)
    typer.echo(f"published {len(ids)} courses to course.catalog")


@app.command("simulate")
def simulate(
    learners: Annotated[int, typer.Option(min=1, help="Simulated learners.")] = 50,
    courses: Annotated[int, typer.Option(min=1, help="Courses in the catalogue.")] = 5,
    rate: Annotated[
        float, typer.Option(min=0, help="Events/s to aim for; 0 = as fast as possible.")
    ] = 0,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of simulated time.")] = 300,
    seed: Annotated[int, typer.Option(help="Random seed (same seed + run id = same events).")] = 1,
    via: Annotated[str, typer.Option(help="http (through the collector) or kafka.")] = "http",
    bad_fraction: Annotated[
        float, typer.Option(min=0, max=0.9, help="Share of bad payloads (http).")
    ] = 0.0,
    run_id: Annotated[str | None, typer.Option(help="Reuse a run id (default: fresh).")] = None,
    deadline: Annotated[
        float, typer.Option(min=1, help="Pay-by-completion deadline, seconds.")
    ] = 600,
    degraded_edges: Annotated[
        str | None, typer.Option(help="A count, or edge ids with commas.")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="LEARNSTREAM_API_KEY", help="Collector API key (--via http)."),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Simulated learners: publish the catalogue, then browse, enroll, watch, take quizzes."""
    from streams.simulate_send import run_simulation
    from streams.simulator import sim_config_from_args

    try:
        cfg = sim_config_from_args(
            learners=learners,
            courses=courses,
            rate=rate,
            duration=duration,
            seed=seed,
            run_id=run_id,
            degraded_edges=degraded_edges,
            bad_fraction=bad_fraction,
            deadline_s=deadline,
        )
        report = run_simulation(get_settings(), cfg, via, api_key, progress=progress)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(report.render())
    if report.problems():
        raise LearnstreamError("simulation finished with problems: " + "; ".join(report.problems()))


@app.command("bench")
def bench(
    only: Annotated[str, typer.Option(help="collector | sink | flink | reco | all")] = "all",
    events: Annotated[int, typer.Option(min=1000, help="Collector: events per round.")] = 100_000,
    rounds: Annotated[int, typer.Option(min=1, help="Collector: rounds per side.")] = 3,
    concurrency: Annotated[int, typer.Option(min=1, help="Collector: concurrent requests.")] = 16,
    sink_events: Annotated[
        int, typer.Option(min=1000, help="Sink: events produced once.")
    ] = 200_000,
    sink_rounds: Annotated[int, typer.Option(min=1, help="Sink: rounds per side.")] = 2,
    latency_rate: Annotated[int, typer.Option(min=1, help="Sink latency: events/s.")] = 10_000,
    latency_seconds: Annotated[int, typer.Option(min=1, help="Sink latency: seconds.")] = 20,
    profile: Annotated[bool, typer.Option(help="Profile the collector / one sink round.")] = False,
    flink_events: Annotated[
        int, typer.Option(min=1000, help="Flink QoS job: session reports.")
    ] = 200_000,
) -> None:
    """Run the benchmarks; every figure is a ratio to a baseline run side by side."""
    if only not in ("collector", "sink", "flink", "reco", "all"):
        raise typer.BadParameter("--only is collector, sink, flink, reco or all")
    if only in ("collector", "all"):
        from learnstream.bench import collector as collector_bench

        typer.echo(collector_bench.run(events, 100, rounds, concurrency, profile).render())
    if only in ("sink", "all"):
        from learnstream.bench import sink as sink_bench

        result = sink_bench.run(sink_events, sink_rounds, latency_rate, latency_seconds, profile)
        typer.echo(result.render())
    if only in ("flink", "all"):
        from learnstream.bench import flink as flink_bench

        typer.echo(flink_bench.run(flink_events).render())
    if only in ("reco", "all"):
        from learnstream.bench import reco as reco_bench

        typer.echo(reco_bench.run().render())


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
    import logging
    import signal

    from sinks.clickhouse.client import connect
    from sinks.clickhouse.migrate import migrate
    from sinks.clickhouse.sink import ClickHouseSink, truncate_all

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()
    client = connect(settings.clickhouse.dsn)
    migrate(client, settings.clickhouse.raw_ttl_days, settings.clickhouse.dlq_ttl_days)
    if rebuild:
        truncate_all(client)
    sink = ClickHouseSink(settings, lambda: connect(settings.clickhouse.dsn),
                          ignore_committed=rebuild)  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: sink.stop())
    signal.signal(signal.SIGINT, lambda *_: sink.stop())
    stats = sink.run(idle_exit_s=idle_exit)
    typer.echo(f"stopped: {sum(stats.rows.values())} rows in {stats.batches} batches, "
               f"{stats.dead} dead letters")  # fmt: skip


@jobs_app.command("run")
def jobs_run(
    job: Annotated[str, typer.Argument(help="qos, completion (Flink) or reco (Faust).")],
    start: Annotated[
        str,
        typer.Option(
            help="committed: resume the job's consumer group; earliest: every record; "
            "latest: only new records."
        ),
    ] = "committed",
    bounded: Annotated[
        bool, typer.Option(help="Stop at the offsets that are the latest when the job starts.")
    ] = False,
    restore: Annotated[
        str | None,
        typer.Option(help="A checkpoint folder to resume from, or 'latest' (this job's newest)."),
    ] = None,
) -> None:
    """Run a Flink job on the local PyFlink mini-cluster (docs/jobs.md), or the Faust
    recommendation app (`reco`, serving on :6066; docs/reco.md). Ctrl-C stops it; a Flink job's
    last checkpoint is kept for --restore latest."""
    import signal

    from jobs.flink.runtime import JobConfigError, RunOptions
    from jobs.launch import JOBS, resolve_restore, start_job

    if job == "reco":
        import os

        faust = Path(sys.executable).parent / "faust"
        argv = [str(faust), "-A", "jobs.faust.reco_app", "worker", "-l", "info"]
        os.execv(str(faust), argv)  # noqa: S606 (this process becomes the worker)
    if job not in JOBS:
        raise typer.BadParameter(f"unknown job {job!r}; the jobs are: {', '.join(JOBS)}")
    settings = get_settings()
    try:
        options = RunOptions(start=start, bounded=bounded,
                             restore=resolve_restore(settings, job, restore))  # fmt: skip
    except JobConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if restore == "latest" and options.restore is None:
        _echo(f"no retained checkpoint of {job} yet: starting without one")
    process = start_job(settings, job, options)
    _echo(f"{job}: started (pid {process.process.pid}), log {process.log_path}")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: process.stop())
    code = process.wait()
    if code != 0:
        typer.echo(process.log_tail(), err=True)
        raise typer.Exit(code if code > 0 else 1)
    _echo(f"{job}: finished")


@reco_app.command("replay")
def reco_replay(
    file: Annotated[Path, typer.Argument(help="CSV of historical interactions.")],
    user_col: Annotated[str, typer.Option(help="Column of learner ids.")] = "user",
    item_col: Annotated[str, typer.Option(help="Column of course ids.")] = "item",
    rating_col: Annotated[str, typer.Option(help="Column of numeric ratings.")] = "rating",
    time_col: Annotated[
        str | None, typer.Option(help="Column of times (epoch s or ISO-8601): replay in order.")
    ] = None,
    negatives: Annotated[
        int, typer.Option(min=0, help="Sampled unseen courses per row (0: explicit ratings).")
    ] = 0,
    save: Annotated[
        Path | None, typer.Option(help="Write the trained models to this checkpoint file.")
    ] = None,
) -> None:
    """Bootstrap the models from a CSV through the live update path, and print the
    progressive-validation metrics (each row is scored before it is learned)."""
    from jobs.reco.core import ModelConfig, Recommender
    from jobs.reco.replay import Columns, ReplayError, read_interactions, replay

    try:
        rows = read_interactions(file, Columns(user_col, item_col, rating_col, time_col))
    except ReplayError as exc:
        raise typer.BadParameter(str(exc)) from exc
    model = replay(rows, Recommender(ModelConfig(negatives=negatives)))
    typer.echo(f"replayed {len(rows):,} interactions" + (" in time order" if time_col else ""))
    typer.echo(f"{'model':<12} {'MAE':>8} {'RMSE':>8} {'Recall@10':>10} {'NDCG@10':>8}")
    for name, metric in model.metrics.items():
        m = metric.summary()
        typer.echo(f"{name:<12} {m['mae']:>8.4f} {m['rmse']:>8.4f} {m['recall_at_10']:>10.4f} "
                   f"{m['ndcg_at_10']:>8.4f}")  # fmt: skip
    if save:
        model.save(save, {})
        typer.echo(f"saved to {save}")


@app.command("sql")
def sql(
    query: Annotated[
        str,
        typer.Argument(
            help="SQL (bind values as {name:Type}), or a ready query's name with --ready."
        ),
    ],
    ready: Annotated[
        bool, typer.Option("--ready", help="QUERY names a query of docs/analytics.md.")
    ] = False,
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="name=value, for {name:Type}.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | csv | json")] = "table",
    dsn: Annotated[str | None, typer.Option(help="Default: LEARNSTREAM_CLICKHOUSE__DSN.")] = None,
) -> None:
    """Run an analyst query against ClickHouse (the stack's embedded one, or a server)."""
    from sinks.clickhouse.client import query_df
    from sinks.clickhouse.queries import ready_query

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
        df = query_df(query, params, dsn)
    except Exception as exc:  # the server's message is what the analyst needs
        raise LearnstreamError(str(exc).strip().splitlines()[0][:2000]) from exc
    if fmt == "csv":
        typer.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        typer.echo(df.to_json(orient="records", date_format="iso"))
    else:
        typer.echo(df.to_string(index=False) if len(df) else "(no rows)")


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
    """Run the pipeline end to end on the local defaults (stack, collector, simulated learners,
    dead letters). Stops what it started unless --keep."""
    from learnstream import demo as demo_run

    demo_run.run(get_settings(), typer.echo, keep=keep)
    typer.echo("demo: ok")


def main() -> None:
    try:
        app()
    except LearnstreamError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
