"""The recommendation app on this machine: model updates/s inside the running Faust worker
against bare River ``BiasedMF.learn_one`` on the same events, and recommendation latency with
a catalogue of 5,000 courses. On a Kafka of its own."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from jobs.reco.core import ModelConfig, SignalWeights, biased_mf, interaction_from_event
from learnstream.stack.procs import free_port
from learnstream.stack.testing import throwaway_stack
from streams.kafka import make_producer, produce_all


@dataclass
class RecoBench:
    events: int
    courses: int
    app_s: float = 0.0
    bare_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    def render(self) -> str:
        app, bare = self.events / self.app_s, self.events / self.bare_s
        lat = sorted(self.latencies_ms)
        pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
        return "\n".join([
            f"reco app: {self.events:,} course views, {self.courses:,} courses",
            f"  app updates:    {app:,.0f} events/s (3 models, 2 negatives each, validation first)",
            f"  bare River:     {bare:,.0f} events/s (BiasedMF.learn_one only)",
            f"  ratio:          {app / bare:.3f}",
            f"  GET /recommendations?k=10 over {len(lat)} requests: p50 {pick(0.5):.1f} ms, "
            f"p99 {pick(0.99):.1f} ms",
        ])  # fmt: skip


def _events(n: int, courses: int, learners: int = 2_000) -> list[tuple[bytes, bytes]]:
    rng = random.Random(5)  # noqa: S311
    out = []
    for k in range(n):
        learner = f"learner-{rng.randrange(learners)}"
        event = {
            "type": "course_viewed", "event_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "schema_version": 1, "occurred_at": "2026-11-28T10:00:00.000Z", "learner_id": learner,
            "session_id": "s", "course_id": f"course-{int(rng.paretovariate(1.2)) % courses}",
            "page": rng.choice(["overview", "syllabus", "pricing"]), "dwell_ms": 1000,
            "client": {"platform": "web", "app_version": "1", "device": "d",
                       "network_type": "wifi", "region": "r", "edge_node": "e"},
        }  # fmt: skip
        out.append((learner.encode(), json.dumps(event).encode()))
        del k
    return out


def _catalogue(courses: int) -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(courses):
        record = {
            "type": "course",
            "course_id": f"course-{i}",
            "category": f"cat{i % 12}",
            "level": "beginner",
            "videos": [{"video_id": "v", "length_s": 600.0}],
        }
        out.append((record["course_id"].encode(), json.dumps(record).encode()))
    return out


def run(events: int = 30_000, courses: int = 5_000, requests: int = 500) -> RecoBench:
    result = RecoBench(events, courses)
    records = _events(events, courses)
    weights = SignalWeights()
    model = biased_mf(ModelConfig())
    interactions = [interaction_from_event(json.loads(v), weights) for _, v in records]
    started = time.perf_counter()
    for it in interactions:
        assert it is not None
        model.learn_one(it.user, it.item, it.rating)
    result.bare_s = time.perf_counter() - started

    with (
        tempfile.TemporaryDirectory(prefix="learnstream-bench-reco-") as tmp_name,
        throwaway_stack(Path(tmp_name) / "stack", ["kafka"]) as stack,
    ):
        tmp = Path(tmp_name)
        bootstrap = stack.settings.kafka.bootstrap_servers
        worker = None
        try:
            producer = make_producer(bootstrap)
            produce_all(producer, "course.catalog", _catalogue(courses))
            produce_all(producer, "learner.views", records)
            port = free_port()
            env = {
                **os.environ,
                "LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
                "LEARNSTREAM_RECO__PORT": str(port),
                "LEARNSTREAM_RECO__CHECKPOINT_PATH": str(tmp / "reco.pkl"),
                "LEARNSTREAM_STACK__STATE_DIR": str(tmp / "state"),
            }
            log = (tmp / "worker.log").open("wb")
            worker = subprocess.Popen(
                [str(Path(sys.executable).parent / "learnstream"), "jobs", "run", "reco"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            log.close()
            url = f"http://127.0.0.1:{port}"
            first = last = None
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                try:
                    updates = httpx.get(f"{url}/health", timeout=5).json()["updates"]
                except (httpx.HTTPError, ValueError, KeyError):
                    updates = 0
                if updates and first is None:
                    first = (time.monotonic(), updates)
                if updates >= events:
                    last = (time.monotonic(), updates)
                    break
                time.sleep(0.2)
            if first is None or last is None:
                raise RuntimeError((tmp / "worker.log").read_text()[-2000:])
            result.app_s = (last[0] - first[0]) * events / max(1, last[1] - first[1])
            with httpx.Client(base_url=url, timeout=5) as client:
                rng = random.Random(3)  # noqa: S311
                for _ in range(requests):
                    learner = f"learner-{rng.randrange(2_000)}"
                    t0 = time.perf_counter()
                    client.get(f"/recommendations/{learner}", params={"k": 10}).raise_for_status()
                    result.latencies_ms.append((time.perf_counter() - t0) * 1000)
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(60)
    return result
