"""`learnstream stack up | down | status | logs`: the local services as child processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from learnstream.errors import ServiceStartError, StackError
from learnstream.stack import procs
from learnstream.stack.services import SERVICES, Service

if TYPE_CHECKING:
    from learnstream.settings import Settings


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # running | stopped | unhealthy
    pid: int | None
    address: str
    log: str


class Stack:
    """The local stack described by ``settings``: Kafka, the embedded ClickHouse and anvil."""

    def __init__(self, settings: Settings, echo: Callable[[str], None] = lambda _: None) -> None:
        self.settings = settings
        self.echo = echo
        self.services: list[Service] = [SERVICES[n](settings) for n in settings.stack.services]

    def service(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise StackError(f"unknown service {name!r}; this stack has {self.names()}")

    def names(self) -> list[str]:
        return [s.name for s in self.services]

    def running(self, service: Service) -> procs.PidRecord | None:
        record = procs.read_pidfile(service.pidfile)
        return record if record is not None and record.alive() else None

    # -- up --------------------------------------------------------------------------------------

    def up(self, timeout: float | None = None, create_topics: bool = True) -> dict[str, str]:
        """Start what is not running, wait for health, create the topic catalogue.

        Returns {service: "started" | "running"}. Raises a StackError subclass, with the stack
        left as it was before the call, when something cannot start.
        """
        timeout = timeout or self.settings.stack.startup_timeout_s
        started: list[tuple[Service, procs.PidRecord]] = []
        outcome: dict[str, str] = {}
        try:
            to_start = []
            for service in self.services:
                if self.running(service):
                    outcome[service.name] = "running"
                    continue
                for port in service.ports():  # all ports first: fail before starting anything
                    procs.require_port(service.name, port.host, port.port, port.setting)
                to_start.append(service)
            for service in to_start:
                command = service.command()
                record = procs.spawn(command, service.log_path, service.pidfile, service.env())
                started.append((service, record))
                outcome[service.name] = "started"
                self.echo(f"{service.name}: started (pid {record.pid}), waiting for health")
            deadline = time.monotonic() + timeout
            for service, record in started:
                self._wait_healthy(service, record, deadline)
                self.echo(f"{service.name}: healthy at {service.address()}")
            if create_topics and "kafka" in self.names():
                self._create_topics()
        except BaseException:
            for service, record in reversed(started):
                procs.stop(record, service.stop_signal, self.settings.stack.stop_timeout_s)
                service.pidfile.unlink(missing_ok=True)
            raise
        return outcome

    def _wait_healthy(self, service: Service, record: procs.PidRecord, deadline: float) -> None:
        while True:
            code = procs.exited(record)
            if code is not None or not record.alive():
                raise ServiceStartError(
                    f"{service.name} exited during start-up (exit code {code}). "
                    f"Last lines of {service.log_path}:\n{procs.tail(service.log_path)}"
                )
            if service.healthy():
                return
            if time.monotonic() > deadline:
                raise ServiceStartError(
                    f"{service.name} did not become healthy at {service.address()} within the "
                    f"start-up timeout (LEARNSTREAM_STACK__STARTUP_TIMEOUT_S). "
                    f"Last lines of {service.log_path}:\n{procs.tail(service.log_path)}"
                )
            time.sleep(0.2)

    def _create_topics(self) -> None:
        from streams.admin import ensure_topics
        from streams.topics import specs

        outcome = ensure_topics(self.settings.kafka.bootstrap_servers, specs(self.settings.topics))
        created = sorted(name for name, what in outcome.items() if what == "created")
        self.echo(f"kafka: topics ready ({len(outcome)} in the catalogue, {len(created)} created)")

    # -- down ------------------------------------------------------------------------------------

    def down(self, names: list[str] | None = None) -> dict[str, str]:
        """Stop the services this stack started (or only ``names``). Returns what happened."""
        outcome: dict[str, str] = {}
        for service in reversed(self.services):
            if names is not None and service.name not in names:
                continue
            record = procs.read_pidfile(service.pidfile)
            if record is None:
                outcome[service.name] = "not running"
                continue
            if not record.alive():
                outcome[service.name] = "not running (stale PID file removed)"
            else:
                killed = procs.stop(record, service.stop_signal, self.settings.stack.stop_timeout_s)
                outcome[service.name] = "killed after timeout" if killed else "stopped"
            service.pidfile.unlink(missing_ok=True)
            self.echo(f"{service.name}: {outcome[service.name]}")
        return outcome

    # -- status and logs -------------------------------------------------------------------------

    def status(self) -> list[ServiceStatus]:
        out = []
        for service in self.services:
            record = self.running(service)
            state = "stopped" if record is None else "running" if service.healthy() else "unhealthy"
            out.append(
                ServiceStatus(
                    service.name,
                    state,
                    record.pid if record else None,
                    service.address(),
                    str(service.log_path),
                )
            )
        return out

    def logs(self, name: str, lines: int = 50) -> str:
        return procs.tail(self.service(name).log_path, lines)
