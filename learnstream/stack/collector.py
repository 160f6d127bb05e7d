"""The collector and the live server as child processes (`learnstream collector`,
`learnstream live`): demo, benchmarks, tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from streams.collector.auth import hash_key


class CollectorStartError(RuntimeError):
    """The collector (or live server) process exited or never answered /healthz; carries its
    log's tail."""


def start_collector(
    port: int,
    keys: Mapping[str, str],
    log: Path,
    env: Mapping[str, str] | None = None,
    python_args: tuple[str, ...] = (),
    timeout: float = 60.0,
) -> subprocess.Popen[bytes]:
    """Start the collector on 127.0.0.1:``port`` accepting ``keys`` ({client: key}) and wait
    until /healthz answers. ``env`` adds settings; ``python_args`` go before ``-m`` (cProfile)."""
    full_env = {
        **os.environ,
        "LEARNSTREAM_COLLECTOR__HOST": "127.0.0.1",
        "LEARNSTREAM_COLLECTOR__PORT": str(port),
        "LEARNSTREAM_COLLECTOR__API_KEYS": json.dumps({c: hash_key(k) for c, k in keys.items()}),
        **(env or {}),
    }
    cmd = [sys.executable, *python_args, "-m", "learnstream.cli", "collector"]
    return _start(cmd, full_env, f"http://127.0.0.1:{port}/healthz", log, "collector", timeout)


def start_live(
    port: int,
    keys: Mapping[str, str],
    log: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> subprocess.Popen[bytes]:
    """Start the live-class server on 127.0.0.1:``port``, accepting the collector ``keys``
    ({client: key}), and wait until /healthz answers. ``env`` adds settings."""
    full_env = {
        **os.environ,
        "LEARNSTREAM_LIVE__HOST": "127.0.0.1",
        "LEARNSTREAM_LIVE__PORT": str(port),
        "LEARNSTREAM_COLLECTOR__API_KEYS": json.dumps({c: hash_key(k) for c, k in keys.items()}),
        **(env or {}),
    }
    cmd = [sys.executable, "-m", "learnstream.cli", "live"]
    return _start(cmd, full_env, f"http://127.0.0.1:{port}/healthz", log, "live server", timeout)


def _start(
    cmd: list[str], env: Mapping[str, str], url: str, log: Path, what: str, timeout: float
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            tail = log.read_text(errors="replace")[-3000:]
            raise CollectorStartError(f"the {what} did not start (log {log}):\n{tail}")
        time.sleep(0.2)
