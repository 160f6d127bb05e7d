"""The learner simulator and its senders: pure tests, no services (fakes for Kafka and HTTP)."""

from __future__ import annotations

import json
import random
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache

import httpx
import pytest
from eth_utils import to_checksum_address
from pydantic import ValidationError

from schemas import EVENT_TYPES, Course, ImmersiveQos, PlaybackQos, parse_event, to_wire
from streams.simulate import (
    BAD_KINDS,
    HEADSETS,
    BadPayload,
    Edge,
    HttpSender,
    Pacer,
    SimConfig,
    SimReport,
    Simulation,
    build_catalog,
    run_simulation,
    sample_immersive_qos,
    sample_session_qos,
    sample_start,
    send_http,
    sim_config_from_args,
    topology,
)
from streams.topics import COURSE_CATALOG, TOPIC_FOR_TYPE

START = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)


def config(**overrides: object) -> SimConfig:
    values: dict[str, object] = dict(
        learners=120, courses=6, rate=0, duration_s=600, seed=7, run_id="run-a", start=START
    )
    values.update(overrides)
    return SimConfig(**values)  # type: ignore[arg-type]


@cache
def run(**overrides: object) -> tuple[Simulation, list]:
    sim = Simulation(config(**overrides))
    return sim, list(sim)


def events(items: list) -> list:
    return [i for i in items if not isinstance(i, BadPayload)]


def union(segments: list[list[float]]) -> float:
    total, end = 0.0, float("-inf")
    for s, e in sorted(segments):
        if e > end:
            total += e - max(s, end)
            end = e
    return total


TIMES_AND_IDS = {"event_id", "occurred_at", "deadline_at"}


# -- determinism and ids -----------------------------------------------------------------------


def test_simulator_same_seed_run_id_and_start_give_identical_wire_output() -> None:
    _, first = run(bad_fraction=0.05)
    second = list(Simulation(config(bad_fraction=0.05)))
    wire = [i.raw if isinstance(i, BadPayload) else to_wire(i) for i in first]
    assert wire == [i.raw if isinstance(i, BadPayload) else to_wire(i) for i in second]
    assert len(set(str(e.event_id) for e in events(first))) == len(events(first))


def test_simulator_different_run_id_gives_disjoint_ids_and_the_same_catalogue() -> None:
    sim_a, items_a = run()
    sim_b, items_b = run(run_id="run-b")
    assert not {e.event_id for e in events(items_a)} & {e.event_id for e in events(items_b)}
    assert not set(sim_a.learner_ids) & set(sim_b.learner_ids)
    assert [to_wire(c) for c in sim_a.catalog] == [to_wire(c) for c in sim_b.catalog]


def test_simulator_bad_payloads_do_not_change_the_valid_events() -> None:
    _, clean = run()
    _, dirty = run(bad_fraction=0.05)
    assert [to_wire(e) for e in events(dirty)] == [to_wire(e) for e in clean]


# -- events are valid, ordered, in bounds --------------------------------------------------------


def test_simulator_every_event_round_trips_in_time_order_within_bounds() -> None:
    sim, items = run()
    cfg = sim.cfg
    assert Counter(e.type for e in items).keys() == {
        "course_viewed",
        "enrollment",
        "video_playback",
        "playback_qos",
        "quiz_result",
        "immersive_qos",
    }
    last: dict[str, datetime] = {}
    previous = cfg.start
    for event in items:
        assert parse_event(to_wire(event)) == event
        assert cfg.start <= event.occurred_at <= cfg.end
        assert event.occurred_at >= previous  # the stream is in time order
        previous = event.occurred_at
        assert event.occurred_at > last.get(event.learner_id, cfg.start - timedelta(1))
        last[event.learner_id] = event.occurred_at
    assert set(last) <= set(sim.learner_ids)


def test_simulator_catalog_courses_are_valid_with_checksummed_creator_addresses() -> None:
    catalog = build_catalog(config(courses=12))
    assert len({c.course_id for c in catalog}) == 12
    assert catalog[:6] == build_catalog(config(courses=6))  # course k depends on (seed, k)
    assert {c.course_id for c in catalog}.isdisjoint(
        c.course_id for c in build_catalog(config(seed=8))
    )
    for course in catalog:
        assert Course.model_validate_json(to_wire(course)) == course
        assert course.creator_address == to_checksum_address(course.creator_address)
        assert isinstance(course.price.amount_minor, int) and course.price.currency == "EUR"
        assert "pay_by_completion" in course.payment_models
        assert any(v.required for v in course.videos)
    assert any(not v.required for c in catalog for v in c.videos)
    assert any(c.quizzes for c in catalog)


