SELECT
    _topic AS topic,
    count() AS rows,
    quantiles(0.5, 0.99)(dateDiff('millisecond', received_at, _inserted_at)) AS p50_p99_ms
FROM merge(currentDatabase(), '^(views|playback|playback_qos|quiz_results|enrollments|live_qos|immersive_qos)$')
WHERE _inserted_at >= now64(3) - INTERVAL {minutes:UInt32} MINUTE
GROUP BY topic
ORDER BY topic
