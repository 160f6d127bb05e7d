"""The benchmark's events: realistic, valid, unique, written once to a file both sides read."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schemas import format_utc
from schemas.export import EXAMPLES_DIR

TYPES = ("course_viewed", "video_playback", "playback_qos", "quiz_result")


def write_batches(path: Path, events: int, batch_size: int, seed: int = 7) -> int:
    """JSON Lines: one line per batch (a JSON array of events). Returns the number of batches."""
    rng = random.Random(seed)  # noqa: S311 (a reproducible workload, not a secret)
    examples = {t: json.loads((EXAMPLES_DIR / f"{t}.json").read_text()) for t in TYPES}
    now = datetime.now(UTC)
    batches = 0
    with path.open("w") as out:
        for start in range(0, events, batch_size):
            batch = []
            for i in range(start, min(events, start + batch_size)):
                event = dict(examples[TYPES[i % len(TYPES)]])
                event["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                event["learner_id"] = f"learner-{rng.randrange(5000)}"
                event["occurred_at"] = format_utc(now - timedelta(seconds=rng.randrange(600)))
                batch.append(event)
            out.write(json.dumps(batch) + "\n")
            batches += 1
    return batches
