-- Raw tables: one per event family, typed, one row per Kafka record.
--
-- Every event table is a ReplacingMergeTree whose sorting key is the deduplication key
-- (course_id, learner_key, occurred_at, event_id): the sink never inserts a Kafka record twice
-- (it resumes from max(_offset) per partition), and this key is the backstop for the same event
-- sent twice under different offsets. The version column is _offset, so a merge keeps the row
-- with the highest offset and max(_offset) per partition never moves backwards.
--
-- Learner ids are stored only as learner_key, a keyed pseudonym (HMAC-SHA256, hex). Optional ids
-- are '' when absent (a valid id is never empty); optional measurements are Nullable, because 0
-- is a real value for them. {raw_ttl_days} is substituted by the migration runner (an int).
--
-- Shared envelope columns, in this order in every event table:
--   event_id, course_id, learner_key, occurred_at, received_at, schema_version, session_id,
--   platform, app_version, device, network_type, region, edge_node
-- and at the end: _topic, _partition, _offset, _inserted_at (server clock, for latency).

CREATE TABLE IF NOT EXISTS views
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
    page LowCardinality(String),
    lesson_id String,
    dwell_ms UInt32,
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(_offset)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (course_id, learner_key, occurred_at, event_id)
TTL toDateTime(occurred_at) + INTERVAL {raw_ttl_days} DAY;

-- xAPI Video Profile statements; times in seconds, played_segments cumulative per session.
CREATE TABLE IF NOT EXISTS playback
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
    video_id String,
    verb LowCardinality(String),
    time Nullable(Float64),
    time_from Nullable(Float64),
    time_to Nullable(Float64),
    length Float64,
    played_segments Array(Tuple(Float64, Float64)),
    progress Nullable(Float64),
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(_offset)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (course_id, learner_key, occurred_at, event_id)
TTL toDateTime(occurred_at) + INTERVAL {raw_ttl_days} DAY;

-- Player QoE reports. report = 'session' is a session summary (what QoE aggregates count);
-- report = 'cmcd' is one CMCD sample. cmcd keeps the CMCD keys as received, as a JSON object
-- ('' when absent): values mix strings, numbers and booleans, which a Map(String, String) would
-- flatten. Read them with JSONExtract*(cmcd, 'br').
CREATE TABLE IF NOT EXISTS playback_qos
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
    video_id String,
    playback_id String,
    report LowCardinality(String),
    startup_time_ms Nullable(UInt32),
    video_start_failure Bool,
    exit_before_video_start Bool,
    rebuffer_count UInt64,
    rebuffer_ms UInt64,
    played_ms UInt64,
    avg_bitrate_kbps Nullable(UInt64),
    peak_bitrate_kbps Nullable(UInt64),
    bitrate_switches UInt64,
    dropped_frames UInt64,
    throughput_kbps Nullable(UInt64),
    rtt_ms Nullable(Float64),
    rsrp_dbm Nullable(Float64),
    rsrq_db Nullable(Float64),
    sinr_db Nullable(Float64),
    cmcd String,
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(_offset)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (course_id, learner_key, occurred_at, event_id)
TTL toDateTime(occurred_at) + INTERVAL {raw_ttl_days} DAY;

CREATE TABLE IF NOT EXISTS quiz_results
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
    quiz_id String,
    score Float64,
    max_score Float64,
    passed Bool,
    attempt UInt16,
    duration_ms UInt64,
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(_offset)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (course_id, learner_key, occurred_at, event_id)
TTL toDateTime(occurred_at) + INTERVAL {raw_ttl_days} DAY;

-- Purchases. The enrollment's id is its event_id. Money is integer minor units plus currency.
-- deposit_wei is UInt256: exact for every value the schema accepts (< 2^256), and it sums and
-- compares natively (Decimal(76, 0) stops below 2^256; a String cannot be summed). It is 0 and
-- refund_address '' unless payment_model = 'pay_by_completion'.
CREATE TABLE IF NOT EXISTS enrollments
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
    price_minor Int64,
    currency LowCardinality(String),
    payment_model LowCardinality(String),
    deposit_wei UInt256,
    refund_address String,
    deadline_at Nullable(DateTime64(3, 'UTC')),
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(_offset)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (course_id, learner_key, occurred_at, event_id)
TTL toDateTime(occurred_at) + INTERVAL {raw_ttl_days} DAY;

