"""The table registry: every ClickHouse table the sink fills, declared once.

A :class:`Table` names its source topics, how a record is parsed (the model its topic carries in
``streams.topics``) and its columns in insert order, each with where its value comes from. The
maps the sink and the tests use (:data:`TABLE_FOR_TOPIC`, :data:`COLUMNS`,
:data:`EVENT_TYPE_FOR_TABLE`) are derived from :data:`TABLES`.

Adding an event type takes its model (``schemas/``), its topic (``streams/topics.py``), one
:func:`event_table` entry here and one migration that creates the table. The settlement tables
(completion records and contract receipts) are declared in ``settlement_tables.py``, the live-class
and immersive tables (``live_qos``, ``immersive_qos``) in ``live_tables.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from schemas import EVENT_ADAPTER, DeadLetter
from sinks.clickhouse import live_tables, rows, settlement_tables
from sinks.clickhouse.rows import Check, Pseudonymize, Row, RowError
from streams.topics import (
    BY_NAME,
    COURSE_CATALOG,
    LEARNER_DLQ,
    LEARNER_ENROLLMENTS,
    LEARNER_PLAYBACK,
    LEARNER_QOS,
    LEARNER_QUIZ,
    LEARNER_VIEWS,
    PIPELINE_METRICS,
    QOS_AGG_1M,
    RECO_METRICS,
    Topic,
)

KAFKA_COLUMNS = ("_topic", "_partition", "_offset")


@dataclass(frozen=True)
class Column:
    """One column: its name, where its value comes from (the record's attribute ``path``, or a
    function ``get`` of the record) and the check of a value the model allows but the column
    cannot hold."""

    name: str
    path: str | None = None
    get: Callable[[Any], object] | None = None
    check: Check | None = None


def col(name: str, path: str | None = None, check: Check | None = None) -> Column:
    """A column read from the attribute ``path`` (dotted; default: the column's name)."""
    path = path or name
    if not _PATH.match(path):
        raise ValueError(f"column {name}: {path!r} is not an attribute path")
    return Column(name, path=path, check=check)


def computed(name: str, get: Callable[[Any], object], check: Check | None = None) -> Column:
    return Column(name, get=get, check=check)


_PATH = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*$")

# The learner_key column: the learner id through the sink's pseudonym function.
LEARNER_KEY = Column("learner_key", path="learner_id")

RowBuilder = Callable[[Any, Pseudonymize], Row]


def _row_builder(columns: Sequence[Column]) -> RowBuilder:
    """One function that builds a table's row from a parsed record, compiled once from the
    declaration (as ``dataclasses`` compiles ``__init__``). It runs for every record the sink
    stores: a loop over column objects costs about 0.6 µs a column, the compiled list display
    a tenth of that. Only attribute paths checked by ``_PATH`` and column names (as string
    literals) go into the source; functions are passed in by name."""
    env: dict[str, Any] = {}
    items = []
    for i, column in enumerate(columns):
        if column is LEARNER_KEY:
            items.append("ps(r.learner_id)")
            continue
        if column.get is not None:
            env[f"get{i}"] = column.get
            expr = f"get{i}(r)"
        else:
            expr = f"r.{column.path}"
        if column.check is not None:
            env[f"check{i}"] = column.check
            expr = f"check{i}({expr}, {column.name!r})"
        items.append(expr)
    source = "def row(r, ps):\n    return [" + ", ".join(items) + "]\n"
    exec(compile(source, "<table row>", "exec"), env)  # noqa: S102 (source built above)
    return env["row"]  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Table:
    """One table: its name, its source topics, how a record is parsed, and its columns.

    ``parse(value, topic)`` returns the parsed record, or None for a record that makes no row
    (a replay marker on the DLQ topic). ``tombstones`` tables (compacted topics) store nothing
    for a record without a value.
    """

    name: str
    topics: tuple[Topic, ...]
    parse: Callable[[bytes, str], Any]
    columns: tuple[Column, ...]
    event_type: str | None = None
    tombstones: bool = False
    build: RowBuilder = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "build", _row_builder(self.columns))

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns] + list(KAFKA_COLUMNS)

    @property
    def has_event_id(self) -> bool:
        return any(c.name == "event_id" for c in self.columns)

    def row(self, value: bytes, topic: str, pseudonymize: Pseudonymize) -> Row | None:
        """The values of this table's columns for one record (without the Kafka columns).
        Raises pydantic's ValidationError or :class:`rows.Invalid`."""
        record = self.parse(value, topic)
        if record is None:
            return None
        return self.build(record, pseudonymize)


