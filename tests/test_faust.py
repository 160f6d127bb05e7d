"""A real faust-streaming worker consumes from the stack's Kafka 4 broker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from learnstream.stack import Stack
from streams.admin import ensure_topics
from streams.kafka import make_producer, produce_all
from streams.topics import TopicSpec
from tests.conftest import ROOT, unique_topic

pytestmark = [pytest.mark.slow]


def test_faust_worker_consumes_every_message_with_a_changelog_table(
    stack: Stack, tmp_path: Path
) -> None:
    bootstrap = stack.settings.kafka.bootstrap_servers
    topic = unique_topic("faust").replace(".", "-")
    ensure_topics(bootstrap, [TopicSpec(topic, 3, 1, {})])
    out = tmp_path / "seen.txt"
    env = {
        **os.environ,
        "SMOKE_BOOTSTRAP": bootstrap,
        "SMOKE_TOPIC": topic,
        "SMOKE_OUT": str(out),
        "SMOKE_DATADIR": str(tmp_path / "faust"),
    }
    faust_bin = Path(sys.executable).parent / "faust"
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [str(faust_bin), "-A", "tests.faust_smoke_app", "worker", "-l", "info"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    messages = 300
    try:
        produce_all(
            make_producer(bootstrap), topic, [(f"learner-{i % 5}", str(i)) for i in range(messages)]
        )
        deadline = time.monotonic() + 120
        lines: list[str] = []
        while time.monotonic() < deadline:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            lines = out.read_text().splitlines() if out.exists() else []
            if len(lines) >= messages:
                break
            time.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
    assert len(lines) == messages, (tmp_path / "worker.log").read_text()[-3000:]
    per_key: dict[str, list[int]] = defaultdict(list)
    for line in lines:
        key, value, count = line.split("|")
        per_key[key].append(int(value))
        assert int(count) == len(per_key[key])  # the table counted each message once
    assert {k: len(v) for k, v in per_key.items()} == {f"learner-{i}": 60 for i in range(5)}
    assert all(v == sorted(v) for v in per_key.values())
    # the table's changelog topic was created on the broker by Faust
    from streams.admin import admin_client

    topics = admin_client(bootstrap).list_topics(timeout=10).topics
    assert any(name.endswith("-counts-changelog") for name in topics)
