-- pipeline.metrics is a contract (schemas.derived.PipelineMetrics): its common figures become
-- columns, so that dashboards and `learnstream ps` read them without JSONExtract. The whole
-- record stays in payload; reco.metrics rows (service = 'reco') keep the defaults.
ALTER TABLE pipeline_metrics ADD COLUMN IF NOT EXISTS consumer_group LowCardinality(String) DEFAULT '' AFTER interval_s;
ALTER TABLE pipeline_metrics ADD COLUMN IF NOT EXISTS in_per_s Float64 DEFAULT 0 AFTER consumer_group;
ALTER TABLE pipeline_metrics ADD COLUMN IF NOT EXISTS out_per_s Float64 DEFAULT 0 AFTER in_per_s;
ALTER TABLE pipeline_metrics ADD COLUMN IF NOT EXISTS lag Nullable(UInt64) AFTER out_per_s;

-- The sink stores an event_id once: before inserting, it asks which ids of the batch arrived
-- within the dedup horizon (event_id IN …, _inserted_at >= …). The bloom filter on event_id
-- finds the granules; this minmax index lets the time bound skip the older parts.
ALTER TABLE views ADD INDEX IF NOT EXISTS idx_inserted_at _inserted_at TYPE minmax GRANULARITY 1;
ALTER TABLE playback ADD INDEX IF NOT EXISTS idx_inserted_at _inserted_at TYPE minmax GRANULARITY 1;
ALTER TABLE playback_qos ADD INDEX IF NOT EXISTS idx_inserted_at _inserted_at TYPE minmax GRANULARITY 1;
ALTER TABLE quiz_results ADD INDEX IF NOT EXISTS idx_inserted_at _inserted_at TYPE minmax GRANULARITY 1;
ALTER TABLE enrollments ADD INDEX IF NOT EXISTS idx_inserted_at _inserted_at TYPE minmax GRANULARITY 1;
ALTER TABLE live_qos ADD INDEX IF NOT EXISTS idx_inserted_at _inserted_at TYPE minmax GRANULARITY 1;
