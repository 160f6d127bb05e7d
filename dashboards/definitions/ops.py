"""Pipeline ops: is data flowing, how fast, how late, and what is refused.

Event counts come from the raw tables (through ``merge()``, as the ready query
``ingest_latency`` does); dead letters only from ``dlq_reasons_hourly`` (the ``dlq`` table holds
raw payloads and is not for dashboards); service health from ``pipeline_metrics``, the
``pipeline.metrics`` contract every service (and the lag monitor, for the Flink jobs) publishes.
"""

from __future__ import annotations

from dashboards.definitions.variables import COURSE, NETWORK_TYPE, REGION
from dashboards.panels import Dashboard, Panel

EVENTS_PER_S = Panel(
    key="ops.events_per_s",
    title="Events per second by topic",
    kind="timeseries",
    unit="cps",
    description="Events stored per second by Kafka topic (one per event family), by the "
    "collector's received_at; one topic dropping to zero while others flow points at its "
    "producer or its sink.",
    sql="""
    SELECT
        $__timeInterval(received_at) AS time,
        _topic AS topic,
        count() / $__interval_s AS events_per_s
    FROM merge(
        currentDatabase(),
        '^(views|playback|playback_qos|quiz_results|enrollments|live_qos|immersive_qos)$'
    )
    WHERE $__timeFilter(received_at)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY time, topic
    ORDER BY time, topic
    """,
)

INGEST_LATENCY = Panel(
    key="ops.ingest_latency",
    title="Ingest latency: received → queryable",
    kind="timeseries",
    unit="ms",
    description="Milliseconds from the collector's received_at to the row's insert into "
    "ClickHouse (_inserted_at), p50/p95/p99 of the rows inserted in each bucket; a climbing p50 "
    "means the sink is behind.",
    sql="""
    SELECT
        $__timeInterval(_inserted_at) AS time,
        quantile(0.5)(latency_ms) AS p50_ms,
        quantile(0.95)(latency_ms) AS p95_ms,
        quantile(0.99)(latency_ms) AS p99_ms
    FROM
    (
        SELECT _inserted_at, dateDiff('millisecond', received_at, _inserted_at) AS latency_ms
        FROM merge(
            currentDatabase(),
            '^(views|playback|playback_qos|quiz_results|enrollments|live_qos|immersive_qos)$'
        )
        WHERE $__timeFilter(_inserted_at)
            AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
            AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
            AND $__conditionalAll(region IN (${region:singlequote}), $region)
    )
    GROUP BY time
    ORDER BY time
    """,
)

DLQ_PER_HOUR = Panel(
    key="ops.dlq_per_hour",
    title="Dead letters per hour by reason",
    kind="timeseries",
    unit="short",
    description="Records sent to the dead-letter queue per hour, by reason (malformed, "
    "unknown_type, invalid, …), from hourly counts; any steady rise means a client or a schema "
    "change is sending bad input.",
    sql="""
    SELECT
        $__timeInterval(hour) AS time,
        reason,
        countMerge(records) * 3600 / greatest($__interval_s, 3600) AS dead_letters_per_hour
    FROM dlq_reasons_hourly
    WHERE $__timeFilter(hour)
    GROUP BY time, reason
    ORDER BY time, reason
    """,
)

DLQ_TOP_REASONS = Panel(
    key="ops.dlq_top_reasons",
    title="Top dead-letter reasons",
    kind="table",
    unit="short",
    description="The ten reason and endpoint pairs with the most dead letters in the range, "
    "with their share of all dead letters; the detail of each lives in `learnstream dlq`.",
    sql="""
    SELECT
        reason,
        endpoint,
        countMerge(records) AS dead_letters,
        round(dead_letters / sum(dead_letters) OVER (), 3) AS share
    FROM dlq_reasons_hourly
    WHERE $__timeFilter(hour)
    GROUP BY reason, endpoint
    ORDER BY dead_letters DESC
    LIMIT 10
    """,
    width=8,
)

DLQ_SHARE = Panel(
    key="ops.dlq_share",
    title="Dead-letter share",
    kind="stat",
    unit="percentunit",
    description="Dead letters as a share of all input (dead letters + stored events) in the "
    "range; dead letters count by whole hours, so short ranges are approximate.",
    sql="""
    SELECT dead / nullIf(dead + stored, 0) AS dead_letter_share
    FROM
    (
        SELECT
            (
                SELECT countMerge(records) FROM dlq_reasons_hourly WHERE $__timeFilter(hour)
            ) AS dead,
            (
                SELECT count()
                FROM merge(
                    currentDatabase(),
                    '^(views|playback|playback_qos|quiz_results|enrollments|live_qos|immersive_qos)$'
                )
                WHERE $__timeFilter(received_at)
            ) AS stored
    )
    """,
    width=4,
)

