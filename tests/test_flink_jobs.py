"""The Flink jobs on the PyFlink mini-cluster, against a real broker (and ClickHouse for QoS).

Each test runs a job to the end of its input (``--bounded``) on this module's own stack, so the
topics hold only this module's records, then reads the derived topics read-committed, as every
downstream consumer does.
"""

from __future__ import annotations

import json
import math
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from jobs.completion import iso_to_ms, ms_to_iso, to_bps
from jobs.flink.runtime import RunOptions, latest_checkpoint
from learnstream.settings import Settings
from learnstream.wiring import launcher
from schemas import to_wire
from schemas.derived import CompletionScore, CourseCompleted
from schemas.events import PlaybackQos
from streams.kafka import ReadRecord, make_producer, produce_all, read_to_end
from streams.simulate import SimConfig, Simulation, run_simulation
from streams.topics import TOPIC_FOR_TYPE
from tests.completion_scenarios import CLIENT, catalog_records, scenarios
from tests.flink_fixtures import job_settings, read_json, run_to_end
from tests.sink_fixtures import SinkEnv, sink_env  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def produce_events(bootstrap: str, records: list[bytes]) -> None:
    """Each record to its type's topic, keyed by learner_id, in the given order."""
    by_topic: dict[str, list[tuple[bytes, bytes]]] = defaultdict(list)
    producer = make_producer(bootstrap)
    for record in records:
        event = json.loads(record)
        by_topic[TOPIC_FOR_TYPE[event["type"]]].append((event["learner_id"].encode(), record))
    for topic, batch in by_topic.items():
        produce_all(producer, topic, batch)  # type: ignore[arg-type]
    producer.flush(10)


def simulate(settings: Settings, learners: int, seed: int, hours_ago: float) -> Simulation:
    """A simulated run of 15 minutes of event time, starting ``hours_ago``. Runs of one module
    start hours apart, so that no run's events are late behind another's."""
    cfg = SimConfig(
        learners=learners, courses=3, rate=0, duration_s=900, seed=seed,
        run_id=uuid.uuid4().hex[:8], start=datetime.now(UTC) - timedelta(hours=hours_ago),
    )  # fmt: skip
    report = run_simulation(cfg, "kafka", settings.kafka.bootstrap_servers, progress=False)
    assert report.failed == 0 and report.accepted > 0
    return Simulation(cfg)  # deterministic: the same journeys the run sent


@pytest.fixture(scope="module")
def flink_settings(sink_env: SinkEnv, tmp_path_factory: pytest.TempPathFactory) -> Settings:  # noqa: F811
    return job_settings(sink_env.stack.settings, tmp_path_factory.mktemp("flink"))


def publish_scenario_catalog(bootstrap: str, course_id: str) -> None:
    """The scenario course and its exam twin, as ``course.catalog`` JSON."""
    producer = make_producer(bootstrap)
    produce_all(producer, "course.catalog", catalog_records(course_id))  # type: ignore[arg-type]
    producer.flush(10)


