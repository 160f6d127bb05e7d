"""Online recommendations: the preference signal, the models, progressive validation, and the
one update path that the Faust agent and ``learnstream reco replay`` both use.

Every interaction is scored by every model *before* the models learn from it (progressive
validation), so the metrics are honest: a model is never evaluated on what it has seen.
"""

from __future__ import annotations

import math
import os
import pickle
import random
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from river import facto, optim, reco


@dataclass(frozen=True)
class SignalWeights:
    """How learner events become a preference rating on a 1..5 scale (docs/reco.md).

    - ``course_viewed``: ``view`` (1.0), plus ``view_intent`` (0.5) on the syllabus or pricing.
    - ``video_playback``: ``watch_base`` + ``watch_progress`` x progress (2 + 2 x progress),
      plus ``video_completed`` (0.5) when the verb is ``completed``; at most 5.
    - ``quiz_result``: ``quiz_base`` + ``quiz_score`` x score / max_score (3 + 2 x fraction).
    - ``enrollment`` (a purchase): ``purchase`` (5.0).
    """

    view: float = 1.0
    view_intent: float = 0.5
    watch_base: float = 2.0
    watch_progress: float = 2.0
    video_completed: float = 0.5
    quiz_base: float = 3.0
    quiz_score: float = 2.0
    purchase: float = 5.0

    def rating(self, event: dict[str, Any]) -> float | None:
        kind = event.get("type")
        if kind == "course_viewed":
            intent = self.view_intent if event.get("page") in ("syllabus", "pricing") else 0.0
            return self.view + intent
        if kind == "video_playback":
            done = self.video_completed if event.get("verb") == "completed" else 0.0
            progress = float(event.get("progress") or 0.0)
            return min(5.0, self.watch_base + self.watch_progress * progress + done)
        if kind == "quiz_result":
            return self.quiz_base + self.quiz_score * float(event["score"]) / float(
                event["max_score"]
            )
        if kind == "enrollment":
            return self.purchase
        return None


@dataclass(frozen=True)
class Interaction:
    """One learner-course interaction, whatever its source (a Kafka event or a CSV row)."""

    user: str
    item: str
    rating: float
    t: float = 0.0  # seconds, for recency
    context: dict[str, Any] = field(default_factory=dict)  # network_type, device, ...
    consumed: bool = False  # bought or completed: never recommended again


def interaction_from_event(event: dict[str, Any], weights: SignalWeights) -> Interaction | None:
    """A learner event (wire format) as an interaction, or None when it has no signal."""
    rating = weights.rating(event)
    if rating is None or not event.get("learner_id") or not event.get("course_id"):
        return None
    client = event.get("client") or {}
    at = str(event.get("occurred_at", ""))
    try:
        t = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    except ValueError:
        t = 0.0
    return Interaction(
        user=str(event["learner_id"]),
        item=str(event["course_id"]),
        rating=rating,
        t=t,
        context={"network_type": client.get("network_type"), "device": client.get("device")},
        consumed=event.get("type") == "enrollment",
    )


class Popularity:
    """Exponentially decayed interaction counts per course (half-life ``half_life_s``): the
    baseline, and the ranking for learners with no history.

    Scores are stored scaled to a reference time, so that an interaction updates one course
    and nothing else decays explicitly; the reference moves forward before the scale overflows.
    """

    def __init__(self, half_life_s: float = 7 * 86_400) -> None:
        self.rate = math.log(2) / half_life_s
        self.scores: dict[str, float] = defaultdict(float)
        self.reference: float | None = None
        self.mean_rating = 0.0
        self.n = 0

    def learn_one(self, item: str, rating: float, t: float) -> None:
        if self.reference is None:
            self.reference = t
        exponent = self.rate * (t - self.reference)
        if exponent > 500:  # rebase: divide every score by the same factor (order unchanged)
            factor = math.exp(-exponent)
            for key in self.scores:
                self.scores[key] *= factor
            self.reference, exponent = t, 0.0
        self.scores[item] += math.exp(exponent)
        self.n += 1
        self.mean_rating += (rating - self.mean_rating) / self.n

    def predict_one(self, item: str) -> float:
        return self.mean_rating

    def rank(self, items: list[str]) -> list[str]:
        return sorted(items, key=lambda i: (-self.scores.get(i, 0.0), i))


def fm_features(
    user: str, item: str, context: dict[str, Any], course: dict[str, Any]
) -> dict[str, float]:
    """One-hot learner, course, course category/level, network, device, and the crossing of
    the network with video-heavy courses (poor networks and long videos do not mix)."""
    x = {f"user={user}": 1.0, f"item={item}": 1.0}
    if course:
        x[f"category={course.get('category')}"] = 1.0
        x[f"level={course.get('level')}"] = 1.0
    network = context.get("network_type")
    if network:
        x[f"network={network}"] = 1.0
        if course.get("video_heavy"):
            x[f"video_heavy_on={network}"] = 1.0
    if context.get("device"):
        x[f"device={context['device']}"] = 1.0
    return x


