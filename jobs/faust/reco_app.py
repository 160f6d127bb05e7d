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
  ``reco.metrics``, and the app's health (updates/s, lag from its own positions) to
  ``pipeline.metrics``.

:func:`create_app` builds the app from its sections; importing this module creates nothing.
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
from jobs.reco.settings import RecoSettings
from schemas import format_utc
from schemas.derived import PipelineMetrics
from streams.kafka import read_to_end
from streams.settings import KafkaSettings
from streams.topics import (
    COURSE_CATALOG,
    LEARNER_ENROLLMENTS,
    LEARNER_PLAYBACK,
    LEARNER_QUIZ,
    LEARNER_VIEWS,
    PIPELINE_METRICS,
    RECO_METRICS,
)

LEARNER_ID = re.compile(r"^[^\x00-\x1f/]{1,128}$")
YEARS = 10 * 365 * 86_400.0
SERVICE = "reco"


class RecoState:
    """The models, the offsets they include, and the checkpoint file that holds both."""

    def __init__(self, reco: RecoSettings, checkpoint: Path) -> None:
        self.reco = reco
        self.checkpoint = checkpoint
        self.weights = SignalWeights(**reco.weights)
        if checkpoint.exists():
            self.model, self.offsets = Recommender.load(checkpoint)
        else:
            cfg = ModelConfig(negatives=reco.negatives)
            self.model, self.offsets = Recommender(cfg, rank_every=reco.rank_every), {}
        self.last_updates, self.last_at = self.model.updates, time.monotonic()
        self.instance = f"{os.uname().nodename}-{os.getpid()}"

    def read_catalogue(self, bootstrap_servers: str) -> None:
        """The catalogue as it is now, before any event is learned: the feature-aware model and
        the candidate set then do not depend on how the two agents' reads interleave."""
        for record in read_to_end(bootstrap_servers, [COURSE_CATALOG.name]):
            self.add_course(record.value)

    def add_course(self, value: bytes | None) -> None:
        if not value:
            return  # a tombstone
        try:
            self.model.add_course(json.loads(value))
        except (ValueError, KeyError, TypeError):
            return

    def learn(self, topic: str, partition: int, offset: int, value: bytes | None) -> None:
        key = f"{topic}/{partition}"
        if offset <= self.offsets.get(key, -1):
            return  # already in the checkpoint's models
        try:
            event = json.loads(value) if value else None
        except (ValueError, TypeError):
            event = None  # the collector validated it; nothing to learn from
        if isinstance(event, dict):
            self.model.learn_event(event, self.weights, self.reco.dedup_ttl_h * 3600, time.time())
        self.offsets[key] = offset

    def save(self) -> None:
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        self.model.save(self.checkpoint, self.offsets)

    def reports(self, group: str, highwaters: dict[str, int]) -> tuple[bytes, bytes]:
        """The ``reco.metrics`` report and the ``pipeline.metrics`` record of this interval."""
        now = time.monotonic()
        elapsed = max(1e-9, now - self.last_at)
        per_s = round((self.model.updates - self.last_updates) / elapsed, 1)
        self.last_updates, self.last_at = self.model.updates, now
        at = format_utc(datetime.now(UTC))
        quality = {
            "service": SERVICE,
            "instance": self.instance,
            "at": at,
            "interval_s": round(elapsed, 3),
            "updates": self.model.updates,
            "updates_per_s": per_s,
            "courses": len(self.model.candidates("")),
            "models": {name: m.summary() for name, m in self.model.metrics.items()},
        }
        lag = {
            key: max(0, high - self.offsets.get(key, -1) - 1) for key, high in highwaters.items()
        }
        health = PipelineMetrics(
            service=SERVICE,
            instance=self.instance,
            group=group,
            at=datetime.now(UTC),
            interval_s=round(elapsed, 3),
            in_per_s=per_s,
            out_per_s=0.0,
            lag=sum(lag.values()),
            lag_by_partition=lag,
            extra={"updates": self.model.updates, "courses": quality["courses"]},
        )
        return json.dumps(quality).encode(), health.__pydantic_serializer__.to_json(health)


def create_app(
    reco: RecoSettings,
    kafka: KafkaSettings,
    state_dir: Path,
    replication_factor: int = 1,
    partitions: int = 6,
) -> faust.App:
    """The Faust app with its agents, timers and pages. ``state_dir`` holds Faust's data folder
    and, by default, the checkpoint; nothing is created until the worker starts."""
    state = RecoState(reco, reco.checkpoint_file(state_dir))
    datadir = state_dir / "reco" / "faust"
    app = faust.App(
        reco.group_id,
        broker=";".join(f"kafka://{b}" for b in kafka.bootstrap_servers.split(",")),
        store="memory://",
        datadir=str(datadir),
        web_host=reco.host,
        web_port=reco.port,
        web_bind=reco.host,
        topic_replication_factor=replication_factor,
        topic_partitions=partitions,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=YEARS,
        broker_commit_every=2**31,
        producer_acks=-1,
    )
    app.reco_state = state  # type: ignore[attr-defined]
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    events_topic = app.topic(
        LEARNER_VIEWS.name, LEARNER_PLAYBACK.name, LEARNER_QUIZ.name, LEARNER_ENROLLMENTS.name,
        **raw,
    )  # fmt: skip
    catalog_topic = app.topic(COURSE_CATALOG.name, **raw)
    quality_topic = app.topic(RECO_METRICS.name, **raw)
    health_topic = app.topic(PIPELINE_METRICS.name, **raw)

    @app.on_worker_init.connect  # type: ignore[misc]
    def _prepare(app: faust.App, **_: Any) -> None:  # before any agent consumes
        datadir.mkdir(parents=True, exist_ok=True)
        state.read_catalogue(kafka.bootstrap_servers)

    @app.agent(events_topic)
    async def learn(stream: faust.Stream) -> None:
        async for event in stream.events():
            tp = event.message.tp
            state.learn(tp.topic, tp.partition, event.message.offset, event.value)

    @app.agent(catalog_topic)
    async def catalogue(stream: faust.Stream) -> None:
        async for value in stream:
            state.add_course(value)

    @app.timer(interval=reco.checkpoint_interval_s)
    async def checkpoint() -> None:
        state.save()

    @app.timer(interval=reco.metrics_interval_s)
    async def publish_metrics() -> None:
        assigned = [tp for tp in app.consumer.assignment() if tp.topic in events_topic.topics]
        highwaters = await app.consumer.highwaters(*assigned) if assigned else {}
        by_key = {f"{tp.topic}/{tp.partition}": high for tp, high in highwaters.items()}
        quality, health = state.reports(reco.group_id, by_key)
        await quality_topic.send(key=SERVICE.encode(), value=quality)
        await health_topic.send(key=SERVICE.encode(), value=health)

    @app.on_before_shutdown.connect  # type: ignore[misc]
    async def _final_checkpoint(app: faust.App, **_: Any) -> None:
        state.save()

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
        model, items = state.model.recommend(learner_id, k)
        return web.json({
            "learner_id": learner_id, "k": k, "model": model,
            "items": [{"course_id": c, "score": round(s, 6)} for c, s in items],
        })  # fmt: skip

    @app.page("/health")
    async def health(web: Any, request: Any) -> Any:
        return web.json({
            "updates": state.model.updates, "courses": len(state.model.courses),
            "offsets_seen": sum(o + 1 for o in state.offsets.values()),
        })  # fmt: skip

    return app


def _error(web: Any, status: int, message: str) -> Any:
    return web.json({"error": message}, status=status)
