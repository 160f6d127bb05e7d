-- Live classes and immersive lessons (DESIGN.md, "Live classes and immersive sessions").
--
-- live_qos gets the figures of schemas.events.LiveQos added since 0001, and the quality score:
-- score is the live server's own on server rows, and the sink's (schemas.quality.of_event) on
-- browser rows and on server rows that carry none; band is its band (excellent, good, fair,
-- poor; '' only on rows stored before this migration, which have no score). network_type and
-- region are the envelope's columns that every event table has. Optional enums (role,
-- direction, quality_limitation_reason) are '' when absent, like optional ids; optional
-- measurements are Nullable, because 0 is a real value for them.
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS role LowCardinality(String) DEFAULT '' AFTER kind;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS direction LowCardinality(String) DEFAULT '' AFTER role;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS interval_s Nullable(Float64) AFTER direction;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS fraction_lost Nullable(Float64) AFTER packets_lost;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS bitrate_kbps Nullable(Float64) AFTER fraction_lost;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS frames_per_second Nullable(Float64) AFTER bitrate_kbps;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS frames_dropped Nullable(UInt64) AFTER frames_per_second;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS freeze_count Nullable(UInt64) AFTER frames_dropped;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS total_freezes_duration_ms Nullable(Float64) AFTER freeze_count;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS freeze_ms Nullable(Float64) AFTER total_freezes_duration_ms;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS jitter_buffer_delay_ms Nullable(Float64) AFTER freeze_ms;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS quality_limitation_reason LowCardinality(String) DEFAULT '' AFTER jitter_buffer_delay_ms;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS score Nullable(Float64) AFTER quality_limitation_reason;
ALTER TABLE live_qos ADD COLUMN IF NOT EXISTS band LowCardinality(String) DEFAULT '' AFTER score;