@dataclass
class ModelConfig:
    n_factors: int = 10
    lr_bias: float = 0.025
    lr_latent: float = 0.05
    l2_bias: float = 0.001
    l2_latent: float = 0.001
    fm_factors: int = 8
    fm_lr: float = 0.01
    half_life_s: float = 7 * 86_400
    # Implicit feedback: after each interaction, this many courses the learner has not consumed
    # (drawn uniformly from those seen) are learned as `negative_rating`. Without them a model
    # trained on ratings only ranks by how much a course would be liked, not by whether the
    # learner would take it. 0 for explicit ratings (reco replay of a ratings file).
    negatives: int = 2
    negative_rating: float = 0.0
    seed: int = 42


def biased_mf(cfg: ModelConfig) -> reco.BiasedMF:
    return reco.BiasedMF(
        n_factors=cfg.n_factors,
        bias_optimizer=optim.SGD(cfg.lr_bias),
        latent_optimizer=optim.SGD(cfg.lr_latent),
        l2_bias=cfg.l2_bias,
        l2_latent=cfg.l2_latent,
        weight_initializer=optim.initializers.Zeros(),
        latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=cfg.seed),
        seed=cfg.seed,
    )


def fm_regressor(cfg: ModelConfig) -> facto.FMRegressor:
    return facto.FMRegressor(
        n_factors=cfg.fm_factors,
        weight_optimizer=optim.SGD(cfg.fm_lr),
        latent_optimizer=optim.SGD(cfg.fm_lr),
        intercept=3.0,
        l2_weight=0.001,
        l2_latent=0.001,
        latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.05, seed=cfg.seed),
        seed=cfg.seed,
    )


@dataclass
class Metrics:
    """Progressive-validation metrics of one model."""

    n: int = 0
    abs_err: float = 0.0
    sq_err: float = 0.0
    ranked: int = 0
    hits: int = 0
    ndcg: float = 0.0

    def rating(self, y: float, y_pred: float) -> None:
        self.n += 1
        self.abs_err += abs(y - y_pred)
        self.sq_err += (y - y_pred) ** 2

    def ranking(self, item: str, top: list[str]) -> None:
        self.ranked += 1
        if item in top:
            self.hits += 1
            self.ndcg += 1.0 / math.log2(top.index(item) + 2)

    def summary(self) -> dict[str, float]:
        return {
            "n": self.n,
            "mae": self.abs_err / self.n if self.n else 0.0,
            "rmse": math.sqrt(self.sq_err / self.n) if self.n else 0.0,
            "ranked": self.ranked,
            "recall_at_10": self.hits / self.ranked if self.ranked else 0.0,
            "ndcg_at_10": self.ndcg / self.ranked if self.ranked else 0.0,
        }


MODELS = ("biased_mf", "feature_fm", "popularity")


