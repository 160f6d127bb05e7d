SELECT
    window_start,
    sum(plays) AS attempts,
    sum(late_events) AS late_events,
    round(sum(rebuffer_ms) / nullIf(sum(played_ms) + sum(rebuffer_ms), 0), 4) AS rebuffering_ratio,
    round(sum(video_start_failures) / nullIf(sum(plays), 0), 4) AS video_start_failure_rate,
    round(max(startup_p95_ms)) AS worst_p95_startup_ms
FROM qos_1m FINAL
WHERE window_start >= now64(3) - INTERVAL {hours:UInt32} HOUR
GROUP BY window_start
ORDER BY window_start
