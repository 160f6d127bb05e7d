"""What a run sent and how it was received: ``SimReport`` and its rendering, and the progress bar
shown while sending."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from streams.topics import COURSE_CATALOG

MAX_NOTES = 20


@dataclass
class SimReport:
    """What a run sent and how it was received."""

    run_id: str
    via: str
    catalog: list[str] = field(default_factory=list)
    sent_by_type: dict[str, int] = field(default_factory=dict)
    bad_by_kind: dict[str, int] = field(default_factory=dict)
    accepted: int = 0  # valid events the collector accepted (via kafka: delivered)
    rejected: int = 0  # valid events rejected: should stay 0
    duplicates: int = 0
    failed: int = 0  # given up after retries, or not confirmed by Kafka
    retries: int = 0
    http_status: dict[int, int] = field(default_factory=dict)  # requests per status code
    bad_status: dict[str, dict[int, int]] = field(default_factory=dict)  # kind -> status -> n
    event_ids: list[str] = field(default_factory=list)  # valid events sent, in order
    enrollments_by_model: dict[str, int] = field(default_factory=dict)
    journeys: dict[str, int] = field(default_factory=dict)  # completed/dropped_out/browsed_only
    learners: dict[str, int] = field(default_factory=dict)  # the same, per learner
    degraded_edges: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)  # the first problems, for a person to read

    @property
    def events_sent(self) -> int:
        return sum(self.sent_by_type.values())

    @property
    def effective_rate(self) -> float:
        return self.events_sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)

    def problems(self) -> list[str]:
        """Why this run is not clean: lost or rejected valid events, bad payloads let in."""
        out = []
        if self.rejected or self.failed:
            out.append(f"{self.rejected} valid event(s) rejected, {self.failed} not delivered")
        let_in = sum(n for by in self.bad_status.values() for s, n in by.items() if s < 300)
        if let_in:
            out.append(f"{let_in} bad payload(s) were accepted")
        return out

    def render(self) -> str:
        def counts(d: dict[Any, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "none"

        lines = [
            f"run {self.run_id} via {self.via}: {self.events_sent} events and "
            f"{sum(self.bad_by_kind.values())} bad payloads in {self.elapsed_s:.1f} s "
            f"({self.effective_rate:.1f} events/s)",
            f"catalogue: {len(self.catalog)} courses to {COURSE_CATALOG.name}",
            f"events by type: {counts(self.sent_by_type)}",
        ]
        if self.bad_by_kind:
            per_kind = [
                f"{kind} {n} (HTTP {counts(self.bad_status.get(kind, {}))})"
                for kind, n in sorted(self.bad_by_kind.items())
            ]
            lines.append("bad payloads: " + "; ".join(per_kind))
        received = "delivered" if self.via == "kafka" else "accepted"
        lines.append(
            f"{received} {self.accepted}, rejected {self.rejected}, duplicates {self.duplicates}, "
            f"failed {self.failed}, retries {self.retries}"
        )
        if self.http_status:
            lines.append(f"requests by HTTP status: {counts(self.http_status)}")
        lines += [
            f"enrollments: {counts(self.enrollments_by_model)}",
            f"journeys: {counts(self.journeys)}",
            f"learners: {counts(self.learners)}",
            f"degraded edge nodes: {', '.join(self.degraded_edges) or 'none'}",
        ]
        lines += [f"! {p}" for p in self.problems()]
        lines += [f"  {n}" for n in self.notes]
        return "\n".join(lines)


class progress_bar:
    """A rich progress bar, or nothing when disabled or stdout is not a terminal."""

    def __init__(self, enabled: bool, total: int, via: str) -> None:
        self.enabled = enabled and sys.stdout.isatty()
        self.total, self.via = total, via
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("simulate via {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self.bar.start()
        task = self.bar.add_task(self.via, total=self.total)
        return lambda n: self.bar.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
