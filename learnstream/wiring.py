"""The parts, built from the composed settings: each gets its own sections.

The CLI, the demo, the benchmarks and the tests build components here, so that no part reads
the settings of another and only entry points read the environment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from learnstream.settings import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from jobs.launch import Launcher
    from sinks.clickhouse.sink import ClickHouseSink


def launcher(settings: Settings) -> Launcher:
    """Starts Flink jobs with this machine's Java, jars and state folder."""
    from jobs.launch import Launcher
    from learnstream.stack.services import find_java

    java = find_java(settings.stack.java_home).resolve()
    return Launcher(
        kafka=settings.kafka,
        flink=settings.flink,
        java_home=java.parent.parent,
        jars_dir=settings.stack.jars_dir,
        state_dir=settings.stack.state_dir,
    )


def clickhouse_sink(settings: Settings, ignore_committed: bool = False) -> ClickHouseSink:
    from sinks.clickhouse.client import connect
    from sinks.clickhouse.sink import ClickHouseSink

    dsn = settings.clickhouse.dsn
    return ClickHouseSink(
        settings.kafka.bootstrap_servers,
        settings.sink,
        settings.clickhouse,
        lambda: connect(dsn),
        ignore_committed=ignore_committed,
    )


def reco_app(settings: Settings) -> Any:
    """The Faust recommendation app (a ``faust.App``)."""
    from jobs.faust.reco_app import create_app

    return create_app(
        settings.reco,
        settings.kafka,
        settings.stack.state_dir,
        replication_factor=settings.topics.replication_factor,
        partitions=settings.topics.partitions,
    )


def collector_app(settings: Settings) -> FastAPI:
    from streams.collector.app import create_app

    return create_app(settings.collector, settings.kafka.bootstrap_servers)


def collector_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (several worker processes): settings from the env."""
    return collector_app(get_settings())
