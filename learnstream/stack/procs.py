"""Child processes of the local stack: spawn, PID files, liveness, stop, ports and log tails.

A PID file records the PID *and* the process's start time (from ``/proc``), so a PID reused by an
unrelated process after a reboot or crash is never mistaken for ours, and ``down`` never signals
a process the stack did not start.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from learnstream.errors import PortInUseError

# Popen objects of the services this process started, kept so that they are reaped when they
# exit (no zombies while a long-lived parent, such as a test session, goes on).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}

# Flags whose value is a secret: shown as *** in logs and PID files.
SECRET_FLAGS = frozenset({"--mnemonic"})


def redact(command: list[str]) -> list[str]:
    return ["***" if i and command[i - 1] in SECRET_FLAGS else arg for i, arg in enumerate(command)]


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":
        return None
    return int(fields[19])


@dataclass(frozen=True)
class PidRecord:
    """What a PID file holds."""

    pid: int
    start_time: int
    command: list[str]

    def alive(self) -> bool:
        child = _CHILDREN.get(self.pid)
        if child is not None and child.poll() is not None:
            _CHILDREN.pop(self.pid, None)
            return False
        return _start_time(self.pid) == self.start_time


def read_pidfile(path: Path) -> PidRecord | None:
    try:
        data = json.loads(path.read_text())
        return PidRecord(int(data["pid"]), int(data["start_time"]), list(data["command"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def spawn(command: list[str], log_path: Path, pidfile: Path, env: dict[str, str]) -> PidRecord:
    """Start ``command`` in its own session, output appended to ``log_path``, and record it."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        log.write(
            f"\n--- {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} start: "
            f"{' '.join(redact(command))}\n".encode()
        )
        log.flush()
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: `down` signals the whole group
        )
    _CHILDREN[proc.pid] = proc
    start = None
    for _ in range(100):
        start = _start_time(proc.pid)
        if start is not None or proc.poll() is not None:
            break
        time.sleep(0.01)
    record = PidRecord(proc.pid, start or -1, redact(command))
    tmp = pidfile.with_suffix(".tmp")
    tmp.write_text(
        json.dumps({"pid": record.pid, "start_time": record.start_time, "command": record.command})
    )
    tmp.replace(pidfile)
    return record


def exited(record: PidRecord) -> int | None:
    """The exit code if ``record`` is a child of this process that has exited, else None."""
    child = _CHILDREN.get(record.pid)
    if child is None:
        return None
    return child.poll()


def stop(record: PidRecord, sig: signal.Signals, timeout: float) -> bool:
    """Signal the process group, wait, then SIGKILL. True when it had to be killed."""
    if not record.alive():
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not record.alive():
            _reap(record.pid)
            return False
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, signal.SIGKILL)
    while record.alive():
        time.sleep(0.05)
    _reap(record.pid)
    return True


def _reap(pid: int) -> None:
    child = _CHILDREN.pop(pid, None)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def require_port(service: str, host: str, port: int, setting: str) -> None:
    if not port_free(host, port):
        raise PortInUseError(
            f"{service}: port {host}:{port} is already in use by another process. "
            f"Stop that process (see `ss -ltnp 'sport = :{port}'`) or choose another port "
            f"with {setting}=<port>."
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free right now (for tests and ad-hoc stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a log file ('' if there is none)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
