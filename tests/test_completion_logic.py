"""The completion rule itself (jobs/completion.py), without Flink: interval union, scenarios,
enrollments and the money clock, invariance under reordering and repetition, and an
independent reference computation (``reference`` below) that the job must equal."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobs.completion import (
    CourseRule,
    EnrollmentState,
    covered,
    iso_to_ms,
    merge,
    ms_to_iso,
    to_bps,
)
from schemas.derived import CompletionScore, CourseCompleted
from streams.topics import COMPLETION_SCORES, COURSE_COMPLETED
from tests.completion_scenarios import EXAM, Scenario, catalog_records, minutes, scenarios

COURSE = "course-unit"
Outputs = list[tuple[str, str, str]]


def run(
    records: list[bytes], rule: CourseRule, step: float = 0.0
) -> tuple[EnrollmentState, Outputs]:
    state = EnrollmentState()
    out: Outputs = []
    for record in records:
        state.apply(json.loads(record))
        out += state.outputs(rule, step)
    return state, out


def last_scores(out: Outputs) -> dict[str, dict]:
    """The compacted view of ``completion.scores``: the last record per key."""
    return {key: json.loads(v) for kind, key, v in out if kind == "score"}


def completions(out: Outputs) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for kind, key, value in out:
        if kind == "completed":
            found.setdefault(key, []).append(json.loads(value))
    return found


CATALOG = {key.decode(): json.loads(value) for key, value in catalog_records(COURSE)}
RULES = {course_id: CourseRule.from_catalog(record) for course_id, record in CATALOG.items()}


def iso(at: datetime) -> str:
    return ms_to_iso(round(at.timestamp() * 1000))


# -- an independent reference: the definitions of docs/jobs.md, computed the long way ----------


@dataclass(frozen=True)
class Ref:
    score: float
    score_bps: int
    complete: bool
    completed_at: int | None  # ms, event time
    completed_received_at: int | None  # ms, the money clock
    exam_bps: int | None
    exam_passed: bool | None


def _ms(text: str) -> int:
    return round(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _bps(fraction: float) -> int:
    """Exact decimal arithmetic on the 6-decimal value, rounded down."""
    six = Decimal(repr(round(fraction, 6)))
    return int((six * 10_000).to_integral_value(rounding=ROUND_FLOOR))


def _seconds_covered(segments: list[tuple[float, float]], length: float) -> float:
    """A sweep over every elementary interval between endpoints (not jobs.completion.merge)."""
    points = sorted({0.0, length, *(min(max(p, 0.0), length) for s in segments for p in s)})
    pairs = itertools.pairwise(points)
    return sum(b - a for a, b in pairs if any(s <= a and e >= b for s, e in segments))


def _figures(events: list[dict], course: dict) -> tuple[float, bool, float | None, bool | None]:
    rule = course.get("completion") or {}
    vw, qw = rule.get("video_weight", 0.8), rule.get("quiz_weight", 0.2)
    need = rule.get("required_watch_fraction", 0.9)
    watched_s = total_s = 0.0
    complete = True
    for video in (v for v in course["videos"] if v.get("required", True)):
        plays = [e for e in events if e.get("video_id") == video["video_id"]]
        segments = [(float(s), float(e)) for ev in plays for s, e in ev["played_segments"]]
        seen = _seconds_covered(segments, video["length_s"])
        watched_s, total_s = watched_s + seen, total_s + video["length_s"]
        complete &= seen >= need * video["length_s"] - 1e-9

    def best(quiz_id: str) -> float | None:
        tries = [ev["score"] / ev["max_score"] for ev in events
                 if ev["type"] == "quiz_result" and ev["quiz_id"] == quiz_id]  # fmt: skip
        return max(tries, default=None)

    required = [q for q in course.get("quizzes", []) if q.get("required", True)]
    passed = 0
    for q in required:
        b = best(q["quiz_id"])
        passed += b is not None and b >= q.get("pass_fraction", 0.6) - 1e-9
    complete &= passed == len(required)
    watched = watched_s / total_s if total_s else 1.0
    score = round(
        min(1.0, max(0.0, vw * watched + qw * (passed / len(required) if required else 1.0))), 6
    )
    payout = course.get("payout") or {}
    if payout.get("metric") != "exam":
        return score, complete, None, None
    exam = payout["exam_quiz_id"]
    pass_at = next(q.get("pass_fraction", 0.6) for q in course["quizzes"] if q["quiz_id"] == exam)
    b = best(exam)
    return score, complete, b, b is not None and b >= pass_at - 1e-9


def reference(records: list[bytes], course: dict) -> dict[str, Ref]:
    """Per enrollment, what the job must find: its events are those received (received_at, or
    occurred_at without it) from its enrollment up to the next one, and by its deadline."""
    events = list({e["event_id"]: e for e in map(json.loads, records)}.values())
    for e in events:
        e["_r"], e["_o"] = _ms(e.get("received_at") or e["occurred_at"]), _ms(e["occurred_at"])
    enrollments = sorted((e for e in events if e["type"] == "enrollment"),
                         key=lambda e: (e["_r"], e["event_id"]))  # fmt: skip
    out = {}
    for i, enrollment in enumerate(enrollments):
        end = enrollments[i + 1]["_r"] if i + 1 < len(enrollments) else None
        deadline = enrollment.get("deadline_at")
        mine = [e for e in events if e["type"] != "enrollment" and e["_r"] >= enrollment["_r"]
                and (end is None or e["_r"] < end)
                and (deadline is None or e["_r"] <= _ms(deadline))]  # fmt: skip
        score, complete, exam, passed = _figures(mine, course)
        received_at = occurred_at = None
        if complete:
            # linear scans of every prefix (the job does a binary search)
            received_at = next(
                r
                for r in sorted({e["_r"] for e in mine})
                if _figures([e for e in mine if e["_r"] <= r], course)[1]
            )
            occurred_at = next(
                o
                for o in sorted({e["_o"] for e in mine})
                if _figures([e for e in mine if e["_o"] <= o], course)[1]
            )
            occurred_at = max(enrollment["_o"], occurred_at)
        out[enrollment["event_id"]] = Ref(
            score, _bps(score), complete, occurred_at, received_at,
            None if passed is None else _bps(exam or 0.0), passed,
        )  # fmt: skip
    return out


def check_against_reference(
    state: EnrollmentState, out: Outputs, ref: dict[str, Ref], exact: bool = True
) -> None:
    """The state's figures per enrollment, and the last score record of each, equal the
    reference. Completions: one per enrollment, for every complete one; ``exact`` (no
    enrollment arrived after events it takes from an earlier one): for those only."""
    rule = RULES[state.course_id] if state.course_id else None
    assert set(last_scores(out)) == set(ref)
    done = completions(out)
    complete = {eid for eid, r in ref.items() if r.complete}
    assert set(done) == complete if exact else set(done) >= complete
    assert all(len(v) == 1 for v in done.values())
    for enrolled, cut in state.windows():
        expected = ref[enrolled.enrollment_id]
        assert rule is not None
        figures = state.figures(rule, cut)
        assert (figures.score, figures.score_bps, figures.complete) == (
            expected.score, expected.score_bps, expected.complete
        )  # fmt: skip
        assert (figures.exam_bps, figures.exam_passed) == (expected.exam_bps, expected.exam_passed)
        last = last_scores(out)[enrolled.enrollment_id]
        assert (last["score"], last["score_bps"], last["exam_bps"], last["exam_passed"]) == (
            expected.score, expected.score_bps, expected.exam_bps, expected.exam_passed
        )  # fmt: skip
        if expected.complete:
            assert state.completion_times(rule, enrolled, cut) == (
                expected.completed_at, expected.completed_received_at
            )  # fmt: skip


# -- the pieces ---------------------------------------------------------------------------------


def test_merge_joins_overlapping_and_touching_intervals() -> None:
    assert merge([(5, 7), (0, 2), (1, 3), (3, 4), (10, 11)]) == [(0, 4), (5, 7), (10, 11)]
    assert merge([]) == []


def test_covered_clips_to_the_video_and_counts_overlap_once() -> None:
    assert covered([(0, 50), (30, 80)], 100) == 80
    assert covered([(90, 130), (-5, 10)], 100) == 20
    assert covered([(120, 150)], 100) == 0
    assert covered([(0, 100), (0, 100), (0, 100)], 100) == 100


def test_wire_times_round_trip() -> None:
    assert ms_to_iso(iso_to_ms("2026-11-28T10:00:00.123Z")) == "2026-11-28T10:00:00.123Z"


def test_score_bps_is_exact_at_the_boundaries() -> None:
    assert 0.57 * 10_000 < 5700 and (0.1 + 0.7) * 10_000 < 8000  # float errors it must survive
    cases = {0.999999: 9999, 1.0: 10_000, 0.29: 2900, 0.57: 5700, 0.0: 0, 0.00005: 0,
             0.123456: 1234, 0.9999994: 9999, 0.9999996: 10_000, 2 / 3: 6666,
             0.1 + 0.7: 8000, 0.8 * 0.3625: 2900}  # fmt: skip
    for fraction, bps in cases.items():
        assert to_bps(fraction) == bps == _bps(fraction), fraction


def test_catalogue_rule_comes_from_the_course_record() -> None:
    rule = RULES[COURSE]
    assert [(v.video_id, v.length_s, v.required) for v in rule.videos] == [
        ("v1", 100.0, True), ("v2", 200.0, True), ("v3", 50.0, False)
    ]  # fmt: skip
    assert (rule.video_weight, rule.quiz_weight, rule.required_watch_fraction) == (0.8, 0.2, 0.9)
    assert rule.quizzes[0].pass_fraction == 0.6
    assert rule.exam_quiz_id is None
    exam = RULES[f"{COURSE}-exam"]
    assert (exam.exam_quiz_id, exam.exam_pass_fraction()) == (EXAM, 0.7)
    # an exam id without metric "exam" names no exam
    record = {**CATALOG[COURSE], "payout": {"metric": "completion", "exam_quiz_id": "q1"}}
    assert CourseRule.from_catalog(record).exam_quiz_id is None


# -- scenarios -----------------------------------------------------------------------------------


ALL = scenarios(COURSE, "u")


@pytest.mark.parametrize("scenario", ALL, ids=lambda s: s.name)
def test_scenario(scenario: Scenario) -> None:
    rule = RULES[scenario.course_id]
    state, out = run(scenario.records, rule)
    if not scenario.expected:
        assert out == []
        return
    scores, done = last_scores(out), completions(out)
    assert set(scores) == set(scenario.expected)
    for eid, expected in scenario.expected.items():
        last = scores[eid]
        assert last["score"] == pytest.approx(expected.score, abs=1e-6)
        assert last["score_bps"] == _bps(last["score"])
        assert (last["exam_bps"], last["exam_passed"]) == (expected.exam_bps, expected.exam_passed)
        if expected.complete:
            assert len(done[eid]) == 1
            assert done[eid][0]["completed_at"] == iso(expected.completed_at)  # type: ignore[arg-type]
            assert done[eid][0]["received_at"] == iso(expected.completed_received_at)  # type: ignore[arg-type]
        else:
            assert eid not in done
    # The independent reference agrees with the job, and with the scenario's expectations.
    ref = reference(scenario.records, CATALOG[scenario.course_id])
    check_against_reference(state, out, ref)
    for eid, expected in scenario.expected.items():
        assert ref[eid].score == pytest.approx(expected.score, abs=1e-6)
        assert ref[eid].complete == expected.complete


@pytest.mark.parametrize("scenario", scenarios(COURSE, "p"), ids=lambda s: s.name)
def test_any_order_and_any_repetition_give_the_same_result(scenario: Scenario) -> None:
    rule = RULES[scenario.course_id]
    reference_state, ref_out = run(scenario.records, rule)
    rng = random.Random(scenario.name)
    for _ in range(25):
        records = scenario.records + rng.choices(scenario.records, k=rng.randint(0, 5))
        rng.shuffle(records)
        state, out = run(records, rule)
        if not scenario.expected:
            assert out == []
            continue
        assert [(e, state.figures(rule, c)) for e, c in state.windows()] == [
            (e, reference_state.figures(rule, c)) for e, c in reference_state.windows()
        ]
        assert completions(out) == completions(ref_out)
        for eid, last in last_scores(out).items():
            expected = last_scores(ref_out)[eid]
            assert [last[k] for k in ("score", "score_bps", "complete", "exam_bps")] == [
                expected[k] for k in ("score", "score_bps", "complete", "exam_bps")
            ]


def test_records_follow_the_topic_models_and_keys() -> None:
    assert COMPLETION_SCORES.model is CompletionScore and COURSE_COMPLETED.model is CourseCompleted
    for topic in (COMPLETION_SCORES, COURSE_COMPLETED):
        assert topic.configs["cleanup.policy"] == "compact"
    seen = set()
    for scenario in ALL:
        _, out = run(scenario.records, RULES[scenario.course_id])
        for kind, key, value in out:
            model = CompletionScore if kind == "score" else CourseCompleted
            record = model.model_validate_json(value)
            assert key == record.enrollment_id
            seen.add(kind)
            if record.deadline_at is not None:
                assert record.payment_model == "pay_by_completion"
    assert seen == {"score", "completed"}


# -- enrollments and the money clock ------------------------------------------------------------


def by_name(name: str) -> Scenario:
    return next(s for s in scenarios(COURSE, "m") if s.name == name)


def test_a_re_enrollment_starts_from_zero() -> None:
    s = by_name("reenroll")
    rule = RULES[COURSE]
    first, second = list(s.expected)
    # in order this time: the first enrollment's journey, then the second enrollment
    ordered = sorted(s.records, key=lambda r: iso_to_ms(json.loads(r)["occurred_at"]))
    _, out = run(ordered, rule)
    scores = [json.loads(v) for kind, key, v in out if kind == "score" and key == second]
    assert scores[0]["score"] == 0.0 and scores[0]["complete"] is False
    assert scores[-1]["score"] == pytest.approx(0.8 * 50 / 300, abs=1e-6)
    assert list(completions(out)) == [first]
    assert scores[0]["enrolled_received_at"] == iso(minutes(60))


def test_events_received_before_the_first_enrollment_do_not_count() -> None:
    s = by_name("early")
    _, out = run(s.records, RULES[COURSE])
    last = last_scores(out)[s.enrollment_id]  # type: ignore[index]
    assert last["watched_fraction"] == pytest.approx(100 / 300, abs=1e-6)
    assert last["quiz_fraction"] == 0.0


def test_a_backdated_event_received_after_the_enrollment_counts() -> None:
    s = by_name("backdated")
    _, out = run(s.records, RULES[COURSE])
    (completion,) = completions(out)[s.enrollment_id]  # type: ignore[index]
    assert completion["completed_at"] == iso(minutes(0))  # not before the enrollment
    assert completion["received_at"] == iso(minutes(3))
    assert completion["enrolled_received_at"] == iso(minutes(0))


def test_events_received_after_the_deadline_change_nothing() -> None:
    s = by_name("deadline")
    rule = RULES[COURSE]
    state, out = run(s.records, rule, step=0.5)
    scores = [json.loads(v) for kind, _, v in out if kind == "score"]
    assert completions(out) == {}
    assert scores[-1]["score"] == 0.8 and scores[-1]["score_bps"] == 8000
    assert {r["deadline_at"] for r in scores} == {iso(minutes(30))}
    assert all(r["received_at"] <= iso(minutes(30)) for r in scores)
    # step 0.5 applies to other payment models, not to an enrollment whose score moves money
    assert [r["score"] for r in scores] == [0.0, round(0.8 * 100 / 300, 6), 0.533333, 0.8]
    # after the deadline: a pass, a full re-watch, even backdated, emit nothing
    more = [s.quiz(10, minutes(1), 1.0, received=minutes(40)),
            s.watch(11, minutes(1), "v3", [[0, 50]], received=minutes(31))]  # fmt: skip
    for record in more:
        assert state.apply(json.loads(record))
        assert state.outputs(rule, 0.0) == []


def test_completion_received_at_is_the_event_that_made_the_rule_true_in_any_order() -> None:
    s = by_name("outoforder")
    rule = RULES[COURSE]
    for records in (s.records, list(reversed(s.records)), sorted(s.records)):
        _, out = run(records, rule)
        (completion,) = completions(out)[s.enrollment_id]  # type: ignore[index]
        assert completion["received_at"] == iso(minutes(13))
        assert completion["completed_at"] == iso(minutes(3))


def test_exam_bps_and_exam_passed() -> None:
    rule = RULES[f"{COURSE}-exam"]
    s = by_name("exam")
    enroll, _, low, _high, _ = s.records
    _, out = run([enroll, low], rule)
    last = last_scores(out)[s.enrollment_id]  # type: ignore[index]
    assert (last["exam_bps"], last["exam_passed"], last["exam_passed_received_at"]) == (
        2900, False, None
    )  # fmt: skip
    _, out = run(s.records, rule)
    last = last_scores(out)[s.enrollment_id]  # type: ignore[index]
    assert (last["exam_bps"], last["exam_passed"]) == (7500, True)
    assert last["exam_passed_received_at"] == iso(minutes(3))
    _, out = run([enroll], rule)
    last = last_scores(out)[s.enrollment_id]  # type: ignore[index]
    assert (last["exam_bps"], last["exam_passed"]) == (0, False)  # no attempt yet
    # a course without an exam carries none
    _, out = run(by_name("seek").records, RULES[COURSE])
    assert {(r["exam_bps"], r["exam_passed"]) for r in last_scores(out).values()} == {(None, None)}


def test_score_step_suppresses_small_moves_but_not_completion() -> None:
    full = by_name("seek")
    rule = RULES[COURSE]
    _, every = run(full.records, rule, step=0.0)
    _, stepped = run(full.records, rule, step=0.5)
    assert len([o for o in stepped if o[0] == "score"]) < len([o for o in every if o[0] == "score"])
    last = [json.loads(v)["score"] for k, _, v in every if k == "score"][-1]
    assert json.loads([v for k, _, v in stepped if k == "score"][-1])["score"] == last
    assert [o for o in stepped if o[0] == "completed"] == [o for o in every if o[0] == "completed"]


def test_derived_ids_are_deterministic_and_derive_from_the_enrollment() -> None:
    scenario = by_name("seek")
    _, first = run(scenario.records, RULES[COURSE])
    _, again = run(scenario.records, RULES[COURSE])
    assert first == again
    completed = json.loads(next(v for k, _, v in first if k == "completed"))
    assert completed["completion_id"] != completed["enrollment_id"]
    assert completed["completion_id"] == str(
        uuid.uuid5(uuid.UUID("3f0b6a52-6c1e-5d8c-9a57-1c2d6e4b8f10"),
                   f"course.completed:{completed['enrollment_id']}")
    )  # fmt: skip
    other = by_name("pastend")
    score_ids = {json.loads(v)["score_id"] for k, _, v in first if k == "score"}
    others = {json.loads(v)["score_id"] for k, _, v in run(other.records, RULES[COURSE])[1]
              if k == "score"}  # fmt: skip
    assert not score_ids & others  # the same score of another enrollment is another record


# -- random journeys against the reference ---------------------------------------------------


@st.composite
def journeys(draw: Any) -> tuple[list[bytes], list[bytes]]:
    """Random events of one learner in the exam course on a grid of minutes: 1-3 enrollments
    (some pay by completion), playback and quiz reports, each received at or after it occurred.
    Returns (events, the same in the collector's order)."""
    s = Scenario("random", f"learner-h{draw(st.integers(0, 10**6))}", f"{COURSE}-exam")
    records: list[tuple[int, int, bytes]] = []
    for n in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, 40))
        deadline = draw(st.one_of(st.none(), st.integers(at + 1, at + 60)))
        until = None if deadline is None else minutes(deadline)
        enrollment = s.enroll(minutes(at), n=1000 + n, received=minutes(at), deadline=until)
        records.append((at, 0, enrollment))
    for n in range(draw(st.integers(0, 24))):
        at, lag = draw(st.integers(-10, 80)), draw(st.integers(0, 30))
        if draw(st.integers(0, 2)):
            video = draw(st.sampled_from(["v1", "v2", "v1", "v2", "v3"]))
            top = {"v1": 10, "v2": 20, "v3": 5}[video]  # the length in tens of seconds
            starts = draw(st.lists(st.integers(0, top + 2), min_size=1, max_size=3))
            segments = [[10.0 * a, 10.0 * (a + draw(st.integers(1, 12)))] for a in starts]
            if draw(st.booleans()):  # often most of the video, so that some complete
                segments.append([0.0, 10.0 * draw(st.integers(top * 9 // 10, top))])
            record = s.watch(n + 1, minutes(at), video, segments, received=minutes(at + lag))
        else:
            quiz = draw(st.sampled_from(["q1", EXAM]))
            score = draw(st.integers(0, 20)) / 20 if draw(st.booleans()) else 0.85
            record = s.quiz(n + 1, minutes(at), score, received=minutes(at + lag), quiz_id=quiz)
        records.append((at + lag, 1, record))
    in_order = [r for *_, r in sorted(records, key=lambda x: x[:2])]
    return [r for *_, r in records], in_order


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(journeys(), st.randoms(use_true_random=False))
def test_random_journeys_equal_the_reference_in_any_order(journey: Any, rng: random.Random) -> None:
    records, in_order = journey
    course = CATALOG[f"{COURSE}-exam"]
    rule = RULES[f"{COURSE}-exam"]
    ref = reference(records, course)
    shuffled = records + rng.choices(records, k=rng.randint(0, 4))
    rng.shuffle(shuffled)
    state, out = run(shuffled, rule)
    check_against_reference(state, out, ref, exact=False)
    # In the collector's order, completions are exactly the reference's, and each carries the
    # received_at of the event that made the rule true.
    state, out = run(in_order, rule)
    check_against_reference(state, out, ref)
    for eid, (completion,) in completions(out).items():
        assert completion["received_at"] == ms_to_iso(ref[eid].completed_received_at)  # type: ignore[arg-type]
