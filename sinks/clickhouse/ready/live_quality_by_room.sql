WITH
    per_source AS
    (
        SELECT
            room_id,
            minute,
            source,
            countMerge(samples) AS rows,
            avgMerge(score_avg) AS mean_score,
            minMerge(score_min) AS lowest_score,
            sumMerge(poor) AS poor_rows,
            avgMerge(rtt_ms_avg) AS mean_rtt_ms,
            quantileMerge(0.95)(jitter_ms_p95) AS p95_jitter_ms,
            avgMerge(fraction_lost_avg) AS mean_fraction_lost,
            sumMerge(freeze_ms_sum) AS frozen_ms
        FROM live_qos_room_1m
        WHERE minute >= now('UTC') - INTERVAL {hours:UInt32} HOUR
            AND ({room_id:String} = '' OR room_id = {room_id:String})
        GROUP BY room_id, minute, source
    )
SELECT
    room_id,
    minute,
    sumIf(rows, source = 'server') AS server_samples,
    round(anyIf(mean_score, source = 'server'), 1) AS server_score,
    round(anyIf(lowest_score, source = 'server'), 1) AS server_min_score,
    round(sumIf(poor_rows, source = 'server') / nullIf(server_samples, 0), 3) AS server_poor_share,
    round(anyIf(mean_rtt_ms, source = 'server'), 1) AS server_rtt_ms,
    round(anyIf(mean_fraction_lost, source = 'server'), 4) AS server_fraction_lost,
    sumIf(rows, source = 'browser') AS browser_samples,
    round(anyIf(mean_score, source = 'browser'), 1) AS browser_score,
    round(anyIf(lowest_score, source = 'browser'), 1) AS browser_min_score,
    round(sumIf(poor_rows, source = 'browser') / nullIf(browser_samples, 0), 3) AS browser_poor_share,
    round(anyIf(p95_jitter_ms, source = 'browser'), 1) AS browser_p95_jitter_ms,
    round(anyIf(frozen_ms, source = 'browser') / 1000, 1) AS browser_frozen_s
FROM per_source
GROUP BY room_id, minute
ORDER BY room_id, minute
