"""The ClickHouse sink: the shared runner (``sinks.runner``) with the ClickHouse destination.

``learnstream sinks clickhouse`` runs it; ``--rebuild`` empties the tables first
(:func:`truncate_all`) and re-reads every topic from its start.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from clickhouse_connect.driver.client import Client

from sinks.clickhouse.destination import ClickHouseDestination
from sinks.clickhouse.settings import ClickHouseSettings
from sinks.runner import SinkRunner
from sinks.settings import SinkSettings


class ClickHouseSink(SinkRunner):
    """One consumer-group member writing the registry's topics (or ``topics``) to their tables."""

    def __init__(
        self,
        bootstrap_servers: str,
        sink: SinkSettings,
        clickhouse: ClickHouseSettings,
        client_factory: Callable[[], Client],
        topics: Sequence[str] | None = None,
        ignore_committed: bool = False,
    ) -> None:
        destination = ClickHouseDestination(clickhouse, client_factory, topics)
        super().__init__(destination, bootstrap_servers, sink, ignore_committed)


def truncate_all(client: Client) -> list[str]:
    """Empty every table the sink fills (raw tables and aggregate targets) for a rebuild.

    The migrations table stays, and so do the views: refilled from the start of every topic, the
    tables end up as they were, because each record is inserted exactly once again. So does
    ``reconciliations``: the finance tool writes it, no topic could refill it.
    """
    names = [
        str(row[0])
        for row in client.query(
            "SELECT name FROM system.tables WHERE database = currentDatabase() "
            "AND engine LIKE '%MergeTree' "
            "AND name NOT IN ('schema_migrations', 'reconciliations')"
        ).result_rows
    ]
    for name in names:
        client.command(f"TRUNCATE TABLE `{name.replace('`', '')}`")  # a name from system.tables
    return names
