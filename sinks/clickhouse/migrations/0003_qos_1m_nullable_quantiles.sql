-- A minute with no started session (every attempt failed or exited before the first frame)
-- has no startup-time quantiles: the Flink QoS job sends null, which is stored as NULL rather
-- than as a made-up 0.
ALTER TABLE qos_1m MODIFY COLUMN startup_p50_ms Nullable(Float64);
ALTER TABLE qos_1m MODIFY COLUMN startup_p95_ms Nullable(Float64);
