"""The completion rule itself (jobs/completion.py), without Flink: interval union, scenarios,
and invariance under reordering and repetition."""

from __future__ import annotations

import json
import random

import pytest

from jobs.completion import CourseRule, EnrollmentState, covered, iso_to_ms, merge, ms_to_iso
from schemas import to_wire
from tests.completion_scenarios import course, scenarios


def run(records: list[bytes], rule: CourseRule, step: float = 0.0) -> tuple[EnrollmentState, list]:
    state = EnrollmentState()
    out = []
    for record in records:
        state.apply(json.loads(record))
        out += state.outputs(rule, step)
    return state, out


@pytest.fixture(scope="module")
def rule() -> CourseRule:
    return CourseRule.from_catalog(json.loads(to_wire(course("course-unit"))))


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


def test_catalogue_rule_comes_from_the_course_record(rule: CourseRule) -> None:
    assert [(v.video_id, v.length_s, v.required) for v in rule.videos] == [
        ("v1", 100.0, True), ("v2", 200.0, True), ("v3", 50.0, False)
    ]  # fmt: skip
    assert (rule.video_weight, rule.quiz_weight, rule.required_watch_fraction) == (0.8, 0.2, 0.9)
    assert rule.quizzes[0].pass_fraction == 0.6


@pytest.mark.parametrize("scenario", scenarios("course-unit", "u"), ids=lambda s: s.name)
def test_scenario(scenario, rule: CourseRule) -> None:  # type: ignore[no-untyped-def]
    _, out = run(scenario.records, rule)
    scores = [json.loads(v) for kind, _, v in out if kind == "score"]
    completed = [json.loads(v) for kind, _, v in out if kind == "completed"]
    if scenario.expected_score is None:
        assert out == []
        return
    assert scores[-1]["score"] == pytest.approx(scenario.expected_score, abs=1e-6)
    assert {s["enrollment_id"] for s in scores} == {scenario.enrollment_id}
    if scenario.expected_complete:
        assert len(completed) == 1
        assert completed[0]["enrollment_id"] == scenario.enrollment_id
        assert completed[0]["completed_at"] == ms_to_iso(
            round(scenario.expected_completed_at.timestamp() * 1000)
        )
    else:
        assert completed == []


@pytest.mark.parametrize("scenario", scenarios("course-unit", "p"), ids=lambda s: s.name)
def test_any_order_and_any_repetition_give_the_same_result(scenario, rule: CourseRule) -> None:  # type: ignore[no-untyped-def]
    reference, ref_out = run(scenario.records, rule)
    rng = random.Random(scenario.name)
    for _ in range(25):
        records = scenario.records + rng.choices(scenario.records, k=rng.randint(0, 5))
        rng.shuffle(records)
        state, out = run(records, rule)
        if scenario.expected_score is None:
            assert out == []
            continue
        assert state.figures(rule) == reference.figures(rule)
        completions = [v for kind, _, v in out if kind == "completed"]
        assert completions == [v for kind, _, v in ref_out if kind == "completed"]


def test_score_step_suppresses_small_moves_but_not_completion(rule: CourseRule) -> None:
    full = next(s for s in scenarios("course-unit", "s") if s.name == "seek")
    _, every = run(full.records, rule, step=0.0)
    _, stepped = run(full.records, rule, step=0.5)
    assert len([o for o in stepped if o[0] == "score"]) < len([o for o in every if o[0] == "score"])
    last = [json.loads(v)["score"] for k, _, v in every if k == "score"][-1]
    assert json.loads([v for k, _, v in stepped if k == "score"][-1])["score"] == last
    assert [o for o in stepped if o[0] == "completed"] == [o for o in every if o[0] == "completed"]


def test_derived_ids_are_deterministic(rule: CourseRule) -> None:
    scenario = next(s for s in scenarios("course-unit", "d") if s.name == "seek")
    _, first = run(scenario.records, rule)
    _, again = run(scenario.records, rule)
    assert first == again
    completed = json.loads(next(v for k, _, v in first if k == "completed"))
    assert completed["completion_id"] != completed["enrollment_id"]
