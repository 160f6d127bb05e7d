"""The way in: `learnstream collector`, `catalog`, `simulate` and `dlq`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from learnstream.cli.common import require, since
from learnstream.errors import LearnstreamError
from learnstream.settings import get_settings

collector_app = typer.Typer(
    help="The HTTP collector. Without a subcommand: run it.", invoke_without_command=True
)
catalog_app = typer.Typer(help="The course catalogue (course.catalog).", no_args_is_help=True)
dlq_app = typer.Typer(help="Inspect and replay the dead-letter topic.", no_args_is_help=True)


@collector_app.callback()
def collector(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Listen address (default from settings).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one core each).")] = 1,
) -> None:
    """Run the HTTP collector (POST /v1/events, /v1/xapi/statements, /v1/cmcd).

    It starts even when Kafka is down, and answers 503 with Retry-After until Kafka is back."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from learnstream.wiring import collector_app as build

    settings = get_settings()
    if not settings.collector.api_keys:
        raise LearnstreamError(
            "no API keys configured: create one with `learnstream collector keygen <client>` "
            "and set LEARNSTREAM_COLLECTOR__API_KEYS"
        )
    uvicorn.run(
        build(settings) if workers == 1 else "learnstream.wiring:collector_app_from_env",
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
    from streams.collector.auth import generate_key, hash_key

    key = generate_key()
    typer.echo(f"key for {client}: {key}")
    typer.echo(f"settings entry: {json.dumps({client: hash_key(key)})}")


ReasonOpt = Annotated[str | None, typer.Option(help="malformed_json | unknown_type | invalid")]
SinceOpt = Annotated[str | None, typer.Option(help="ISO time or 30m/6h/2d back from now.")]
ClientOpt = Annotated[str | None, typer.Option("--client", help="Only this client id.")]


def _selected(reason: str | None, since_: str | None, client: str | None, ids: list[str]):  # type: ignore[no-untyped-def]
    from streams import dlq

    settings = get_settings()
    require(settings, kafka=True)
    contents = dlq.read_all(settings.kafka.bootstrap_servers)
    chosen = dlq.select(contents.letters, reason, since(since_), None, client, ids)
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
    settings = get_settings()
    replayer = Replayer(settings.kafka.bootstrap_servers, settings.collector)
    results = replayer.replay(chosen, contents, dry_run=dry_run)
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

    settings = get_settings()
    require(settings, kafka=True)
    ids = publish_catalog(make_producer(settings.kafka.bootstrap_servers), courses)
    typer.echo(f"published {len(ids)} courses to course.catalog")


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
    from streams.simulate import run_simulation, sim_config_from_args

    settings = get_settings()
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
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    require(settings, kafka=True)
    if via == "http":
        _require_collector(settings.collector.url)
    try:
        report = run_simulation(
            cfg,
            via,
            settings.kafka.bootstrap_servers,
            collector_url=settings.collector.url,
            api_key=api_key,
            progress=progress,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    typer.echo(report.render())
    if report.problems():
        raise LearnstreamError("simulation finished with problems: " + "; ".join(report.problems()))


def _require_collector(url: str) -> None:
    import httpx

    try:
        httpx.get(f"{url}/healthz", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        raise LearnstreamError(
            f"the collector is not reachable at {url} ({type(exc).__name__}). Start it with "
            "`learnstream collector`, or point LEARNSTREAM_COLLECTOR__HOST/PORT at it."
        ) from exc
