SELECT
    region,
    edge_node,
    sum(plays) AS attempts,
    round(sum(rebuffer_ms) / nullIf(sum(played_ms) + sum(rebuffer_ms), 0), 4) AS rebuffering_ratio,
    round(sum(video_start_failures) / nullIf(sum(plays), 0), 4) AS video_start_failure_rate,
    round(sum(startup_time_sum_ms) / nullIf(sum(startups), 0)) AS mean_startup_ms
FROM qos_1m FINAL
WHERE window_start >= now64(3) - INTERVAL {hours:UInt32} HOUR
GROUP BY region, edge_node
HAVING attempts >= {min_plays:UInt32}
ORDER BY rebuffering_ratio DESC, video_start_failure_rate DESC
LIMIT {limit:UInt32}
