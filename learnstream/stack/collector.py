"""The collector as a child process (`learnstream collector`): demo, benchmarks, tests."""

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
    """The collector process exited or never answered /healthz; carries its log's tail."""


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
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/healthz"
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
            raise CollectorStartError(f"the collector did not start (log {log}):\n{tail}")
        time.sleep(0.2)
