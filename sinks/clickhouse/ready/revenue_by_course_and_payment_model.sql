SELECT
    r.course_id AS course_id,
    c.title AS title,
    r.payment_model AS payment_model,
    r.currency AS currency,
    countMerge(r.enrollments) AS enrollment_count,
    uniqExactMerge(r.learners) AS paying_learners,
    sumMerge(r.revenue_minor) AS revenue_minor_units,
    sumMerge(r.deposits_wei) AS escrowed_wei
FROM enrollment_revenue_daily AS r
LEFT JOIN
(
    SELECT course_id, title FROM course_catalog FINAL
) AS c ON c.course_id = r.course_id
WHERE r.day >= toDate(now('UTC')) - {days:UInt32}
GROUP BY r.course_id, c.title, r.payment_model, r.currency
ORDER BY currency, revenue_minor_units DESC
