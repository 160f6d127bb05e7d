SELECT
    toDate(settled_at) AS day,
    count() AS settlements,
    round(quantileExact(0.5)(latency_ms) / 1000, 3) AS p50_s,
    round(quantileExact(0.9)(latency_ms) / 1000, 3) AS p90_s,
    round(quantileExact(0.99)(latency_ms) / 1000, 3) AS p99_s,
    round(max(latency_ms) / 1000, 3) AS max_s
FROM
(
    SELECT
        s.block_time AS settled_at,
        dateDiff('millisecond', c.received_at, s.block_time) AS latency_ms
    FROM
    (
        SELECT enrollment_key, block_time
        FROM settlements FINAL
        WHERE kind = 'settled' AND counted AND metric = 'completion'
            AND block_time >= now64(3) - INTERVAL {days:UInt32} DAY
    ) AS s
    INNER JOIN
    (
        SELECT enrollment_key, received_at FROM course_completed FINAL
    ) AS c ON c.enrollment_key = s.enrollment_key
)
GROUP BY day
ORDER BY day
