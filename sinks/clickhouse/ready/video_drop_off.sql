SELECT
    course_id,
    video_id,
    count() AS learners,
    round(avg(best_progress), 3) AS mean_progress,
    round(countIf(best_progress >= 0.9) / count(), 3) AS share_watched_90pct
FROM
(
    SELECT course_id, video_id, learner_key, max(ifNull(progress, 0)) AS best_progress
    FROM playback FINAL
    WHERE occurred_at >= now64(3) - INTERVAL {days:UInt32} DAY
    GROUP BY course_id, video_id, learner_key
)
GROUP BY course_id, video_id
ORDER BY mean_progress ASC