def test_completion_scenarios_and_simulated_journeys(flink_settings: Settings) -> None:
    bootstrap = flink_settings.kafka.bootstrap_servers
    course_id = f"course-scn-{uuid.uuid4().hex[:6]}"
    publish_scenario_catalog(bootstrap, course_id)
    cases = scenarios(course_id, "flink")
    for case in cases:
        produce_events(bootstrap, case.records)
    sim = simulate(flink_settings, learners=40, seed=11, hours_ago=4)

    run_to_end(flink_settings, "completion", start="earliest")

    # Both topics are keyed by enrollment id, and every record follows its topic's model.
    scores: dict[str, list[dict]] = defaultdict(list)
    for key, value in read_json(bootstrap, "completion.scores"):
        assert key == value["enrollment_id"].encode()
        CompletionScore.model_validate_json(json.dumps(value))
        scores[value["enrollment_id"]].append(value)
    completed: dict[str, list[dict]] = defaultdict(list)
    for key, value in read_json(bootstrap, "course.completed"):
        assert key == value["enrollment_id"].encode()
        CourseCompleted.model_validate_json(json.dumps(value))
        completed[value["enrollment_id"]].append(value)

    def iso(at: datetime | None) -> str:
        assert at is not None
        return ms_to_iso(round(at.timestamp() * 1000))

    for case in cases:
        if not case.expected:
            learner_outputs = [
                v for vs in scores.values() for v in vs if v["learner_id"] == case.learner_id
            ]
            assert learner_outputs == [], case.name
            continue
        learner_keys = {e for e, vs in scores.items() if vs[0]["learner_id"] == case.learner_id}
        assert learner_keys == set(case.expected), case.name  # one key per enrollment
        for eid, expected in case.expected.items():
            last = scores[eid][-1]
            assert last["score"] == pytest.approx(expected.score, abs=1e-6), case.name
            assert last["score_bps"] == to_bps(expected.score), case.name
            assert (last["exam_bps"], last["exam_passed"]) == (
                expected.exam_bps,
                expected.exam_passed,
            ), case.name
            if last["deadline_at"] is not None:  # the money clock: nothing after the deadline
                assert all(v["received_at"] <= v["deadline_at"] for v in scores[eid]), case.name
            if expected.complete:
                assert len(completed[eid]) == 1, case.name
                (done,) = completed[eid]
                assert done["completed_at"] == iso(expected.completed_at), case.name
                assert done["received_at"] == iso(expected.completed_received_at), case.name
            else:
                assert eid not in completed, case.name

    # The simulator knows which journeys it completed; the job must find exactly those.
    journeys = [j for j in sim.journeys if j.enrollment_id]
    expected = {j.enrollment_id for j in journeys if j.outcome == "completed"}
    found = {e for e in completed if e in {j.enrollment_id for j in journeys}}
    assert expected and found == expected
    assert all(len(v) == 1 for v in completed.values())
    for journey in journeys:
        assert scores[journey.enrollment_id], "every enrollment gets a score"


QOS_SUMS = {
    "startup_time_sum_ms": "startup_time_ms",
    "rebuffer_ms": "rebuffer_ms",
    "played_ms": "played_ms",
    "bitrate_kbps_sum": "avg_bitrate_kbps",
    "bitrate_switches": "bitrate_switches",
}
QOS_KEY = ["window_start", "course_id", "network_type", "region", "edge_node"]
QOS_COUNTS = ["plays", "startups", "video_start_failures", "exits_before_start", "bitrate_samples"]


