"""`stack up | down | status`: restarts keep data, errors are clear, down stops only its own."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from learnstream.errors import JavaNotFoundError, PortInUseError, ServiceStartError
from learnstream.settings import StackSettings
from learnstream.stack import Stack, procs
from learnstream.stack.services import Kafka, find_java
from streams.admin import ensure_topics
from streams.kafka import make_consumer, make_producer, produce_all
from streams.topics import TopicSpec
from tests.conftest import ROOT, stack_settings, unique_topic

pytestmark = [pytest.mark.slow]


def rpc(url: str, method: str, *params: object) -> object:
    reply = httpx.post(
        url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)}, timeout=10
    ).json()
    assert "error" not in reply, reply
    return reply["result"]


def consume_all(bootstrap: str, topic: str, expected: int) -> list[str]:
    consumer = make_consumer(bootstrap, unique_topic("group"))
    consumer.subscribe([topic])
    values: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < expected and time.monotonic() < deadline:
            values += [m.value().decode() for m in consumer.consume(500, timeout=1.0)]
    finally:
        consumer.close()
    return values


def our_processes(state_dir: Path) -> list[int]:
    """PIDs of live processes whose command line mentions this stack's state folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(state_dir) in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_stack_restart_keeps_topic_data_and_chain_state(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    assert set(stack.up().values()) == {"started"}
    s = stack.settings
    topic = unique_topic("durable")
    ensure_topics(s.kafka.bootstrap_servers, [TopicSpec(topic, 3, 1, {})])
    produce_all(
        make_producer(s.kafka.bootstrap_servers),
        topic,
        [(f"k{i % 7}", f"v{i}") for i in range(500)],
    )
    accounts = rpc(s.chain.rpc_url, "eth_accounts")
    assert isinstance(accounts, list)
    tx = rpc(
        s.chain.rpc_url,
        "eth_sendTransaction",
        {"from": accounts[0], "to": accounts[1], "value": hex(12345)},
    )
    rpc(s.chain.rpc_url, "anvil_mine", "0x3")
    block_before = int(str(rpc(s.chain.rpc_url, "eth_blockNumber")), 16)
    balance_before = rpc(s.chain.rpc_url, "eth_getBalance", accounts[1], "latest")

    stack.down()
    assert stack.status()[0].state == "stopped"
    assert set(stack.up().values()) == {"started"}

    assert int(str(rpc(s.chain.rpc_url, "eth_blockNumber")), 16) == block_before
    assert rpc(s.chain.rpc_url, "eth_getBalance", accounts[1], "latest") == balance_before
    receipt = rpc(s.chain.rpc_url, "eth_getTransactionReceipt", tx)
    assert isinstance(receipt, dict) and receipt["status"] == "0x1"
    values = consume_all(s.kafka.bootstrap_servers, topic, 500)
    assert sorted(values) == sorted(f"v{i}" for i in range(500))


