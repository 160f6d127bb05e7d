"""`learnstream demo`: the pipeline end to end on the local defaults.

Today: the stack, the collector, the escrow with the settlement sink and the receipts indexer,
a simulated run through the collector (with some bad input), a look at the dead-letter topic,
the two Flink jobs over what arrived, every settlement path on the chain (deposits, full and
early-finish completions, partial payouts at the deadline, an expiry), a short live class with
a quiz, the ClickHouse sink, a clean reconcile and the dashboards' offline report
(`report.html`). The next issue adds `learnstream up`.
"""

from __future__ import annotations

import collections
import sys
from collections.abc import Callable
from pathlib import Path

from learnstream.errors import LearnstreamError
from learnstream.settings import Settings
from learnstream.stack import Stack


def load_clickhouse(settings: Settings, echo: Callable[[str], None]) -> None:
    """Migrate, run the sink until the topics are drained, and ask one analyst question."""
    from learnstream.wiring import clickhouse_sink
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.migrate import migrate
    from sinks.clickhouse.queries import ready_query

    client = connect(settings.clickhouse.dsn)
    migrate(client, settings.clickhouse.raw_ttl_days, settings.clickhouse.dlq_ttl_days)
    sink = clickhouse_sink(settings)
    stats = sink.run(idle_exit_s=2.0)
    echo(
        f"clickhouse sink: {sum(stats.rows.values())} rows in {stats.batches} batches "
        f"({dict(stats.rows)})"
    )
    echo("QoS by network type, from the Flink job's minutes "
         "(`learnstream sql --ready qos_by_network_type -p hours=24`):")  # fmt: skip
    frame = client.query_df(ready_query("qos_by_network_type"), parameters={"hours": 24})
    echo(frame.to_string(index=False))


def write_report(settings: Settings, echo: Callable[[str], None]) -> None:
    """Every dashboard's panels on what the demo stored, in one offline HTML file."""
    from dashboards.definitions import DASHBOARDS
    from dashboards.report import render_html, run_report
    from sinks.clickhouse.client import connect

    client = connect(settings.clickhouse.dsn)
    try:
        made = run_report(client, DASHBOARDS)
    finally:
        client.close()
    out = Path("report.html")
    out.write_text(render_html(made), encoding="utf-8")
    echo(
        f"report: {out.resolve()} ({out.stat().st_size // 1024} KiB; the five dashboards offline, "
        "open it in a browser; `learnstream report` makes it again)"
    )
    if made.failed:
        raise LearnstreamError(f"demo: report panels failed: {', '.join(made.failed)}")


def run_flink_jobs(settings: Settings, echo: Callable[[str], None]) -> None:
    """Both Flink jobs over what has arrived since their last run (their own consumer groups),
    on the mini-cluster, each to the end of its input."""
    from jobs.flink.runtime import RunOptions
    from learnstream.wiring import launcher
    from streams.kafka import read_to_end

    launch = launcher(settings)
    for job in ("qos", "completion"):
        process = launch.run_to_end(job, RunOptions(bounded=True))
        echo(f"flink {job}: done (log {process.log_path})")
    counts = {
        topic: len(read_to_end(settings.kafka.bootstrap_servers, [topic]))
        for topic in ("qos.agg.1m", "completion.scores", "course.completed")
    }
    echo(f"derived records so far (read committed): {counts}")


def run(settings: Settings, echo: Callable[[str], None], keep: bool = False) -> None:
    from learnstream import demo_live, demo_settlement
    from learnstream.stack.collector import CollectorStartError, start_collector
    from streams import dlq
    from streams.collector.auth import generate_key
    from streams.simulate import run_simulation, sim_config_from_args

    stack = Stack(settings, echo=echo)
    outcome = stack.up()
    started = [name for name, what in outcome.items() if what == "started"]
    key = generate_key()
    log_path = settings.stack.state_dir / "logs" / "collector.log"
    collector = None
    settlement = None
    try:
        try:
            collector = start_collector(settings.collector.port, {"demo": key}, log_path)
        except CollectorStartError as exc:
            raise LearnstreamError(str(exc)) from exc
        echo(
            f"collector: http://{settings.collector.host}:{settings.collector.port} "
            f"(log {log_path})"
        )
        settlement = demo_settlement.start(settings, echo)
        cfg = sim_config_from_args(
            learners=30, courses=4, rate=0, duration=600, seed=42, bad_fraction=0.05,
            **demo_settlement.sim_overrides(),
        )  # fmt: skip
        report = run_simulation(
            cfg,
            "http",
            settings.kafka.bootstrap_servers,
            collector_url=settings.collector.url,
            api_key=key,
            progress=sys.stdout.isatty(),
        )
        echo(report.render())
        if report.problems():
            raise LearnstreamError("demo: " + "; ".join(report.problems()))
        contents = dlq.read_all(settings.kafka.bootstrap_servers)
        reasons = collections.Counter(letter.record.reason for letter in contents.letters)
        echo(f"dead letters in learner.dlq: {dict(reasons)} (`learnstream dlq list` shows them)")
        run_flink_jobs(settings, echo)
        demo_settlement.settle_and_expire(
            settlement, report.event_ids, settings.collector.url, key, echo
        )
        live_class = demo_live.run_class(settings, key, echo)
        load_clickhouse(settings, echo)
        demo_live.summary(settings, live_class, echo)
        demo_settlement.summary(settlement, report.event_ids, echo)
        write_report(settings, echo)
    finally:
        demo_settlement.stop_all(settlement)
        if collector is not None:
            collector.terminate()
            collector.wait(timeout=30)
        if not keep and started:
            stack.down(started)
