"""ClickHouse clients by DSN: ``http(s)://…`` (a server, or the stack's embedded one) or
``chdb:///path`` (the engine in this process, single-process use only)."""

from __future__ import annotations

import logging
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import OperationalError

from schemas.errors import ClickHouseUnreachable
from sinks.clickhouse.settings import redacted

# clickhouse-connect warns "Unexpected Http Driver Exception" (with a urllib3 traceback) on every
# failed connection before it raises; the caller says plainly what is down instead. Its records
# still reach a service's log when logging is configured; without that, they stay off the console.
logging.getLogger("clickhouse_connect").addHandler(logging.NullHandler())


def connect(dsn: str, **kwargs: Any) -> Client:
    """A clickhouse-connect client for ``dsn``; timestamps come back tz-aware (UTC).

    Raises :class:`ClickHouseUnreachable` when no server answers at ``dsn``.
    """
    if not dsn.startswith(("http://", "https://", "chdb:")):
        raise ValueError(
            f"unsupported ClickHouse DSN {redacted(dsn)!r}: use "
            "http(s)://[user[:password]@]host:port[/db] or chdb:///path "
            "(LEARNSTREAM_CLICKHOUSE__DSN)"
        )
    options: dict[str, Any] = {"tz_mode": "aware", **kwargs}
    if dsn.startswith("chdb:"):
        options.pop("tz_mode")
    try:
        return clickhouse_connect.get_client(dsn=dsn, **options)
    except OperationalError as exc:  # a network error; the server's own errors are others
        raise ClickHouseUnreachable(redacted(dsn), "no answer over HTTP") from exc


def query_df(sql: str, parameters: dict[str, Any] | None = None, *, dsn: str) -> Any:
    """An analyst's query as a pandas DataFrame, with bound parameters (``{name:Type}``)."""
    client = connect(dsn)
    try:
        return client.query_df(sql, parameters=parameters or {})
    except OperationalError as exc:  # it went away during the query
        raise ClickHouseUnreachable(redacted(dsn), "the connection failed") from exc
    finally:
        client.close()
