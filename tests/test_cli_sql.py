"""`learnstream sql` and the pandas helper against the running embedded ClickHouse."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from learnstream.stack import Stack
from sinks.clickhouse.client import query_df
from tests.conftest import ROOT


def run_sql(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEARNSTREAM_CLICKHOUSE__DSN": stack.settings.clickhouse.dsn}
    return subprocess.run(
        [sys.executable, "-m", "learnstream.cli", "sql", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_sql_binds_parameters_and_formats(stack: Stack) -> None:
    query = "SELECT number AS n, {label:String} AS label FROM numbers({k:UInt32})"
    as_json = run_sql(stack, query, "-p", "k=3", "-p", "label=it's", "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [{"n": i, "label": "it's"} for i in range(3)]
    as_csv = run_sql(stack, query, "-p", "k=2", "-p", "label=x", "--format", "csv")
    assert as_csv.stdout.splitlines() == ["n,label", "0,x", "1,x"]
    table = run_sql(stack, query, "-p", "k=1", "-p", "label=x")
    assert "label" in table.stdout and "x" in table.stdout


def test_cli_sql_reports_server_errors_without_a_traceback(stack: Stack) -> None:
    result = run_sql(stack, "SELECT * FROM no_such_table")
    assert result.returncode == 1
    assert "error:" in result.stderr and "no_such_table" in result.stderr
    assert "Traceback" not in result.stderr
    bad = run_sql(stack, "SELECT 1", "-p", "novalue")
    assert bad.returncode == 2 and "name=value" in bad.stderr


def test_pandas_helper_returns_a_dataframe(stack: Stack) -> None:
    df = query_df(
        "SELECT toUInt8(number) AS n FROM numbers({k:UInt8})",
        {"k": 4},
        dsn=stack.settings.clickhouse.dsn,
    )
    assert df["n"].tolist() == [0, 1, 2, 3]