def test_simulator_qos_startup_orders_5g_sa_5g_nsa_4g() -> None:
    edge = Edge("edge-par-1", "eu-west", 1.0, degraded=False)
    rng = random.Random(1)
    means = {}
    for network in ("5g_sa", "5g_nsa", "4g"):
        startups = [
            s.startup_ms
            for s in (sample_start(rng, network, edge) for _ in range(3000))
            if s.startup_ms is not None
        ]
        means[network] = statistics.mean(startups)
    assert means["5g_sa"] < means["5g_nsa"] < means["4g"]
    rtts = {
        n: statistics.mean(
            sample_session_qos(rng, n, edge, sample_start(rng, n, edge, False), 60_000)["rtt_ms"]
            for _ in range(2000)
        )
        for n in ("5g_sa", "5g_nsa", "4g")
    }
    assert rtts["5g_sa"] < rtts["5g_nsa"] < rtts["4g"]


def test_simulator_qos_sessions_are_consistent_and_radio_only_on_5g() -> None:
    sim, items = run()
    sessions = [e for e in items if isinstance(e, PlaybackQos)]
    assert all(e.report == "session" for e in sessions)
    assert len({e.playback_id for e in sessions}) == len(sessions)  # one per playback session
    for e in sessions:
        assert (e.radio is not None) == e.client.network_type.startswith("5g")
    assert any(e.video_start_failure for e in sessions)
    assert any(e.exit_before_video_start for e in sessions)
    healthy = [
        e
        for e in sessions
        if e.startup_time_ms is not None and not sim.topology[e.client.edge_node].degraded
    ]
    by_net = defaultdict(list)
    for e in healthy:
        by_net[e.client.network_type].append(e.startup_time_ms)
    assert statistics.mean(by_net["5g_sa"]) < statistics.mean(by_net["5g_nsa"])
    assert statistics.mean(by_net["5g_nsa"]) < statistics.mean(by_net["4g"])


def test_simulator_degraded_edge_nodes_have_worse_startup_and_rebuffering() -> None:
    degraded = ("edge-par-1", "edge-iad-1")
    sim, items = run(learners=200, degraded_edges=degraded)
    assert sim.degraded_edges == sorted(degraded)
    assert topology(config(degraded_edges=3)) == topology(config(degraded_edges=3))
    assert sum(e.degraded for e in topology(config(degraded_edges=3)).values()) == 3
    started = [e for e in items if isinstance(e, PlaybackQos) and e.played_ms]
    bad = [e for e in started if e.client.edge_node in degraded]
    good = [e for e in started if e.client.edge_node not in degraded]
    assert len(bad) > 30

    def ratio(group: list[PlaybackQos]) -> float:
        return sum(e.rebuffer_ms for e in group) / sum(e.played_ms + e.rebuffer_ms for e in group)

    assert statistics.mean(e.startup_time_ms for e in bad) > 2 * statistics.mean(
        e.startup_time_ms for e in good
    )
    assert ratio(bad) > 2 * ratio(good)


