"""The Faust recommendation app as a real worker against the session's broker: it learns from
learner events, serves top-k over HTTP with clear 4xx errors, publishes reco.metrics and
checkpoints its models with offsets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from jobs.reco.core import Recommender
from learnstream.stack import Stack
from learnstream.stack.procs import free_port
from schemas import to_wire
from schemas.base import Money
from schemas.derived import PipelineMetrics, RecoReport
from schemas.events import CourseViewed, Enrollment
from streams.catalog import publish_catalog
from streams.kafka import make_producer, produce_all, read_to_end
from tests.completion_scenarios import CLIENT, T0, course
from tests.conftest import ROOT, stack_settings

pytestmark = pytest.mark.slow


class Worker:
    def __init__(self, bootstrap: str, tmp: Path) -> None:
        self.port = free_port()
        self.checkpoint = tmp / "reco.pkl"
        self.log_path = tmp / "worker.log"
        self.env = {
            **os.environ,
            "LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            "LEARNSTREAM_RECO__PORT": str(self.port),
            "LEARNSTREAM_RECO__GROUP_ID": f"reco-test-{uuid.uuid4().hex[:8]}",
            "LEARNSTREAM_RECO__CHECKPOINT_PATH": str(self.checkpoint),
            "LEARNSTREAM_RECO__CHECKPOINT_INTERVAL_S": "1",
            "LEARNSTREAM_RECO__METRICS_INTERVAL_S": "1",
            "LEARNSTREAM_STACK__STATE_DIR": str(tmp / "state"),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "learnstream"), "jobs", "run", "reco"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def wait_for(self, check, timeout: float = 90.0):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None and self.process.poll() is None, self.tail()
            try:
                found = check()
            except (httpx.HTTPError, ValueError, KeyError):
                found = None
            if found:
                return found
            assert time.monotonic() < deadline, f"gave up waiting:\n{self.tail()}"
            time.sleep(0.5)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


@pytest.fixture
def worker(stack: Stack, tmp_path: Path) -> Iterator[Worker]:
    w = Worker(stack.settings.kafka.bootstrap_servers, tmp_path)
    try:
        yield w
    finally:
        w.stop()


def test_reco_app_learns_serves_and_checkpoints(stack: Stack, worker: Worker) -> None:
    bootstrap = stack.settings.kafka.bootstrap_servers
    tag = uuid.uuid4().hex[:6]
    courses = [f"course-reco-{tag}-{i}" for i in range(4)]
    producer = make_producer(bootstrap)
    publish_catalog(producer, [course(c) for c in courses])
    learner = f"learner-reco-{tag}"
    views, enrollments = [], []
    for n, c in enumerate(courses * 3):
        views.append((learner.encode(), to_wire(CourseViewed(
            event_id=uuid.uuid4(), occurred_at=T0, learner_id=f"{learner}-{n % 5}",
            session_id="s", client=CLIENT, course_id=c, page="syllabus", dwell_ms=1000,
        ))))  # fmt: skip
    enrollments.append((learner.encode(), to_wire(Enrollment(
        event_id=uuid.uuid4(), occurred_at=T0, learner_id=learner, session_id="s",
        client=CLIENT, course_id=courses[0], price=Money(amount_minor=100, currency="EUR"),
        payment_model="one_time",
    ))))  # fmt: skip
    produce_all(producer, "learner.views", views)
    produce_all(producer, "learner.enrollments", enrollments + enrollments)  # and a repeat
    producer.flush(10)

    worker.start()
    body = worker.wait_for(
        lambda: (
            (r := worker.get(f"/recommendations/{learner}?k=3").json())["model"] == "biased_mf"
            and r
        )
    )
    assert body["k"] == 3 and len(body["items"]) == 3
    assert courses[0] not in [i["course_id"] for i in body["items"]]  # bought: never offered
    new = worker.get("/recommendations/nobody-yet?k=2").json()
    assert new["model"] == "popularity" and len(new["items"]) == 2

    assert worker.get(f"/recommendations/{learner}?k=0").status_code == 422
    assert worker.get(f"/recommendations/{learner}?k=101").status_code == 422
    bad_k = worker.get(f"/recommendations/{learner}?k=ten")
    assert bad_k.status_code == 422 and "integer" in bad_k.json()["error"]
    assert worker.get("/recommendations/%01bad").status_code == 400

    def own_report() -> dict | None:
        assert worker.process is not None
        mine = [
            report
            for report in (json.loads(r.value) for r in read_to_end(bootstrap, ["reco.metrics"]))
            if report["instance"].endswith(f"-{worker.process.pid}") and report["updates"]
        ]
        return mine[-1] if mine else None

    report = worker.wait_for(own_report)
    assert report["service"] == "reco" and set(report["models"]) == {
        "biased_mf", "feature_fm", "popularity"
    }  # fmt: skip
    assert report["models"]["biased_mf"]["n"] > 0
    RecoReport.model_validate_json(json.dumps(report))

    def own_health() -> PipelineMetrics | None:  # the app's health, in the shared shape
        assert worker.process is not None
        mine = [
            health
            for health in (
                PipelineMetrics.model_validate_json(r.value)
                for r in read_to_end(bootstrap, ["pipeline.metrics"])
                if json.loads(r.value).get("service") == "reco"
            )
            if health.instance.endswith(f"-{worker.process.pid}") and health.lag_by_partition
        ]
        return mine[-1] if mine else None

    health = worker.wait_for(own_health)
    assert health.group == worker.env["LEARNSTREAM_RECO__GROUP_ID"]
    assert health.lag == sum(health.lag_by_partition.values()) >= 0
    assert all(k.split("/")[0].startswith("learner.") for k in health.lag_by_partition)

    worker.stop()
    model, offsets = Recommender.load(worker.checkpoint)
    assert offsets and all(o >= 0 for o in offsets.values())
    assert any(k.startswith("learner.enrollments/") for k in offsets)
    assert courses[0] in model.consumed[learner]
    assert len(model.seen_events) == model.updates  # the repeated enrollment learned once


@pytest.mark.chaos
def test_reco_app_sigkill_restart_resumes_from_the_checkpoint(
    make_stack: Callable[..., Stack], tmp_path: Path
) -> None:
    """SIGKILL mid-stream; after the restart the probe learners' recommendations equal the
    checkpoint's, and at the end the app has learned exactly the events an uninterrupted app
    learns, with the same progressive metrics (within 1 %).

    A stack of its own with one partition per topic: the models are shared by all learners,
    so the uninterrupted run must see the events in the same order for its metrics to be
    comparable, and with one partition the order is the log's."""
    base = stack_settings(tmp_path / "stack", ["kafka"])
    own = make_stack(settings=base.model_copy(
        update={"topics": base.topics.model_copy(update={"partitions": 1})}
    ))  # fmt: skip
    own.up()
    bootstrap = own.settings.kafka.bootstrap_servers
    tag = uuid.uuid4().hex[:6]
    producer = make_producer(bootstrap)
    courses = [f"course-crash-{tag}-{i}" for i in range(12)]
    publish_catalog(producer, [course(c) for c in courses])

    def views(first: int, last: int) -> list[tuple[bytes, bytes]]:
        out = []
        for n in range(first, last):
            learner = f"learner-crash-{tag}-{n % 30}"
            c = courses[(n * 7 + (n % 30) % 3) % len(courses)]
            out.append((learner.encode(), to_wire(CourseViewed(
                event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}/{n}"), occurred_at=T0,
                learner_id=learner, session_id="s", client=CLIENT, course_id=c,
                page="syllabus" if n % 4 else "overview", dwell_ms=1000,
            ))))  # fmt: skip
        return out

    produce_all(producer, "learner.views", views(0, 1500))
    crashing = Worker(bootstrap, tmp_path / "crash")
    (tmp_path / "crash").mkdir()
    probes = [f"learner-crash-{tag}-{i}" for i in (1, 2, 3)]
    try:
        crashing.start()
        # wait until all of part 1 is learned and a checkpoint holds it
        crashing.wait_for(
            lambda: crashing.get(f"/recommendations/{probes[0]}").json()["model"] == "biased_mf"
        )
        time.sleep(3)
        crashing.stop(signal.SIGKILL)
        saved, _ = Recommender.load(crashing.checkpoint)
        expected = {p: saved.recommend(p, 5) for p in probes}
        crashing.start()
        for p in probes:
            got = crashing.wait_for(lambda p=p: crashing.get(f"/recommendations/{p}?k=5").json())
            assert (got["model"], [(i["course_id"], i["score"]) for i in got["items"]]) == (
                expected[p][0],
                [(c, round(s, 6)) for c, s in expected[p][1]],
            )
        produce_all(producer, "learner.views", views(1500, 3000))
        total = len(read_to_end(bootstrap, ["learner.views", "learner.playback", "learner.quiz",
                                            "learner.enrollments"]))  # fmt: skip
        crashing.wait_for(lambda: crashing.get("/health").json()["offsets_seen"] >= total, 120)
        crashing.stop()
    finally:
        crashing.stop()
    interrupted, _ = Recommender.load(crashing.checkpoint)

    (tmp_path / "whole").mkdir()
    whole = Worker(bootstrap, tmp_path / "whole")
    try:
        whole.start()
        whole.wait_for(lambda: whole.get("/health").json()["offsets_seen"] >= total, 120)
        whole.stop()
    finally:
        whole.stop()
    uninterrupted, _ = Recommender.load(whole.checkpoint)
    assert interrupted.updates == uninterrupted.updates  # nothing lost, nothing learned twice
    for name in ("biased_mf", "feature_fm", "popularity"):
        a, b = interrupted.metrics[name].summary(), uninterrupted.metrics[name].summary()
        assert a["n"] == b["n"]
        assert a["mae"] == pytest.approx(b["mae"], rel=0.01), name
        assert a["rmse"] == pytest.approx(b["rmse"], rel=0.01), name
