-- Aggregates that analysts read every day: AggregatingMergeTree targets holding *State columns,
-- fed by materialized views on the raw tables. Read them with the matching -Merge combinator
-- (uniqExactMerge, countMerge, sumMerge, avgMerge) and GROUP BY: rows of one key are combined
-- only at merge time.
--
-- A materialized view sees each inserted block once. The sink inserts each Kafka record once
-- (it resumes from max(_offset)), so these never count a record twice. The same event_id resent
-- under a new offset is deduplicated only in the raw tables, at merge time, not here.
-- Unique learners use uniqExact, not uniq: exact counts that reconcile with a recount of the
-- raw events, at a state size bounded by the learners per key and day.
-- A view only sees rows inserted after it exists: a later migration that adds a view over
-- existing data backfills it with an INSERT … SELECT in the same migration.

-- Engagement per course per day. A learner is active on a day in a course when they viewed a
-- page, sent a video statement, had a playback session or finished a quiz. Watch time is the sum
-- of played_ms of session QoS reports (report = 'session'): the player measures it directly,
-- while xAPI played_segments are cumulative per session and overlap across statements.
CREATE TABLE IF NOT EXISTS engagement_daily
(
    day Date,
    course_id String,
    active_learners AggregateFunction(uniqExact, String),
    views AggregateFunction(count),
    watch_ms AggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (course_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS engagement_daily_views_mv TO engagement_daily AS
SELECT
    toDate(occurred_at) AS day,
    course_id,
    uniqExactState(learner_key) AS active_learners,
    countState() AS views
FROM views
GROUP BY day, course_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS engagement_daily_playback_mv TO engagement_daily AS
SELECT
    toDate(occurred_at) AS day,
    course_id,
    uniqExactState(learner_key) AS active_learners
FROM playback
GROUP BY day, course_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS engagement_daily_qos_mv TO engagement_daily AS
SELECT
    toDate(occurred_at) AS day,
    course_id,
    uniqExactState(learner_key) AS active_learners,
    sumState(played_ms) AS watch_ms
FROM playback_qos
WHERE report = 'session'
GROUP BY day, course_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS engagement_daily_quiz_mv TO engagement_daily AS
SELECT
    toDate(occurred_at) AS day,
    course_id,
    uniqExactState(learner_key) AS active_learners
FROM quiz_results
GROUP BY day, course_id;

-- Quiz performance per quiz (and day, so that questions can pick a period).
CREATE TABLE IF NOT EXISTS quiz_performance
(
    day Date,
    course_id String,
    quiz_id String,
    attempts AggregateFunction(count),
    passes AggregateFunction(sum, UInt64),
    score_fraction AggregateFunction(avg, Float64),
    learners AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (course_id, quiz_id, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS quiz_performance_mv TO quiz_performance AS
SELECT
    toDate(occurred_at) AS day,
    course_id,
    quiz_id,
    countState() AS attempts,
    sumState(toUInt64(passed)) AS passes,
    avgState(score / max_score) AS score_fraction,
    uniqExactState(learner_key) AS learners
FROM quiz_results
GROUP BY day, course_id, quiz_id;

-- Enrollments and revenue per course, payment model and currency (and day). Revenue is the
-- list price booked at enrollment, in integer minor units; deposits_wei is what
-- pay-by-completion enrollments put in escrow (its payout depends on settlement).
CREATE TABLE IF NOT EXISTS enrollment_revenue_daily
(
    day Date,
    course_id String,
    payment_model LowCardinality(String),
    currency LowCardinality(String),
    enrollments AggregateFunction(count),
    revenue_minor AggregateFunction(sum, Int64),
    deposits_wei AggregateFunction(sum, UInt256),
    learners AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(day)
ORDER BY (course_id, payment_model, currency, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS enrollment_revenue_daily_mv TO enrollment_revenue_daily AS
SELECT
    toDate(occurred_at) AS day,
    course_id,
    payment_model,
    currency,
    countState() AS enrollments,
    sumState(price_minor) AS revenue_minor,
    sumState(deposit_wei) AS deposits_wei,
    uniqExactState(learner_key) AS learners
FROM enrollments
GROUP BY day, course_id, payment_model, currency;

-- Dead letters counted by reason: no payload, no detail, no TTL. This is what analysts and
-- dashboards read; the dlq table itself (raw payloads) expires after a few days.
CREATE TABLE IF NOT EXISTS dlq_reasons_hourly
(
    hour DateTime('UTC'),
    reason LowCardinality(String),
    endpoint LowCardinality(String),
    records AggregateFunction(count)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, reason, endpoint);

CREATE MATERIALIZED VIEW IF NOT EXISTS dlq_reasons_hourly_mv TO dlq_reasons_hourly AS
SELECT
    toStartOfHour(received_at) AS hour,
    reason,
    endpoint,
    countState() AS records
FROM dlq
GROUP BY hour, reason, endpoint;