-- WebRTC QoS of live classes; course_id is '' when the event carries none.
CREATE TABLE IF NOT EXISTS live_qos
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
    room_id String,
    peer_id String,
    source LowCardinality(String),
    kind LowCardinality(String),
    rtt_ms Nullable(Float64),
    jitter_ms Nullable(Float64),
    packets_received Nullable(UInt64),
    packets_lost Nullable(UInt64),
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_event_id event_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(_offset)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (course_id, learner_key, occurred_at, event_id)
TTL toDateTime(occurred_at) + INTERVAL {raw_ttl_days} DAY;

-- The course catalogue (compacted topic): the latest version per course wins (read with FINAL).
CREATE TABLE IF NOT EXISTS course_catalog
(
    course_id String,
    title String,
    category LowCardinality(String),
    level LowCardinality(String),
    creator_id String,
    creator_address String,
    price_minor Int64,
    currency LowCardinality(String),
    payment_models Array(LowCardinality(String)),
    videos Array(Tuple(video_id String, title String, length_s Float64, required Bool)),
    quizzes Array(Tuple(quiz_id String, title String, required Bool, pass_fraction Float64)),
    video_weight Float64,
    quiz_weight Float64,
    required_watch_fraction Float64,
    creator_share_bps UInt16,
    partial_payout LowCardinality(String),
    min_score Float64,
    deadline_days UInt16,
    grace_days UInt16,
    updated_at DateTime64(3, 'UTC'),
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY course_id;

-- Dead letters keep the raw payload, which may hold learner ids: a short TTL, and analysts read
-- only the counts in dlq_reasons_hourly (0002), never this table.
CREATE TABLE IF NOT EXISTS dlq
(
    dlq_id UUID,
    received_at DateTime64(3, 'UTC'),
    reason LowCardinality(String),
    detail String,
    raw String,
    endpoint LowCardinality(String),
    client_id LowCardinality(String),
    event_type String,
    event_id String,
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(_offset)
PARTITION BY toYYYYMMDD(received_at)
ORDER BY (received_at, dlq_id)
TTL toDateTime(received_at) + INTERVAL {dlq_ttl_days} DAY;

-- The Flink QoS job's 1-minute windows (topic qos.agg.1m). It owns these figures; a late update
-- carries a higher version and replaces the earlier row for the same window key (read with FINAL).
CREATE TABLE IF NOT EXISTS qos_1m
(
    window_start DateTime64(3, 'UTC'),
    window_end DateTime64(3, 'UTC'),
    course_id String,
    network_type LowCardinality(String),
    region LowCardinality(String),
    edge_node LowCardinality(String),
    plays UInt64,
    startup_p50_ms Float64,
    startup_p95_ms Float64,
    startup_time_sum_ms UInt64,
    startups UInt64,
    rebuffer_ms UInt64,
    played_ms UInt64,
    video_start_failures UInt64,
    exits_before_start UInt64,
    bitrate_kbps_sum UInt64,
    bitrate_samples UInt64,
    bitrate_switches UInt64,
    late_events UInt64,
    version UInt64,
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(window_start)
ORDER BY (window_start, course_id, network_type, region, edge_node);

-- Each service's throughput and lag report (topic pipeline.metrics), kept generic: the whole
-- JSON object is payload; read it with JSONExtract*(payload, 'per_s', '…').
CREATE TABLE IF NOT EXISTS pipeline_metrics
(
    service LowCardinality(String),
    instance LowCardinality(String),
    at DateTime64(3, 'UTC'),
    interval_s Float64,
    payload String,
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(_offset)
PARTITION BY toYYYYMM(at)
ORDER BY (service, instance, at);
