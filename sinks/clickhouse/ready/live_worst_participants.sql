SELECT
    room_id,
    peer_id,
    learner_key,
    argMax(role, occurred_at) AS role,
    argMax(network_type, occurred_at) AS network_type,
    argMax(region, occurred_at) AS region,
    count() AS samples,
    round(avg(score), 1) AS mean_score,
    round(min(score), 1) AS min_score,
    round(countIf(band = 'poor') / count(), 3) AS poor_share,
    round(avg(rtt_ms), 1) AS mean_rtt_ms,
    round(avg(jitter_ms), 1) AS mean_jitter_ms,
    round(avg(fraction_lost), 4) AS mean_fraction_lost,
    round(sum(freeze_ms) / 1000, 1) AS frozen_s,
    topKIf(1)(quality_limitation_reason, quality_limitation_reason NOT IN ('', 'none'))[1]
        AS limited_by
FROM live_qos FINAL
WHERE occurred_at >= now64(3) - INTERVAL {hours:UInt32} HOUR AND score IS NOT NULL
GROUP BY room_id, peer_id, learner_key
HAVING samples >= {min_samples:UInt32}
ORDER BY mean_score ASC
LIMIT {limit:UInt32}
