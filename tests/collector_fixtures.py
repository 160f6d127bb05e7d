"""A real collector process (`learnstream collector`) against the session's Kafka broker."""

from __future__ import annotations

import copy
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from learnstream.stack import Stack
from learnstream.stack.collector import start_collector as start_process
from learnstream.stack.procs import free_port
from schemas import format_utc
from streams.kafka import ReadRecord, read_to_end
from tests.conftest import ROOT

EXAMPLES = ROOT / "schemas" / "examples"
SERVER_KEY = "lsk_test_server_key"
BROWSER_KEY = "lsk_test_browser_key"
BROWSER_ORIGIN = "https://app.learnstream.test"


@dataclass
class Collector:
    url: str
    bootstrap: str
    process: subprocess.Popen[bytes]
    log: Path

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        key: str | None = SERVER_KEY,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = {"Content-Type": "application/json", **(headers or {})}
        if key is not None:
            sent["X-API-Key"] = key
        data = content if content is not None else json.dumps(body).encode()
        return httpx.post(self.url + path, content=data, headers=sent, params=params, timeout=60)


def start_collector(env_extra: dict[str, str], bootstrap: str, log: Path) -> Collector:
    port = free_port()
    env = {
        "LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "LEARNSTREAM_COLLECTOR__BROWSER_CLIENTS": '["web-player"]',
        "LEARNSTREAM_COLLECTOR__CORS_ORIGINS": json.dumps([BROWSER_ORIGIN]),
        **env_extra,
    }
    keys = {"server-app": SERVER_KEY, "web-player": BROWSER_KEY}
    process = start_process(port, keys, log, env)
    return Collector(f"http://127.0.0.1:{port}", bootstrap, process, log)


def stop_collector(collector: Collector) -> None:
    collector.process.terminate()
    try:
        collector.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        collector.process.kill()
        collector.process.wait()


@pytest.fixture(scope="session")
def collector(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    log = tmp_path_factory.mktemp("collector") / "collector.log"
    running = start_collector({}, stack.settings.kafka.bootstrap_servers, log)
    try:
        yield running
    finally:
        stop_collector(running)


def example(event_type: str, **changes: Any) -> dict[str, Any]:
    """A documented example with a fresh event_id and occurred_at = now (or as changed)."""
    event = copy.deepcopy(json.loads((EXAMPLES / f"{event_type}.json").read_text()))
    now = datetime.now(UTC)
    event["event_id"] = str(uuid.uuid4())
    event["occurred_at"] = format_utc(now)
    if event_type == "enrollment":
        event["deadline_at"] = format_utc(now + timedelta(days=30))
    event.update(changes)
    return event


def records_by_event_id(bootstrap: str, topics: list[str]) -> dict[str, list[ReadRecord]]:
    found: dict[str, list[ReadRecord]] = {}
    for record in read_to_end(bootstrap, topics):
        try:
            event_id = json.loads(record.value).get("event_id")
        except ValueError:
            continue
        if event_id:
            found.setdefault(event_id, []).append(record)
    return found


def dead_letters(bootstrap: str) -> list[dict[str, Any]]:
    out = []
    for record in read_to_end(bootstrap, ["learner.dlq"]):
        value = json.loads(record.value)
        if value.get("kind") == "dead_letter":
            out.append(value)
    return out
