"""The recommendation app: a faust-streaming worker that learns from every learner event and
serves top-k courses over HTTP (``learnstream jobs run reco``; docs/reco.md).

- **Learning.** One agent reads ``learner.views``, ``learner.playback``, ``learner.quiz`` and
  ``learner.enrollments``; each event goes through ``Recommender.learn_event`` (dedup by
  ``event_id``, then progressive validation, then every model learns it). ``course.catalog``
  feeds the feature-aware model.
- **Checkpoints.** Every ``checkpoint_interval_s``, and at shutdown, the models are written
  with the offset of the last event they include, per partition. On start the app loads the
  checkpoint and skips every event at or before those offsets. Faust's own offset commits are
  pushed out of the way (a commit interval of years): the checkpoint is the only record of
  progress, so a crash between a commit and a checkpoint cannot lose learned state, and no event
  is learned twice beyond the checkpoint's offsets. The consumer restarts from the earliest
  offset and skips what the checkpoint holds.
- **Serving.** ``GET /recommendations/{learner_id}?k=10``.
- **Metrics.** Every ``metrics_interval_s`` each model's progressive metrics go to
  ``reco.metrics``.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faust

from jobs.reco.core import ModelConfig, Recommender, SignalWeights
from learnstream.settings import get_settings
from streams.topics import (
    COURSE_CATALOG,
    LEARNER_ENROLLMENTS,
    LEARNER_PLAYBACK,
    LEARNER_QUIZ,
    LEARNER_VIEWS,
    RECO_METRICS,
)

settings = get_settings()
reco = settings.reco
CHECKPOINT = reco.checkpoint_path or settings.stack.state_dir / "reco" / "checkpoint.pkl"
LEARNER_ID = re.compile(r"^[^\x00-\x1f/]{1,128}$")
YEARS = 10 * 365 * 86_400.0

(settings.stack.state_dir / "reco" / "faust").mkdir(parents=True, exist_ok=True)
app = faust.App(
    reco.group_id,
    broker=";".join(f"kafka://{b}" for b in settings.kafka.bootstrap_servers.split(",")),
    store="memory://",
    datadir=str(settings.stack.state_dir / "reco" / "faust"),
    web_host=reco.host,
    web_port=reco.port,
    web_bind=reco.host,
    topic_replication_factor=settings.topics.replication_factor,
    topic_partitions=settings.topics.partitions,
    consumer_auto_offset_reset="earliest",
    broker_commit_interval=YEARS,
    broker_commit_every=2**31,
    producer_acks=-1,
)
events_topic = app.topic(
    LEARNER_VIEWS.name, LEARNER_PLAYBACK.name, LEARNER_QUIZ.name, LEARNER_ENROLLMENTS.name,
    key_serializer="raw", value_serializer="raw",
)  # fmt: skip
catalog_topic = app.topic(COURSE_CATALOG.name, key_serializer="raw", value_serializer="raw")
metrics_topic = app.topic(RECO_METRICS.name, key_serializer="raw", value_serializer="raw")

WEIGHTS = SignalWeights(**reco.weights)


def _load() -> tuple[Recommender, dict[str, int]]:
    if CHECKPOINT.exists():
        return Recommender.load(CHECKPOINT)
    cfg = ModelConfig(negatives=reco.negatives)
    return Recommender(cfg, rank_every=reco.rank_every), {}


def _read_catalogue(model: Recommender) -> None:
    """The catalogue as it is now, before any event is learned: the feature-aware model and
    the candidate set then do not depend on how the two agents' reads interleave."""
    from streams.kafka import read_to_end

    for record in read_to_end(settings.kafka.bootstrap_servers, [COURSE_CATALOG.name]):
        if record.value:
            try:
                model.add_course(json.loads(record.value))
            except (ValueError, KeyError, TypeError):
                continue


MODEL, OFFSETS = _load()
_read_catalogue(MODEL)
STARTED = time.monotonic()
LAST = {"updates": MODEL.updates, "at": time.monotonic()}


def save_checkpoint() -> None:
    CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
    MODEL.save(CHECKPOINT, OFFSETS)


@app.agent(events_topic)
async def learn(stream: faust.Stream) -> None:
    async for event in stream.events():
        tp = event.message.tp
        key = f"{tp.topic}/{tp.partition}"
        offset = event.message.offset
        if offset <= OFFSETS.get(key, -1):
            continue  # already in the checkpoint's models
        try:
            value = json.loads(event.value)
        except (ValueError, TypeError):
            value = None  # the collector validated it; nothing to learn from
        if isinstance(value, dict):
            MODEL.learn_event(value, WEIGHTS, reco.dedup_ttl_h * 3600, time.time())
        OFFSETS[key] = offset


@app.agent(catalog_topic)
async def catalogue(stream: faust.Stream) -> None:
    async for value in stream:
        if not value:
            continue  # a tombstone
        try:
            MODEL.add_course(json.loads(value))
        except (ValueError, KeyError, TypeError):
            continue


@app.timer(interval=reco.checkpoint_interval_s)
async def checkpoint() -> None:
    save_checkpoint()


@app.timer(interval=reco.metrics_interval_s)
async def publish_metrics() -> None:
    now = time.monotonic()
    elapsed = max(1e-9, now - LAST["at"])
    report = {
        "service": "reco",
        "instance": f"{os.uname().nodename}-{os.getpid()}",
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "interval_s": round(elapsed, 3),
        "updates": MODEL.updates,
        "updates_per_s": round((MODEL.updates - LAST["updates"]) / elapsed, 1),
        "courses": len(MODEL.candidates("")),
        "models": {name: m.summary() for name, m in MODEL.metrics.items()},
    }
    LAST.update(updates=MODEL.updates, at=now)
    await metrics_topic.send(key=b"reco", value=json.dumps(report).encode())


@app.on_before_shutdown.connect  # type: ignore[misc]
async def _final_checkpoint(app: faust.App, **_: Any) -> None:
    save_checkpoint()


@app.page("/recommendations/{learner_id}")
async def recommendations(web: Any, request: Any, learner_id: str) -> Any:
    if not LEARNER_ID.match(learner_id):
        return _error(
            web, 400, "learner_id must be 1-128 characters without '/' or control characters"
        )
    raw_k = request.query.get("k", "10")
    try:
        k = int(raw_k)
    except ValueError:
        return _error(web, 422, f"k must be an integer from 1 to 100, not {raw_k!r}")
    if not 1 <= k <= 100:
        return _error(web, 422, f"k must be from 1 to 100, not {k}")
    model, items = MODEL.recommend(learner_id, k)
    return web.json({
        "learner_id": learner_id, "k": k, "model": model,
        "items": [{"course_id": c, "score": round(s, 6)} for c, s in items],
    })  # fmt: skip


@app.page("/health")
async def health(web: Any, request: Any) -> Any:
    return web.json({
        "updates": MODEL.updates, "courses": len(MODEL.courses),
        "offsets_seen": sum(o + 1 for o in OFFSETS.values()),
    })  # fmt: skip


def _error(web: Any, status: int, message: str) -> Any:
    return web.json({"error": message}, status=status)


def checkpoint_path() -> Path:
    return CHECKPOINT
