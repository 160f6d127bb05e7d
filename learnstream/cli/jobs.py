"""`learnstream jobs run …` (Flink jobs, the recommendation app, the lag monitor) and
`learnstream reco replay`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from learnstream.cli.common import echo_err, log_to_stderr, require
from learnstream.settings import get_settings

jobs_app = typer.Typer(
    help="The Flink jobs, the Faust recommendation app and the lag monitor.", no_args_is_help=True
)
reco_app = typer.Typer(help="The online recommendation models.", no_args_is_help=True)

JOB_NAMES = "qos, completion (Flink), reco (Faust) or lag-monitor"


@jobs_app.command("run")
def jobs_run(
    job: Annotated[str, typer.Argument(help=f"{JOB_NAMES}.")],
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
    interval: Annotated[
        float, typer.Option(min=0.1, help="lag-monitor: seconds between samples.")
    ] = 10.0,
) -> None:
    """Run a Flink job on the local PyFlink mini-cluster (docs/jobs.md), the Faust
    recommendation app (`reco`, serving on :6066; docs/reco.md), or the lag monitor (every
    consumer group's lag to pipeline.metrics). Ctrl-C stops it; a Flink job's last checkpoint
    is kept for --restore latest."""
    from jobs.flink.runtime import JobConfigError, RunOptions
    from jobs.launch import JOBS

    settings = get_settings()
    if job not in (*JOBS, "reco", "lag-monitor"):
        raise typer.BadParameter(f"unknown job {job!r}; the jobs are: {JOB_NAMES}")
    require(settings, kafka=True)
    if job == "reco":
        _run_reco()
        return
    if job == "lag-monitor":
        _run_lag_monitor(interval)
        return
    from learnstream.wiring import launcher

    launch = launcher(settings)
    try:
        options = RunOptions(start=start, bounded=bounded,
                             restore=launch.resolve_restore(job, restore))  # fmt: skip
    except JobConfigError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if restore == "latest" and options.restore is None:
        echo_err(f"no retained checkpoint of {job} yet: starting without one")
    process = launch.start(job, options)
    echo_err(f"{job}: started (pid {process.process.pid}), log {process.log_path}")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: process.stop())
    code = process.wait()
    if code != 0:
        typer.echo(process.log_tail(), err=True)
        raise typer.Exit(code if code > 0 else 1)
    echo_err(f"{job}: finished")


def _run_reco() -> None:
    """This process becomes the Faust worker (`faust -A … worker -l info`)."""
    from learnstream.wiring import reco_app

    app = reco_app(get_settings())
    sys.argv = [sys.argv[0], "worker", "-l", "info"]
    app.main()


def _run_lag_monitor(interval: float) -> None:
    from jobs.lag_monitor import LagMonitor

    log_to_stderr()
    monitor = LagMonitor(get_settings().kafka.bootstrap_servers, interval_s=interval)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: monitor.stop())
    monitor.run()


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
