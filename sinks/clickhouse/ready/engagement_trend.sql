SELECT
    day,
    uniqExactMerge(active_learners) AS learners,
    countMerge(views) AS page_views,
    round(sumMerge(watch_ms) / 3600000, 2) AS watch_hours
FROM engagement_daily
WHERE day >= toDate(now('UTC')) - {days:UInt32}
    AND ({course_id:String} = '' OR course_id = {course_id:String})
GROUP BY day
ORDER BY day