def test_simulator_immersive_qos_comes_from_a_few_learners_in_headsets_in_their_courses() -> None:
    sim, items = run()
    vr = [e for e in items if isinstance(e, ImmersiveQos)]
    learners = {e.learner_id for e in vr}
    assert 0 < len(learners) <= 0.15 * sim.cfg.learners
    enrolled = {(e.learner_id, e.course_id) for e in items if e.type == "enrollment"}
    assert {(e.learner_id, e.course_id) for e in vr} <= enrolled
    for e in vr:
        assert e.client.device == e.headset and e.target_fps in HEADSETS[e.headset][2]
        assert 0 < e.frames_per_second <= e.target_fps and e.interval_s == 60
        assert e.motion_to_photon_ms <= e.motion_to_photon_p95_ms
    assert len({(e.learner_id, e.headset) for e in vr}) == len(learners)  # one headset each
    assert 0 < sum(e.motion_to_photon_ms > 20 for e in vr) < len(vr)

    # without headsets, every learner's other events are the same (but for ids and times)
    def per_learner(events: list) -> dict[str, list]:
        out = defaultdict(list)
        for e in events:
            if not isinstance(e, ImmersiveQos):
                out[e.learner_id].append(e.model_dump(exclude=TIMES_AND_IDS))
        return out

    assert per_learner(run(immersive_fraction=0.0)[1]) == per_learner(items)
    edge = Edge("mec-par-1", "eu-west", 1.0, degraded=False)
    rng = random.Random(3)
    mtp = {
        n: statistics.mean(
            sample_immersive_qos(rng, "Quest 3", 90.0, n, edge, 60.0)["motion_to_photon_ms"]
            for _ in range(2000)
        )
        for n in ("5g_sa", "wifi", "4g")
    }
    assert mtp["5g_sa"] < 15 < mtp["wifi"] < mtp["4g"]


# -- enrollments, completion, dropouts -----------------------------------------------------------


def test_simulator_pay_by_completion_enrollments_carry_escrow_and_deadline() -> None:
    sim, items = run(deadline_s=450)
    enrollments = [e for e in items if e.type == "enrollment"]
    models = Counter(e.payment_model for e in enrollments)
    assert models["pay_by_completion"] > 0.2 * len(enrollments)
    assert models["one_time"] > 0
    assert models == Counter(sim.enrollments_by_model())
    last_seen = {(e.learner_id, e.course_id): e.occurred_at for e in items}
    for e in enrollments:
        if e.payment_model == "pay_by_completion":
            assert e.escrow is not None and e.escrow.deposit_wei > 0
            assert e.deadline_at - e.occurred_at == timedelta(seconds=450)
            assert last_seen[(e.learner_id, e.course_id)] < e.deadline_at
        else:
            assert e.escrow is None and e.deadline_at is None
    by_course = {c.course_id: c for c in sim.catalog}
    assert all(e.price == by_course[e.course_id].price for e in enrollments)


def test_simulator_completers_watch_every_required_video_and_pass_quizzes() -> None:
    sim, items = run()
    segments: dict[tuple[str, str, str], list[list[float]]] = {}
    passed: set[tuple[str, str, str]] = set()
    for e in items:
        if e.type == "video_playback":
            segments[(e.learner_id, e.course_id, e.video_id)] = e.played_segments
        elif e.type == "quiz_result" and e.passed:
            passed.add((e.learner_id, e.course_id, e.quiz_id))
    courses = {c.course_id: c for c in sim.catalog}

    def complete(learner: str, course: Course) -> bool:
        watched = all(
            union(segments.get((learner, course.course_id, v.video_id), [])) >= 0.9 * v.length_s
            for v in course.videos
            if v.required
        )
        quizzes = all(
            (learner, course.course_id, q.quiz_id) in passed for q in course.quizzes if q.required
        )
        return watched and quizzes

    outcomes = Counter()
    for journey in sim.journeys:
        outcomes[journey.outcome] += 1
        if journey.outcome != "browsed_only":
            done = complete(journey.learner_id, courses[journey.course_id])
            assert done == (journey.outcome == "completed"), journey
    assert outcomes["completed"] > 0.4 * len(sim.journeys)
    assert outcomes["dropped_out"] > 0.1 * len(sim.journeys)
    assert outcomes["browsed_only"] > 0
    assert sim.learner_outcomes()["completed"] > 0


def test_simulator_played_segments_accumulate_the_union_with_xapi_verbs() -> None:
    _, items = run()
    previous: dict[tuple[str, str, str], float] = {}
    verbs: Counter[str] = Counter()
    for e in items:
        if e.type != "video_playback":
            continue
        verbs[e.verb] += 1
        key = (e.learner_id, e.course_id, e.video_id)
        covered = union(e.played_segments)
        assert covered >= previous.get(key, 0.0) - 1e-9  # never shrinks
        previous[key] = covered
        assert e.progress == pytest.approx(covered / e.length, abs=1e-4)
        assert all(0 <= s <= t <= e.length for s, t in e.played_segments)
        if e.verb == "seeked":
            assert e.time == e.time_to and e.time_from != e.time_to
        if e.verb == "completed":
            assert e.progress >= 0.9 and e.time == e.length
    assert set(verbs) == {"initialized", "played", "paused", "seeked", "completed", "terminated"}
    rewinds = [
        e
        for e in items
        if e.type == "video_playback" and e.verb == "seeked" and e.time_to < e.time_from
    ]
    assert rewinds  # re-watches


