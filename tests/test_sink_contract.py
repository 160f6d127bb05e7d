"""One conformance suite over every destination of the sink runner (sinks/runner.py).

Each destination is driven through the same runner against a real broker and must hold the
contract: every record written once; a re-run, a new consumer group or a crash between write and
commit writes nothing twice; a rejected record goes to the DLQ and the rest is written; a failing
write is retried until it works; the timer runs without records; the health record has the
shared shape. Today's destinations: ClickHouse, and a reference destination in memory that
checks the runner on its own (and the hooks ClickHouse does not use: ``read_whole``).
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import pytest

from learnstream.settings import ClickHouseSettings, SinkSettings
from learnstream.stack import Stack
from learnstream.stack.testing import throwaway_stack
from schemas.derived import PipelineMetrics
from sinks.clickhouse.client import connect
from sinks.clickhouse.destination import ClickHouseDestination
from sinks.clickhouse.migrate import migrate
from sinks.runner import Batch, Destination, Partition, Rejection, SinkRunner, Written
from streams.kafka import make_producer, produce_all, read_to_end
from tests.collector_fixtures import example

pytestmark = pytest.mark.slow


class Harness(Protocol):
    name: str

    def destination(self) -> Destination:
        """A destination over this harness's store (the same store every time)."""

    def produce(self, n: int) -> set[str]:
        """``n`` valid records on the destination's topics; their ids."""

    def produce_invalid(self) -> str:
        """One record the destination must reject; a token found in its raw payload."""

    def written(self) -> collections.Counter[str]:
        """The ids in the store, with how many times each is there."""


# --- ClickHouse ------------------------------------------------------------------------------


class ClickHouseHarness:
    name = "clickhouse"

    def __init__(self, stack: Stack) -> None:
        self.bootstrap = stack.settings.kafka.bootstrap_servers
        server = stack.settings.clickhouse.dsn
        database = f"contract_{uuid.uuid4().hex[:10]}"
        connect(server).command(f"CREATE DATABASE {database}")
        self.dsn = f"{server}/{database}"
        self.client = connect(self.dsn)
        migrate(self.client)
        self.course = f"course-contract-{uuid.uuid4().hex[:8]}"

    def destination(self) -> Destination:
        return ClickHouseDestination(
            ClickHouseSettings(dsn=self.dsn),
            lambda: connect(self.dsn),
            topics=["learner.views", "learner.quiz"],
        )

    def produce(self, n: int) -> set[str]:
        events = [
            example("course_viewed" if i % 2 else "quiz_result", course_id=self.course)
            for i in range(n)
        ]
        producer = make_producer(self.bootstrap)
        for topic, kind in (("learner.views", "course_viewed"), ("learner.quiz", "quiz_result")):
            records = [(e["learner_id"], json.dumps(e)) for e in events if e["type"] == kind]
            produce_all(producer, topic, records)
        return {e["event_id"] for e in events}

    def produce_invalid(self) -> str:
        token = uuid.uuid4().hex
        bad = example("course_viewed", course_id=self.course, session_id=token, dwell_ms=-1)
        produce_all(make_producer(self.bootstrap), "learner.views", [("x", json.dumps(bad))])
        return token

    def written(self) -> collections.Counter[str]:
        out: collections.Counter[str] = collections.Counter()
        for table in ("views", "quiz_results"):
            rows = self.client.query(
                f"SELECT event_id FROM {table} WHERE course_id = {{c:String}}",
                parameters={"c": self.course},
            ).result_rows
            out.update(str(r[0]) for r in rows)
        return out


# --- a reference destination in memory --------------------------------------------------------


