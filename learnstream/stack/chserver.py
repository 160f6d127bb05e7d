"""The embedded ClickHouse engine (chdb), served over ClickHouse's HTTP interface.

chdb allows one engine per process and one process per data folder. This service is that one
process: it owns the folder and speaks the subset of ClickHouse's HTTP interface that
clickhouse-connect and curl use, so every other component reaches the embedded default through
the same ``http://`` DSN it would use against a production ``clickhouse-server``.

What it serves:

- ``GET|HEAD /ping`` (no auth) and ``GET /`` → ``Ok.``
- ``GET|POST /?query=…`` and a query in the POST body; ``param_<name>`` bound parameters
  (``{name:Type}`` in the SQL, bound by the engine itself); ``database``; ``default_format``;
  ``query_id``; any other URL parameter is a ClickHouse setting for that query.
- ``INSERT … FORMAT X`` in the ``query`` parameter or at the head of the body, with the data
  after it, streamed into the engine chunk by chunk (constant memory, chunked bodies included).
- request bodies compressed with ``Content-Encoding`` lz4 (frame), zstd, gzip or deflate.
- ``X-ClickHouse-Query-Id``, ``-Format``, ``-Timezone``, ``-Summary`` on answers and
  ``X-ClickHouse-Exception-Code`` on errors (with ClickHouse's ``Code: N. DB::Exception`` text).
- auth by HTTP Basic, ``X-ClickHouse-User``/``X-ClickHouse-Key`` or ``user``/``password``.

Not served (a production server has them): sessions and temporary tables (``session_id`` is
accepted and ignored), external data (multipart), response compression, progress headers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from learnstream.stack.chrequest import QueryError, body_chunks, credentials, form_params

log = logging.getLogger("learnstream.stack.chserver")

SERVER_NAME = "learnstream-chdb"

# URL parameters that belong to the HTTP interface, not to the query's settings.
TRANSPORT_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "compress",
        "decompress",
        "user",
        "password",
        "quota_key",
        "buffer_size",
        "wait_end_of_query",
        "enable_http_compression",
        "http_zlib_compression_level",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
        "client_protocol_version",
        "http_native_compression_disable_checksumming_on_decompress",
    }
)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
_INSERT_FORMAT = re.compile(
    r"^\s*(?P<head>INSERT\s+INTO\s.*?)\s+FORMAT\s+(?P<fmt>[A-Za-z0-9_]+)[ \t]*\r?\n?",
    re.IGNORECASE | re.DOTALL,
)
_INSERT = re.compile(r"^\s*INSERT\s", re.IGNORECASE)
_INLINE_DATA = re.compile(r"\b(VALUES|SELECT)\b", re.IGNORECASE)
_FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$", re.IGNORECASE)
_HEAD_LIMIT = 1 << 20  # an INSERT's SQL must fit in the first MiB of its body

# ClickHouse's own mapping of a few error codes to HTTP statuses; everything else is 500.
_HTTP_STATUS = {
    27: 400,
    36: 400,
    271: 400,
    46: 400,
    47: 400,
    53: 400,
    62: 400,
    115: 400,
    117: 400,
    60: 404,
    81: 404,
    516: 401,
}

_CONTENT_TYPES = {
    "tabseparated": "text/tab-separated-values; charset=UTF-8",
    "tsv": "text/tab-separated-values; charset=UTF-8",
    "tabseparatedwithnames": "text/tab-separated-values; charset=UTF-8",
    "csv": "text/csv; charset=UTF-8",
    "csvwithnames": "text/csv; charset=UTF-8",
    "json": "application/json; charset=UTF-8",
    "jsoneachrow": "application/x-ndjson; charset=UTF-8",
    "jsoncompact": "application/json; charset=UTF-8",
    "pretty": "text/plain; charset=UTF-8",
}


def quote_setting(value: str) -> str:
    """A setting's value as a SQL literal: numbers as they are, anything else quoted."""
    if _NUMBER.match(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Handle:
    """One chdb connection, owned by one worker thread, with the state it last had."""

    def __init__(self, data_dir: Path) -> None:
        import chdb  # imported here: only the server process loads the engine

        self.conn = chdb.connect(str(data_dir))
        self.database = "default"
        self.settings: dict[str, str] = {}

    def prepare(self, database: str, settings: dict[str, str]) -> None:
        if database != self.database:
            if not _IDENT.match(database):
                raise QueryError(f"Invalid database name {database!r}", code=81)
            self.conn.query(f"USE `{database}`")  # identifier checked above, cannot be bound
            self.database = database
        for name in self.settings.keys() - settings.keys():
            self.conn.query(f"SET {name} = DEFAULT")
        for name, value in settings.items():
            if self.settings.get(name) != value:
                if not _IDENT.match(name):
                    raise QueryError(f"Unknown setting {name!r}", code=115)
                self.conn.query(f"SET {name} = {quote_setting(value)}")
        self.settings = dict(settings)


class Engine:
    """A pool of worker threads, each with its own chdb handle on the one data folder."""

    def __init__(self, data_dir: Path, workers: int) -> None:
        self.data_dir = data_dir
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chdb")
        self.timezone = "UTC"

    def _handle(self) -> _Handle:
        handle: _Handle | None = getattr(self._local, "handle", None)
        if handle is None:
            handle = _Handle(self.data_dir)
            self._local.handle = handle
        return handle

    async def call(self, fn: Callable[[_Handle], Any]) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: self._guarded(fn))

    def _guarded(self, fn: Callable[[_Handle], Any]) -> Any:
        handle = self._handle()
        try:
            return fn(handle)
        except QueryError:
            raise
        except Exception as exc:  # chdb raises ChdbError/RuntimeError with ClickHouse's text
            raise QueryError(str(exc)) from exc

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class ClickHouseHTTP:
    """The aiohttp application serving one :class:`Engine`."""

    def __init__(self, engine: Engine, user: str, password: str) -> None:
        self.engine = engine
        self.user = user
        self.password = password
        self.app = web.Application(client_max_size=0)
        self.app.router.add_route("GET", "/ping", self.ping)
        self.app.router.add_route("HEAD", "/ping", self.ping)
        self.app.router.add_route("GET", "/", self.query)
        self.app.router.add_route("POST", "/", self.query)

    async def ping(self, request: web.Request) -> web.Response:
        return web.Response(text="Ok.\n")

    async def query(self, request: web.Request) -> web.StreamResponse:
        query_id = request.query.get("query_id") or str(uuid.uuid4())
        started = time.perf_counter_ns()
        try:
            self._authenticate(request)
            if request.method == "GET" and "query" not in request.query:
                return web.Response(text="Ok.\n")
            body, fmt, summary = await self._execute(request)
        except QueryError as exc:
            return self._error(exc, query_id)
        summary["elapsed_ns"] = str(time.perf_counter_ns() - started)
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": fmt,
            "X-ClickHouse-Timezone": self.engine.timezone,
            "X-ClickHouse-Server-Display-Name": SERVER_NAME,
            "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
            "Content-Type": _CONTENT_TYPES.get(fmt.lower(), "application/octet-stream"),
        }
        return web.Response(body=body, headers=headers)

    def _authenticate(self, request: web.Request) -> None:
        user, password = credentials(request)
        ok_user = hmac.compare_digest(user.encode(), self.user.encode())
        ok_password = hmac.compare_digest(password.encode(), self.password.encode())
        if not (ok_user and ok_password):
            raise QueryError(
                f"{user}: Authentication failed: password is incorrect, "
                "or there is no user with such name.",
                code=516,
            )

    async def _execute(self, request: web.Request) -> tuple[bytes, str, dict[str, str]]:
        params = request.query
        if request.content_type == "multipart/form-data":
            params, request = await form_params(request), None  # type: ignore[assignment]
        database = params.get("database") or (
            request.headers.get("X-ClickHouse-Database") if request else None
        )
        database = database or "default"
        default_format = params.get("default_format") or "TabSeparated"
        bound = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {
            k: v
            for k, v in params.items()
            if k not in TRANSPORT_PARAMS and not k.startswith("param_")
        }
        chunks = body_chunks(request) if request and request.method == "POST" else None
        sql = params.get("query", "")

        if sql and _INSERT.match(sql) and not _INLINE_DATA.search(sql) and chunks is not None:
            match = _INSERT_FORMAT.match(sql + "\n")
            if match is None:
                raise QueryError("INSERT with data in the body needs a FORMAT clause", code=62)
            return await self._insert(match["head"], match["fmt"], b"", chunks, database, settings)

        if chunks is not None:
            head = b""
            async for chunk in chunks:
                head += chunk
                if len(head) >= _HEAD_LIMIT:
                    break
            text_head = head.decode("latin-1")
            if not sql:
                match = _INSERT_FORMAT.match(text_head)
                if match and not _INLINE_DATA.search(match["head"]):
                    rest = head[match.end() :]
                    return await self._insert(
                        match["head"], match["fmt"], rest, chunks, database, settings
                    )
            async for chunk in chunks:  # a query longer than the head limit
                head += chunk
            sql = f"{sql}\n{head.decode()}" if sql else head.decode()

        if not sql.strip():
            raise QueryError("Empty query", code=62)
        fmt_match = _FORMAT_CLAUSE.search(sql)
        fmt = fmt_match.group(1) if fmt_match else default_format

        def run(handle: _Handle) -> tuple[bytes, dict[str, str]]:
            handle.prepare(database, settings)
            result = handle.conn.query(sql, default_format, params=bound)
            return bytes(result.bytes()), {
                "read_rows": str(result.rows_read()),
                "read_bytes": str(result.bytes_read()),
                "written_rows": "0",
                "written_bytes": "0",
                "result_rows": "0",
                "result_bytes": str(result.size()),
            }

        body, summary = await self.engine.call(run)
        return body, fmt, summary

    async def _insert(
        self,
        head: str,
        fmt: str,
        first: bytes,
        chunks: AsyncIterator[bytes],
        database: str,
        settings: dict[str, str],
    ) -> tuple[bytes, str, dict[str, str]]:
        """Stream the body into ``send_insert`` on one worker, with a bounded queue between."""
        feed: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        cancelled = threading.Event()

        def run(handle: _Handle) -> dict[str, str]:
            handle.prepare(database, settings)
            inserter = handle.conn.send_insert(head, fmt)
            try:
                while (chunk := feed.get()) is not None:
                    inserter.append(chunk)
                if cancelled.is_set():
                    raise QueryError("Client closed the connection during INSERT", code=394)
                result = inserter.finish()
            except BaseException:
                with contextlib.suppress(Exception):
                    inserter.cancel()
                raise
            return {
                "read_rows": "0",
                "read_bytes": "0",
                "written_rows": str(result.rows_written),
                "written_bytes": str(result.bytes_written),
                "result_rows": str(result.rows_written),
                "result_bytes": "0",
            }

        worker = asyncio.ensure_future(self.engine.call(run))
        try:
            if first:
                await self._put(feed, first, worker)
            async for chunk in chunks:
                await self._put(feed, chunk, worker)
        except BaseException:
            cancelled.set()
            await self._put(feed, None, worker)
            with contextlib.suppress(Exception):
                await worker  # its error is the request's error, raised below
            raise
        await self._put(feed, None, worker)
        return b"", "TabSeparated", await worker

    @staticmethod
    async def _put(feed: queue.Queue[bytes | None], item: bytes | None, worker: Any) -> None:
        while True:
            if worker.done():  # the engine refused the data: stop feeding, report its error
                return
            try:
                feed.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.001)

    def _error(self, exc: QueryError, query_id: str) -> web.Response:
        text = str(exc)
        if not text.endswith("\n"):
            text += "\n"
        return web.Response(
            status=_HTTP_STATUS.get(exc.code, 500),
            text=text,
            headers={
                "X-ClickHouse-Exception-Code": str(exc.code),
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Server-Display-Name": SERVER_NAME,
            },
        )


async def _startup(engine: Engine) -> None:
    def probe(handle: _Handle) -> str:
        return str(handle.conn.query("SELECT timezone()", "TabSeparated")).strip()

    engine.timezone = await engine.call(probe)


def serve(data_dir: Path, host: str, port: int, user: str, password: str, workers: int) -> None:
    """Run the server until SIGTERM or SIGINT."""
    data_dir.mkdir(parents=True, exist_ok=True)
    engine = Engine(data_dir, workers)
    server = ClickHouseHTTP(engine, user, password)

    async def on_startup(_: web.Application) -> None:
        await _startup(engine)
        log.info("ClickHouse HTTP interface on http://%s:%d (data %s)", host, port, data_dir)

    async def on_cleanup(_: web.Application) -> None:
        engine.close()

    server.app.on_startup.append(on_startup)
    server.app.on_cleanup.append(on_cleanup)
    web.run_app(server.app, host=host, port=port, print=None, access_log=None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from learnstream.settings import get_settings

    settings = get_settings().clickhouse
    serve(
        args.data_dir,
        args.host,
        args.port,
        settings.user,
        settings.password.get_secret_value(),
        args.workers,
    )


if __name__ == "__main__":
    main()
