SELECT
    network_type,
    sum(plays) AS attempts,
    round(sum(startup_time_sum_ms) / nullIf(sum(startups), 0)) AS mean_startup_ms,
    round(max(startup_p95_ms)) AS worst_minute_p95_startup_ms,
    round(sum(rebuffer_ms) / nullIf(sum(played_ms) + sum(rebuffer_ms), 0), 4) AS rebuffering_ratio,
    round(sum(video_start_failures) / nullIf(sum(plays), 0), 4) AS video_start_failure_rate,
    round(sum(exits_before_start) / nullIf(sum(plays), 0), 4) AS exits_before_start_rate,
    round(sum(bitrate_kbps_sum) / nullIf(sum(bitrate_samples), 0)) AS mean_bitrate_kbps,
    round(sum(bitrate_switches) / nullIf(sum(startups), 0), 2) AS switches_per_session
FROM qos_1m FINAL
WHERE window_start >= now64(3) - INTERVAL {hours:UInt32} HOUR
GROUP BY network_type
ORDER BY rebuffering_ratio DESC
