"""The embedded ClickHouse server, through clickhouse-connect and raw HTTP, as a real server."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import clickhouse_connect
import httpx
import lz4.frame
import pandas as pd
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from learnstream.stack import Stack
from learnstream.stack.procs import free_port
from tests.conftest import ROOT

EVENTS_DDL = """
CREATE TABLE events (
    id UInt64,
    learner LowCardinality(String),
    at DateTime64(3, 'UTC'),
    amount_minor Int64
) ENGINE = MergeTree ORDER BY id
"""


@pytest.fixture
def events(ch: Client) -> Client:
    ch.command(EVENTS_DDL)
    return ch


def test_clickhouse_one_process_inserts_while_another_queries(
    stack: Stack, ch_database: str, events: Client
) -> None:
    batches, rows = 30, 2000
    writer = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.ch_writer",
            stack.settings.clickhouse.dsn,
            ch_database,
            str(batches),
            str(rows),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[int] = []
    try:
        while writer.poll() is None:
            count = events.query(
                "SELECT count() FROM events WHERE amount_minor >= {lo:Int64}",
                parameters={"lo": 0},
            ).first_row[0]
            seen.append(int(count))
            time.sleep(0.02)
        out, err = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait()
    assert writer.returncode == 0, err
    assert out.strip() == "done"
    total = batches * rows
    assert events.query("SELECT count(), uniqExact(id) FROM events").first_row == (total, total)
    assert seen == sorted(seen), "a reader saw rows disappear"
    assert any(0 < c < total for c in seen), f"no query ran while the writer wrote: {seen[:5]}"
    # Native and Arrow batches landed with the same values
    row = events.query("SELECT learner, amount_minor, at FROM events WHERE id = 2001").first_row
    assert row[:2] == ("learner-12", 20010)
    assert row[2] == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def test_clickhouse_bound_parameters_are_values_never_sql(events: Client) -> None:
    hostile = "x'); DROP TABLE events; --"
    events.insert(
        "events",
        [[1, hostile, datetime.now(UTC), 5]],
        column_names=["id", "learner", "at", "amount_minor"],
    )
    found = events.query(
        "SELECT id FROM events WHERE learner = {name:String}", parameters={"name": hostile}
    ).result_rows
    assert found == [(1,)]
    client_side = events.query(
        "SELECT count() FROM events WHERE learner = %(name)s", parameters={"name": hostile}
    )
    assert client_side.first_row == (1,)


def test_clickhouse_query_and_parameters_sent_as_a_multipart_form(
    stack: Stack, ch_database: str, events: Client
) -> None:
    form_client = clickhouse_connect.get_client(
        dsn=stack.settings.clickhouse.dsn, database=ch_database, form_encode_query_params=True
    )
    try:
        events.insert(
            "events",
            [[7, "multi", datetime.now(UTC), 70]],
            column_names=["id", "learner", "at", "amount_minor"],
        )
        long_list = [f"nobody-{i}" for i in range(2000)] + ["multi"]
        found = form_client.query(
            "SELECT id FROM events WHERE learner IN {names:Array(String)}",
            parameters={"names": long_list},
        ).result_rows
        assert found == [(7,)]
    finally:
        form_client.close()


def test_clickhouse_query_df_and_arrow(events: Client) -> None:
    events.insert_df(
        "events",
        pd.DataFrame(
            {
                "id": [1, 2, 3],
                "learner": ["a", "b", "a"],
                "at": pd.to_datetime(["2026-11-28T10:00:00Z"] * 3, utc=True),
                "amount_minor": [100, 250, 50],
            }
        ),
    )
    df = events.query_df(
        "SELECT learner, sum(amount_minor) AS total FROM events GROUP BY learner ORDER BY learner"
    )
    assert df.to_dict("list") == {"learner": ["a", "b"], "total": [150, 250]}
    table = events.query_arrow("SELECT id FROM events ORDER BY id")
    assert table.column("id").to_pylist() == [1, 2, 3]


def test_clickhouse_errors_carry_the_exception_code(ch: Client) -> None:
    with pytest.raises(DatabaseError, match="code: 60"):
        ch.query("SELECT * FROM no_such_table")
    with pytest.raises(DatabaseError, match="code: 62"):
        ch.command("SELEC 1")


def test_clickhouse_raw_http_insert_at_head_of_body_chunked_and_compressed(
    stack: Stack, ch_database: str, events: Client
) -> None:
    url = stack.settings.clickhouse.dsn
    line = '{"id": %d, "learner": "l", "at": "2026-11-28 10:00:00.000", "amount_minor": 1}\n'

    def chunks() -> Iterator[bytes]:
        yield b"INSERT INTO events FORMAT JSONEachRow\n"
        for i in range(1000):
            yield (line % i).encode()

    reply = httpx.post(url, params={"database": ch_database}, content=chunks())  # chunked
    assert reply.status_code == 200, reply.text
    summary = reply.headers["X-ClickHouse-Summary"]
    assert '"written_rows":"1000"' in summary

    body = "".join(line % i for i in range(1000, 1500)).encode()
    for encoding, data in [("lz4", lz4.frame.compress(body)), ("gzip", gzip.compress(body))]:
        reply = httpx.post(
            url,
            params={"database": ch_database, "query": "INSERT INTO events FORMAT JSONEachRow"},
            headers={"Content-Encoding": encoding},
            content=data,
        )
        assert reply.status_code == 200, reply.text
    assert events.query("SELECT count(), uniqExact(id) FROM events").first_row == (2000, 1500)

    reply = httpx.get(url, params={"query": "SELECT 1 FORMAT JSONEachRow"})
    assert reply.text == '{"1":1}\n'
    assert reply.headers["X-ClickHouse-Format"] == "JSONEachRow"
    bad = httpx.post(
        url,
        params={"database": ch_database},
        content=b"INSERT INTO events FORMAT JSONEachRow\n{not json}\n",
    )
    assert bad.status_code >= 400
    assert "X-ClickHouse-Exception-Code" in bad.headers


def test_clickhouse_ping_needs_no_auth_and_a_wrong_password_gets_401(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "LEARNSTREAM_CLICKHOUSE__PASSWORD": "s3cret"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "learnstream.stack.chserver",
            "--data-dir",
            str(tmp_path / "ch"),
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/ping").text == "Ok.\n":
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.1)
        denied = httpx.get(url, params={"query": "SELECT 1"}, auth=("default", "wrong"))
        assert denied.status_code == 401
        assert denied.headers["X-ClickHouse-Exception-Code"] == "516"
        client = clickhouse_connect.get_client(dsn=f"http://default:s3cret@127.0.0.1:{port}")
        assert client.query("SELECT 41 + 1").first_row == (42,)
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert server.returncode == 0


@pytest.mark.parametrize("compress", ["lz4", "zstd", "gzip", False])
def test_clickhouse_large_compressed_insert_keeps_every_row(
    stack: Stack, ch_database: str, events: Client, compress: str | bool
) -> None:
    # More rows than one Native block (8192): clickhouse-connect sends several compressed
    # frames, and network chunks split them anywhere.
    client = clickhouse_connect.get_client(
        dsn=stack.settings.clickhouse.dsn, database=ch_database, compress=compress
    )
    rows = 50_000
    at = datetime(2026, 11, 28, tzinfo=UTC)
    client.insert(
        "events",
        [[i, f"learner-{i % 97}", at, i] for i in range(rows)],
        column_names=["id", "learner", "at", "amount_minor"],
    )
    client.close()
    assert events.query("SELECT count(), sum(amount_minor) FROM events").first_row == (
        rows,
        rows * (rows - 1) // 2,
    )
