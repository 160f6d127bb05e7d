"""Playback QoS per minute: course x network type x region x edge node, on event time.

Everything runs in Flink SQL, in the JVM (no Python function touches a record):

1. ``learner.qos`` is read as JSON; minutes are those of ``occurred_at`` (event time). An event
   is *late* when it is older, by more than the allowed lateness (2 minutes by default), than
   the newest event of its Kafka partition before it.
2. Session reports only (``report = 'session'``; CMCD samples describe moments, not sessions).
3. Repeats of an ``event_id`` are dropped (keep-first deduplication, state kept
   ``dedup_ttl_h``).
4. One continuously updated aggregate per minute key. Late events change no figure: they are
   only counted (``late_events``). Every accepted or late event raises ``version``, the number
   of distinct events the row has seen, so a later row for the same key always carries a higher
   version and replaces the earlier one (``qos_1m`` is a ReplacingMergeTree on the key).
5. Results go to ``qos.agg.1m`` through an exactly-once upsert-Kafka sink keyed by the window
   key; the sink buffers updates, so each key is written at most once per flush.

Startup time p50/p95 are exact: Flink's ``PERCENTILE`` keeps each distinct startup time of the
minute with its count and interpolates linearly between the two closest ranks, the same
definition as pandas' ``Series.quantile`` and ClickHouse's ``quantileExactInclusive``.
"""

from __future__ import annotations

from jobs.flink.runtime import (
    RunOptions,
    flink_configuration,
    kafka_sink_options,
    kafka_source_options,
    parse_args,
    with_clause,
)
from jobs.flink.settings import JobSettings
from streams.topics import LEARNER_QOS, QOS_AGG_1M

JOB = "qos"
GROUP_ID = "learnstream-flink-qos"
TRANSACTIONAL_ID_PREFIX = "learnstream-flink-qos"


def source_ddl(settings: JobSettings, options: RunOptions) -> str:
    props = kafka_source_options(settings, [LEARNER_QOS.name], GROUP_ID, options)
    props |= {
        "format": "json",
        "json.timestamp-format.standard": "ISO-8601",
        "json.fail-on-missing-field": "false",
        # Every record on learner.qos passed the collector's schema check; a record that still
        # does not parse is skipped here rather than stopping the job (it is in the raw table).
        "json.ignore-parse-errors": "true",
    }
    return f"""
CREATE TEMPORARY TABLE qos_events (
  event_id STRING,
  occurred_at TIMESTAMP_LTZ(3),
  course_id STRING,
  report STRING,
  client ROW<network_type STRING, region STRING, edge_node STRING>,
  startup_time_ms BIGINT,
  video_start_failure BOOLEAN,
  exit_before_video_start BOOLEAN,
  rebuffer_ms BIGINT,
  played_ms BIGINT,
  avg_bitrate_kbps BIGINT,
  bitrate_switches BIGINT,
  kafka_partition INT METADATA FROM 'partition' VIRTUAL,
  seen_at AS PROCTIME()
) WITH (
  {with_clause(props)}
)"""


def sink_ddl(settings: JobSettings, options: RunOptions) -> str:
    prefix = options.transactional_id_prefix or TRANSACTIONAL_ID_PREFIX
    props = kafka_sink_options(settings, QOS_AGG_1M.name, prefix, options)
    props |= {
        "connector": "upsert-kafka",
        "key.format": "json",
        "value.format": "json",
        "value.json.timestamp-format.standard": "ISO-8601",
        "key.json.timestamp-format.standard": "ISO-8601",
        "value.fields-include": "ALL",
        "sink.buffer-flush.max-rows": "10000",
        "sink.buffer-flush.interval": "1 s",
    }
    return f"""
CREATE TEMPORARY TABLE qos_agg_1m (
  window_start TIMESTAMP_LTZ(3),
  course_id STRING,
  network_type STRING,
  region STRING,
  edge_node STRING,
  window_end TIMESTAMP_LTZ(3),
  plays BIGINT,
  startup_p50_ms DOUBLE,
  startup_p95_ms DOUBLE,
  startup_time_sum_ms BIGINT,
  startups BIGINT,
  rebuffer_ms BIGINT,
  played_ms BIGINT,
  video_start_failures BIGINT,
  exits_before_start BIGINT,
  bitrate_kbps_sum BIGINT,
  bitrate_samples BIGINT,
  bitrate_switches BIGINT,
  late_events BIGINT,
  version BIGINT,
  PRIMARY KEY (window_start, course_id, network_type, region, edge_node) NOT ENFORCED
) WITH (
  {with_clause(props)}
)"""


