"""A real live server (`learnstream live`) and a collector that accepts its page's QoS, against
the session's Kafka; and headless Chromium joining a class from the served page."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from learnstream.stack import Stack
from learnstream.stack.collector import start_live
from learnstream.stack.procs import free_port
from tests.collector_fixtures import (
    BROWSER_KEY,
    SERVER_KEY,
    Collector,
    start_collector,
    stop_collector,
)

KEYS = {"server-app": SERVER_KEY, "web-player": BROWSER_KEY}
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",  # keeps a headless browser with a page open running
)


@dataclass
class Live:
    url: str
    bootstrap: str
    collector: Collector
    process: subprocess.Popen[bytes]
    log: Path

    def request(
        self, method: str, path: str, body: Any = None, key: str | None = SERVER_KEY, **headers: str
    ) -> httpx.Response:
        sent = dict(headers)
        if key is not None:
            sent["X-API-Key"] = key
        return httpx.request(method, self.url + path, json=body, headers=sent, timeout=30)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def live(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The live server on a free port, measuring every second, with a collector of its own that
    lets the served page (the live server's origin) post QoS with the browser key."""
    folder = tmp_path_factory.mktemp("live")
    bootstrap = stack.settings.kafka.bootstrap_servers
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    collector = start_collector(
        {"LEARNSTREAM_COLLECTOR__CORS_ORIGINS": json.dumps([origin])},
        bootstrap,
        folder / "collector.log",
    )
    env = {
        "LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "LEARNSTREAM_COLLECTOR__BROWSER_CLIENTS": '["web-player"]',
        "LEARNSTREAM_LIVE__QOS_INTERVAL_S": "1",
        "LEARNSTREAM_LIVE__BROWSER_QOS_INTERVAL_S": "1",
        "LEARNSTREAM_LIVE__MAX_ROOMS": "4",
        "LEARNSTREAM_LIVE__METRICS_INTERVAL_S": "1",
        "LEARNSTREAM_LIVE__COLLECTOR_URL": collector.url,
    }
    log = folder / "live.log"
    try:
        process = start_live(port, KEYS, log, env)
    except BaseException:
        stop_collector(collector)
        raise
    try:
        yield Live(origin, bootstrap, collector, process, log)
    finally:
        stop(process)
        stop_collector(collector)


def chromium(url: str, profile: Path, log: Path) -> subprocess.Popen[bytes]:
    """Debian's Chromium, headless, with a fresh profile, opening ``url``."""
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed: `make setup` installs it"
    with log.open("ab") as out:
        return subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