def pandas_reference(records: list[ReadRecord], lateness_s: float = 120.0) -> pd.DataFrame:
    """The QoS definitions of docs/analytics.md, computed with pandas on the raw records, with
    the job's late-data rule: late = older by more than the lateness than the newest session
    report of its partition so far (in offset order)."""
    rows = []
    newest: dict[int, int] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        e = json.loads(record.value)
        if e["report"] != "session":
            continue
        t = iso_to_ms(e["occurred_at"])
        newest[record.partition] = max(newest.get(record.partition, t), t)
        rows.append({"late": t < newest[record.partition] - lateness_s * 1000,
            "event_id": e["event_id"],
            "window_start": ms_to_iso(iso_to_ms(e["occurred_at"]) // 60_000 * 60_000),
            "course_id": e["course_id"], "network_type": e["client"]["network_type"],
            "region": e["client"]["region"], "edge_node": e["client"]["edge_node"],
            "startup_time_ms": e["startup_time_ms"],
            "video_start_failure": e["video_start_failure"],
            "exit_before_video_start": e["exit_before_video_start"],
            "rebuffer_ms": e["rebuffer_ms"],
            "played_ms": e["played_ms"], "avg_bitrate_kbps": e["avg_bitrate_kbps"],
            "bitrate_switches": e["bitrate_switches"],
        })  # fmt: skip
    everything = pd.DataFrame(rows).drop_duplicates("event_id")
    late = everything[everything["late"]].groupby(QOS_KEY).size()
    df = everything[~everything["late"]]
    grouped = df.groupby(QOS_KEY)
    out = pd.DataFrame({
        "plays": grouped.size(),
        "startups": grouped["startup_time_ms"].count(),
        "video_start_failures": grouped["video_start_failure"].sum(),
        "exits_before_start": grouped["exit_before_video_start"].sum(),
        "bitrate_samples": grouped["avg_bitrate_kbps"].count(),
        **{name: grouped[column].sum() for name, column in QOS_SUMS.items()},
        "startup_p50_ms": grouped["startup_time_ms"].quantile(0.5),
        "startup_p95_ms": grouped["startup_time_ms"].quantile(0.95),
    })  # fmt: skip
    out = out.join(late.rename("late_events"), how="outer")
    out = out.fillna({c: 0 for c in [*QOS_COUNTS, *QOS_SUMS, "late_events"]})
    return out.reset_index()


def latest_windows(bootstrap: str) -> pd.DataFrame:
    """The newest version of every qos.agg.1m key, checking that versions only grow."""
    latest: dict[tuple, dict] = {}
    for _, value in read_json(bootstrap, "qos.agg.1m"):
        key = tuple(value[k] for k in QOS_KEY)
        if key in latest:
            assert value["version"] >= latest[key]["version"]
        latest[key] = value
    df = pd.DataFrame(list(latest.values()))
    df["window_start"] = [ms_to_iso(iso_to_ms(w)) for w in df["window_start"]]
    return df


def test_qos_job_equals_pandas_and_clickhouse(
    flink_settings: Settings,
    sink_env: SinkEnv,  # noqa: F811
) -> None:
    bootstrap = flink_settings.kafka.bootstrap_servers
    simulate(flink_settings, learners=80, seed=21, hours_ago=1)
    duplicate = next(r for r in read_to_end(bootstrap, ["learner.qos"]))
    producer = make_producer(bootstrap)
    produce_all(producer, "learner.qos", [(duplicate.key or b"", duplicate.value)])
    producer.flush(10)

    run_to_end(flink_settings, "qos", start="earliest")

    expected = (
        pandas_reference(read_to_end(bootstrap, ["learner.qos"])).set_index(QOS_KEY).sort_index()
    )
    flink = latest_windows(bootstrap).set_index(QOS_KEY).sort_index()
    assert list(flink.index) == list(expected.index)
    assert len(flink) > 20
    for column in QOS_COUNTS + list(QOS_SUMS):
        assert (
            flink[column].astype("int64").tolist() == expected[column].astype("int64").tolist()
        ), column
    assert flink["late_events"].tolist() == expected["late_events"].astype("int64").tolist()
    # One version per distinct event, late ones included.
    assert (
        flink["version"].tolist()
        == (expected["plays"] + expected["late_events"]).astype("int64").tolist()
    )
    for q in ("startup_p50_ms", "startup_p95_ms"):
        for got, exact in zip(flink[q], expected[q], strict=True):
            if exact is None or (isinstance(exact, float) and math.isnan(exact)):
                assert got is None or math.isnan(got)
            else:
                assert abs(got - exact) <= 0.02 * exact, (q, got, exact)

    # The same definitions in SQL over the raw rows, after the sink.
    database, client = sink_env.database()
    sink_env.sink(database, topics=["learner.qos", "qos.agg.1m"]).run(idle_exit_s=2.0)
    by_sql = client.query_df(
        """
        SELECT toStartOfMinute(occurred_at) AS window_start, course_id, network_type, region,
               edge_node, count() AS plays, count(startup_time_ms) AS startups,
               countIf(video_start_failure) AS video_start_failures,
               countIf(exit_before_video_start) AS exits_before_start,
               sum(rebuffer_ms) AS rebuffer_ms, sum(played_ms) AS played_ms,
               sum(ifNull(startup_time_ms, 0)) AS startup_time_sum_ms,
               sum(ifNull(avg_bitrate_kbps, 0)) AS bitrate_kbps_sum,
               count(avg_bitrate_kbps) AS bitrate_samples,
               sum(bitrate_switches) AS bitrate_switches,
               quantileExactInclusive(0.5)(startup_time_ms) AS startup_p50_ms,
               quantileExactInclusive(0.95)(startup_time_ms) AS startup_p95_ms
        FROM playback_qos FINAL WHERE report = 'session'
        GROUP BY window_start, course_id, network_type, region, edge_node
        ORDER BY window_start, course_id, network_type, region, edge_node
        """
    )
    table = client.query_df(
        "SELECT * FROM qos_1m FINAL "
        "ORDER BY window_start, course_id, network_type, region, edge_node"
    )
    client.close()
    assert len(by_sql) == len(table) == len(flink)
    for column in QOS_COUNTS + list(QOS_SUMS):
        assert by_sql[column].astype("int64").tolist() == table[column].astype("int64").tolist(), (
            column
        )
    for q in ("startup_p50_ms", "startup_p95_ms"):
        for got, exact in zip(table[q], by_sql[q], strict=True):
            if pd.isna(exact):
                assert pd.isna(got)
            else:
                assert abs(got - exact) <= 0.02 * exact, (q, got, exact)


def test_qos_late_event_is_counted_not_added_and_raises_the_version(
    flink_settings: Settings,
) -> None:
    """Within one partition (one learner): an event 30 s into minute M arrives after one at
    M+10 min, so it is 9.5 min behind its partition's newest: late. An event 9 min in is only
    1 min behind: it counts. A repeat of the first event counts nowhere."""
    bootstrap = flink_settings.kafka.bootstrap_servers
    course_id = f"course-late-{uuid.uuid4().hex[:6]}"
    minute = (datetime.now(UTC) - timedelta(minutes=20)).replace(second=0, microsecond=0)
    learner = f"learner-late-{uuid.uuid4().hex[:6]}"

    def qos(n: int, at: datetime, startup: int) -> bytes:
        return to_wire(PlaybackQos(
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{course_id}/{n}"), occurred_at=at,
            learner_id=learner, session_id="s", client=CLIENT, course_id=course_id, video_id="v1",
            playback_id=f"pb-{n}", startup_time_ms=startup, played_ms=60_000,
        ))  # fmt: skip

    first = qos(1, minute + timedelta(seconds=5), 400)
    produce_events(bootstrap, [
        first,
        qos(2, minute + timedelta(seconds=20), 800),
        qos(3, minute + timedelta(minutes=10), 500),
        qos(4, minute + timedelta(seconds=30), 9_000),  # late: 9.5 min behind
        qos(5, minute + timedelta(minutes=9), 700),  # 1 min behind: counts
        first,  # a repeat
    ])  # fmt: skip

    run_to_end(flink_settings, "qos", start="earliest")

    windows = latest_windows(bootstrap)
    mine = windows[windows["course_id"] == course_id].set_index("window_start")
    at = ms_to_iso(round(minute.timestamp() * 1000))
    assert mine.loc[at, "plays"] == 2
    assert mine.loc[at, "late_events"] == 1
    assert mine.loc[at, "version"] == 3
    assert mine.loc[at, "startup_time_sum_ms"] == 1200  # the late 9 s startup is not in it
    assert mine.loc[at, "startup_p50_ms"] == 600.0
    nine = ms_to_iso(round((minute + timedelta(minutes=9)).timestamp() * 1000))
    assert (mine.loc[nine, "plays"], mine.loc[nine, "late_events"]) == (1, 0)
    assert sorted(mine.index) == sorted(
        [at, nine, ms_to_iso(round((minute + timedelta(minutes=10)).timestamp() * 1000))]
    )


@pytest.mark.chaos
def test_completion_restart_from_checkpoint_emits_no_second_completion(
    flink_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """SIGKILL the job mid-stream, send the rest (and every event again), restart from the last
    retained checkpoint: each completed enrollment has exactly one committed course.completed."""
    settings = job_settings(flink_settings, tmp_path_factory.mktemp("restart"))
    bootstrap = settings.kafka.bootstrap_servers
    tag = uuid.uuid4().hex[:6]
    course_id = f"course-restart-{tag}"
    publish_scenario_catalog(bootstrap, course_id)
    cases = [
        c
        for i in range(6)
        for c in scenarios(course_id, f"{tag}{i}")
        if any(e.complete for e in c.expected.values())
    ]
    completing = {eid for c in cases for eid, e in c.expected.items() if e.complete}
    first_half = [r for c in cases[: len(cases) // 2] for r in c.records]
    second_half = [r for c in cases[len(cases) // 2 :] for r in c.records]
    options = {"group_id": f"restart-{tag}", "transactional_id_prefix": f"restart-{tag}"}

    def completions() -> dict[str, int]:
        found: dict[str, int] = defaultdict(int)
        for _, value in read_json(bootstrap, "course.completed"):
            if value["enrollment_id"] in completing:
                found[value["enrollment_id"]] += 1
        return found

    produce_events(bootstrap, first_half)
    launch = launcher(settings)
    job = launch.start("completion", RunOptions(start="earliest", **options))
    try:
        deadline = time.monotonic() + 180
        while not completions() or latest_checkpoint(launch.checkpoints("completion")) is None:
            assert job.running(), job.log_tail(60)
            assert time.monotonic() < deadline, "no completion committed within 180 s"
            time.sleep(1)
        produce_events(bootstrap, second_half[: len(second_half) // 2])
        time.sleep(1)
    finally:
        job.stop(signal.SIGKILL)  # mid-stream: no final checkpoint, a transaction may be open
    before = completions()
    assert before and all(n == 1 for n in before.values())

    checkpoint = latest_checkpoint(launch.checkpoints("completion"))
    assert checkpoint is not None
    produce_events(bootstrap, second_half[len(second_half) // 2 :] + first_half + second_half)
    # Restored splits keep the first run's (unbounded) stopping offsets, so this run is stopped
    # by the test once every completion is in, and two more checkpoints have passed.
    job = launch.start("completion", RunOptions(restore=str(checkpoint), **options))
    try:
        deadline = time.monotonic() + 180
        while set(completions()) != completing:
            assert job.running(), job.log_tail(60)
            assert time.monotonic() < deadline, f"missing completions: {completions()}"
            time.sleep(1)
        time.sleep(2.5 * settings.flink.checkpoint_interval_s)
    finally:
        job.stop()

    after = completions()
    assert set(after) == completing
    assert all(n == 1 for n in after.values()), after


def test_lag_monitor_reports_a_running_flink_jobs_consumer_group(flink_settings: Settings) -> None:
    """The Flink QoS job cannot publish pipeline.metrics itself; its Kafka source commits its
    offsets to its consumer group on each checkpoint, and the lag monitor reports that group."""
    from jobs.lag_monitor import LagMonitor
    from schemas.derived import PipelineMetrics

    bootstrap = flink_settings.kafka.bootstrap_servers
    simulate(flink_settings, learners=30, seed=31, hours_ago=0.6)
    tag = f"lag-{uuid.uuid4().hex[:8]}"
    options = RunOptions(start="earliest", group_id=tag, transactional_id_prefix=tag)
    job = launcher(flink_settings).start("qos", options)
    monitor = LagMonitor(bootstrap, groups=[tag])
    seen: list[PipelineMetrics] = []

    def sample_until(done: Callable[[list[PipelineMetrics]], bool]) -> None:
        deadline = time.monotonic() + 180
        while not done(seen):
            assert job.running(), job.log_tail()
            assert time.monotonic() < deadline, f"gave up: {seen[-3:]}"
            seen.extend(monitor.sample())  # while the job runs
            time.sleep(1)

    try:
        sample_until(lambda s: bool(s))  # the group appears with its first checkpoint
        simulate(flink_settings, learners=60, seed=32, hours_ago=0.3)  # then new input arrives
        sample_until(lambda s: any(r.in_per_s > 0 for r in s) and s[-1].lag == 0)
    finally:
        job.stop()
    partitions = flink_settings.topics.partitions
    last = seen[-1]
    assert (last.service, last.group, last.lag) == (tag, tag, 0)
    assert set(last.lag_by_partition) == {f"learner.qos/{p}" for p in range(partitions)}
    monitor.publish([last])
    published = [
        PipelineMetrics.model_validate_json(r.value)
        for r in read_to_end(bootstrap, ["pipeline.metrics"])
    ]
    assert any(r.group == tag and r.extra["source"] == "committed offsets" for r in published)
