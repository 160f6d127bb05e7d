"""ClickHouse clients by DSN: ``http(s)://…`` (a server, or the stack's embedded one) or
``chdb:///path`` (the engine in this process, single-process use only)."""

from __future__ import annotations

from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client


def connect(dsn: str, **kwargs: Any) -> Client:
    """A clickhouse-connect client for ``dsn``; timestamps come back tz-aware (UTC)."""
    if not dsn.startswith(("http://", "https://", "chdb:")):
        raise ValueError(
            f"unsupported ClickHouse DSN {dsn!r}: use http(s)://[user[:password]@]host:port[/db] "
            "or chdb:///path (LEARNSTREAM_CLICKHOUSE__DSN)"
        )
    options: dict[str, Any] = {"tz_mode": "aware", **kwargs}
    if dsn.startswith("chdb:"):
        options.pop("tz_mode")
    return clickhouse_connect.get_client(dsn=dsn, **options)


def query_df(sql: str, parameters: dict[str, Any] | None = None, dsn: str | None = None) -> Any:
    """An analyst's query as a pandas DataFrame, with bound parameters (``{name:Type}``)."""
    from learnstream.settings import get_settings

    client = connect(dsn or get_settings().clickhouse.dsn)
    try:
        return client.query_df(sql, parameters=parameters or {})
    finally:
        client.close()