class MemoryDestination(Destination):
    """Keeps each record's JSON value by (topic, partition, offset): resumes after the highest
    offset it holds, rejects what is not JSON, and takes the catalogue whole at start."""

    name = "sink-memory"
    read_whole = ("course.catalog",)
    tick_interval_s = 0.2

    def __init__(self, store: dict[tuple[str, int, int], dict[str, Any]], topic: str) -> None:
        self.store = store
        self.topics = (topic,)
        self.loaded: list[int] = []  # how many catalogue records, at each load
        self.writes = 0

    def load(self, records: Sequence[Any]) -> None:
        assert self.writes == 0, "read_whole topics come before any other record"
        self.loaded.append(len(records))

    def resume(self, partitions: Sequence[Partition]) -> Mapping[Partition, int | None]:
        held: dict[Partition, int] = {}
        for topic, partition, offset in self.store:
            key = (topic, partition)
            held[key] = max(held.get(key, -1), offset)
        return {p: held[p] + 1 if p in held else None for p in partitions}

    def write_batch(self, batch: Batch) -> Written:
        self.writes += 1
        rejected = []
        for record in batch.records:
            try:
                self.store[(record.topic, record.partition, record.offset)] = json.loads(
                    record.value or b""
                )
            except ValueError as exc:
                rejected.append(Rejection(record, "malformed_json", f"not JSON: {exc}"))
        return Written(rejected, {"memory": len(batch.records) - len(rejected)})

    def status(self) -> dict[str, Any]:
        return {"held": len(self.store)}


class MemoryHarness:
    name = "memory"

    def __init__(self, stack: Stack) -> None:
        self.bootstrap = stack.settings.kafka.bootstrap_servers
        self.topic = f"contract.memory.{uuid.uuid4().hex[:8]}"
        from streams.admin import ensure_topics
        from streams.topics import TopicSpec

        ensure_topics(self.bootstrap, [TopicSpec(self.topic, 3, 1, {})])
        self.store: dict[tuple[str, int, int], dict[str, Any]] = {}

    def destination(self) -> Destination:
        return MemoryDestination(self.store, self.topic)

    def produce(self, n: int) -> set[str]:
        ids = [str(uuid.uuid4()) for _ in range(n)]
        records = [(i[:4], json.dumps({"id": i})) for i in ids]
        produce_all(make_producer(self.bootstrap), self.topic, records)
        return set(ids)

    def produce_invalid(self) -> str:
        token = uuid.uuid4().hex
        produce_all(make_producer(self.bootstrap), self.topic, [("x", f"not json {token}")])
        return token

    def written(self) -> collections.Counter[str]:
        return collections.Counter(v["id"] for v in self.store.values())


# --- the suite ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def contract_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with throwaway_stack(tmp_path_factory.mktemp("contract"), ["kafka", "clickhouse"]) as stack:
        yield stack


@pytest.fixture(params=[ClickHouseHarness, MemoryHarness], ids=lambda h: h.name)
def harness(request: pytest.FixtureRequest, contract_stack: Stack) -> Harness:
    return request.param(contract_stack)  # type: ignore[no-any-return]


def runner(harness: Harness, group: str, **settings: Any) -> SinkRunner:
    options = {"group_id": group, "batch_max_rows": 50, "batch_max_s": 0.2, **settings}
    return SinkRunner(harness.destination(), harness.bootstrap, SinkSettings(**options))  # type: ignore[attr-defined]


def test_sink_contract_every_record_once_and_a_rerun_or_new_group_adds_nothing(
    harness: Harness,
) -> None:
    ids = harness.produce(300)
    group = f"contract-{uuid.uuid4().hex[:8]}"
    stats = runner(harness, group).run(idle_exit_s=1.5)
    assert harness.written() == collections.Counter(dict.fromkeys(ids, 1))
    assert stats.batches > 1 and sum(stats.rows.values()) >= len(ids)
    runner(harness, group).run(idle_exit_s=1.5)  # committed offsets
    runner(harness, f"{group}-new").run(idle_exit_s=1.5)  # resumes from the destination
    assert harness.written() == collections.Counter(dict.fromkeys(ids, 1))


