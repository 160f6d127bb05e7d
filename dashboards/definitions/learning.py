"""Learning: who is active, how far learners get, where they struggle, and whether poor
playback predicts dropping out; recommendation quality.

Activity and quizzes come from the daily aggregates (``engagement_daily``, ``quiz_performance``:
whole UTC days, no network type or region). The funnel follows the enrollments of the range
through ``playback``, ``completion_scores`` and ``course_completed`` (joined by enrollment id).
Recommendation quality is the ``reco.metrics`` reports, stored in ``pipeline_metrics`` with
``_topic = 'reco.metrics'``.
"""

from __future__ import annotations

from dashboards.definitions.variables import COURSE, NETWORK_TYPE, REGION
from dashboards.panels import Dashboard, Panel

ACTIVE_LEARNERS_TOTAL = Panel(
    key="learning.active_learners_total",
    title="Active learners",
    kind="stat",
    unit="short",
    description="Distinct learners who viewed a page, played a video or took a quiz on the "
    "days of the range (whole UTC days; the network and region filters do not apply).",
    sql="""
    SELECT uniqExactMerge(active_learners) AS active_learners
    FROM engagement_daily
    WHERE day >= toDate($__fromTime) AND day <= toDate($__toTime)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
    """,
    width=6,
)

ACTIVE_LEARNERS = Panel(
    key="learning.active_learners",
    title="Active learners per day",
    kind="timeseries",
    unit="short",
    description="Distinct learners active each UTC day (a page view, a video or a quiz); the "
    "weekly rhythm is normal, a drop across all courses is not.",
    sql="""
    SELECT
        toDateTime(day) AS time,
        uniqExactMerge(active_learners) AS active_learners
    FROM engagement_daily
    WHERE day >= toDate($__fromTime) AND day <= toDate($__toTime)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
    GROUP BY time
    ORDER BY time
    """,
    width=18,
)

FUNNEL = Panel(
    key="learning.funnel",
    title="Enrollment funnel",
    kind="barchart",
    unit="short",
    description="Enrollments of the range, and how many of them started a video, got half way "
    "(completion score ≥ 0.5) and completed the course, each stage within the one before.",
    sql="""
    WITH
        stages AS
        (
            SELECT
                (course_id, learner_key) IN
                (
                    SELECT course_id, learner_key
                    FROM playback FINAL
                    WHERE verb IN ('played', 'completed')
                ) AS started,
                event_id IN
                (
                    SELECT enrollment_id FROM completion_scores FINAL WHERE score >= 0.5
                ) AS half_way,
                event_id IN (SELECT enrollment_id FROM course_completed FINAL) AS completed
            FROM enrollments FINAL
            WHERE $__timeFilter(occurred_at)
                AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        )
    SELECT stage, enrollment_count
    FROM
    (
        SELECT
            count() AS enrolled,
            countIf(started) AS started_video,
            countIf(started AND (half_way OR completed)) AS got_half_way,
            countIf(started AND completed) AS completed_course
        FROM stages
    )
    ARRAY JOIN
        ['1 enrolled', '2 started', '3 half way', '4 completed'] AS stage,
        [enrolled, started_video, got_half_way, completed_course] AS enrollment_count
    """,
)

QUIZ_PASS_RATES = Panel(
    key="learning.quiz_pass_rates",
    title="Quiz pass rates, hardest first",
    kind="bargauge",
    unit="percentunit",
    description="Share of attempts that passed, per quiz, over the days of the range, the 15 "
    "hardest first; a quiz far below its course's others needs a look at its questions.",
    sql="""
    SELECT
        concat(course_id, ' / ', quiz_id) AS quiz,
        sumMerge(passes) / countMerge(attempts) AS pass_rate
    FROM quiz_performance
    WHERE day >= toDate($__fromTime) AND day <= toDate($__toTime)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
    GROUP BY course_id, quiz_id
    ORDER BY pass_rate ASC, quiz
    LIMIT 15
    """,
)

COMPLETION_BY_NETWORK = Panel(
    key="learning.completion_by_network",
    title="Completion by network type",
    kind="barchart",
    unit="percentunit",
    description="Learners who played videos in the range, by the network type they used most: "
    "share who completed the course and mean completion score (learners in brackets); a gap "
    "between networks suggests playback is costing completions.",
    sql="""
    WITH
        learners AS
        (
            SELECT course_id, learner_key, topK(1)(network_type)[1] AS network
            FROM playback_qos FINAL
            WHERE report = 'session' AND $__timeFilter(occurred_at)
                AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
                AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
                AND $__conditionalAll(region IN (${region:singlequote}), $region)
            GROUP BY course_id, learner_key
        ),
        outcome AS
        (
            SELECT
                e.course_id AS course_id,
                e.learner_key AS learner_key,
                max(e.event_id IN (SELECT enrollment_id FROM course_completed FINAL)) AS completed,
                max(s.score) AS score
            FROM (SELECT event_id, course_id, learner_key FROM enrollments FINAL) AS e
            LEFT JOIN
            (
                SELECT enrollment_id, score FROM completion_scores FINAL
            ) AS s ON s.enrollment_id = e.event_id
            GROUP BY e.course_id, e.learner_key
        )
    SELECT
        concat(l.network, ' (', toString(count()), ')') AS network_type,
        avg(o.completed) AS completion_rate,
        avg(o.score) AS mean_completion_score
    FROM learners AS l
    INNER JOIN outcome AS o ON o.course_id = l.course_id AND o.learner_key = l.learner_key
    GROUP BY l.network
    ORDER BY l.network
    """,
)