def test_stack_down_leaves_none_of_its_processes_running(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    stack.up(create_topics=False)
    statuses = stack.status()
    assert [row.state for row in statuses] == ["running"] * 3
    pids = [row.pid for row in statuses]
    assert len(our_processes(stack.settings.stack.state_dir)) >= 2  # kafka, clickhouse

    outcome = stack.down()
    assert set(outcome.values()) == {"stopped"}
    for pid in pids:
        assert pid is not None
        assert not Path(f"/proc/{pid}").exists() or procs._start_time(pid) is None
    assert our_processes(stack.settings.stack.state_dir) == []
    assert not any((stack.settings.stack.state_dir / "run").glob("*.pid"))
    s = stack.settings
    ports = [
        (s.kafka.host, s.kafka.port),
        (s.kafka.host, s.kafka.controller_port),
        (s.clickhouse.host, s.clickhouse.port),
        (s.chain.host, s.chain.port),
    ]
    for host, port in ports:
        assert procs.port_free(host, port), port
    assert [row.state for row in stack.status()] == ["stopped"] * 3


def test_stack_up_twice_starts_nothing_new(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(["clickhouse", "anvil"])
    assert stack.up() == {"clickhouse": "started", "anvil": "started"}
    pids = [row.pid for row in stack.status()]
    assert stack.up() == {"clickhouse": "running", "anvil": "running"}
    assert [row.pid for row in stack.status()] == pids


def test_stack_down_never_signals_a_process_it_did_not_start(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(["anvil"])
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # A PID file left behind whose PID now belongs to another process (PID reuse).
        pidfile = stack.service("anvil").pidfile
        pidfile.parent.mkdir(parents=True)
        pidfile.write_text(f'{{"pid": {stranger.pid}, "start_time": 1, "command": ["anvil"]}}')
        assert stack.down() == {"anvil": "not running (stale PID file removed)"}
        assert stranger.poll() is None
        assert not pidfile.exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_stack_port_taken_gives_a_clear_error_and_starts_nothing(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    s = stack.settings
    with socket.socket() as squatter:
        squatter.bind((s.kafka.host, s.kafka.port))
        squatter.listen()
        with pytest.raises(PortInUseError) as caught:
            stack.up()
    message = str(caught.value)
    assert f"{s.kafka.host}:{s.kafka.port}" in message
    assert "LEARNSTREAM_KAFKA__PORT" in message
    assert all(row.state == "stopped" for row in stack.status())
    assert our_processes(s.stack.state_dir) == []


def test_cli_stack_up_with_a_taken_port_exits_nonzero_with_the_message(tmp_path: Path) -> None:
    settings = stack_settings(tmp_path, ["clickhouse"])
    env = {
        **os.environ,
        "LEARNSTREAM_STACK__STATE_DIR": str(tmp_path),
        "LEARNSTREAM_STACK__SERVICES": '["clickhouse"]',
        "LEARNSTREAM_CLICKHOUSE__PORT": str(settings.clickhouse.port),
    }
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.clickhouse.port))
        squatter.listen()
        result = subprocess.run(
            [sys.executable, "-m", "learnstream.cli", "stack", "up"],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
    assert result.returncode == PortInUseError.exit_code
    assert f"port 127.0.0.1:{settings.clickhouse.port} is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_stack_broker_that_does_not_come_up_reports_its_log_tail(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack(["kafka"])
    stack.up(create_topics=False)
    stack.down()
    # Storage formatted for another node id: the broker refuses to start and exits.
    meta = stack.service("kafka").data_dir / "meta.properties"  # type: ignore[attr-defined]
    meta.write_text(meta.read_text().replace("node.id=1", "node.id=7"))
    with pytest.raises(ServiceStartError) as caught:
        stack.up(create_topics=False)
    message = str(caught.value)
    assert "kafka exited during start-up" in message
    assert "Last lines of" in message
    assert "node.id" in message or "node id" in message
    assert stack.status()[0].state == "stopped"


def test_stack_start_timeout_reports_the_log_tail(
    make_stack: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A broker that never answers its health probe. (A real one with a tiny timeout raced: one
    # probe waits up to 2 s, and a fast start answered it before the deadline was checked.)
    monkeypatch.setattr(Kafka, "healthy", lambda _self: False)
    stack = make_stack(["kafka"])
    with pytest.raises(ServiceStartError, match="did not become healthy") as raised:
        stack.up(timeout=1.0, create_topics=False)
    assert "Last lines of" in str(raised.value)
    assert our_processes(stack.settings.stack.state_dir) == []


def test_missing_java_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    settings = stack_settings(tmp_path, ["kafka"])
    settings.stack = StackSettings(state_dir=tmp_path, services=["kafka"], java_home=None)
    with pytest.raises(JavaNotFoundError, match=r"Java 17 or newer.*apt-get install"):
        find_java(settings.stack.java_home)
    with pytest.raises(JavaNotFoundError):
        Stack(settings).up()
    assert our_processes(tmp_path) == []


def test_cli_missing_java_exits_with_its_code(tmp_path: Path) -> None:
    env = {
        "PATH": str(tmp_path),
        "HOME": os.environ.get("HOME", "/root"),
        "LEARNSTREAM_STACK__STATE_DIR": str(tmp_path),
        "LEARNSTREAM_STACK__SERVICES": '["kafka"]',
        "LEARNSTREAM_KAFKA__PORT": str(procs.free_port()),
        "LEARNSTREAM_KAFKA__CONTROLLER_PORT": str(procs.free_port()),
    }
    result = subprocess.run(
        [sys.executable, "-m", "learnstream.cli", "stack", "up"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == JavaNotFoundError.exit_code, result.stderr
    assert "error: Java 17 or newer is needed" in result.stderr


def test_stop_kills_a_process_that_ignores_its_signal(tmp_path: Path) -> None:
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    record = procs.spawn(
        [sys.executable, "-c", code], tmp_path / "x.log", tmp_path / "x.pid", dict(os.environ)
    )
    time.sleep(0.3)
    assert record.alive()
    assert procs.stop(record, signal.SIGTERM, timeout=0.5) is True
    assert not record.alive()