class Recommender:
    """The three models, their metrics, and what each learner already consumed.

    ``update`` is the only way in: score the interaction with every model (progressive
    validation; ranking sampled every ``rank_every``-th interaction), then learn it.
    """

    def __init__(
        self,
        cfg: ModelConfig | None = None,
        courses: dict[str, dict[str, Any]] | None = None,
        rank_every: int = 10,
        k: int = 10,
        rank_sample: int = 100,
    ) -> None:
        self.cfg = cfg or ModelConfig()
        self.courses: dict[str, dict[str, Any]] = dict(courses or {})
        self.mf = biased_mf(self.cfg)
        self.fm = fm_regressor(self.cfg)
        self.pop = Popularity(self.cfg.half_life_s)
        self.metrics = {name: Metrics() for name in MODELS}
        self.consumed: dict[str, set[str]] = defaultdict(set)
        self.seen_items: dict[str, None] = {}  # insertion-ordered set of every course seen
        self.rank_every = rank_every
        self.rank_sample = rank_sample
        self.k = k
        self.updates = 0
        self.seen_events: OrderedDict[str, float] = OrderedDict()  # event_id -> when learned
        self._sample = random.Random(self.cfg.seed)  # noqa: S311 (sampling, not secrets)

    # -- learning ------------------------------------------------------------------------------

    def update(self, it: Interaction, validate: bool = True) -> None:
        course = self.courses.get(it.item, {})
        x = fm_features(it.user, it.item, it.context, course)
        if validate:
            self.metrics["biased_mf"].rating(it.rating, self.mf.predict_one(it.user, it.item))
            self.metrics["feature_fm"].rating(it.rating, self.fm.predict_one(x))
            self.metrics["popularity"].rating(it.rating, self.pop.predict_one(it.item))
            if (
                self.rank_every
                and self.updates % self.rank_every == 0
                and len(self.seen_items) > self.k
            ):
                candidates = self.candidates(it.user)
                if len(candidates) > self.rank_sample:
                    # sampled metrics: the course taken among rank_sample - 1 others, so that a
                    # large catalogue does not make validation the most expensive step
                    others = [c for c in candidates if c != it.item]
                    candidates = [it.item, *self._sample.sample(others, self.rank_sample - 1)]
                for name in MODELS:
                    self.metrics[name].ranking(
                        it.item, self.top(name, it.user, candidates, it.context)
                    )
        self.mf.learn_one(it.user, it.item, it.rating)
        self.fm.learn_one(x, it.rating)
        if self.cfg.negatives and len(self.seen_items) > 1:
            items = list(self.seen_items)
            for _ in range(self.cfg.negatives):
                other = items[self._sample.randrange(len(items))]
                if other == it.item or other in self.consumed.get(it.user, ()):
                    continue
                y0 = self.cfg.negative_rating
                self.mf.learn_one(it.user, other, y0)
                ctx = fm_features(it.user, other, it.context, self.courses.get(other, {}))
                self.fm.learn_one(ctx, y0)
        self.pop.learn_one(it.item, it.rating, it.t)
        self.seen_items.setdefault(it.item, None)
        if it.consumed:
            self.consumed[it.user].add(it.item)
        self.updates += 1

    def learn_event(
        self, event: dict[str, Any], weights: SignalWeights, dedup_ttl_s: float, now: float
    ) -> bool:
        """A learner event from Kafka, through :meth:`update`: dropped when its ``event_id`` was
        learned in the last ``dedup_ttl_s``, or when it carries no preference signal. Returns
        whether the models learned it."""
        while self.seen_events:
            oldest, at = next(iter(self.seen_events.items()))
            if at >= now - dedup_ttl_s:
                break
            del self.seen_events[oldest]
        event_id = str(event.get("event_id", ""))
        if not event_id or event_id in self.seen_events:
            return False
        it = interaction_from_event(event, weights)
        if it is None:
            return False
        self.seen_events[event_id] = now
        self.update(it)
        return True

    def add_course(self, record: dict[str, Any]) -> None:
        """A ``course.catalog`` record: what the feature-aware model knows of a course."""
        videos = record.get("videos") or []
        self.courses[record["course_id"]] = {
            "category": record.get("category"),
            "level": record.get("level"),
            # more than an hour of video: what poor networks make hard
            "video_heavy": sum(float(v.get("length_s", 0)) for v in videos) > 3600,
        }

    # -- serving -------------------------------------------------------------------------------

    def candidates(self, user: str) -> list[str]:
        catalogue = self.courses.keys() if self.courses else self.seen_items.keys()
        done = self.consumed.get(user, set())
        return [c for c in catalogue if c not in done]

    def top(
        self, model: str, user: str, candidates: list[str], context: dict[str, Any] | None = None
    ) -> list[str]:
        return [item for item, _ in self.scored(model, user, candidates, context)[: self.k]]

    def scored(
        self, model: str, user: str, candidates: list[str], context: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        if model == "popularity":
            ranked = self.pop.rank(candidates)
            return [(item, self.pop.scores.get(item, 0.0)) for item in ranked]
        if model == "biased_mf":
            scores = [(item, self.mf.predict_one(user, item)) for item in candidates]
        else:
            ctx = context or {}
            scores = [
                (
                    item,
                    self.fm.predict_one(fm_features(user, item, ctx, self.courses.get(item, {}))),
                )
                for item in candidates
            ]
        return sorted(scores, key=lambda s: (-s[1], s[0]))

    def recommend(
        self, user: str, k: int, model: str = "biased_mf"
    ) -> tuple[str, list[tuple[str, float]]]:
        """(model used, [(course, score)]): popularity for a learner with no history."""
        if user not in self.mf.u_biases:
            model = "popularity"
        candidates = self.candidates(user)
        return model, self.scored(model, user, candidates)[:k]

    # -- checkpoints ---------------------------------------------------------------------------

    def save(self, path: Path, offsets: dict[str, int]) -> None:
        """Models and the Kafka offsets they include, atomically (write, fsync, rename)."""
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump({"recommender": self, "offsets": dict(offsets)}, f, protocol=5)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> tuple[Recommender, dict[str, int]]:
        with open(path, "rb") as f:
            data = pickle.load(f)  # noqa: S301 (our own checkpoint file)
        return data["recommender"], data["offsets"]
