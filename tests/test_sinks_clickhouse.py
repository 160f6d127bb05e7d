"""The ClickHouse sink against real Kafka and ClickHouse: resume, DLQ, backstop, outage, metrics."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from schemas.derived import PipelineMetrics
from sinks.clickhouse.sink import ClickHouseSink
from streams.kafka import make_producer, produce_all, read_to_end
from streams.simulate import run_simulation, sim_config_from_args
from tests.collector_fixtures import example
from tests.sink_fixtures import SinkEnv, counts, event_ids_in_kafka
from tests.sink_fixtures import sink_env as sink_env

pytestmark = [pytest.mark.slow]
RAW = ["views", "playback", "playback_qos", "quiz_results", "enrollments", "immersive_qos"]


def simulate(env: SinkEnv, learners: int = 30, seed: int = 1) -> None:
    cfg = sim_config_from_args(learners=learners, courses=3, rate=0, duration=600, seed=seed)
    run_simulation(cfg, "kafka", env.bootstrap, progress=False)


def run_sink(env: SinkEnv, database: str, **options: object) -> ClickHouseSink:
    sink = env.sink(database, **options)
    sink.run(idle_exit_s=2.0)
    return sink


def test_sinks_clickhouse_every_event_lands_once_and_a_rerun_adds_nothing(
    sink_env: SinkEnv,
) -> None:
    simulate(sink_env)
    database, client = sink_env.database()
    group = f"g-{uuid.uuid4().hex[:8]}"
    run_sink(sink_env, database, group_id=group)
    expected = event_ids_in_kafka(sink_env.bootstrap)
    got = counts(client, RAW)
    for table in RAW:
        assert got[table] == (len(expected[table]), len(expected[table])), table
    run_sink(sink_env, database, group_id=group)  # same group: committed offsets
    assert counts(client, RAW) == got
    run_sink(sink_env, database)  # a new group: resumes from ClickHouse's max(_offset)
    assert counts(client, RAW) == got


def test_sinks_clickhouse_crash_between_insert_and_commit_inserts_nothing_twice(
    sink_env: SinkEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulate(sink_env, seed=2)
    database, client = sink_env.database()
    group = f"g-{uuid.uuid4().hex[:8]}"
    sink = sink_env.sink(database, group_id=group)

    def crash(_offsets: object) -> None:
        raise SystemExit("killed between insert and commit")

    monkeypatch.setattr(sink, "_commit", crash)  # the first flush dies after inserting
    with pytest.raises(SystemExit):
        sink.run(idle_exit_s=2.0)
    inserted = counts(client, RAW)
    assert sum(n for n, _ in inserted.values()) > 0
    run_sink(sink_env, database, group_id=group)  # nothing was committed for this group
    expected = event_ids_in_kafka(sink_env.bootstrap)
    for table, (n, distinct) in counts(client, RAW).items():
        assert n == distinct == len(expected[table]), table


def test_sinks_clickhouse_unconvertible_record_goes_to_dlq_and_the_rest_lands(
    sink_env: SinkEnv,
) -> None:
    good = example("course_viewed")
    wrong = {**example("course_viewed"), "dwell_ms": "long"}  # not a valid event any more
    produce_all(
        make_producer(sink_env.bootstrap),
        "learner.views",
        [
            (good["learner_id"], json.dumps(good)),
            ("x", b"\xff not json"),
            (wrong["learner_id"], json.dumps(wrong)),
        ],
    )
    database, client = sink_env.database()
    sink = run_sink(sink_env, database)
    assert sink.stats.dead >= 2
    ids = {str(r[0]) for r in client.query("SELECT event_id FROM views").result_rows}
    assert good["event_id"] in ids and wrong["event_id"] not in ids
    letters = [json.loads(r.value) for r in read_to_end(sink_env.bootstrap, ["learner.dlq"])]
    mine = [
        x
        for x in letters
        if x.get("endpoint") == "sink:clickhouse" and wrong["event_id"] in x.get("raw", "")
    ]
    assert len(mine) >= 1 and "learner.views" in mine[0]["detail"]
    assert good["learner_id"] not in json.dumps(
        client.query("SELECT * FROM views").result_rows, default=str
    )


def test_sinks_clickhouse_same_event_id_twice_is_stored_once_and_the_key_is_the_backstop(
    sink_env: SinkEnv,
) -> None:
    event = example("quiz_result")
    record = [(event["learner_id"], json.dumps(event))]
    database, client = sink_env.database()
    group = f"g-{uuid.uuid4().hex[:8]}"
    query = "SELECT count() FROM quiz_results WHERE event_id = {id:UUID}"
    # Twice in one batch: inserted once.
    produce_all(make_producer(sink_env.bootstrap), "learner.quiz", record * 2)
    run_sink(sink_env, database, group_id=group)
    assert client.query(query, parameters={"id": event["event_id"]}).first_row == (1,)
    # Again later, under a new offset (a client retry): the sink finds the id already stored.
    produce_all(make_producer(sink_env.bootstrap), "learner.quiz", record)
    sink = run_sink(sink_env, database, group_id=group)
    assert client.query(query, parameters={"id": event["event_id"]}).first_row == (1,)
    assert sink.destination.repeats == 1  # type: ignore[attr-defined]
    # A copy that reaches the table another way (or beyond the dedup horizon) is a second part
    # until a merge replaces it: the replacing key is the backstop.
    columns = client.query("SELECT * FROM quiz_results LIMIT 0").column_names
    row = client.query(
        "SELECT * FROM quiz_results WHERE event_id = {id:UUID}",
        parameters={"id": event["event_id"]},
    ).result_rows[0]
    copy = dict(zip(columns, row, strict=True)) | {"_offset": 10**6}
    client.command("SYSTEM STOP MERGES quiz_results")  # no background merge before the count
    client.insert("quiz_results", [list(copy.values())], column_names=list(copy))
    assert client.query(query, parameters={"id": event["event_id"]}).first_row == (2,)
    client.command("SYSTEM START MERGES quiz_results")
    client.command("OPTIMIZE TABLE quiz_results FINAL")
    assert client.query(query, parameters={"id": event["event_id"]}).first_row == (1,)


def test_sinks_clickhouse_waits_out_a_clickhouse_outage_and_loses_nothing(
    sink_env: SinkEnv,
) -> None:
    database, client = sink_env.database()
    sink = sink_env.sink(database, retry_max_s=1.0)
    worker = threading.Thread(target=sink.run, daemon=True)
    worker.start()
    try:
        time.sleep(3)
        sink_env.stack.down(["clickhouse"])
        simulate(sink_env, learners=10, seed=3)
        time.sleep(3)  # the sink retries, partitions paused
        assert worker.is_alive()
        sink_env.stack.up(create_topics=False)
        expected = event_ids_in_kafka(sink_env.bootstrap)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = counts(client, RAW)
            if all(got[t][1] == len(expected[t]) for t in RAW):
                break
            time.sleep(0.5)
        # distinct ids: an earlier test in this module sends one event_id twice on purpose
        assert {t: got[t][1] for t in RAW} == {t: len(expected[t]) for t in RAW}
    finally:
        sink.stop()
        worker.join(timeout=30)


def test_sinks_clickhouse_publishes_throughput_lag_and_latency(sink_env: SinkEnv) -> None:
    database, _ = sink_env.database()
    sink = run_sink(sink_env, database, metrics_interval_s=0.5)
    assert sum(sink.stats.rows.values()) > 0
    metrics = [json.loads(r.value) for r in read_to_end(sink_env.bootstrap, ["pipeline.metrics"])]
    mine = [m for m in metrics if m.get("service") == "sink-clickhouse"]
    assert mine, "no pipeline.metrics record from the sink"
    assert all(PipelineMetrics.model_validate_json(json.dumps(m)) for m in mine)  # the contract
    assert any(m["lag_by_partition"] for m in mine)
    assert any(m["extra"]["batch_insert_ms"] for m in mine)
    assert all(v >= 0 for m in mine for v in m["lag_by_partition"].values())
    assert all(m["lag"] == sum(m["lag_by_partition"].values()) for m in mine)
    assert all(m["group"] and m["in_per_s"] >= 0 and m["out_per_s"] >= 0 for m in mine)


def test_cli_sinks_rebuild_rereads_everything_into_emptied_tables(sink_env: SinkEnv) -> None:
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    database, client = sink_env.database()
    run_sink(sink_env, database)
    before = counts(client, RAW)
    env = {
        **os.environ,
        "LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS": sink_env.bootstrap,
        "LEARNSTREAM_CLICKHOUSE__DSN": f"{sink_env.server_dsn}/{database}",
        "LEARNSTREAM_SINK__GROUP_ID": f"g-{uuid.uuid4().hex[:8]}",
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "learnstream.cli",
            "sinks",
            "clickhouse",
            "--rebuild",
            "--idle-exit",
            "2",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert counts(client, RAW) == before
    engagement = "SELECT countMerge(views) FROM engagement_daily"
    assert client.query(engagement).first_row[0] == before["views"][0]
