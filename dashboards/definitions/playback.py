"""Playback QoS: how well videos start and play, by network type, region and edge node.

The figures come from ``qos_1m`` (the Flink QoS job's one-minute windows, read with ``FINAL``)
with the QoE definitions of docs/analytics.md: rebuffering ratio = rebuffer / (played +
rebuffer); video start failure and exit-before-video-start rates per attempt; bitrate as the
mean of session averages. The startup score needs each session's startup time, so it reads the
raw session reports of ``playback_qos``.
"""

from __future__ import annotations

from dashboards.definitions.variables import COURSE, NETWORK_TYPE, REGION
from dashboards.panels import Dashboard, Panel

ATTEMPTS = Panel(
    key="playback.attempts",
    title="Playback attempts",
    kind="stat",
    unit="short",
    description="Sessions that asked to play a video in the range (started or not), the "
    "denominator of the rates beside it.",
    sql="""
    SELECT sum(plays) AS attempts
    FROM qos_1m FINAL
    WHERE $__timeFilter(window_start)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    """,
    width=6,
    height=4,
)

REBUFFERING_OVERALL = Panel(
    key="playback.rebuffering_overall",
    title="Rebuffering ratio",
    kind="stat",
    unit="percentunit",
    description="Share of viewing time spent stalled, rebuffer / (played + rebuffer), over the "
    "range; above 1 % viewers notice, above 3 % they leave.",
    sql="""
    SELECT sum(rebuffer_ms) / nullIf(sum(played_ms) + sum(rebuffer_ms), 0) AS rebuffering_ratio
    FROM qos_1m FINAL
    WHERE $__timeFilter(window_start)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    """,
    width=6,
    height=4,
)

START_FAILURE_OVERALL = Panel(
    key="playback.start_failure_overall",
    title="Video start failures",
    kind="stat",
    unit="percentunit",
    description="Share of attempts that failed before the first frame (an error, not the "
    "viewer leaving), over the range.",
    sql="""
    SELECT sum(video_start_failures) / nullIf(sum(plays), 0) AS video_start_failure_rate
    FROM qos_1m FINAL
    WHERE $__timeFilter(window_start)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    """,
    width=6,
    height=4,
)

STARTUP_SCORE = Panel(
    key="playback.startup_score",
    title="Startup score (Mux-style)",
    kind="stat",
    unit="none",
    description="Mean over started sessions of 100 * 8 / (8 + startup seconds), Mux's Startup "
    "Time Score: 400 ms scores 95, 2 s 80, 8 s 50; sessions that never started have none.",
    sql="""
    SELECT round(avg(800 / (8 + startup_time_ms / 1000)), 1) AS startup_score
    FROM playback_qos FINAL
    WHERE report = 'session' AND startup_time_ms IS NOT NULL
        AND $__timeFilter(occurred_at)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    """,
    width=6,
    height=4,
)

STARTUP_TIME = Panel(
    key="playback.startup_time",
    title="Startup time",
    kind="timeseries",
    unit="ms",
    description="Play request to first frame of started sessions: the mean is exact; p50 and "
    "p95 are the QoS job's per-minute quantiles averaged over the bucket weighted by startups "
    "(quantiles do not add up across minutes).",
    sql="""
    SELECT
        $__timeInterval(window_start) AS time,
        sum(startup_time_sum_ms) / nullIf(sum(startups), 0) AS mean_ms,
        sum(startup_p50_ms * startups)
            / nullIf(sumIf(startups, startup_p50_ms IS NOT NULL), 0) AS p50_ms,
        sum(startup_p95_ms * startups)
            / nullIf(sumIf(startups, startup_p95_ms IS NOT NULL), 0) AS p95_ms
    FROM qos_1m FINAL
    WHERE $__timeFilter(window_start)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY time
    ORDER BY time
    """,
)

REBUFFERING_RATIO = Panel(
    key="playback.rebuffering_ratio",
    title="Rebuffering ratio by network type",
    kind="timeseries",
    unit="percentunit",
    description="Share of viewing time stalled, per network type (5G SA, 5G NSA, 4G, Wi-Fi, "
    "…); one network rising alone points at the radio side, all rising at once at the origin "
    "or the CDN.",
    sql="""
    SELECT
        $__timeInterval(window_start) AS time,
        network_type,
        sum(rebuffer_ms) / nullIf(sum(played_ms) + sum(rebuffer_ms), 0) AS rebuffering_ratio
    FROM qos_1m FINAL
    WHERE $__timeFilter(window_start)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY time, network_type
    ORDER BY time, network_type
    """,
)