# Lateness is judged per Kafka partition, in offset order: an event is late when it is older,
# by more than the allowed lateness, than the newest event its partition delivered before it.
# Partition order is fixed, so a replay or a catch-up from the earliest offset classifies every
# event exactly as the live run did (a watermark merged across partitions would depend on how
# the reads of the partitions interleave).
NEWEST = """
CREATE TEMPORARY VIEW qos_newest AS
SELECT
  event_id, occurred_at, seen_at, course_id,
  COALESCE(client.network_type, 'unknown') AS network_type,
  COALESCE(client.region, 'unknown') AS region,
  COALESCE(client.edge_node, 'unknown') AS edge_node,
  startup_time_ms,
  COALESCE(video_start_failure, FALSE) AS video_start_failure,
  COALESCE(exit_before_video_start, FALSE) AS exit_before_video_start,
  COALESCE(rebuffer_ms, 0) AS rebuffer_ms,
  COALESCE(played_ms, 0) AS played_ms,
  avg_bitrate_kbps,
  COALESCE(bitrate_switches, 0) AS bitrate_switches,
  MAX(occurred_at) OVER (
    PARTITION BY kafka_partition ORDER BY seen_at
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
  ) AS newest
FROM qos_events
WHERE event_id IS NOT NULL AND occurred_at IS NOT NULL AND course_id IS NOT NULL
  AND report = 'session'
"""

MARKED = """
CREATE TEMPORARY VIEW qos_marked AS
SELECT *, occurred_at < newest - INTERVAL '0.001' SECOND * {lateness_ms} AS late
FROM qos_newest
"""

DEDUPLICATED = """
CREATE TEMPORARY VIEW qos_unique AS
SELECT * FROM (
  SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY seen_at ASC) AS nth
  FROM qos_marked
) WHERE nth = 1
"""

# Only on-time events count in the figures; every distinct event raises the version.
AGGREGATE = """
INSERT INTO qos_agg_1m
SELECT
  window_start, course_id, network_type, region, edge_node, window_end, plays,
  startup_pct[1] AS startup_p50_ms, startup_pct[2] AS startup_p95_ms,
  startup_time_sum_ms, startups, rebuffer_ms, played_ms, video_start_failures,
  exits_before_start, bitrate_kbps_sum, bitrate_samples, bitrate_switches, late_events, version
FROM (
  SELECT /*+ STATE_TTL('u' = '{window_ttl}') */
    window_start, course_id, network_type, region, edge_node,
    window_start + INTERVAL '1' MINUTE AS window_end,
    COUNT(*) FILTER (WHERE NOT late) AS plays,
    -- one state of the minute's distinct startup times serves both quantiles
    PERCENTILE(CAST(startup_time_ms AS DOUBLE), ARRAY[0.5, 0.95]) FILTER (WHERE NOT late)
      AS startup_pct,
    COALESCE(SUM(startup_time_ms) FILTER (WHERE NOT late), 0) AS startup_time_sum_ms,
    COUNT(startup_time_ms) FILTER (WHERE NOT late) AS startups,
    COALESCE(SUM(rebuffer_ms) FILTER (WHERE NOT late), 0) AS rebuffer_ms,
    COALESCE(SUM(played_ms) FILTER (WHERE NOT late), 0) AS played_ms,
    COUNT(*) FILTER (WHERE NOT late AND video_start_failure) AS video_start_failures,
    COUNT(*) FILTER (WHERE NOT late AND exit_before_video_start) AS exits_before_start,
    COALESCE(SUM(avg_bitrate_kbps) FILTER (WHERE NOT late), 0) AS bitrate_kbps_sum,
    COUNT(avg_bitrate_kbps) FILTER (WHERE NOT late) AS bitrate_samples,
    COALESCE(SUM(bitrate_switches) FILTER (WHERE NOT late), 0) AS bitrate_switches,
    COUNT(*) FILTER (WHERE late) AS late_events,
    COUNT(*) AS version
  FROM (
    SELECT FLOOR(occurred_at TO MINUTE) AS window_start, *
    FROM qos_unique
  ) u
  GROUP BY window_start, course_id, network_type, region, edge_node
)
"""


def build(settings: JobSettings, options: RunOptions):  # type: ignore[no-untyped-def]
    """The job's table environment with its tables and views, and the INSERT to run."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    conf = flink_configuration(settings, JOB, options)
    # Mini-batches let the aggregate apply many records per state access and emit one update
    # per key per batch instead of one per record.
    conf.set_string("table.exec.mini-batch.enabled", "true")
    conf.set_string("table.exec.mini-batch.allow-latency", "1 s")
    conf.set_string("table.exec.mini-batch.size", "5000")
    conf.set_string("table.exec.state.ttl", f"{int(settings.flink.dedup_ttl_h * 3600)} s")
    env = TableEnvironment.create(
        EnvironmentSettings.new_instance().in_streaming_mode().with_configuration(conf).build()
    )
    env.execute_sql(source_ddl(settings, options))
    env.execute_sql(sink_ddl(settings, options))
    env.execute_sql(NEWEST)
    env.execute_sql(MARKED.format(lateness_ms=round(settings.flink.allowed_lateness_s * 1000)))
    env.execute_sql(DEDUPLICATED)
    insert = AGGREGATE.format(window_ttl=f"{int(settings.flink.window_state_ttl_h * 3600)} s")
    return env, insert


def main(argv: list[str] | None = None) -> None:
    options = parse_args(JOB, argv)
    env, insert = build(JobSettings(), options)
    result = env.execute_sql(insert)
    result.wait()


if __name__ == "__main__":
    main()
