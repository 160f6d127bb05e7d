-- Settlement: the completion records that move money, every log of the escrow contract, and the
-- runs of `settlement reconcile`.
--
-- completion_scores, course_completed and settlements are filled by the ClickHouse sink
-- (tables.py, settlement_tables.py) and carry _topic, _partition, _offset and _inserted_at like
-- every sink table. reconciliations is written by the reconcile tool (reconciliations.py).
--
-- enrollment_key is how the chain knows an enrollment: '0x' + hex of keccak256 of the
-- enrollment UUID's 16 bytes (lowercase, 66 characters). It is the join between the completion
-- tables and settlements.
--
-- Versions: each of the three sink tables keeps, per sorting key, the row with the highest
-- _offset, i.e. the record published last. A record id always travels under the same Kafka key
-- (the enrollment id for the completion topics; the receipt's key for settlement.receipts), so
-- all its versions sit in one partition, where the offset is the order they were written in:
-- on the compacted completion topics it is exactly the record compaction keeps. received_at and
-- as_of are no version: the collector stamps a whole request with one received_at, so several
-- scores of an enrollment share it, and as_of (event time) stays put when a late event counts.
-- block_number is no version either: after a reorganisation the same receipt can land in a block
-- of the same height or lower. _offset also keeps max(_offset) per partition, where the sink
-- resumes, from ever moving backwards after a merge.
--
-- None of these tables is partitioned by time: ReplacingMergeTree replaces rows only within a
-- partition, and a re-published receipt may carry another block_time, a later score another
-- received_at. They are small (a few rows per enrollment) and kept without TTL: they are the
-- finance audit trail.

-- completion.scores: the Flink completion job's score per enrollment; the latest record wins
-- (read with FINAL). score is the job's 6-decimal fraction, score_bps = floor(score x 10000 +
-- 1e-6) as the job made it once; exam_* are NULL unless the course's payout policy names an
-- exam. as_of is event time; received_at, enrolled_received_at and deadline_at are the money
-- clock (the collector's).
CREATE TABLE IF NOT EXISTS completion_scores
(
    score_id UUID,
    enrollment_id UUID,
    enrollment_key String,
    learner_key String,
    course_id String,
    payment_model LowCardinality(String),
    score Float64,
    score_bps UInt16,
    watched_fraction Float64,
    quiz_fraction Float64,
    complete Bool,
    exam_bps Nullable(UInt16),
    exam_passed Nullable(Bool),
    exam_passed_received_at Nullable(DateTime64(3, 'UTC')),
    as_of DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    enrolled_received_at DateTime64(3, 'UTC'),
    deadline_at Nullable(DateTime64(3, 'UTC')),
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_enrollment_key enrollment_key TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(_offset)
ORDER BY (course_id, enrollment_id);

-- course.completed: at most one completion per enrollment (read with FINAL). completed_at is
-- event time; received_at is the collector's time of the event that made the rule true, the
-- time that counts against the deadline and that settlement latency is measured from.
CREATE TABLE IF NOT EXISTS course_completed
(
    completion_id UUID,
    enrollment_id UUID,
    enrollment_key String,
    learner_key String,
    course_id String,
    payment_model LowCardinality(String),
    completed_at DateTime64(3, 'UTC'),
    received_at DateTime64(3, 'UTC'),
    enrolled_received_at DateTime64(3, 'UTC'),
    deadline_at Nullable(DateTime64(3, 'UTC')),
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_enrollment_key enrollment_key TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(_offset)
ORDER BY (course_id, enrollment_id);

-- settlement.receipts: one row per log of the escrow contract (schemas.settlement), read with
-- FINAL. receipt_id is UUIDv5 of (tx_hash, log_index); a receipt the indexer publishes again
-- after a reorganisation deeper than its confirmation depth (another block_hash) replaces the
-- earlier row. A log whose block was reorganised away and never mined again stays as it was:
-- `settlement reconcile` reports it. Every field a kind of log does not carry is NULL. Money
-- columns are UInt256 in the asset's base units (decimals says how many make a unit; asset is
-- 'ETH' or the token's address): exact for every amount the schema accepts, and summable. Sum
-- them per asset only.
CREATE TABLE IF NOT EXISTS settlements
(
    receipt_id UUID,
    kind LowCardinality(String),
    chain_id UInt64,
    contract String,
    tx_hash String,
    block_number UInt64,
    block_hash String,
    block_time DateTime64(3, 'UTC'),
    log_index UInt32,
    enrollment_key Nullable(String),
    course_key Nullable(String),
    terms_id Nullable(UInt64),
    payee Nullable(String),
    refund_to Nullable(String),
    creator Nullable(String),
    asset LowCardinality(Nullable(String)),
    decimals Nullable(UInt8),
    amount Nullable(UInt256),
    creator_amount Nullable(UInt256),
    platform_amount Nullable(UInt256),
    learner_amount Nullable(UInt256),
    earned_bps Nullable(UInt16),
    score_bps Nullable(UInt16),
    metric LowCardinality(Nullable(String)),
    counted Nullable(Bool),
    reason LowCardinality(Nullable(String)),
    enrolled_at Nullable(DateTime64(3, 'UTC')),
    deadline_at Nullable(DateTime64(3, 'UTC')),
    detail Nullable(String),
    _topic LowCardinality(String),
    _partition UInt16,
    _offset UInt64,
    _inserted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    INDEX idx_enrollment_key enrollment_key TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(_offset)
ORDER BY receipt_id;

-- One row per run of `settlement reconcile` (not from Kafka: no Kafka columns). The period is
-- what the run compared (NULL: from the start, or up to now); the counts are by outcome, and
-- details holds the discrepancies themselves as a JSON document.
CREATE TABLE IF NOT EXISTS reconciliations
(
    run_id UUID,
    started_at DateTime64(3, 'UTC'),
    finished_at DateTime64(3, 'UTC'),
    period_from Nullable(DateTime64(3, 'UTC')),
    period_to Nullable(DateTime64(3, 'UTC')),
    chain_id UInt64,
    contract String,
    matched UInt64,
    missing_on_chain UInt64,
    missing_off_chain UInt64,
    amount_mismatches UInt64,
    metric_mismatches UInt64,
    reorged_blocks UInt64,
    ok Bool,
    details String
)
ENGINE = MergeTree
ORDER BY started_at;
