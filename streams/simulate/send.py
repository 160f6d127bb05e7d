"""Sending a simulation: the catalogue to Kafka, then the events through the collector (HTTP)
or straight to Kafka, paced by wall-clock, with a progress bar and a report.

``run_simulation`` is what ``learnstream simulate`` calls::

    cfg = sim_config_from_args(learners=50, courses=5, rate=20, duration=120, seed=1,
                               bad_fraction=0.02)
    report = run_simulation(cfg, "http", settings.kafka.bootstrap_servers,
                            collector_url="http://127.0.0.1:8080", api_key=key)
    print(report.render())
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import httpx

from schemas import to_wire
from schemas.errors import LearnstreamError
from streams.catalog import publish_catalog
from streams.kafka import DeliveryReport, make_producer
from streams.simulate.config import SimConfig
from streams.simulate.report import SimReport, progress_bar
from streams.simulate.simulation import BAD_KINDS, BadPayload, SimEvent, Simulation
from streams.topics import COURSE_CATALOG, TOPIC_FOR_TYPE

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BATCH_EVENTS = 100


class SimulationError(LearnstreamError):
    """The simulation could not send what it generated (bad key, catalogue not delivered)."""


class ProducerLike(Protocol):
    def produce(self, topic: str, value: bytes, key: bytes, **kwargs: Any) -> None: ...
    def poll(self, timeout: float = ...) -> int: ...
    def flush(self, timeout: float = ...) -> int: ...


def timestamp_ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


class Pacer:
    """Never lets an item go before wall-clock reaches its ``occurred_at`` minus ``margin_s``.
    When it must wait, it waits ``linger_s`` longer, so that the next batch is not one event."""

    def __init__(
        self, margin_s: float = 1.0, linger_s: float = 0.25, clock: Callable[[], float] = time.time
    ) -> None:
        self.margin_s, self.linger_s, self.clock = margin_s, linger_s, clock

    def due(self, at: datetime) -> bool:
        return self.clock() >= at.timestamp() - self.margin_s

    def wait(self, at: datetime, sleep: Callable[[float], Any] = time.sleep) -> None:
        target = at.timestamp() - self.margin_s + self.linger_s
        while (remaining := target - self.clock()) > 0:
            sleep(min(remaining, 1.0))


def _count_sent(report: SimReport, event: SimEvent) -> None:
    report.sent_by_type[event.type] = report.sent_by_type.get(event.type, 0) + 1
    report.event_ids.append(str(event.event_id))


def send_kafka(
    sim: Simulation,
    producer: ProducerLike,
    report: SimReport,
    pacer: Pacer,
    advance: Callable[[int], None] = lambda n: None,
    timeout_s: float = 120.0,
) -> None:
    """Each event to its topic, keyed by learner_id, record timestamp = occurred_at."""
    delivery = DeliveryReport()
    for item in sim:
        if isinstance(item, BadPayload):
            raise ValueError("bad payloads go through the collector: use via='http'")
        if not pacer.due(item.occurred_at):
            pacer.wait(item.occurred_at, sleep=producer.poll)
        while True:
            try:
                producer.produce(
                    TOPIC_FOR_TYPE[item.type],
                    value=to_wire(item),
                    key=item.learner_id.encode(),
                    timestamp=timestamp_ms(item.occurred_at),
                    on_delivery=delivery,
                )
                break
            except BufferError:  # local queue full: serve delivery callbacks, then retry
                producer.poll(0.05)
        producer.poll(0)
        _count_sent(report, item)
        advance(1)
    remaining = producer.flush(timeout_s)
    report.accepted = delivery.delivered
    report.failed = len(delivery.failed) + remaining
    if remaining:
        report.note(f"{remaining} record(s) unconfirmed by Kafka after {timeout_s:.0f} s")
    for failure in delivery.failed[:5]:
        report.note(f"delivery failed: {failure}")


class HttpSender:
    """POSTs batches to ``/v1/events``; each bad payload alone, as the raw body. Retries 5xx
    and transport errors with exponential backoff; never retries a 4xx."""

    def __init__(
        self,
        client: httpx.Client,
        report: SimReport,
        max_attempts: int = 6,
        backoff_s: float = 0.2,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.client, self.report = client, report
        self.max_attempts, self.backoff_s, self.sleep = max_attempts, backoff_s, sleep

    def post(self, body: bytes) -> tuple[httpx.Response | None, str]:
        delay = self.backoff_s
        error = ""
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self.client.post(
                    "/v1/events", content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.TransportError as exc:
                error = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in (401, 403):
                    raise SimulationError(
                        f"the collector refused the API key (HTTP {response.status_code}: "
                        f"{response.text[:200]}); make one with `learnstream collector keygen "
                        "<client>` and pass it to `learnstream simulate`"
                    )
                if response.status_code < 500:
                    return response, ""
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                delay = max(delay, _retry_after(response))
            if attempt < self.max_attempts:
                self.report.retries += 1
                self.sleep(min(delay, 10.0))
                delay *= 2
        return None, error

    def send_batch(self, batch: list[SimEvent]) -> None:
        report = self.report
        for event in batch:
            _count_sent(report, event)
        response, error = self.post(b"[" + b",".join(to_wire(e) for e in batch) + b"]")
        if response is None:
            report.failed += len(batch)
            report.note(
                f"gave up on a batch of {len(batch)} after {self.max_attempts} tries: {error}"
            )
            return
        status = response.status_code
        report.http_status[status] = report.http_status.get(status, 0) + 1
        body = _json_body(response)
        if status in (200, 207, 422) and body is not None:
            report.accepted += int(body.get("accepted", 0))
            report.rejected += int(body.get("rejected", 0))
            report.duplicates += int(body.get("duplicates", 0))
            for result in body.get("results", []):
                if result.get("status") not in ("accepted", "duplicate"):
                    report.note(
                        f"event {result.get('event_id')} {result.get('status')}: "
                        f"{result.get('reason')}: {result.get('detail')}"
                    )
            return
        report.rejected += len(batch)
        report.note(f"HTTP {status} for a batch of {len(batch)}: {response.text[:300]}")

    def send_bad(self, item: BadPayload) -> None:
        report = self.report
        report.bad_by_kind[item.kind] = report.bad_by_kind.get(item.kind, 0) + 1
        response, error = self.post(item.raw)
        if response is None:
            report.note(f"gave up on a {item.kind} payload: {error}")
            return
        status = response.status_code
        report.http_status[status] = report.http_status.get(status, 0) + 1
        by_status = report.bad_status.setdefault(item.kind, {})
        by_status[status] = by_status.get(status, 0) + 1
        if status < 300:
            report.note(f"the collector accepted a {item.kind} payload: {item.raw[:120]!r}")


def _retry_after(response: httpx.Response) -> float:
    try:
        return float(response.headers.get("retry-after", 0))
    except ValueError:
        return 0.0


def _json_body(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def send_http(
    sim: Simulation,
    sender: HttpSender,
    pacer: Pacer,
    advance: Callable[[int], None] = lambda n: None,
    batch_size: int = BATCH_EVENTS,
) -> None:
    """Batches of up to ``batch_size`` events, flushed whenever the pacer must wait."""
    batch: list[SimEvent] = []

    def flush() -> None:
        if batch:
            sender.send_batch(batch)
            advance(len(batch))
            batch.clear()

    for item in sim:
        if not pacer.due(item.occurred_at):
            flush()
            pacer.wait(item.occurred_at)
        if isinstance(item, BadPayload):
            flush()
            sender.send_bad(item)
            advance(1)
            continue
        batch.append(item)
        if len(batch) >= batch_size:
            flush()
    flush()


def run_simulation(
    cfg: SimConfig,
    via: str,
    bootstrap_servers: str,
    *,
    collector_url: str | None = None,
    api_key: str | None = None,
    progress: bool = True,
    producer: ProducerLike | None = None,
    transport: httpx.BaseTransport | None = None,
    pacer: Pacer | None = None,
) -> SimReport:
    """Publish the catalogue, then send every item; ``producer``/``transport`` are for tests."""
    if via not in ("http", "kafka"):
        raise ValueError(f"via must be 'http' or 'kafka', not {via!r}")
    if via == "kafka" and cfg.bad_fraction > 0:
        raise ValueError(
            "bad payloads exist to test the collector, which rejects them into learner.dlq; "
            "written straight to Kafka they would bypass it. Use --via http with --bad-fraction, "
            "or --bad-fraction 0 with --via kafka"
        )
    if via == "http" and not collector_url:
        raise ValueError("--via http needs the collector's address")
    if via == "http" and not api_key:
        raise ValueError(
            "--via http needs the collector's API key: make one with "
            "`learnstream collector keygen <client>`"
        )
    sim = Simulation(cfg)
    report = SimReport(
        run_id=cfg.run_id,
        via=via,
        degraded_edges=sim.degraded_edges,
        enrollments_by_model=sim.enrollments_by_model(),
        journeys=sim.journey_outcomes(),
        learners=sim.learner_outcomes(),
        bad_by_kind=dict.fromkeys(BAD_KINDS, 0) if cfg.bad_fraction else {},
    )
    producer = producer or make_producer(bootstrap_servers)
    try:
        report.catalog = publish_catalog(producer, sim.catalog)  # type: ignore[arg-type]
    except Exception as exc:  # DeliveryError, KafkaException: name the fix
        raise SimulationError(
            f"could not publish the catalogue to {COURSE_CATALOG.name} at "
            f"{bootstrap_servers}: {exc}; is Kafka up (`learnstream stack up`)?"
        ) from exc
    pacer = pacer or Pacer()
    started = time.monotonic()
    with progress_bar(progress, len(sim), via) as advance:
        if via == "kafka":
            send_kafka(sim, producer, report, pacer, advance)
        else:
            headers = {"X-API-Key": api_key or ""}
            with httpx.Client(
                base_url=collector_url or "", headers=headers, timeout=30.0, transport=transport
            ) as client:
                send_http(sim, HttpSender(client, report), pacer, advance)
    report.elapsed_s = time.monotonic() - started
    return report
