SELECT
    course_id,
    quiz_id,
    countMerge(attempts) AS attempt_count,
    uniqExactMerge(learners) AS learner_count,
    round(sumMerge(passes) / attempt_count, 3) AS pass_rate,
    round(avgMerge(score_fraction), 3) AS mean_score_fraction,
    round(attempt_count / learner_count, 2) AS attempts_per_learner
FROM quiz_performance
WHERE day >= toDate(now('UTC')) - {days:UInt32}
GROUP BY course_id, quiz_id
HAVING attempt_count >= {min_attempts:UInt32}
ORDER BY pass_rate ASC, mean_score_fraction ASC
LIMIT {limit:UInt32}
