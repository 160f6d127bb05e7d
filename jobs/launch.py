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

import jobs
from jobs.flink.runtime import (
    JobConfigError,
    RunOptions,
    connector_jar,
    latest_checkpoint,
)
from jobs.flink.settings import FlinkSettings
from schemas.errors import LearnstreamError
from streams.settings import KafkaSettings

JOBS = ("qos", "completion")

# The folder that holds the project's packages. A checkout (an editable install, which the
# embedded interpreter of thread mode does not see through its .pth file) goes on the job's
# PYTHONPATH; an installed package is found in the Flink environment's own site-packages.
PACKAGES_ROOT = Path(jobs.__file__).resolve().parent.parent


class JobFailedError(LearnstreamError):
    """A bounded job exited with an error; the message carries the tail of its log."""


@dataclass(frozen=True)
class Launcher:
    """What starting a job on this machine needs: its two sections, and where Java, the jars
    and the state folder are (the CLI fills these in from the stack's settings)."""

    kafka: KafkaSettings
    flink: FlinkSettings
    java_home: Path
    jars_dir: Path
    state_dir: Path

    def checkpoints(self, job: str) -> Path:
        return self.flink.checkpoints(job, self.state_dir)

    def settings_env(self, job: str) -> dict[str, str]:
        """The job's sections as the environment variables that recreate them, with the
        checkpoint folder resolved."""
        out: dict[str, str] = {}
        for section, model in (("kafka", self.kafka), ("flink", self.flink)):
            for name, value in model.model_dump(mode="json").items():
                if value is None:
                    continue
                text = value if isinstance(value, str) else json.dumps(value)
                out[f"LEARNSTREAM_{section.upper()}__{name.upper()}"] = text
        out["LEARNSTREAM_FLINK__CHECKPOINT_DIR"] = str(self.checkpoints(job).parent)
        return out

    def env(self, job: str) -> dict[str, str]:
        """The environment of a job process: its settings, Java, the mini-cluster heap, and
        the Flink venv's site-packages on PYTHONPATH (thread mode embeds the interpreter in the
        JVM, and the embedded interpreter does not find the venv by itself: "No module named
        'pemja'")."""
        python = self.flink.python
        if not python.exists():
            raise JobConfigError(
                f"{python} does not exist: run `make setup` (it builds .venv-flink), or set "
                "LEARNSTREAM_FLINK__PYTHON"
            )
        site = sorted((python.parent.parent / "lib").glob("python3*/site-packages"))
        env = dict(os.environ) | self.settings_env(job)
        env["JAVA_HOME"] = str(self.java_home)
        env["JVM_ARGS"] = f"-Xmx{self.flink.heap} -Xms{self.flink.heap}"
        checkout = [] if PACKAGES_ROOT.name == "site-packages" else [str(PACKAGES_ROOT)]
        paths = [*checkout, *(str(p) for p in site)]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        log_dir = self.state_dir / "flink" / "log"
        log_dir.mkdir(parents=True, exist_ok=True)
        env["FLINK_LOG_DIR"] = str(log_dir)
        env.pop("VIRTUAL_ENV", None)
        return env

    def command(self, job: str, options: RunOptions) -> list[str]:
        if job not in JOBS:
            raise JobConfigError(f"unknown job {job!r}; the jobs are: {', '.join(JOBS)}")
        jar = connector_jar(self.jars_dir)  # fails early, with the setup hint, if missing
        cmd = [str(self.flink.python), "-m", f"jobs.flink.{job}", "--start", options.start]
        if options.bounded:
            cmd.append("--bounded")
        if options.restore:
            cmd += ["--restore", options.restore]
        if options.group_id:
            cmd += ["--group-id", options.group_id]
        if options.transactional_id_prefix:
            cmd += ["--transactional-id-prefix", options.transactional_id_prefix]
        if jar is not None:
            cmd += ["--jar", str(jar)]
        return cmd

    def resolve_restore(self, job: str, restore: str | None) -> str | None:
        """``latest`` means the newest retained checkpoint of this job (None when there is
        none)."""
        if restore != "latest":
            return restore
        found = latest_checkpoint(self.checkpoints(job))
        return str(found) if found else None

    def start(self, job: str, options: RunOptions, log_path: Path | None = None) -> JobProcess:
        cmd = self.command(job, options)
        env = self.env(job)
        if log_path is None:
            log_path = self.state_dir / "flink" / "log" / f"{job}-{int(time.time())}.out"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab")  # noqa: SIM115 (closed by JobProcess)
        process = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return JobProcess(job, process, log_path, log)

    def run_to_end(self, job: str, options: RunOptions, timeout: float = 600.0) -> JobProcess:
        """Run a bounded job and wait until it has ended and committed its output; raises
        :class:`JobFailedError` with its log's tail when it fails."""
        process = self.start(job, options)
        try:
            code = process.wait(timeout)
        finally:
            process.stop()  # a no-op when it ended by itself
        if code != 0:
            raise JobFailedError(f"flink job {job} exited {code}:\n{process.log_tail(40)}")
        return process


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


__all__ = ["JOBS", "JobFailedError", "JobProcess", "Launcher"]
