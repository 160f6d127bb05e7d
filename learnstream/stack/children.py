"""Parts of learnstream as child processes of a caller that holds the settings (the demo, the
fault tests, the benchmarks): `python -m learnstream.cli …` with exactly those settings in its
environment, in a process group of its own so that a signal reaches all of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from learnstream.settings import Settings, to_env


def spawn(
    settings: Settings, args: list[str], log: Path, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``learnstream <args>`` with ``settings``; its output goes to ``log``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEARNSTREAM_")}
    full = {**clean, **to_env(settings), **(env or {})}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "learnstream.cli", *args],
            env=full, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def stop(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGINT (a clean stop), then SIGKILL after ``timeout``; returns the exit code."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return process.wait()


def kill(process: subprocess.Popen[bytes]) -> int:
    """SIGKILL, at once: a crash."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    return process.wait()