START_FAILURES = Panel(
    key="playback.start_failures",
    title="Start failures and exits before start",
    kind="timeseries",
    unit="percentunit",
    description="Per attempt: video start failures (an error before the first frame) and exits "
    "before video start (the viewer gave up waiting); exits rising with startup time mean "
    "viewers are losing patience.",
    sql="""
    SELECT
        $__timeInterval(window_start) AS time,
        sum(video_start_failures) / nullIf(sum(plays), 0) AS video_start_failure_rate,
        sum(exits_before_start) / nullIf(sum(plays), 0) AS exits_before_start_rate
    FROM qos_1m FINAL
    WHERE $__timeFilter(window_start)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY time
    ORDER BY time
    """,
)

BITRATE = Panel(
    key="playback.bitrate",
    title="Average bitrate by network type",
    kind="timeseries",
    unit="Kbits",
    description="Mean of the sessions' average bitrates, per network type; a network whose "
    "bitrate sinks while its rebuffering holds steady is being served lower renditions.",
    sql="""
    SELECT
        $__timeInterval(window_start) AS time,
        network_type,
        sum(bitrate_kbps_sum) / nullIf(sum(bitrate_samples), 0) AS bitrate_kbps
    FROM qos_1m FINAL
    WHERE $__timeFilter(window_start)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY time, network_type
    ORDER BY time, network_type
    """,
)

BY_NETWORK_TYPE = Panel(
    key="playback.by_network_type",
    title="QoS by network type",
    kind="table",
    unit="short",
    description="Every QoE measure per network type over the range (rates as fractions), "
    "worst rebuffering first.",
    sql="""
    SELECT
        network_type,
        sum(plays) AS attempts,
        round(sum(startup_time_sum_ms) / nullIf(sum(startups), 0)) AS mean_startup_ms,
        round(sum(rebuffer_ms) / nullIf(sum(played_ms) + sum(rebuffer_ms), 0), 4)
            AS rebuffering_ratio,
        round(sum(video_start_failures) / nullIf(sum(plays), 0), 4) AS video_start_failure_rate,
        round(sum(exits_before_start) / nullIf(sum(plays), 0), 4) AS exits_before_start_rate,
        round(sum(bitrate_kbps_sum) / nullIf(sum(bitrate_samples), 0)) AS mean_bitrate_kbps
    FROM qos_1m FINAL
    WHERE $__timeFilter(window_start)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY network_type
    ORDER BY rebuffering_ratio DESC
    """,
)

BY_REGION = Panel(
    key="playback.by_region",
    title="QoS by region",
    kind="barchart",
    unit="percentunit",
    description="Rebuffering ratio, start-failure and exit-before-start rates per region over "
    "the range; a region standing out alone points at its edge nodes (table below).",
    sql="""
    SELECT
        region,
        sum(rebuffer_ms) / nullIf(sum(played_ms) + sum(rebuffer_ms), 0) AS rebuffering_ratio,
        sum(video_start_failures) / nullIf(sum(plays), 0) AS video_start_failure_rate,
        sum(exits_before_start) / nullIf(sum(plays), 0) AS exits_before_start_rate
    FROM qos_1m FINAL
    WHERE $__timeFilter(window_start)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY region
    ORDER BY region
    """,
)

WORST_EDGE_NODES = Panel(
    key="playback.worst_edge_nodes",
    title="Worst edge nodes",
    kind="table",
    unit="short",
    description="The ten CDN/MEC edge nodes with the worst rebuffering (then start failures) "
    "among those with at least 10 attempts in the range; the first rows are where to look.",
    sql="""
    SELECT
        region,
        edge_node,
        sum(plays) AS attempts,
        round(sum(rebuffer_ms) / nullIf(sum(played_ms) + sum(rebuffer_ms), 0), 4)
            AS rebuffering_ratio,
        round(sum(video_start_failures) / nullIf(sum(plays), 0), 4) AS video_start_failure_rate,
        round(sum(startup_time_sum_ms) / nullIf(sum(startups), 0)) AS mean_startup_ms,
        round(sum(bitrate_kbps_sum) / nullIf(sum(bitrate_samples), 0)) AS mean_bitrate_kbps
    FROM qos_1m FINAL
    WHERE $__timeFilter(window_start)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY region, edge_node
    HAVING attempts >= 10
    ORDER BY rebuffering_ratio DESC, video_start_failure_rate DESC
    LIMIT 10
    """,
    width=24,
)

DASHBOARD = Dashboard(
    uid="learnstream-playback",
    title="learnstream · Playback QoS",
    description="How well course videos start and play, by network type, region and edge node "
    "(from the QoS job's one-minute windows).",
    tags=("learnstream", "qos", "playback"),
    variables=(COURSE, NETWORK_TYPE, REGION),
    panels=(
        ATTEMPTS,
        REBUFFERING_OVERALL,
        START_FAILURE_OVERALL,
        STARTUP_SCORE,
        STARTUP_TIME,
        REBUFFERING_RATIO,
        START_FAILURES,
        BITRATE,
        BY_NETWORK_TYPE,
        BY_REGION,
        WORST_EDGE_NODES,
    ),
)
