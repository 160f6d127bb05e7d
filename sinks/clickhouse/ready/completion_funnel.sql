WITH
    stages AS
    (
        SELECT course_id, learner_key, 1 AS stage
        FROM views FINAL
        WHERE occurred_at >= now64(3) - INTERVAL {days:UInt32} DAY
        UNION ALL
        SELECT course_id, learner_key, 2 AS stage
        FROM enrollments FINAL
        WHERE occurred_at >= now64(3) - INTERVAL {days:UInt32} DAY
        UNION ALL
        SELECT course_id, learner_key, 3 AS stage
        FROM playback FINAL
        WHERE verb IN ('played', 'completed')
            AND occurred_at >= now64(3) - INTERVAL {days:UInt32} DAY
        UNION ALL
        SELECT course_id, learner_key, 4 AS stage
        FROM playback FINAL
        WHERE verb = 'completed' AND occurred_at >= now64(3) - INTERVAL {days:UInt32} DAY
        UNION ALL
        SELECT course_id, learner_key, 4 AS stage
        FROM quiz_results FINAL
        WHERE passed AND occurred_at >= now64(3) - INTERVAL {days:UInt32} DAY
    ),
    per_learner AS
    (
        SELECT course_id, learner_key, groupUniqArray(stage) AS reached
        FROM stages
        GROUP BY course_id, learner_key
    )
SELECT
    course_id,
    countIf(has(reached, 1)) AS viewed,
    countIf(hasAll(reached, [1, 2])) AS enrolled,
    countIf(hasAll(reached, [1, 2, 3])) AS watched_a_video,
    countIf(hasAll(reached, [1, 2, 3, 4])) AS completed_video_or_quiz,
    round(enrolled / nullIf(viewed, 0), 3) AS view_to_enroll,
    round(completed_video_or_quiz / nullIf(enrolled, 0), 3) AS enroll_to_complete
FROM per_learner
GROUP BY course_id
ORDER BY viewed DESC
