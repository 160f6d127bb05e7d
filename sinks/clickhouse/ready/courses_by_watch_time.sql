SELECT
    e.course_id AS course_id,
    c.title AS title,
    uniqExactMerge(e.active_learners) AS learners,
    countMerge(e.views) AS page_views,
    round(sumMerge(e.watch_ms) / 3600000, 2) AS watch_hours,
    round(sumMerge(e.watch_ms) / 60000 / nullIf(learners, 0), 1) AS watch_minutes_per_learner
FROM engagement_daily AS e
LEFT JOIN
(
    SELECT course_id, title FROM course_catalog FINAL
) AS c ON c.course_id = e.course_id
WHERE e.day >= toDate(now('UTC')) - {days:UInt32}
GROUP BY e.course_id, c.title
ORDER BY watch_hours DESC
LIMIT {limit:UInt32}
