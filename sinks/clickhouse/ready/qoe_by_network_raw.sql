SELECT
    network_type,
    count() AS attempts,
    round(quantile(0.5)(startup_time_ms)) AS startup_p50_ms,
    round(quantile(0.95)(startup_time_ms)) AS startup_p95_ms,
    round(sum(rebuffer_ms) / nullIf(sum(played_ms) + sum(rebuffer_ms), 0), 4) AS rebuffering_ratio,
    round(countIf(video_start_failure) / count(), 4) AS video_start_failure_rate,
    round(countIf(exit_before_video_start) / count(), 4) AS exits_before_start_rate,
    round(
        sumIf(avg_bitrate_kbps * played_ms, avg_bitrate_kbps IS NOT NULL)
        / nullIf(sumIf(played_ms, avg_bitrate_kbps IS NOT NULL), 0)
    ) AS time_weighted_bitrate_kbps,
    round(
        sum(bitrate_switches)
        / nullIf(countIf(NOT video_start_failure AND NOT exit_before_video_start), 0),
        2
    ) AS switches_per_session
FROM playback_qos FINAL
WHERE report = 'session' AND occurred_at >= now64(3) - INTERVAL {days:UInt32} DAY
GROUP BY network_type
ORDER BY network_type
