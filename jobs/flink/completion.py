"""Completion scores per enrollment, and each enrollment's one ``course.completed``.

- Input: ``learner.playback``, ``learner.quiz`` and ``learner.enrollments`` (read committed),
  keyed by (learner, course). ``course.catalog`` is broadcast to every instance: video lengths,
  required items, the rule, and the exam a payout policy names.
- State per key: ``jobs.completion.EnrollmentState``: every enrollment of the learner in the
  course, the reports with their ``received_at``, what was emitted per enrollment. An event
  belongs to the latest enrollment received (collector's clock) not after it; a
  pay-by-completion enrollment counts only what was received by its deadline. Also the event
  ids seen in the last ``dedup_ttl_h`` (a map state with a TTL).
- There is no lateness bound: any event counts, whenever it arrives. Each instance reads the
  catalogue to its end when it starts, then follows the broadcast. Events of a course that is
  not known yet are kept in state; the key retries every second until the course is known.
- Output: ``completion.scores`` and ``course.completed`` (both compacted), keyed by enrollment
  id, through exactly-once Kafka sinks. ``course.completed`` is emitted once per enrollment: the
  state's ``completed`` set is part of every checkpoint, and the transaction that carries the
  record commits with the checkpoint that holds it.
"""

from __future__ import annotations

import json
import pickle
from typing import Any

from jobs.completion import CourseRule, EnrollmentState
from jobs.flink.runtime import (
    RunOptions,
    flink_configuration,
    kafka_sink_options,
    kafka_source_options,
    parse_args,
    with_clause,
)
from jobs.flink.settings import JobSettings
from streams.topics import (
    COMPLETION_SCORES,
    COURSE_CATALOG,
    COURSE_COMPLETED,
    LEARNER_ENROLLMENTS,
    LEARNER_PLAYBACK,
    LEARNER_QUIZ,
)

JOB = "completion"
GROUP_ID = "learnstream-flink-completion"
TRANSACTIONAL_ID_PREFIX = "learnstream-flink-completion"
RETRY_MS = 1000


def parse_event(payload: str | None) -> tuple[str, str] | None:
    """(key, payload) of a learner event this job uses, None for anything else."""
    if not payload:
        return None
    try:
        event = json.loads(payload)
        learner, course = event["learner_id"], event["course_id"]
        if event.get("type") not in ("video_playback", "quiz_result", "enrollment"):
            return None
        if not isinstance(learner, str) or not isinstance(course, str):
            return None
    except (ValueError, KeyError, TypeError):
        return None  # the collector validated every record; this one is in the raw tables
    return f"{learner}\x1f{course}", payload


def parse_course(payload: str | None) -> tuple[str, bytes] | None:
    if not payload:
        return None  # a tombstone on the compacted topic
    try:
        rule = CourseRule.from_catalog(json.loads(payload))
    except (ValueError, KeyError, TypeError):
        return None
    return rule.course_id, pickle.dumps(rule)


def read_catalogue(bootstrap: str) -> dict[str, bytes]:
    """The catalogue as it is when the job starts (course_id -> pickled CourseRule).

    The broadcast stream and the events are separate sources, so without this an event could
    be processed before its course's broadcast record, and its score would wait for a retry
    timer, which a bounded run never fires once its input ends."""
    from streams.kafka import read_to_end

    out: dict[str, bytes] = {}
    for record in read_to_end(bootstrap, [COURSE_CATALOG.name]):
        parsed = parse_course(record.value.decode("utf-8") if record.value else None)
        if parsed is not None:
            out[parsed[0]] = parsed[1]
    return out


