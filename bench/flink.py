"""The Flink QoS job on this machine, on its own Kafka: sustained events/s and end-to-end lag.

- **Throughput.** Each round runs the job ``--bounded`` over ``events`` records, and once over
  an empty input: the difference is the time spent on the records, which removes the
  mini-cluster's start and the final checkpoint from the figure. The baseline, side by side, is
  one confluent-kafka consumer reading the same records, so the figure is also a ratio.
- **Lag.** The job runs unbounded while load arrives at ``lag_rate`` events/s; once a second a
  probe event of a course of its own is produced, and its lag is the time from producing it to
  its window row being readable (read committed) on ``qos.agg.1m``. That includes the
  checkpoint that commits the transaction (every 5 s), which is the floor.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobs.flink.runtime import RunOptions
from jobs.launch import Launcher
from learnstream.settings import FlinkSettings
from learnstream.stack.testing import throwaway_stack
from learnstream.wiring import launcher
from streams.kafka import make_producer, produce_all, read_to_end

NETWORKS = ["5g_sa", "5g_nsa", "4g", "wifi", "ethernet"]


def qos_records(
    n: int, seed: int = 3, start: datetime | None = None, span_ms: int = 600_000
) -> list[tuple[bytes, bytes]]:
    """``n`` session reports over ``span_ms`` from ``start`` (default: an hour ago), over 20
    courses, 5 networks, 4 regions and 8 edge nodes."""
    rng = random.Random(seed)  # noqa: S311
    start = start or datetime.now(UTC) - timedelta(hours=1)
    out = []
    for i in range(n):
        learner = f"learner-{rng.randrange(5000)}"
        at = start + timedelta(milliseconds=i * span_ms // n)
        started = rng.random() > 0.03
        event = {
            "type": "playback_qos", "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "schema_version": 1, "occurred_at": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "learner_id": learner, "session_id": "s", "course_id": f"course-{rng.randrange(20)}",
            "video_id": "v1", "playback_id": f"pb-{i}", "report": "session",
            "client": {"platform": "web", "app_version": "1", "device": "d",
                       "network_type": rng.choice(NETWORKS), "region": f"r{rng.randrange(4)}",
                       "edge_node": f"e{rng.randrange(8)}"},
            "startup_time_ms": rng.randint(200, 4000) if started else None,
            "video_start_failure": not started, "exit_before_video_start": False,
            "rebuffer_count": 1, "rebuffer_ms": rng.randint(0, 3000),
            "played_ms": rng.randint(10_000, 600_000) if started else 0,
            "avg_bitrate_kbps": rng.randint(500, 8000) if started else None,
            "bitrate_switches": rng.randint(0, 5),
        }  # fmt: skip
        out.append((learner.encode(), json.dumps(event, separators=(",", ":")).encode()))
    return out


@dataclass
class FlinkBench:
    events: int
    completion_events: int = 0
    completion_s: float = 0.0
    completion_empty_s: float = 0.0
    lag_rate: int = 0
    lags_s: list[float] = field(default_factory=list)
    job_s: list[float] = field(default_factory=list)
    empty_s: list[float] = field(default_factory=list)
    read_s: list[float] = field(default_factory=list)
    outputs: int = 0

    def render(self) -> str:
        job = min(self.job_s) - min(self.empty_s)
        read = min(self.read_s)
        lines = [
            f"flink qos job: {self.events:,} session reports, best of {len(self.job_s)} rounds",
            f"  job run {min(self.job_s):.1f} s, empty-input run {min(self.empty_s):.1f} s "
            f"(start + final checkpoint)",
            f"  qos job:   {self.events / job:,.0f} events/s ({self.outputs:,} window rows a run)",
            f"  baseline:  {self.events / read:,.0f} events/s (one consumer reading the records)",
            f"  ratio:     {read / job:.3f}",
        ]
        if self.completion_events:
            spent = self.completion_s - self.completion_empty_s
            lines += [
                f"flink completion job: {self.completion_events:,} playback, quiz and enrollment "
                f"events of a simulated run",
                f"  job run {self.completion_s:.1f} s, empty-input run "
                f"{self.completion_empty_s:.1f} s",
                f"  completion job: {self.completion_events / spent:,.0f} events/s "
                f"(baseline above: {self.completion_events / spent / (self.events / read):.3f})",
            ]
        if self.lags_s:
            lags = sorted(self.lags_s)
            pick = lambda q: lags[min(len(lags) - 1, int(q * len(lags)))]  # noqa: E731
            lines.append(
                f"  lag at {self.lag_rate:,} events/s, {len(lags)} probes: p50 {pick(0.5):.2f} s, "
                f"p99 {pick(0.99):.2f} s, max {lags[-1]:.2f} s (checkpoint interval 5 s)"
            )
        return "\n".join(lines)


def _timed_job(launch: Launcher, job: str, tag: str) -> float:
    started = time.monotonic()
    options = RunOptions(start="earliest", bounded=True, group_id=tag, transactional_id_prefix=tag)
    launch.run_to_end(job, options, timeout=900)
    return time.monotonic() - started


def _lag(launch: Launcher, rate: int, seconds: int) -> list[float]:
    """Probe lags (s) while the job runs unbounded under ``rate`` events/s of load."""
    from confluent_kafka import Consumer

    bootstrap = launch.kafka.bootstrap_servers
    tag = f"bench-lag-{uuid.uuid4().hex[:8]}"
    job = launch.start("qos", RunOptions(start="latest", group_id=tag, transactional_id_prefix=tag))
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": tag, "auto.offset.reset": "latest",
        "isolation.level": "read_committed", "enable.auto.commit": False,
    })  # fmt: skip
    consumer.subscribe(["qos.agg.1m"])
    producer = make_producer(bootstrap)
    sent: dict[str, float] = {}
    lags: list[float] = []
    try:
        load = qos_records(rate * seconds, seed=9, start=datetime.now(UTC) + timedelta(seconds=20),
                           span_ms=seconds * 1000)  # fmt: skip
        # Warm-up: wait until the job answers a first probe (its start is not lag).
        probe_n = 0

        def probe() -> None:
            nonlocal probe_n
            probe_n += 1
            course = f"probe-{probe_n}"
            key, value = qos_records(1, seed=probe_n)[0]
            event = json.loads(value)
            event["course_id"] = course
            event["occurred_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
            produce_all(producer, "learner.qos", [(key, json.dumps(event).encode())])
            producer.flush(10)
            sent[course] = time.monotonic()

        probe()
        deadline = time.monotonic() + 120
        while not lags and time.monotonic() < deadline:
            _drain(consumer, sent, lags)
            if not job.running():
                raise RuntimeError(f"qos job stopped:\n{job.log_tail(40)}")
        lags.clear()
        started = time.monotonic()
        for second in range(seconds):
            produce_all(producer, "learner.qos", load[second * rate : (second + 1) * rate])
            probe()
            while time.monotonic() < started + second + 1:
                _drain(consumer, sent, lags, 0.05)
        end = time.monotonic() + 30
        while len(lags) < seconds and time.monotonic() < end:
            _drain(consumer, sent, lags)
    finally:
        consumer.close()
        producer.flush(10)
        job.stop()
    return lags


def _drain(consumer, sent: dict[str, float], lags: list[float], timeout: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    message = consumer.poll(timeout)
    while message is not None:
        if not message.error():
            course = json.loads(message.value()).get("course_id", "")
            if course in sent:
                lags.append(time.monotonic() - sent.pop(course))
        message = consumer.poll(0)


def _simulate(bootstrap: str, learners: int) -> int:
    """A simulated run straight into Kafka; returns the events the completion job reads."""
    from streams.simulate import SimConfig, run_simulation

    cfg = SimConfig(
        learners=learners, courses=20, rate=0, duration_s=3600, seed=5,
        run_id=uuid.uuid4().hex[:8], start=datetime.now(UTC) - timedelta(hours=2),
    )  # fmt: skip
    report = run_simulation(cfg, "kafka", bootstrap, progress=False)
    return sum(
        report.sent_by_type.get(kind, 0) for kind in ("video_playback", "quiz_result", "enrollment")
    )


def run(
    events: int = 200_000,
    rounds: int = 2,
    lag_rate: int = 5_000,
    lag_seconds: int = 30,
    completion_learners: int = 2_000,
) -> FlinkBench:
    result = FlinkBench(events, lag_rate=lag_rate)
    with tempfile.TemporaryDirectory(prefix="learnstream-bench-flink-") as tmp_name:
        tmp = Path(tmp_name)
        flink = FlinkSettings(checkpoint_dir=tmp / "checkpoints")
        with throwaway_stack(tmp / "stack", ["kafka"], flink=flink) as stack:
            launch = launcher(stack.settings)
            bootstrap = stack.settings.kafka.bootstrap_servers
            for _ in range(rounds):  # the empty input first: nothing on learner.qos yet
                result.empty_s.append(_timed_job(launch, "qos", f"bench-{uuid.uuid4().hex[:8]}"))
            producer = make_producer(bootstrap)
            produce_all(producer, "learner.qos", qos_records(events))
            producer.flush(120)
            for _ in range(rounds):
                started = time.monotonic()
                n = len(read_to_end(bootstrap, ["learner.qos"]))
                result.read_s.append(time.monotonic() - started)
                assert n == events, (n, events)
                result.job_s.append(_timed_job(launch, "qos", f"bench-{uuid.uuid4().hex[:8]}"))
            result.outputs = len(read_to_end(bootstrap, ["qos.agg.1m"])) // rounds
            result.completion_empty_s = _timed_job(
                launch, "completion", f"bench-{uuid.uuid4().hex[:8]}"
            )
            result.completion_events = _simulate(bootstrap, completion_learners)
            result.completion_s = _timed_job(launch, "completion", f"bench-{uuid.uuid4().hex[:8]}")
            if lag_seconds:  # last: the job starts at the end of the topic
                result.lags_s = _lag(launch, lag_rate, lag_seconds)
    return result