-- VR lessons' comfort per interval (topic immersive.qos), a raw event table like the others
-- (0001), with 0004's _inserted_at index for the sink's dedup look-up. motion_to_photon_ms is
-- the interval's mean; frames_dropped and frames_reprojected count within the interval.
CREATE TABLE IF NOT EXISTS immersive_qos
(
    event_id UUID,
    course_id String,
    learner_key String,
    occurred_at DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    schema_version UInt8,
    session_id String,
    platform LowCardinality(String),
    app_version LowCardinality(String),
    device LowCardinality(String),
    network_type LowCardinality(String),
    region LowCardinality(String),
    edge_node LowCardinality(String),
    lesson_id String,
    headset LowCardinality(String),
    interval_s Float64,
    target_fps Float64,
    frames_per_second Float64,
    motion_to_photon_ms Float64,
    motion_to_photon_p95_ms Nullable(Float64),
    frames_dropped UInt64,
    frames_reprojected UInt64,
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4,
    INDEX idx_inserted_at _inserted_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree(_offset)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (course_id, learner_key, occurred_at, event_id)
TTL toDateTime(occurred_at) + INTERVAL {raw_ttl_days} DAY;

-- Live-class quality per room per minute, by source (server, browser), kind, network type and
-- region; read with the -Merge combinators as 0002 says. The averages, quantiles and minimum
-- skip NULLs (a figure the row does not have) and are NULL when no row of the key has it.
-- poor counts rows with band = 'poor'; the poor share is sumMerge(poor) / countMerge(samples).
CREATE TABLE IF NOT EXISTS live_qos_room_1m
(
    minute DateTime('UTC'),
    room_id String,
    source LowCardinality(String),
    kind LowCardinality(String),
    network_type LowCardinality(String),
    region LowCardinality(String),
    samples AggregateFunction(count),
    rtt_ms_avg AggregateFunction(avg, Nullable(Float64)),
    rtt_ms_p95 AggregateFunction(quantile(0.95), Nullable(Float64)),
    jitter_ms_avg AggregateFunction(avg, Nullable(Float64)),
    jitter_ms_p95 AggregateFunction(quantile(0.95), Nullable(Float64)),
    fraction_lost_avg AggregateFunction(avg, Nullable(Float64)),
    bitrate_kbps_avg AggregateFunction(avg, Nullable(Float64)),
    fps_avg AggregateFunction(avg, Nullable(Float64)),
    freeze_ms_sum AggregateFunction(sum, Nullable(Float64)),
    score_avg AggregateFunction(avg, Nullable(Float64)),
    score_min AggregateFunction(min, Nullable(Float64)),
    poor AggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (room_id, minute, source, kind, network_type, region);

CREATE MATERIALIZED VIEW IF NOT EXISTS live_qos_room_1m_mv TO live_qos_room_1m AS
SELECT
    toStartOfMinute(occurred_at) AS minute,
    room_id,
    source,
    kind,
    network_type,
    region,
    countState() AS samples,
    avgState(rtt_ms) AS rtt_ms_avg,
    quantileState(0.95)(rtt_ms) AS rtt_ms_p95,
    avgState(jitter_ms) AS jitter_ms_avg,
    quantileState(0.95)(jitter_ms) AS jitter_ms_p95,
    avgState(fraction_lost) AS fraction_lost_avg,
    avgState(bitrate_kbps) AS bitrate_kbps_avg,
    avgState(frames_per_second) AS fps_avg,
    sumState(freeze_ms) AS freeze_ms_sum,
    avgState(score) AS score_avg,
    minState(score) AS score_min,
    sumState(toUInt64(band = 'poor')) AS poor
FROM live_qos
GROUP BY minute, room_id, source, kind, network_type, region;

-- Comfort of VR lessons per course per minute, by headset and network type. over_20ms counts
-- the intervals whose mean motion-to-photon latency is above 20 ms, where comfort ends; the
-- share is sumMerge(over_20ms) / countMerge(intervals). motion_to_photon_ms_p95 is the 95th
-- percentile of the intervals' means.
CREATE TABLE IF NOT EXISTS immersive_qos_course_1m
(
    minute DateTime('UTC'),
    course_id String,
    headset LowCardinality(String),
    network_type LowCardinality(String),
    intervals AggregateFunction(count),
    fps_avg AggregateFunction(avg, Float64),
    motion_to_photon_ms_avg AggregateFunction(avg, Float64),
    motion_to_photon_ms_p95 AggregateFunction(quantile(0.95), Float64),
    over_20ms AggregateFunction(sum, UInt64),
    frames_dropped AggregateFunction(sum, UInt64),
    frames_reprojected AggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (course_id, minute, headset, network_type);

CREATE MATERIALIZED VIEW IF NOT EXISTS immersive_qos_course_1m_mv TO immersive_qos_course_1m AS
SELECT
    toStartOfMinute(occurred_at) AS minute,
    course_id,
    headset,
    network_type,
    countState() AS intervals,
    avgState(frames_per_second) AS fps_avg,
    avgState(motion_to_photon_ms) AS motion_to_photon_ms_avg,
    quantileState(0.95)(motion_to_photon_ms) AS motion_to_photon_ms_p95,
    sumState(toUInt64(motion_to_photon_ms > 20)) AS over_20ms,
    sumState(frames_dropped) AS frames_dropped,
    sumState(frames_reprojected) AS frames_reprojected
FROM immersive_qos
GROUP BY minute, course_id, headset, network_type;

-- The live_qos rows stored before this migration, into the new view's table (immersive_qos is
-- new and empty). Last, so that a failed run repeats nothing else; it counts what the table holds
-- now, so apply this migration while no sink writes (`learnstream sinks migrate`, or the sink's
-- own start, which migrates before it consumes).
INSERT INTO live_qos_room_1m
SELECT
    toStartOfMinute(occurred_at) AS minute,
    room_id,
    source,
    kind,
    network_type,
    region,
    countState() AS samples,
    avgState(rtt_ms) AS rtt_ms_avg,
    quantileState(0.95)(rtt_ms) AS rtt_ms_p95,
    avgState(jitter_ms) AS jitter_ms_avg,
    quantileState(0.95)(jitter_ms) AS jitter_ms_p95,
    avgState(fraction_lost) AS fraction_lost_avg,
    avgState(bitrate_kbps) AS bitrate_kbps_avg,
    avgState(frames_per_second) AS fps_avg,
    sumState(freeze_ms) AS freeze_ms_sum,
    avgState(score) AS score_avg,
    minState(score) AS score_min,
    sumState(toUInt64(band = 'poor')) AS poor
FROM live_qos
GROUP BY minute, room_id, source, kind, network_type, region;