def test_sink_contract_a_crash_between_write_and_commit_writes_nothing_twice(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = harness.produce(200)
    group = f"contract-{uuid.uuid4().hex[:8]}"
    crashing = runner(harness, group, batch_max_rows=100_000)  # one batch: all of it

    def crash(_offsets: object) -> None:
        raise SystemExit("killed between write and commit")

    monkeypatch.setattr(crashing, "_commit", crash)
    with pytest.raises(SystemExit):
        crashing.run(idle_exit_s=1.5)
    assert sum(harness.written().values()) > 0  # the first batch was written
    runner(harness, group).run(idle_exit_s=1.5)  # nothing of it was committed
    assert harness.written() == collections.Counter(dict.fromkeys(ids, 1))


def test_sink_contract_a_rejected_record_goes_to_the_dlq_and_the_rest_is_written(
    harness: Harness,
) -> None:
    ids = harness.produce(10)
    token = harness.produce_invalid()
    ids |= harness.produce(10)
    sink = runner(harness, f"contract-{uuid.uuid4().hex[:8]}")
    stats = sink.run(idle_exit_s=1.5)
    assert stats.dead >= 1
    assert harness.written() == collections.Counter(dict.fromkeys(ids, 1))
    letters = [json.loads(r.value) for r in read_to_end(harness.bootstrap, ["learner.dlq"])]  # type: ignore[attr-defined]
    mine = [x for x in letters if token in x.get("raw", "")]
    assert len(mine) == 1, mine
    assert mine[0]["client_id"] == sink.destination.name
    assert mine[0]["endpoint"] == "sink:" + sink.destination.name.removeprefix("sink-")
    assert mine[0]["reason"] in ("malformed_json", "unknown_type", "invalid") and mine[0]["detail"]


def test_sink_contract_a_failing_write_is_retried_until_it_works(harness: Harness) -> None:
    ids = harness.produce(100)
    sink = runner(harness, f"contract-{uuid.uuid4().hex[:8]}", retry_max_s=0.2)
    real = sink.destination.write_batch
    failures = {"left": 3, "seen": 0}

    def flaky(batch: Batch) -> Written:
        if failures["left"]:
            failures["left"] -= 1
            failures["seen"] += 1
            raise ConnectionError("the destination is away")
        return real(batch)

    sink.destination.write_batch = flaky  # type: ignore[method-assign]
    sink.run(idle_exit_s=1.5)
    assert failures["seen"] == 3
    assert harness.written() == collections.Counter(dict.fromkeys(ids, 1))


def test_sink_contract_the_timer_runs_without_records_and_health_has_the_shared_shape(
    harness: Harness,
) -> None:
    sink = runner(harness, f"contract-{uuid.uuid4().hex[:8]}", metrics_interval_s=0.5)
    sink.destination.tick_interval_s = 0.2
    ticks: list[object] = []
    sink.destination.on_tick = ticks.append  # type: ignore[method-assign]
    worker = threading.Thread(target=sink.run, daemon=True)
    worker.start()
    time.sleep(3)
    sink.stop()
    worker.join(30)
    assert len(ticks) >= 5  # every 0.2 s, records or not
    record = sink.metrics(elapsed=1.0)
    assert isinstance(record, PipelineMetrics) and record.service == sink.destination.name
    assert record.group == sink.settings.group_id and record.lag is not None
    json.dumps(sink.destination.status())  # JSON values only
    published = [
        PipelineMetrics.model_validate_json(r.value)
        for r in read_to_end(harness.bootstrap, ["pipeline.metrics"])  # type: ignore[attr-defined]
    ]
    assert any(r.instance == sink.instance and r.group == sink.settings.group_id for r in published)


def test_sink_contract_read_whole_topics_are_loaded_before_any_record(
    contract_stack: Stack,
) -> None:
    harness = MemoryHarness(contract_stack)
    catalog = [(f"c{i}", json.dumps({"course_id": f"c{i}"})) for i in range(3)]
    produce_all(make_producer(harness.bootstrap), "course.catalog", catalog)
    harness.produce(20)
    sink = runner(harness, f"contract-{uuid.uuid4().hex[:8]}")  # type: ignore[arg-type]
    sink.run(idle_exit_s=1.5)
    destination = sink.destination
    assert isinstance(destination, MemoryDestination)
    assert len(destination.loaded) == 1 and destination.loaded[0] >= 3
    assert destination.writes >= 1


def test_sink_contract_clickhouse_retry_after_a_partial_write_resumes_with_the_rest(
    contract_stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    harness = ClickHouseHarness(contract_stack)
    ids = harness.produce(40)  # views and quiz results: two tables per batch
    sink = runner(harness, f"contract-{uuid.uuid4().hex[:8]}", batch_max_rows=10_000)  # type: ignore[arg-type]
    destination = sink.destination
    assert isinstance(destination, ClickHouseDestination)
    real = destination.client.insert
    calls = {"n": 0}

    def second_insert_fails_once(table: str, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("ClickHouse went away after the first table")
        return real(table, *args, **kwargs)

    monkeypatch.setattr(destination.client, "insert", second_insert_fails_once)
    sink.run(idle_exit_s=1.5)
    assert calls["n"] >= 3
    assert harness.written() == collections.Counter(dict.fromkeys(ids, 1))