COMPLETION_BY_EDGE_QOS = Panel(
    key="learning.completion_by_edge_qos",
    title="Completion by edge node QoS",
    kind="barchart",
    unit="percentunit",
    description="Learners by the edge node that served most of their sessions, edges ordered "
    "from least to most rebuffering: completion share and mean score; falling bars to the "
    "right mean poor playback predicts dropping out.",
    sql="""
    WITH
        edges AS
        (
            SELECT
                edge_node,
                sum(rebuffer_ms) / nullIf(sum(played_ms) + sum(rebuffer_ms), 0)
                    AS rebuffering_ratio
            FROM qos_1m FINAL
            WHERE $__timeFilter(window_start)
                AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
                AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
                AND $__conditionalAll(region IN (${region:singlequote}), $region)
            GROUP BY edge_node
        ),
        learners AS
        (
            SELECT course_id, learner_key, topK(1)(edge_node)[1] AS edge_node
            FROM playback_qos FINAL
            WHERE report = 'session' AND $__timeFilter(occurred_at)
                AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
                AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
                AND $__conditionalAll(region IN (${region:singlequote}), $region)
            GROUP BY course_id, learner_key
        ),
        outcome AS
        (
            SELECT
                e.course_id AS course_id,
                e.learner_key AS learner_key,
                max(e.event_id IN (SELECT enrollment_id FROM course_completed FINAL)) AS completed,
                max(s.score) AS score
            FROM (SELECT event_id, course_id, learner_key FROM enrollments FINAL) AS e
            LEFT JOIN
            (
                SELECT enrollment_id, score FROM completion_scores FINAL
            ) AS s ON s.enrollment_id = e.event_id
            GROUP BY e.course_id, e.learner_key
        )
    SELECT
        concat(
            l.edge_node, ' (', ifNull(toString(round(100 * any(d.rebuffering_ratio), 2)), '?'),
            ' % rebuffering, ', toString(count()), ' learners)'
        ) AS edge,
        avg(o.completed) AS completion_rate,
        avg(o.score) AS mean_completion_score
    FROM learners AS l
    INNER JOIN edges AS d ON d.edge_node = l.edge_node
    INNER JOIN outcome AS o ON o.course_id = l.course_id AND o.learner_key = l.learner_key
    GROUP BY l.edge_node
    ORDER BY any(d.rebuffering_ratio) ASC, l.edge_node
    """,
)

AT_RISK = Panel(
    key="learning.at_risk",
    title="At-risk learners",
    kind="table",
    unit="short",
    description="Enrolled learners inactive for 14 days or more and below their course's "
    "median progress (mean best progress over the required videos), as of now; the time range "
    "does not apply.",
    sql="""
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
            WHERE $__conditionalAll(course_id IN (${course:singlequote}), $course)
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
        s.last_active AS last_active,
        dateDiff('day', s.last_active, now64(3)) AS days_inactive
    FROM progress_per_learner AS p
    INNER JOIN medians AS m ON m.course_id = p.course_id
    INNER JOIN last_seen AS s ON s.course_id = p.course_id AND s.learner_key = p.learner_key
    WHERE s.last_active < now64(3) - INTERVAL 14 DAY
        AND p.course_progress < m.median_progress
    ORDER BY days_inactive DESC, progress ASC
    LIMIT 50
    """,
    width=24,
)

RECO_QUALITY = Panel(
    key="learning.reco_quality",
    title="Recommendation quality",
    kind="timeseries",
    unit="percentunit",
    description="Recall@10 and nDCG@10 per model from the recommendation app's progressive "
    "validation (each event scored before it is learned), cumulative since the models began; "
    "a model below popularity is not earning its keep.",
    sql="""
    SELECT
        $__timeInterval(at) AS time,
        model,
        avg(JSONExtractFloat(payload, 'models', model, 'recall_at_10')) AS recall_at_10,
        avg(JSONExtractFloat(payload, 'models', model, 'ndcg_at_10')) AS ndcg_at_10
    FROM pipeline_metrics
    ARRAY JOIN JSONExtractKeys(payload, 'models') AS model
    WHERE _topic = 'reco.metrics' AND $__timeFilter(at)
    GROUP BY time, model
    ORDER BY time, model
    """,
    width=24,
)

DASHBOARD = Dashboard(
    uid="learnstream-learning",
    title="learnstream · Learning",
    description="Who is active, how far learners get, where they struggle, whether poor "
    "playback predicts dropping out, and how good the recommendations are.",
    tags=("learnstream", "learning"),
    variables=(COURSE, NETWORK_TYPE, REGION),
    panels=(
        ACTIVE_LEARNERS_TOTAL,
        ACTIVE_LEARNERS,
        FUNNEL,
        QUIZ_PASS_RATES,
        COMPLETION_BY_NETWORK,
        COMPLETION_BY_EDGE_QOS,
        AT_RISK,
        RECO_QUALITY,
    ),
    time_from="now-30d",
)
