"""Say plainly what is down: each command that needs Kafka, ClickHouse or the chain names the part
that does not answer, its address and how to start it, and exits with that part's code; no
traceback, no driver noise, and librdkafka's own log lines stay off the console."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from learnstream.stack import Stack
from learnstream.stack.procs import free_port
from schemas.errors import ChainUnreachable
from settlement.chain import chain_id
from tests.conftest import ROOT


def learnstream(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEARNSTREAM_")}
    return subprocess.run(
        [sys.executable, "-m", "learnstream.cli", *args],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def assert_plain(result: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert result.returncode == code, (result.returncode, result.stderr)
    for needle in (*needles, "learnstream stack up"):
        assert needle in result.stderr, (needle, result.stderr)
    for noise in ("Traceback", "Unexpected Http Driver Exception", "urllib3", "rdkafka", "%3|"):
        assert noise not in result.stderr, (noise, result.stderr)


def test_unreachable_clickhouse_is_named_with_its_address_and_exit_code_11() -> None:
    port = free_port()
    result = learnstream("sql", "SELECT 1", LEARNSTREAM_CLICKHOUSE__DSN=f"http://127.0.0.1:{port}")
    assert_plain(
        result,
        11,
        f"ClickHouse is not reachable at http://127.0.0.1:{port}",
        "LEARNSTREAM_CLICKHOUSE__DSN",
    )
    # a password in the DSN is never printed
    secret = learnstream(
        "sinks", "migrate", LEARNSTREAM_CLICKHOUSE__DSN=f"http://ana:hunter2@127.0.0.1:{port}/db"
    )
    assert_plain(secret, 11, f"http://ana:***@127.0.0.1:{port}/db")
    assert "hunter2" not in secret.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("dlq", "list"),
        ("catalog", "load", "schemas/examples/course.json"),
        ("sinks", "clickhouse", "--idle-exit", "1"),
        ("jobs", "run", "lag-monitor"),
    ],
)
def test_unreachable_kafka_is_named_with_its_address_and_exit_code_10(
    command: tuple[str, ...],
) -> None:
    bootstrap = f"127.0.0.1:{free_port()}"
    result = learnstream(*command, LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS=bootstrap)
    assert_plain(
        result, 10, f"Kafka is not reachable at {bootstrap}", "LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS"
    )


def test_unreachable_chain_is_named_with_its_address_and_exit_code_12(stack: Stack) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ChainUnreachable) as info:
        chain_id(url, timeout=2)
    assert info.value.exit_code == 12 and url in str(info.value)
    # Kafka and ClickHouse answer, the chain does not
    result = learnstream(
        "stack",
        "smoke",
        "--messages",
        "10",
        LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS=stack.settings.kafka.bootstrap_servers,
        LEARNSTREAM_CLICKHOUSE__DSN=stack.settings.clickhouse.dsn,
        LEARNSTREAM_CHAIN__RPC_URL=url,
    )
    assert_plain(result, 12, f"The chain (JSON-RPC node) is not reachable at {url}")


def test_unreachable_librdkafka_log_lines_stay_off_the_console() -> None:
    script = (
        "from streams.kafka import make_producer\n"
        f"p = make_producer('127.0.0.1:{free_port()}')\n"
        "p.produce('t', b'x')\n"
        "p.poll(1.5)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0 and result.stderr == "", result.stderr
    # at INFO (a service's log) they are there, one level down from librdkafka's own
    verbose = "import logging; logging.basicConfig(level=logging.INFO)\n" + script
    shown = subprocess.run(
        [sys.executable, "-c", verbose],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "INFO:streams.kafka.librdkafka" in shown.stderr and "Connection refused" in shown.stderr
