SELECT
    toDate(hour) AS day,
    reason,
    endpoint,
    countMerge(records) AS dead_letters
FROM dlq_reasons_hourly
WHERE hour >= now('UTC') - INTERVAL {days:UInt32} DAY
GROUP BY day, reason, endpoint
ORDER BY day, dead_letters DESC