def test_simulator_quiz_attempts_count_up_and_scores_stay_in_range() -> None:
    _, items = run()
    attempts: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for e in items:
        if e.type == "quiz_result":
            attempts[(e.learner_id, e.course_id, e.quiz_id)].append(e.attempt)
            assert 0 <= e.score <= e.max_score
    assert all(a == list(range(1, len(a) + 1)) for a in attempts.values())
    assert any(len(a) > 1 for a in attempts.values())


# -- volume and time ------------------------------------------------------------------------------


def test_simulator_rate_adds_journeys_up_to_about_rate_times_duration() -> None:
    sim, _ = run()
    assert len(sim.journeys) == sim.cfg.learners  # rate 0: one journey each
    busy = Simulation(config(learners=20, courses=30, rate=40, duration_s=120))
    assert 4800 <= busy.valid_count < 4800 * 1.15
    assert len(busy.journeys) > 20


def test_simulator_config_rejects_nonsense_and_cli_defaults_start() -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        config(start=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="bad_fraction"):
        config(bad_fraction=1.0)
    with pytest.raises(ValueError, match="unknown edge nodes"):
        config(degraded_edges=("edge-nowhere",))
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    fast = sim_config_from_args(learners=1, courses=1, rate=0, duration=60, seed=1, now=now)
    assert fast.start == now - timedelta(seconds=60) and len(fast.run_id) == 32
    paced = sim_config_from_args(
        learners=1,
        courses=1,
        rate=5,
        duration=60,
        seed=1,
        now=now,
        degraded_edges="edge-par-1, mec-par-1",
        bad_fraction=0.1,
    )
    assert paced.start == now and paced.degraded_edges == ("edge-par-1", "mec-par-1")
    assert paced.bad_fraction == 0.1


# -- bad payloads --------------------------------------------------------------------------------


def test_simulator_bad_fraction_is_honoured_with_three_really_bad_kinds() -> None:
    sim, items = run(bad_fraction=0.1)
    bad = [i for i in items if isinstance(i, BadPayload)]
    assert len(bad) == sim.bad_count and len(items) == len(sim)
    assert len(bad) / len(items) == pytest.approx(0.1, abs=0.02)
    assert Counter(b.kind for b in bad).keys() == set(BAD_KINDS)
    invalid_types = Counter()
    for b in bad:
        if b.kind == "malformed_json":
            with pytest.raises(ValueError):
                json.loads(b.raw)
            continue
        body = json.loads(b.raw)
        if b.kind == "unknown_type":
            assert body["type"] not in EVENT_TYPES
        else:
            assert body["type"] in EVENT_TYPES
            invalid_types[body["type"]] += 1
            with pytest.raises(ValidationError):
                parse_event(b.raw)
    assert len(invalid_types) >= 3


# -- sending, with a fake collector and a fake producer ------------------------------------------


class FakeProducer:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes, bytes, int | None]] = []
        self.callbacks: list = []

    def produce(self, topic, value=None, key=None, timestamp=None, on_delivery=None) -> None:
        self.records.append((topic, key, value, timestamp))
        self.callbacks.append(on_delivery)

    def poll(self, timeout: float = 0) -> int:
        served, self.callbacks = self.callbacks, []
        for callback in served:
            callback(None, None)
        return len(served)

    def flush(self, timeout: float = 0) -> int:
        self.poll()
        return 0