CONSUMER_LAG = Panel(
    key="ops.consumer_lag",
    title="Consumer lag per group",
    kind="timeseries",
    unit="short",
    description="Records each consumer group is behind the ends of its topics (each instance's "
    "latest report in the bucket, summed over instances; Flink jobs through the lag monitor); "
    "lag that keeps growing means the group cannot keep up.",
    sql="""
    SELECT time, consumer_group, sum(instance_lag) AS lag
    FROM
    (
        SELECT
            $__timeInterval(at) AS time,
            consumer_group,
            instance,
            argMax(lag, at) AS instance_lag
        FROM pipeline_metrics
        WHERE _topic = 'pipeline.metrics' AND consumer_group != '' AND lag IS NOT NULL
            AND $__timeFilter(at)
        GROUP BY time, consumer_group, instance
    )
    GROUP BY time, consumer_group
    ORDER BY time, consumer_group
    """,
)

CONSUMER_LAG_NOW = Panel(
    key="ops.consumer_lag_now",
    title="Consumer lag, latest",
    kind="bargauge",
    unit="short",
    description="Each consumer group's lag in records at its instances' latest reports in the "
    "range; the longest bar is the group to look at first.",
    sql="""
    SELECT consumer_group, sum(instance_lag) AS lag
    FROM
    (
        SELECT consumer_group, instance, argMax(lag, at) AS instance_lag
        FROM pipeline_metrics
        WHERE _topic = 'pipeline.metrics' AND consumer_group != '' AND lag IS NOT NULL
            AND $__timeFilter(at)
        GROUP BY consumer_group, instance
    )
    GROUP BY consumer_group
    ORDER BY lag DESC
    """,
)

THROUGHPUT = Panel(
    key="ops.throughput",
    title="Service throughput",
    kind="timeseries",
    unit="cps",
    description="Records each service takes in and writes out per second, as it reports them "
    "every 10 s (mean per instance, summed over instances); in above out for long means a "
    "backlog is building.",
    sql="""
    SELECT time, service, sum(instance_in) AS in_per_s, sum(instance_out) AS out_per_s
    FROM
    (
        SELECT
            $__timeInterval(at) AS time,
            service,
            instance,
            avg(in_per_s) AS instance_in,
            avg(out_per_s) AS instance_out
        FROM pipeline_metrics
        WHERE _topic = 'pipeline.metrics' AND $__timeFilter(at)
        GROUP BY time, service, instance
    )
    GROUP BY time, service
    ORDER BY time, service
    """,
)

SERVICE_HEALTH = Panel(
    key="ops.service_health",
    title="Services reporting",
    kind="table",
    unit="short",
    description="Every service instance that reported in the range: its consumer group, how "
    "many seconds ago it last reported (over 30 s: it is down or stuck) and its latest "
    "throughput and lag.",
    sql="""
    SELECT
        service,
        instance,
        argMax(consumer_group, at) AS consumer_group,
        max(at) AS last_report,
        dateDiff('second', last_report, now64(3)) AS age_s,
        argMax(in_per_s, at) AS in_per_s,
        argMax(out_per_s, at) AS out_per_s,
        argMax(lag, at) AS lag
    FROM pipeline_metrics
    WHERE _topic = 'pipeline.metrics' AND $__timeFilter(at)
    GROUP BY service, instance
    ORDER BY service, instance
    """,
)

DASHBOARD = Dashboard(
    uid="learnstream-ops",
    title="learnstream · Pipeline ops",
    description="Is data flowing through collector, Kafka, jobs and sinks into ClickHouse, how "
    "late, and what is refused.",
    tags=("learnstream", "ops"),
    variables=(COURSE, NETWORK_TYPE, REGION),
    panels=(
        EVENTS_PER_S,
        INGEST_LATENCY,
        DLQ_PER_HOUR,
        DLQ_TOP_REASONS,
        DLQ_SHARE,
        CONSUMER_LAG,
        CONSUMER_LAG_NOW,
        THROUGHPUT,
        SERVICE_HEALTH,
    ),
)
