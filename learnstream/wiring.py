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
    from settlement.indexer import Indexer
    from sinks.clickhouse.sink import ClickHouseSink
    from sinks.runner import SinkRunner


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


def live_app(settings: Settings) -> FastAPI:
    """The live-class server; participants use the collector's API keys."""
    from live.app import create_app

    return create_app(settings.live, settings.collector, settings.kafka.bootstrap_servers)


def collector_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (several worker processes): settings from the env."""
    return collector_app(get_settings())


def settlement_sink(settings: Settings, ignore_committed: bool = False) -> SinkRunner:
    """The settlement sink: the escrow as a destination of the sink runner, with the one
    sender of the oracle account and the escrows rebuilt from the chain's logs."""
    from settlement import contract
    from settlement.escrows import EscrowView
    from settlement.sender import Sender
    from sinks.runner import SinkRunner
    from sinks.settings import SinkSettings
    from sinks.settlement.destination import SettlementDestination

    s = settings.settlement
    w3 = contract.connect(settings.chain.rpc_url)
    address = contract.escrow_address(w3, s)
    view = EscrowView(w3, address, contract.logs_start(w3, s), s.confirmations)
    destination = SettlementDestination(
        w3, Sender.from_settings(w3, settings.chain, s), view,
        settle_delay_s=s.settle_delay_s, batch_size=s.batch_size,
    )  # fmt: skip
    runner_settings = SinkSettings(
        group_id=s.group_id, batch_max_rows=s.batch_size * 10, batch_max_s=s.batch_max_s,
        retry_max_s=settings.sink.retry_max_s, metrics_interval_s=settings.sink.metrics_interval_s,
    )  # fmt: skip
    return SinkRunner(
        destination, settings.kafka.bootstrap_servers, runner_settings, ignore_committed
    )


def receipts_indexer(settings: Settings) -> Indexer:
    """The receipts indexer of the configured escrow."""
    from settlement import contract
    from settlement.indexer import Indexer
    from streams.topics import SETTLEMENT_RECEIPTS

    s = settings.settlement
    w3 = contract.connect(settings.chain.rpc_url)
    return Indexer(
        w3, contract.escrow_address(w3, s), settings.kafka.bootstrap_servers,
        SETTLEMENT_RECEIPTS.name, s.state_dir, confirmations=s.confirmations,
        start_block=contract.logs_start(w3, s), batch_blocks=s.index_batch_blocks,
    )  # fmt: skip