def fake_collector(fail_first: int = 0):
    calls = {"n": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= fail_first:
            return httpx.Response(503, json={"error": "retry"})
        assert request.headers["x-api-key"] == "secret"
        assert request.url.path == "/v1/events"
        try:
            parsed = json.loads(request.content)
        except ValueError:
            return httpx.Response(400, json={"error": "malformed_json"})
        results = []
        for index, item in enumerate(parsed if isinstance(parsed, list) else [parsed]):
            status, reason = "accepted", None
            if item.get("type") not in EVENT_TYPES:
                status, reason = "rejected", "unknown_type"
            else:
                try:
                    parse_event(json.dumps(item))
                except ValidationError:
                    status, reason = "rejected", "invalid"
            results.append(
                {
                    "index": index,
                    "event_id": item.get("event_id"),
                    "status": status,
                    "reason": reason,
                    "detail": None,
                }
            )
        accepted = sum(r["status"] == "accepted" for r in results)
        rejected = len(results) - accepted
        code = 200 if not rejected else 207 if accepted else 422
        return httpx.Response(
            code,
            json={"accepted": accepted, "rejected": rejected, "duplicates": 0, "results": results},
        )

    return handle, calls


ALWAYS_DUE = Pacer(clock=lambda: 1e12)


def test_simulator_send_http_batches_events_and_sends_each_bad_payload_alone() -> None:
    cfg = config(learners=15, bad_fraction=0.05)
    sim = Simulation(cfg)
    handle, calls = fake_collector(fail_first=1)
    report = SimReport(run_id=cfg.run_id, via="http")
    with httpx.Client(
        base_url="http://collector",
        headers={"X-API-Key": "secret"},
        transport=httpx.MockTransport(handle),
    ) as client:
        send_http(sim, HttpSender(client, report, sleep=lambda s: None), ALWAYS_DUE)
    assert report.retries == 1 and report.failed == 0
    assert report.accepted == sim.valid_count == len(report.event_ids)
    assert report.rejected == 0 and not report.problems()
    assert report.bad_status == {
        "malformed_json": {400: report.bad_by_kind["malformed_json"]},
        "unknown_type": {422: report.bad_by_kind["unknown_type"]},
        "invalid": {422: report.bad_by_kind["invalid"]},
    }
    assert sum(report.bad_by_kind.values()) == sim.bad_count
    assert calls["n"] - 1 - sim.bad_count >= sim.valid_count / 100


def test_simulator_run_simulation_via_http_publishes_the_catalogue_first() -> None:
    cfg = config(learners=8, courses=3)
    producer = FakeProducer()
    handle, _ = fake_collector()
    report = run_simulation(
        cfg,
        "http",
        "127.0.0.1:9",
        collector_url="http://collector.test",
        api_key="secret",
        progress=False,
        producer=producer,
        transport=httpx.MockTransport(handle),
        pacer=ALWAYS_DUE,
    )
    assert [(t, k) for t, k, _, _ in producer.records] == [
        (COURSE_CATALOG.name, c.course_id.encode()) for c in Simulation(cfg).catalog
    ]
    assert report.catalog == [c.course_id for c in Simulation(cfg).catalog]
    assert report.accepted == report.events_sent > 0
    text = report.render()
    assert "accepted" in text and "journeys:" in text and "enrollments:" in text


def test_simulator_run_simulation_via_kafka_keys_by_learner_with_occurred_at_timestamps() -> None:
    cfg = config(learners=8, courses=3)
    producer = FakeProducer()
    report = run_simulation(
        cfg,
        "kafka",
        "127.0.0.1:9",
        progress=False,
        producer=producer,
        pacer=ALWAYS_DUE,
    )
    records = [r for r in producer.records if r[0] != COURSE_CATALOG.name]
    assert len(records) == report.accepted == report.events_sent and report.failed == 0
    for topic, key, value, timestamp in records:
        event = parse_event(value)
        assert topic == TOPIC_FOR_TYPE[event.type]
        assert key == event.learner_id.encode()
        assert timestamp == int(event.occurred_at.timestamp() * 1000 + 0.5)
    with pytest.raises(ValueError, match="via http"):
        run_simulation(
            config(bad_fraction=0.1),
            "kafka",
            "127.0.0.1:9",
            progress=False,
            producer=producer,
        )


def test_simulator_pacer_holds_items_until_occurred_at_minus_margin() -> None:
    now = [1000.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    pacer = Pacer(margin_s=1.0, linger_s=0.25, clock=lambda: now[0])
    at = datetime.fromtimestamp(1010.0, UTC)
    assert not pacer.due(at)
    pacer.wait(at, sleep=sleep)
    assert now[0] == pytest.approx(1009.25) and pacer.due(at)
    assert max(slept) <= 1.0
