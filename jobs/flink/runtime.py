"""What every learnstream Flink job shares: its configuration, the Kafka connector jar, and the
Kafka table definitions (exactly-once sinks, read-committed sources).

Runs inside the Flink environment (``.venv-flink``), locally on the PyFlink mini-cluster or on a
cluster with ``flink run -py``. Only the standard library, pydantic and pyflink are imported here.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.flink.settings import JobSettings

if TYPE_CHECKING:  # pyflink is imported lazily: the app environment imports this module's helpers
    from pyflink.common import Configuration

STARTS = ("committed", "earliest", "latest")
SCAN_STARTUP_MODE = {
    "committed": "group-offsets",
    "earliest": "earliest-offset",
    "latest": "latest-offset",
}
CONNECTOR_GLOB = "flink-sql-connector-kafka-*.jar"


class JobConfigError(ValueError):
    """A job cannot start as configured (the message says what to change)."""


@dataclass(frozen=True)
class RunOptions:
    """How one run of a job reads its input and where its state goes.

    ``start``: ``committed`` resumes from the job's consumer-group offsets (earliest when it has
    none), ``earliest`` reads every topic from the beginning, ``latest`` only what arrives after
    the job started. ``bounded`` stops at the offsets
    that were the latest when the job started, after a final checkpoint has committed the
    output. ``restore`` is a checkpoint (or savepoint) folder to resume from.
    """

    start: str = "committed"
    bounded: bool = False
    restore: str | None = None
    group_id: str | None = None
    transactional_id_prefix: str | None = None
    connector_jar: str | None = None  # None: $FLINK_HOME/lib has it (a cluster)

    def __post_init__(self) -> None:
        if self.start not in STARTS:
            raise JobConfigError(f"start must be one of {', '.join(STARTS)}, not {self.start!r}")


def connector_jar(jars_dir: Path) -> Path | None:
    """The fat flink-sql-connector-kafka jar that ``make setup`` fetched into
    ``jars_dir/flink``, or None on a Flink cluster whose ``$FLINK_HOME/lib`` has it
    (deploy/flink/Dockerfile puts it there)."""
    folder = jars_dir / "flink"
    jars = sorted(folder.glob(CONNECTOR_GLOB))
    flink_home = os.environ.get("FLINK_HOME")
    if not jars and flink_home and any((Path(flink_home) / "lib").glob(CONNECTOR_GLOB)):
        return None
    if not jars:
        raise JobConfigError(
            f"no {CONNECTOR_GLOB} in {folder}: run `make setup` (it resolves build/pom.xml)"
        )
    return jars[-1]


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest completed checkpoint under ``folder`` (``<job-id>/chk-N`` with a _metadata)."""
    done = [p.parent for p in folder.glob("*/chk-*/_metadata")]
    if not done:
        return None
    return max(done, key=lambda p: (p.stat().st_mtime, int(p.name.split("-")[1])))


def flink_configuration(settings: JobSettings, job: str, options: RunOptions) -> Configuration:
    from pyflink.common import Configuration

    flink = settings.flink
    conf = Configuration()
    conf.set_string("pipeline.name", f"learnstream-{job}")
    if options.connector_jar is not None:
        conf.set_string("pipeline.jars", Path(options.connector_jar).resolve().as_uri())
    # The Python workers run the Flink environment's interpreter, not whatever `python` is first
    # on PATH ("No module named 'pyflink'" otherwise); thread mode avoids a process round trip
    # per record and per state access.
    conf.set_string("python.executable", str(flink.python))
    conf.set_string("python.client.executable", str(flink.python))
    conf.set_string("python.execution-mode", "thread")
    conf.set_string("parallelism.default", str(flink.parallelism))
    conf.set_string(
        "execution.checkpointing.interval", f"{int(flink.checkpoint_interval_s * 1000)} ms"
    )
    conf.set_string("execution.checkpointing.mode", "EXACTLY_ONCE")
    conf.set_string("execution.checkpointing.dir", flink.checkpoints(job).resolve().as_uri())
    conf.set_string(
        "execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION"
    )
    conf.set_string("execution.checkpointing.num-retained", "3")
    conf.set_string("state.backend.type", "hashmap")
    conf.set_string("restart-strategy.type", "fixed-delay")
    conf.set_string("restart-strategy.fixed-delay.attempts", "3")
    conf.set_string("restart-strategy.fixed-delay.delay", "2 s")
    conf.set_string("table.local-time-zone", "UTC")
    if options.restore:
        conf.set_string("execution.state-recovery.path", options.restore)
    return conf


def kafka_source_options(
    settings: JobSettings, topics: list[str], group_id: str, options: RunOptions
) -> dict[str, str]:
    """WITH options of a Kafka source table: read committed, start and stop as asked."""
    props = {
        "connector": "kafka",
        "topic": ";".join(topics),
        "properties.bootstrap.servers": settings.kafka.bootstrap_servers,
        "properties.group.id": options.group_id or group_id,
        "properties.isolation.level": "read_committed",
        "properties.auto.offset.reset": "earliest",
        "scan.startup.mode": SCAN_STARTUP_MODE[options.start],
        "scan.topic-partition-discovery.interval": "30 s",
    }
    if options.bounded:
        props["scan.bounded.mode"] = "latest-offset"
    return props


def kafka_sink_options(
    settings: JobSettings, topic: str, transactional_id_prefix: str, options: RunOptions
) -> dict[str, str]:
    """WITH options of an exactly-once Kafka sink (docs/architecture.md, Exactly-once)."""
    return {
        "topic": topic,
        "properties.bootstrap.servers": settings.kafka.bootstrap_servers,
        "sink.delivery-guarantee": "exactly-once",
        "sink.transactional-id-prefix": transactional_id_prefix,
        # The connector's default (1 h) exceeds the broker's transaction.max.timeout.ms (15 min)
        # and fails at the first transaction.
        "properties.transaction.timeout.ms": str(settings.flink.transaction_timeout_ms),
        "properties.compression.type": "lz4",
    }


def with_clause(options: dict[str, str]) -> str:
    """Render WITH (...) options. Names and values come from settings, never from events."""
    for key, value in options.items():
        if "'" in key or "'" in value:
            raise JobConfigError(f"a quote in table option {key}={value!r}")
    return ",\n  ".join(f"'{k}' = '{v}'" for k, v in options.items())


def parse_args(job: str, argv: list[str] | None = None) -> RunOptions:
    """The command line of every job module (``python -m jobs.flink.<job>``, ``flink run -py``)."""
    parser = argparse.ArgumentParser(prog=f"jobs.flink.{job}")
    parser.add_argument("--start", choices=list(STARTS), default="committed")
    parser.add_argument("--bounded", action="store_true", help="stop at today's latest offsets")
    parser.add_argument("--restore", help="checkpoint or savepoint folder to resume from")
    parser.add_argument("--group-id", help="override the job's consumer group")
    parser.add_argument("--transactional-id-prefix", help="override the sink's prefix")
    parser.add_argument("--jar", help="the flink-sql-connector-kafka jar (not on a cluster)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.jar is None and not os.environ.get("FLINK_HOME"):
        parser.error("--jar is needed outside a Flink cluster (`learnstream jobs run` passes it)")
    return RunOptions(
        start=args.start,
        bounded=args.bounded,
        restore=args.restore,
        group_id=args.group_id,
        transactional_id_prefix=args.transactional_id_prefix,
        connector_jar=args.jar,
    )
