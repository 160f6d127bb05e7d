"""The simulated course catalogue: ``build_catalog`` and the courses' ingredients (categories,
lessons, prices), and ``derived_address``, the stable checksummed address of a simulated creator
or learner."""

from __future__ import annotations

import hashlib
import math
import random
from datetime import datetime

from eth_utils import to_checksum_address

from schemas import Course, Money, PayoutPolicy, Quiz, Video
from schemas.catalog import Tranche
from streams.simulate.config import SimConfig, ms_ceil, seeded_rng

# -- addresses: EIP-55 checksummed, derived from a hash ------------------------------------------


def derived_address(key: str) -> str:
    """A stable, valid (checksummed) address for a simulated creator or learner."""
    return to_checksum_address(
        "0x" + hashlib.sha256(f"learnstream-sim/{key}".encode()).hexdigest()[:40]
    )


# -- the catalogue -------------------------------------------------------------------------------

CATEGORIES: dict[str, tuple[str, ...]] = {
    "data": ("Data Analysis with pandas", "SQL for Analysts", "Statistics Essentials"),
    "ml": ("Machine Learning Foundations", "Deep Learning in Practice", "Online Learning"),
    "web": ("Modern JavaScript", "Web APIs with FastAPI", "CSS Layout"),
    "cloud": ("Kubernetes Basics", "Streaming with Kafka", "Cloud Cost Control"),
    "security": ("Web Security Basics", "Applied Cryptography"),
    "design": ("UX Research", "Typography for Screens"),
    "business": ("Product Management", "Negotiation"),
}
LESSONS = (
    "Introduction",
    "Core ideas",
    "Hands-on",
    "Deep dive",
    "Case study",
    "Pitfalls",
    "Putting it together",
    "Wrap-up",
)
PRICES_MINOR = (1900, 2900, 4900, 7900, 9900, 14900)


# The payout policies show every settlement path in a demo of minutes: a short grace
# (``cfg.grace_s``, above the settlement sink's delay), an early-finish refund on every other
# course, and one course settled by an exam.
EARLY_BPS = 8000  # finishing within the first half of the deadline: the learner gets 20 % back


def build_catalog(cfg: SimConfig) -> list[Course]:
    """``cfg.courses`` courses. Course k depends only on (seed, k) and the config, so ids and
    contents are the same for every run with this seed; ids carry a tag of the seed so that
    seeds never collide. One exception, which keeps every prefix of a catalogue the catalogue
    of that many courses: the first course with a quiz settles on its last quiz (an exam)."""
    tag = hashlib.sha256(f"learnstream-sim/seed/{cfg.seed}".encode()).hexdigest()[:6]
    updated_at = ms_ceil(cfg.start)
    courses: list[Course] = []
    for k in range(cfg.courses):
        exam = not any(c.payout.metric == "exam" for c in courses)
        courses.append(_course(seeded_rng(cfg, "course", k), tag, k, cfg, updated_at, exam))
    return courses


def _payout(rng: random.Random, k: int, cfg: SimConfig, exam_quiz_id: str | None) -> PayoutPolicy:
    """A policy whose deadline covers the simulated one (``cfg.deadline_s``); even-numbered
    courses pay the creator less for a finish within half the deadline, which refunds the
    learner the difference."""
    deadline_days = max(30, math.ceil(cfg.deadline_s / 86_400))
    tranches = None
    if k % 2 == 0:
        tranches = [
            Tranche(within_s=max(1, math.ceil(cfg.deadline_s / 2)), bps=EARLY_BPS),
            Tranche(within_s=deadline_days * 86_400, bps=10_000),
        ]
    return PayoutPolicy(
        creator_share_bps=rng.choice((7000, 8000, 8500)),
        partial="linear" if rng.random() < 0.8 else "none",
        deadline_days=deadline_days,
        grace_s=cfg.grace_s,
        tranches=tranches,
        metric="exam" if exam_quiz_id else "completion",
        exam_quiz_id=exam_quiz_id,
    )


def _course(
    rng: random.Random, tag: str, k: int, cfg: SimConfig, updated_at: datetime, exam: bool
) -> Course:
    category = rng.choice(sorted(CATEGORIES))
    n_videos = rng.randint(2, 5)
    videos = [
        Video(
            video_id=f"video-{i + 1}",
            title=f"{i + 1}. {LESSONS[i % len(LESSONS)]}",
            length_s=round(rng.uniform(90, 900), 1),
            required=not (i == n_videos - 1 and n_videos >= 3 and rng.random() < 0.4),
        )
        for i in range(n_videos)
    ]
    quizzes = [
        Quiz(
            quiz_id=f"quiz-{j + 1}",
            title=f"Check-in {j + 1}",
            required=rng.random() < 0.85,
            pass_fraction=rng.choice((0.6, 0.7)),
        )
        for j in range(rng.choice((0, 1, 1, 2)))
    ]
    creator_id = f"creator-{tag}-{k // 2:03d}"
    models = ["one_time", "subscription", "pay_by_completion"]
    if rng.random() >= 0.3:
        models.remove("subscription")
    return Course(
        course_id=f"course-{tag}-{k + 1:03d}",
        title=rng.choice(CATEGORIES[category]),
        category=category,
        level=rng.choice(("beginner", "intermediate", "advanced")),
        creator_id=creator_id,
        creator_address=derived_address(f"creator/{creator_id}"),
        price=Money(amount_minor=rng.choice(PRICES_MINOR), currency=cfg.currency),
        payment_models=models,  # type: ignore[arg-type]
        videos=videos,
        quizzes=quizzes,
        payout=_payout(rng, k, cfg, quizzes[-1].quiz_id if exam and quizzes else None),
        updated_at=updated_at,
    )
