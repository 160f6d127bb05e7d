SELECT
    room_id,
    source,
    kind,
    count() AS samples,
    round(avg(rtt_ms), 1) AS mean_rtt_ms,
    round(quantile(0.95)(jitter_ms), 1) AS p95_jitter_ms,
    round(sum(packets_lost) / nullIf(sum(packets_received) + sum(packets_lost), 0), 4)
        AS packet_loss_ratio
FROM live_qos FINAL
WHERE occurred_at >= now64(3) - INTERVAL {hours:UInt32} HOUR
GROUP BY room_id, source, kind
ORDER BY packet_loss_ratio DESC