# --- event tables -------------------------------------------------------------------------------


def _event_parser(event_type: str) -> Callable[[bytes, str], BaseModel]:
    def parse(value: bytes, topic: str) -> BaseModel:
        event = EVENT_ADAPTER.validate_json(value)
        if event.type != event_type:
            raise rows.Invalid(f"a {event.type} event on the topic of {event_type} events")
        return event

    return parse


ENVELOPE = (
    col("event_id"),
    computed("course_id", lambda e: e.course_id or ""),
    LEARNER_KEY,
    col("occurred_at", check=rows.time),
    # Events that did not come through the collector have no received_at: occurred_at stands in.
    computed("received_at", lambda e: e.received_at or e.occurred_at, rows.time),
    col("schema_version"),
    col("session_id"),
    col("platform", "client.platform"),
    col("app_version", "client.app_version"),
    col("device", "client.device"),
    col("network_type", "client.network_type"),
    col("region", "client.region"),
    col("edge_node", "client.edge_node"),
)


def event_table(name: str, topic: Topic, columns: Sequence[Column]) -> Table:
    """A raw event table: the envelope's columns, then the event type's own."""
    assert topic.event_type is not None, topic.name
    return Table(
        name, (topic,), _event_parser(topic.event_type), (*ENVELOPE, *columns), topic.event_type
    )


def _radio(name: str) -> Column:
    return computed(name, lambda e: getattr(e.radio, name) if e.radio else None)


def _cmcd(event: Any) -> str:
    return "" if event.cmcd is None else json.dumps(event.cmcd, separators=(",", ":"))


U64 = rows.uint(64)
OPT_U64 = rows.opt_uint(64)

VIEWS = event_table(
    "views",
    LEARNER_VIEWS,
    [
        col("page"),
        computed("lesson_id", lambda e: e.lesson_id or ""),
        col("dwell_ms", check=rows.uint(32)),
    ],
)
PLAYBACK = event_table(
    "playback",
    LEARNER_PLAYBACK,
    [
        col("video_id"),
        col("verb"),
        col("time"),
        col("time_from"),
        col("time_to"),
        col("length"),
        computed("played_segments", lambda e: [(s, t) for s, t in e.played_segments]),
        col("progress"),
    ],
)
PLAYBACK_QOS = event_table(
    "playback_qos",
    LEARNER_QOS,
    [
        col("video_id"),
        col("playback_id"),
        col("report"),
        col("startup_time_ms", check=rows.opt_uint(32)),
        col("video_start_failure"),
        col("exit_before_video_start"),
        col("rebuffer_count", check=U64),
        col("rebuffer_ms", check=U64),
        col("played_ms", check=U64),
        col("avg_bitrate_kbps", check=OPT_U64),
        col("peak_bitrate_kbps", check=OPT_U64),
        col("bitrate_switches", check=U64),
        col("dropped_frames", check=U64),
        col("throughput_kbps", check=OPT_U64),
        col("rtt_ms"),
        _radio("rsrp_dbm"),
        _radio("rsrq_db"),
        _radio("sinr_db"),
        computed("cmcd", _cmcd),
    ],
)
QUIZ_RESULTS = event_table(
    "quiz_results",
    LEARNER_QUIZ,
    [
        col("quiz_id"),
        col("score"),
        col("max_score"),
        col("passed"),
        col("attempt"),
        col("duration_ms", check=U64),
    ],
)
ENROLLMENTS = event_table(
    "enrollments",
    LEARNER_ENROLLMENTS,
    [
        col("price_minor", "price.amount_minor", rows.int64),
        col("currency", "price.currency"),
        col("payment_model"),
        computed("deposit_wei", lambda e: e.escrow.deposit_wei if e.escrow else 0),
        computed("refund_address", lambda e: e.escrow.refund_address if e.escrow else ""),
        col("deadline_at", check=rows.opt_time),
    ],
)