def build(settings: JobSettings, options: RunOptions):  # type: ignore[no-untyped-def]
    from pyflink.common import Row, Time, Types
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.datastream.functions import KeyedBroadcastProcessFunction
    from pyflink.datastream.state import MapStateDescriptor, StateTtlConfig, ValueStateDescriptor
    from pyflink.table import DataTypes, Schema, StreamTableEnvironment

    conf = flink_configuration(settings, JOB, options)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    tenv = StreamTableEnvironment.create(env)

    events_props = kafka_source_options(
        settings,
        [LEARNER_PLAYBACK.name, LEARNER_QUIZ.name, LEARNER_ENROLLMENTS.name],
        GROUP_ID,
        options,
    ) | {"format": "raw"}
    catalog_props = kafka_source_options(
        settings, [COURSE_CATALOG.name], GROUP_ID + "-catalog", options
    ) | {"format": "raw"}
    # The catalogue is always read whole: every instance needs every course.
    catalog_props["scan.startup.mode"] = "earliest-offset"
    tenv.execute_sql(
        f"CREATE TEMPORARY TABLE events (payload STRING) WITH ({with_clause(events_props)})"
    )
    tenv.execute_sql(
        f"CREATE TEMPORARY TABLE catalog (payload STRING) WITH ({with_clause(catalog_props)})"
    )
    for name, topic in (("scores", COMPLETION_SCORES.name), ("completed", COURSE_COMPLETED.name)):
        props = kafka_sink_options(
            settings,
            topic,
            f"{options.transactional_id_prefix or TRANSACTIONAL_ID_PREFIX}-{name}",
            options,
        ) | {
            "connector": "kafka",
            "key.format": "raw",
            "key.fields": "enrollment_id",
            "value.format": "raw",
            "value.fields-include": "EXCEPT_KEY",
        }
        tenv.execute_sql(
            f"CREATE TEMPORARY TABLE out_{name} (enrollment_id STRING, payload STRING) "
            f"WITH ({with_clause(props)})"
        )

    catalog_desc = MapStateDescriptor("catalog", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
    step = settings.flink.score_step
    bootstrap = settings.kafka.bootstrap_servers
    dedup_ttl_ms = int(settings.flink.dedup_ttl_h * 3600 * 1000)

    class Score(KeyedBroadcastProcessFunction):  # type: ignore[misc]
        def open(self, runtime_context: Any) -> None:
            self.state = runtime_context.get_state(
                ValueStateDescriptor("enrollment", Types.PICKLED_BYTE_ARRAY())
            )
            seen = MapStateDescriptor("seen", Types.STRING(), Types.BOOLEAN())
            seen.enable_time_to_live(
                StateTtlConfig.new_builder(Time.milliseconds(dedup_ttl_ms))
                .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
                .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                .build()
            )
            self.seen = runtime_context.get_map_state(seen)
            self.initial = read_catalogue(bootstrap)

        def _load(self) -> EnrollmentState:
            raw = self.state.value()
            return pickle.loads(raw) if raw is not None else EnrollmentState()  # noqa: S301 (our own state)

        def _emit(self, ctx: Any, state: EnrollmentState) -> list[Row]:
            raw = ctx.get_broadcast_state(catalog_desc).get(state.course_id)
            if raw is None:
                raw = self.initial.get(state.course_id)
            if raw is None:
                # The course is not in the catalogue yet: keep everything, look again shortly.
                ctx.timer_service().register_processing_time_timer(
                    ctx.timer_service().current_processing_time() + RETRY_MS
                )
                return []
            return [
                Row(kind, key, value)
                for kind, key, value in state.outputs(pickle.loads(raw), step)  # noqa: S301
            ]

        def process_element(self, value: Any, ctx: Any):  # type: ignore[no-untyped-def]
            event = json.loads(value[1])
            event_id = str(event.get("event_id"))
            if self.seen.contains(event_id):
                return
            self.seen.put(event_id, True)
            state = self._load()
            if not state.apply(event):
                return  # nothing new (a repeated segment or a worse attempt): nothing to emit
            rows = self._emit(ctx, state)
            self.state.update(pickle.dumps(state))
            yield from rows

        def process_broadcast_element(self, value: Any, ctx: Any) -> None:
            ctx.get_broadcast_state(catalog_desc).put(value[0], value[1])

        def on_timer(self, timestamp: int, ctx: Any):  # type: ignore[no-untyped-def]
            raw = self.state.value()
            if raw is None:
                return
            state = pickle.loads(raw)  # noqa: S301
            rows = self._emit(ctx, state)
            self.state.update(pickle.dumps(state))
            yield from rows

    key_type = Types.TUPLE([Types.STRING(), Types.STRING()])
    events = (
        tenv.to_data_stream(tenv.from_path("events"))
        .map(lambda row: parse_event(row[0]), output_type=Types.PICKLED_BYTE_ARRAY())
        .filter(lambda parsed: parsed is not None)
        .map(lambda parsed: parsed, output_type=key_type)
        .key_by(lambda parsed: parsed[0], key_type=Types.STRING())
    )
    catalog = (
        tenv.to_data_stream(tenv.from_path("catalog"))
        .map(lambda row: parse_course(row[0]), output_type=Types.PICKLED_BYTE_ARRAY())
        .filter(lambda parsed: parsed is not None)
        .map(
            lambda parsed: parsed,
            output_type=Types.TUPLE([Types.STRING(), Types.PICKLED_BYTE_ARRAY()]),
        )
        .broadcast(catalog_desc)
    )
    out_type = Types.ROW_NAMED(
        ["kind", "enrollment_id", "payload"], [Types.STRING(), Types.STRING(), Types.STRING()]
    )
    outputs = events.connect(catalog).process(Score(), output_type=out_type)
    tenv.create_temporary_view(
        "outputs",
        tenv.from_data_stream(
            outputs,
            Schema.new_builder()
            .column("kind", DataTypes.STRING())
            .column("enrollment_id", DataTypes.STRING())
            .column("payload", DataTypes.STRING())
            .build(),
        ),
    )
    statements = tenv.create_statement_set()
    statements.add_insert_sql(
        "INSERT INTO out_scores SELECT enrollment_id, payload FROM outputs WHERE kind = 'score'"
    )
    statements.add_insert_sql(
        "INSERT INTO out_completed SELECT enrollment_id, payload FROM outputs "
        "WHERE kind = 'completed'"
    )
    return tenv, statements


def main(argv: list[str] | None = None) -> None:
    options = parse_args(JOB, argv)
    _, statements = build(JobSettings(), options)
    statements.execute().wait()


if __name__ == "__main__":
    main()
