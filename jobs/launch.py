"""Start a Flink job on the local PyFlink mini-cluster, from the application environment.

The job runs in the Flink environment's interpreter (``.venv-flink``), as
``python -m jobs.flink.<job>``: the same module a cluster runs with ``flink run -py``. The
mini-cluster lives inside that process, so stopping the process stops the job; its last
completed checkpoint stays on disk (``RETAIN_ON_CANCELLATION``) for ``--restore``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from jobs.flink.runtime import (
    JobConfigError,
    RunOptions,
    checkpoint_dir,
    connector_jar,
    latest_checkpoint,
)
from learnstream.settings import PROJECT_ROOT, Settings

JOBS = ("qos", "completion")


def java_home(settings: Settings) -> Path:
    from learnstream.stack.services import find_java

    return find_java(settings).resolve().parent.parent


# The settings sections a job reads; they reach the job process as LEARNSTREAM_* variables.
JOB_SECTIONS = ("kafka", "flink", "stack")


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings``' job sections as the environment variables that recreate them."""
    out: dict[str, str] = {}
    dumped = settings.model_dump(mode="json")
    for section in JOB_SECTIONS:
        for name, value in dumped[section].items():
            if value is None:
                continue
            text = value if isinstance(value, str) else json.dumps(value)
            out[f"LEARNSTREAM_{section.upper()}__{name.upper()}"] = text
    return out


def job_env(settings: Settings) -> dict[str, str]:
    """The environment of a job process: its settings, Java, the mini-cluster heap, and the
    Flink venv's site-packages on PYTHONPATH (thread mode embeds the interpreter in the JVM, and
    the embedded interpreter does not find the venv by itself: "No module named 'pemja'")."""
    python = settings.flink.python
    if not python.exists():
        raise JobConfigError(f"{python} does not exist: run `make setup` (it builds .venv-flink)")
    site = sorted((python.parent.parent / "lib").glob("python3*/site-packages"))
    env = dict(os.environ) | settings_env(settings)
    env["JAVA_HOME"] = str(java_home(settings))
    env["JVM_ARGS"] = f"-Xmx{settings.flink.heap} -Xms{settings.flink.heap}"
    paths = [str(PROJECT_ROOT), *(str(p) for p in site)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    log_dir = settings.stack.state_dir / "flink" / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    env["FLINK_LOG_DIR"] = str(log_dir)
    env.pop("VIRTUAL_ENV", None)
    return env


def job_command(settings: Settings, job: str, options: RunOptions) -> list[str]:
    if job not in JOBS:
        raise JobConfigError(f"unknown job {job!r}; the jobs are: {', '.join(JOBS)}")
    connector_jar(settings)  # fail early, with the setup hint, if the jar is missing
    cmd = [str(settings.flink.python), "-m", f"jobs.flink.{job}", "--start", options.start]
    if options.bounded:
        cmd.append("--bounded")
    if options.restore:
        cmd += ["--restore", options.restore]
    if options.group_id:
        cmd += ["--group-id", options.group_id]
    if options.transactional_id_prefix:
        cmd += ["--transactional-id-prefix", options.transactional_id_prefix]
    return cmd


def resolve_restore(settings: Settings, job: str, restore: str | None) -> str | None:
    """``latest`` means the newest retained checkpoint of this job (None when there is none)."""
    if restore != "latest":
        return restore
    found = latest_checkpoint(checkpoint_dir(settings, job))
    return str(found) if found else None


@dataclass
class JobProcess:
    """A running job process (its own process group, so a stop reaches the JVM too)."""

    job: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    def running(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        try:
            return self.process.wait(timeout)
        finally:
            if self.process.poll() is not None:
                self._close()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the job's process group and wait for it (SIGKILL after ``timeout``)."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        self._close()
        return self.process.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def start_job(
    settings: Settings, job: str, options: RunOptions, log_path: Path | None = None
) -> JobProcess:
    cmd = job_command(settings, job, options)
    env = job_env(settings)
    if log_path is None:
        log_path = settings.stack.state_dir / "flink" / "log" / f"{job}-{int(time.time())}.out"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")  # noqa: SIM115 (closed by JobProcess)
    process = subprocess.Popen(
        cmd,
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return JobProcess(job, process, log_path, log)


__all__ = ["JOBS", "JobProcess", "job_command", "job_env", "resolve_restore", "start_job"]
