"""The recommendation core (jobs/reco): planted preferences, replay equal to a plain River loop,
checkpoints, and the replay command's errors."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobs.reco.core import (
    Interaction,
    ModelConfig,
    Popularity,
    Recommender,
    SignalWeights,
    biased_mf,
)
from jobs.reco.replay import Columns, ReplayError, read_interactions, replay
from learnstream.cli import app


def planted(n_users: int = 300, n_courses: int = 100, groups: int = 5, per_user: int = 40,
            seed: int = 1) -> tuple[dict[str, dict], list[Interaction]]:  # fmt: skip
    """Learners in 5 groups; each group takes its own category 80 % of the time and rates it
    4-5, other courses 1-2.5; courses are mildly popularity-skewed (Zipf 0.3) across groups."""
    rng = random.Random(seed)
    courses = {
        f"c{i}": {"category": f"cat{i % groups}", "level": "beginner"} for i in range(n_courses)
    }
    weight = {c: 1 / (k + 1) ** 0.3 for k, c in enumerate(courses)}
    users = [(f"u{u}", u % groups) for u in range(n_users)]
    stream, t = [], 0.0
    for _ in range(per_user):
        for user, group in rng.sample(users, len(users)):
            own = rng.random() < 0.8
            pool = [c for c, m in courses.items() if (m["category"] == f"cat{group}") == own]
            item = rng.choices(pool, weights=[weight[c] for c in pool])[0]
            t += 1.0
            rating = rng.uniform(4, 5) if own else rng.uniform(1, 2.5)
            stream.append(Interaction(user, item, rating, t, {"network_type": "wifi"}))
    return courses, stream


@pytest.mark.slow
def test_planted_preferences_beat_popularity_by_half_again() -> None:
    courses, stream = planted()
    model = Recommender(courses=courses, rank_every=5)
    for interaction in stream:
        model.update(interaction)
    recall = {name: m.summary()["recall_at_10"] for name, m in model.metrics.items()}
    assert model.metrics["popularity"].ranked > 2000
    assert recall["biased_mf"] >= 1.5 * recall["popularity"], recall
    assert recall["feature_fm"] >= 1.5 * recall["popularity"], recall


def ratings_csv(path: Path, n: int = 3000, seed: int = 4, shuffle_rows: bool = True) -> Path:
    rng = random.Random(seed)
    lines = ["learner,course,stars,when"]
    taste = {f"u{u}": rng.uniform(-1, 1) for u in range(60)}
    quality = {f"c{c}": rng.uniform(-1, 1) for c in range(40)}
    rows = []
    for k in range(n):
        u, c = rng.choice(list(taste)), rng.choice(list(quality))
        stars = min(5.0, max(1.0, 3 + taste[u] + quality[c] + rng.gauss(0, 0.3)))
        rows.append(f"{u},{c},{stars:.2f},{1_700_000_000 + k * 60}")
    if shuffle_rows:
        rng.shuffle(rows)
    path.write_text("\n".join(lines + rows) + "\n")
    return path


def test_replay_reproduces_a_plain_river_loop(tmp_path: Path) -> None:
    """The update path adds nothing to learning: the same BiasedMF, parameters and order in a
    plain River predict-then-learn loop give the same MAE and RMSE (within 1 %)."""
    path = ratings_csv(tmp_path / "ratings.csv")
    rows = read_interactions(path, Columns("learner", "course", "stars", "when"))
    assert [r.t for r in rows] == sorted(r.t for r in rows)  # replayed in time order
    ours = replay(rows).metrics["biased_mf"].summary()

    plain = biased_mf(ModelConfig())
    abs_err = sq_err = 0.0
    for r in rows:
        y_pred = plain.predict_one(r.user, r.item)
        abs_err += abs(r.rating - y_pred)
        sq_err += (r.rating - y_pred) ** 2
        plain.learn_one(r.user, r.item, r.rating)
    mae, rmse = abs_err / len(rows), math.sqrt(sq_err / len(rows))
    assert ours["n"] == len(rows)
    assert ours["mae"] == pytest.approx(mae, rel=0.01)
    assert ours["rmse"] == pytest.approx(rmse, rel=0.01)
    assert ours["mae"] < 0.6  # and it learned: a constant 3 would be off by about 0.8


def test_replay_command_prints_the_metrics(tmp_path: Path) -> None:
    path = ratings_csv(tmp_path / "r.csv", n=500)
    args = ["reco", "replay", str(path), "--user-col", "learner", "--item-col", "course"]
    args += ["--rating-col", "stars", "--time-col", "when", "--save", str(tmp_path / "m.pkl")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "replayed 500 interactions in time order" in result.output
    assert "biased_mf" in result.output and "Recall@10" in result.output
    model, offsets = Recommender.load(tmp_path / "m.pkl")
    assert model.updates == 500 and offsets == {}


@pytest.mark.parametrize(
    ("text", "cols", "message"),
    [
        ("a,b,c\n1,2,3\n", Columns("user", "b", "c"), "no column 'user'; the file has: a, b, c"),
        ("u,i,r\nx,y,good\n", Columns("u", "i", "r"), "row 2 has 'good'"),
        ("u,i,r,t\nx,y,3,yesterday\n", Columns("u", "i", "r", "t"), "epoch seconds or ISO-8601"),
        ("u,i,r\n,y,3\n", Columns("u", "i", "r"), "row 2 has no 'u' or 'i'"),
    ],
)
def test_replay_rejects_bad_files_with_the_fix(
    tmp_path: Path, text: str, cols: Columns, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ReplayError, match=message.replace("(", r"\(")):
        read_interactions(path, cols)


def test_replay_command_names_a_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["reco", "replay", str(tmp_path / "nope.csv")])
    flat = " ".join(result.output.replace("│", " ").split())
    assert result.exit_code == 2 and "nope.csv: no such file" in flat


def test_checkpoint_round_trip_keeps_predictions(tmp_path: Path) -> None:
    courses, stream = planted(n_users=40, per_user=10)
    model = Recommender(courses=courses)
    for interaction in stream:
        model.update(interaction)
    model.save(tmp_path / "ckpt", {"learner.views/0": 41})
    loaded, offsets = Recommender.load(tmp_path / "ckpt")
    assert offsets == {"learner.views/0": 41}
    probes = [("u1", "c3"), ("u7", "c50"), ("u39", "c99")]
    assert [loaded.mf.predict_one(u, i) for u, i in probes] == [
        model.mf.predict_one(u, i) for u, i in probes
    ]
    assert loaded.recommend("u1", 10) == model.recommend("u1", 10)


def test_new_learner_gets_popularity_and_consumed_courses_are_never_recommended() -> None:
    courses, stream = planted(n_users=20, per_user=5)
    model = Recommender(courses=courses)
    for interaction in stream:
        model.update(interaction)
    used, top = model.recommend("nobody", 5)
    assert used == "popularity" and len(top) == 5
    model.update(Interaction("u1", "c0", 5.0, 1e6, consumed=True))
    used, top = model.recommend("u1", 100)
    assert used == "biased_mf" and "c0" not in [c for c, _ in top]


def test_signal_weights_map_events_to_ratings() -> None:
    w = SignalWeights()
    assert w.rating({"type": "course_viewed", "page": "pricing"}) == 1.5
    assert w.rating({"type": "video_playback", "progress": 0.5}) == 3.0
    assert w.rating({"type": "video_playback", "verb": "completed", "progress": 1.0}) == 4.5
    assert w.rating({"type": "quiz_result", "score": 8, "max_score": 10}) == pytest.approx(4.6)
    assert w.rating({"type": "enrollment"}) == 5.0
    assert w.rating({"type": "live_qos"}) is None


def test_popularity_decays_and_survives_long_spans() -> None:
    pop = Popularity(half_life_s=10)
    pop.learn_one("old", 3, 0)
    pop.learn_one("old", 3, 1)
    pop.learn_one("new", 3, 100)
    assert pop.rank(["old", "new"]) == ["new", "old"]
    pop.learn_one("new", 3, 1e7)  # far beyond the float range of exp(rate * t): rebased
    assert pop.rank(["old", "new"]) == ["new", "old"] and all(
        map(math.isfinite, pop.scores.values())
    )