# --- the catalogue, dead letters and derived records ---------------------------------------------


def _model_parser(topic: Topic) -> Callable[[bytes, str], BaseModel]:
    model = topic.model
    assert model is not None, topic.name
    return lambda value, _topic: model.model_validate_json(value)


COURSE_CATALOG_TABLE = Table(
    "course_catalog",
    (COURSE_CATALOG,),
    _model_parser(COURSE_CATALOG),
    (
        col("course_id"),
        col("title"),
        col("category"),
        col("level"),
        col("creator_id"),
        col("creator_address"),
        col("price_minor", "price.amount_minor", rows.int64),
        col("currency", "price.currency"),
        computed("payment_models", lambda c: list(c.payment_models)),
        computed(
            "videos", lambda c: [(v.video_id, v.title, v.length_s, v.required) for v in c.videos]
        ),
        computed(
            "quizzes",
            lambda c: [(q.quiz_id, q.title, q.required, q.pass_fraction) for q in c.quizzes],
        ),
        col("video_weight", "completion.video_weight"),
        col("quiz_weight", "completion.quiz_weight"),
        col("required_watch_fraction", "completion.required_watch_fraction"),
        col("creator_share_bps", "payout.creator_share_bps"),
        col("partial_payout", "payout.partial"),
        col("min_score", "payout.min_score"),
        col("deadline_days", "payout.deadline_days"),
        col("grace_days", "payout.grace_days"),
        col("updated_at", check=rows.time),
    ),
    tombstones=True,
)


def _dead_letter(value: bytes, topic: str) -> BaseModel | None:
    try:
        probe = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise rows.Malformed(f"malformed JSON: {exc}") from None
    if isinstance(probe, dict) and probe.get("kind") == "replayed":
        return None  # a ReplayMarker: bookkeeping for `dlq replay`, not a dead letter
    return DeadLetter.model_validate_json(value)


DLQ = Table(
    "dlq",
    (LEARNER_DLQ,),
    _dead_letter,
    (
        col("dlq_id"),
        col("received_at", check=rows.time),
        col("reason"),
        col("detail"),
        col("raw"),
        col("endpoint"),
        col("client_id"),
        computed("event_type", lambda d: d.event_type or ""),
        computed("event_id", lambda d: d.event_id or ""),
    ),
)

QOS_1M_FIELDS = (
    "window_start", "window_end", "course_id", "network_type", "region", "edge_node", "plays",
    "startup_p50_ms", "startup_p95_ms", "startup_time_sum_ms", "startups", "rebuffer_ms",
    "played_ms", "video_start_failures", "exits_before_start", "bitrate_kbps_sum",
    "bitrate_samples", "bitrate_switches", "late_events", "version",
)  # fmt: skip
QOS_1M = Table(
    "qos_1m",
    (QOS_AGG_1M,),
    _model_parser(QOS_AGG_1M),
    tuple(col(name, check=rows.time if name == "window_start" else None) for name in QOS_1M_FIELDS),
)


class _WithRaw:
    """A parsed metrics record and the JSON it came from (kept whole as ``payload``)."""

    __slots__ = ("model", "raw")

    def __init__(self, model: BaseModel, raw: bytes) -> None:
        self.model, self.raw = model, raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)


def _metrics(value: bytes, topic: str) -> _WithRaw:
    """``pipeline.metrics`` and ``reco.metrics`` records, each validated with its topic's model."""
    model = BY_NAME[topic].model
    assert model is not None
    return _WithRaw(model.model_validate_json(value), value)


PIPELINE_METRICS_TABLE = Table(
    "pipeline_metrics",
    (PIPELINE_METRICS, RECO_METRICS),
    _metrics,
    (
        col("service"),
        col("instance"),
        col("at", check=rows.time),
        col("interval_s"),
        computed("consumer_group", lambda m: getattr(m.model, "group", None) or ""),
        computed("in_per_s", lambda m: getattr(m.model, "in_per_s", 0.0)),
        computed("out_per_s", lambda m: getattr(m.model, "out_per_s", 0.0)),
        computed("lag", lambda m: getattr(m.model, "lag", None)),
        computed("payload", lambda m: m.raw.decode("utf-8")),
    ),
)


