"""A simulated run through the real collector and broker: nothing lost, nothing doubled."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys

import pytest

from schemas import parse_event
from streams.kafka import read_to_end
from streams.simulate import SimConfig, SimReport, run_simulation, sim_config_from_args
from streams.topics import COURSE_CATALOG, TOPIC_FOR_TYPE
from tests.collector_fixtures import SERVER_KEY, Collector, dead_letters, records_by_event_id
from tests.conftest import ROOT

pytestmark = [pytest.mark.slow]
EVENT_TOPICS = sorted(set(TOPIC_FOR_TYPE.values()))


def through(collector: Collector, cfg: SimConfig) -> SimReport:
    """The simulated run, sent through the collector with a server key."""
    return run_simulation(
        cfg,
        "http",
        collector.bootstrap,
        collector_url=collector.url,
        api_key=SERVER_KEY,
        progress=False,
    )


def test_simulated_run_via_http_accepted_equals_records_with_no_loss_or_duplicates(
    collector: Collector,
) -> None:
    cfg = sim_config_from_args(
        learners=40, courses=4, rate=0, duration=600, seed=11, bad_fraction=0.05, deadline_s=300
    )
    report = through(collector, cfg)
    assert report.problems() == []
    assert report.accepted == len(report.event_ids) == sum(report.sent_by_type.values())
    assert report.accepted > 500
    assert set(report.sent_by_type) >= {
        "course_viewed",
        "video_playback",
        "playback_qos",
        "quiz_result",
        "enrollment",
    }
    found = records_by_event_id(collector.bootstrap, EVENT_TOPICS)
    ours = {i: found.get(i, []) for i in report.event_ids}
    assert [i for i, recs in ours.items() if not recs] == []  # no loss
    assert [i for i, recs in ours.items() if len(recs) > 1] == []  # no duplicates
    by_topic = collections.Counter(recs[0].topic for recs in ours.values())
    assert by_topic == collections.Counter(
        {TOPIC_FOR_TYPE[t]: n for t, n in report.sent_by_type.items()}
    )
    # per learner, events arrive in the order they happened
    per_learner: dict[bytes, list] = collections.defaultdict(list)
    for recs in ours.values():
        per_learner[recs[0].key].append(recs[0])
    for records in per_learner.values():
        for topic in {r.topic for r in records}:
            in_topic = sorted((r for r in records if r.topic == topic), key=lambda r: r.offset)
            times = [parse_event(r.value).occurred_at for r in in_topic]
            assert times == sorted(times)
    # every bad payload got its 4xx and one dead letter of its kind
    assert sum(report.bad_by_kind.values()) > 0
    assert all(status >= 400 for by in report.bad_status.values() for status in by)
    # the catalogue was published, keyed by course
    keys = {r.key.decode() for r in read_to_end(collector.bootstrap, [COURSE_CATALOG.name])}
    assert set(report.catalog) <= keys


def test_simulated_bad_payloads_each_leave_one_dead_letter_of_their_kind(
    collector: Collector,
) -> None:
    cfg = sim_config_from_args(
        learners=5,
        courses=2,
        rate=0,
        duration=120,
        seed=12,
        bad_fraction=0.3,
        run_id="bad-run-" + os.urandom(4).hex(),
    )
    before = collections.Counter(d["reason"] for d in dead_letters(collector.bootstrap))
    report = through(collector, cfg)
    after = collections.Counter(d["reason"] for d in dead_letters(collector.bootstrap))
    assert after - before == collections.Counter(report.bad_by_kind)
    assert set(report.bad_by_kind) == {"malformed_json", "unknown_type", "invalid"}


def test_cli_simulate_via_kafka_writes_every_event_once(collector: Collector) -> None:
    before = {r.value for r in read_to_end(collector.bootstrap, EVENT_TOPICS)}
    env = {**os.environ, "LEARNSTREAM_KAFKA__BOOTSTRAP_SERVERS": collector.bootstrap}
    run_id = "kafka-run-" + os.urandom(4).hex()
    args = [
        sys.executable,
        "-m",
        "learnstream.cli",
        "simulate",
        "--via",
        "kafka",
        "--learners",
        "10",
        "--courses",
        "2",
        "--duration",
        "120",
        "--seed",
        "5",
        "--run-id",
        run_id,
        "--no-progress",
    ]
    result = subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"run {run_id} via kafka: ")
    sent = int(first.split(": ", 1)[1].split(" events")[0])
    new = [r for r in read_to_end(collector.bootstrap, EVENT_TOPICS) if r.value not in before]
    ids = [json.loads(r.value)["event_id"] for r in new]
    assert sent > 50
    assert len(ids) == len(set(ids)) == sent
