SELECT
    platform,
    app_version,
    count() AS attempts,
    round(countIf(video_start_failure) / count(), 4) AS video_start_failure_rate,
    round(countIf(exit_before_video_start) / count(), 4) AS exits_before_start_rate,
    round(quantile(0.95)(startup_time_ms)) AS startup_p95_ms
FROM playback_qos FINAL
WHERE report = 'session' AND occurred_at >= now64(3) - INTERVAL {days:UInt32} DAY
GROUP BY platform, app_version
HAVING attempts >= {min_plays:UInt32}
ORDER BY video_start_failure_rate DESC, startup_p95_ms DESC