def _column(name: str, source: Any, check: Check | None) -> Column:
    """A column declared as data (``settlement_tables.ColumnSpec``)."""
    if isinstance(source, settlement_tables.LearnerKey):
        return LEARNER_KEY
    return col(name, source, check) if isinstance(source, str) else computed(name, source, check)


def _from_spec(spec: settlement_tables.TableSpec) -> Table:
    """A table declared as data in ``settlement_tables`` (records of its topic's model)."""
    columns = tuple(_column(*c) for c in spec.columns)
    parse = _model_parser(spec.topic)
    return Table(spec.name, (spec.topic,), parse, columns, tombstones=spec.tombstones)


SETTLEMENT_TABLES = tuple(_from_spec(spec) for spec in settlement_tables.SPECS)


def _event_from_spec(spec: live_tables.EventSpec) -> Table:
    """A raw event table whose own columns are declared as data in ``live_tables``."""
    return event_table(spec.name, spec.topic, [_column(*c) for c in spec.columns])


LIVE_QOS_TABLE = _event_from_spec(live_tables.LIVE_QOS_SPEC)
IMMERSIVE_QOS_TABLE = _event_from_spec(live_tables.IMMERSIVE_QOS_SPEC)

TABLES: tuple[Table, ...] = (
    VIEWS,
    PLAYBACK,
    PLAYBACK_QOS,
    QUIZ_RESULTS,
    ENROLLMENTS,
    LIVE_QOS_TABLE,
    IMMERSIVE_QOS_TABLE,
    COURSE_CATALOG_TABLE,
    DLQ,
    QOS_1M,
    PIPELINE_METRICS_TABLE,
    *SETTLEMENT_TABLES,
)

BY_TABLE: dict[str, Table] = {t.name: t for t in TABLES}
TABLE_FOR_TOPIC: dict[str, str] = {topic.name: t.name for t in TABLES for topic in t.topics}
COLUMNS: dict[str, list[str]] = {t.name: t.column_names for t in TABLES}
EVENT_TYPE_FOR_TABLE: dict[str, str] = {t.name: t.event_type for t in TABLES if t.event_type}
EVENT_TABLES: tuple[str, ...] = tuple(EVENT_TYPE_FOR_TABLE)


def convert(
    topic: str, partition: int, offset: int, value: bytes | None, pseudonymize: Pseudonymize
) -> Row | None:
    """One Kafka record as the values of one row of ``TABLE_FOR_TOPIC[topic]``, Kafka columns
    included.

    Returns ``None`` for a record that produces no row: a replay marker on ``learner.dlq`` and a
    tombstone on a compacted topic. Raises :class:`RowError` for anything else that cannot be
    converted: an unknown topic, malformed JSON, a schema-invalid record, an event of the wrong
    type for its topic, a number out of its column's range.
    """
    name = TABLE_FOR_TOPIC.get(topic)
    if name is None:
        raise RowError(topic, partition, offset, f"no ClickHouse table for topic {topic!r}")
    if not (0 <= partition < 2**16 and 0 <= offset < 2**63):
        raise RowError(topic, partition, offset, "partition or offset out of range")
    table = BY_TABLE[name]
    if value is None:
        if table.tombstones:
            return None
        raise RowError(topic, partition, offset, "empty record (no value)")
    try:
        row = table.row(value, topic, pseudonymize)
    except ValidationError as exc:
        message = f"invalid {name} record: {rows.describe(exc)}"
        raise RowError(topic, partition, offset, message, rows.dlq_reason(exc)) from exc
    except rows.Malformed as exc:
        raise RowError(topic, partition, offset, str(exc), "malformed_json") from exc
    except orjson.JSONDecodeError as exc:
        raise RowError(
            topic, partition, offset, f"malformed JSON: {exc}", "malformed_json"
        ) from exc
    except (ValueError, TypeError, AttributeError) as exc:  # Invalid, UnicodeDecodeError, …
        raise RowError(topic, partition, offset, f"invalid {name} record: {exc}") from exc
    if row is None:
        return None
    row += [topic, partition, offset]
    return row
