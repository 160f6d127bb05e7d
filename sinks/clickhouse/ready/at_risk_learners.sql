WITH
    required AS
    (
        SELECT
            course_id,
            arrayMap(v -> v.video_id, arrayFilter(v -> v.required, videos)) AS video_ids
        FROM course_catalog FINAL
    ),
    enrolled AS
    (
        SELECT DISTINCT course_id, learner_key
        FROM enrollments FINAL
    ),
    best AS
    (
        SELECT course_id, learner_key, video_id, max(ifNull(progress, 0)) AS best_progress
        FROM playback FINAL
        GROUP BY course_id, learner_key, video_id
    ),
    progress_per_learner AS
    (
        SELECT
            e.course_id AS course_id,
            e.learner_key AS learner_key,
            sumIf(b.best_progress, has(r.video_ids, b.video_id)) / length(r.video_ids)
                AS course_progress
        FROM enrolled AS e
        INNER JOIN required AS r ON r.course_id = e.course_id
        LEFT JOIN best AS b ON b.course_id = e.course_id AND b.learner_key = e.learner_key
        WHERE length(r.video_ids) > 0
        GROUP BY e.course_id, e.learner_key, r.video_ids
    ),
    medians AS
    (
        SELECT course_id, median(course_progress) AS median_progress
        FROM progress_per_learner
        GROUP BY course_id
    ),
    last_seen AS
    (
        SELECT course_id, learner_key, max(occurred_at) AS last_active
        FROM
        (
            SELECT course_id, learner_key, occurred_at FROM views
            UNION ALL SELECT course_id, learner_key, occurred_at FROM playback
            UNION ALL SELECT course_id, learner_key, occurred_at FROM playback_qos
            UNION ALL SELECT course_id, learner_key, occurred_at FROM quiz_results
            UNION ALL SELECT course_id, learner_key, occurred_at FROM enrollments
        )
        GROUP BY course_id, learner_key
    )
SELECT
    p.course_id AS course_id,
    p.learner_key AS learner_key,
    round(p.course_progress, 3) AS progress,
    round(m.median_progress, 3) AS course_median,
    s.last_active,
    dateDiff('day', s.last_active, now64(3)) AS days_inactive
FROM progress_per_learner AS p
INNER JOIN medians AS m ON m.course_id = p.course_id
INNER JOIN last_seen AS s ON s.course_id = p.course_id AND s.learner_key = p.learner_key
WHERE s.last_active < now64(3) - INTERVAL {inactive_days:UInt32} DAY
    AND p.course_progress < m.median_progress
ORDER BY days_inactive DESC, progress ASC
LIMIT {limit:UInt32}
