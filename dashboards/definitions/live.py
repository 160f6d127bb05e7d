"""Live classes and immersive sessions: call quality per room, server beside browser; VR comfort.

Live figures come from ``live_qos_room_1m`` (per room, minute, source, kind, network type and
region, read with the -Merge combinators). It has no course column: the course filter keeps the
rooms whose ``live_qos`` rows carry one of the chosen courses. ``source`` is ``server`` (the
live server's view of each participant) or ``browser`` (the participant's own ``getStats()``),
so each chart shows the two side by side. VR comfort comes from ``immersive_qos_course_1m``
(per course, minute, headset and network type: no region).
"""

from __future__ import annotations

from dashboards.definitions.variables import COURSE, NETWORK_TYPE, REGION
from dashboards.panels import Dashboard, Panel

SCORE_BY_ROOM = Panel(
    key="live.score_by_room",
    title="Quality score per room, server and browser",
    kind="timeseries",
    unit="none",
    description="Mean quality score (0 to 100: excellent ≥ 80, good ≥ 60, fair ≥ 40, else "
    "poor) per room as the live server and as the browsers measure it; the two apart means "
    "one side sees trouble the other does not.",
    sql="""
    SELECT
        $__timeInterval(minute) AS time,
        room_id,
        source,
        avgMerge(score_avg) AS score
    FROM live_qos_room_1m
    WHERE $__timeFilter(minute)
        AND $__conditionalAll(
            room_id IN (
                SELECT room_id FROM live_qos
                WHERE course_id IN (${course:singlequote}) AND $__timeFilter(occurred_at)
            ),
            $course
        )
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY time, room_id, source
    ORDER BY time, room_id, source
    """,
    width=24,
)

RTT = Panel(
    key="live.rtt",
    title="Round-trip time",
    kind="timeseries",
    unit="ms",
    description="Mean round-trip time to participants, server-side beside browser-side; above "
    "about 300 ms conversation starts to stumble.",
    sql="""
    SELECT
        $__timeInterval(minute) AS time,
        source,
        avgMerge(rtt_ms_avg) AS rtt_ms
    FROM live_qos_room_1m
    WHERE $__timeFilter(minute)
        AND $__conditionalAll(
            room_id IN (
                SELECT room_id FROM live_qos
                WHERE course_id IN (${course:singlequote}) AND $__timeFilter(occurred_at)
            ),
            $course
        )
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY time, source
    ORDER BY time, source
    """,
    width=8,
)

JITTER = Panel(
    key="live.jitter",
    title="Jitter (p95)",
    kind="timeseries",
    unit="ms",
    description="95th percentile of packet jitter, server-side beside browser-side; above "
    "about 30 ms audio and video need a deeper jitter buffer, which adds delay.",
    sql="""
    SELECT
        $__timeInterval(minute) AS time,
        source,
        quantileMerge(0.95)(jitter_ms_p95) AS p95_jitter_ms
    FROM live_qos_room_1m
    WHERE $__timeFilter(minute)
        AND $__conditionalAll(
            room_id IN (
                SELECT room_id FROM live_qos
                WHERE course_id IN (${course:singlequote}) AND $__timeFilter(occurred_at)
            ),
            $course
        )
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY time, source
    ORDER BY time, source
    """,
    width=8,
)

LOSS = Panel(
    key="live.loss",
    title="Packet loss",
    kind="timeseries",
    unit="percentunit",
    description="Mean fraction of packets lost, server-side beside browser-side; a few percent "
    "already shows as frozen or blocky video.",
    sql="""
    SELECT
        $__timeInterval(minute) AS time,
        source,
        avgMerge(fraction_lost_avg) AS fraction_lost
    FROM live_qos_room_1m
    WHERE $__timeFilter(minute)
        AND $__conditionalAll(
            room_id IN (
                SELECT room_id FROM live_qos
                WHERE course_id IN (${course:singlequote}) AND $__timeFilter(occurred_at)
            ),
            $course
        )
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY time, source
    ORDER BY time, source
    """,
    width=8,
)

FREEZES = Panel(
    key="live.freezes",
    title="Frozen video",
    kind="timeseries",
    unit="s",
    description="Seconds of frozen video summed over participants per bucket (browsers "
    "measure freezes; the server has none to report); any steady rise is visible to learners.",
    sql="""
    SELECT
        $__timeInterval(minute) AS time,
        source,
        sumMerge(freeze_ms_sum) / 1000 AS frozen_s
    FROM live_qos_room_1m
    WHERE $__timeFilter(minute)
        AND $__conditionalAll(
            room_id IN (
                SELECT room_id FROM live_qos
                WHERE course_id IN (${course:singlequote}) AND $__timeFilter(occurred_at)
            ),
            $course
        )
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY time, source
    ORDER BY time, source
    """,
)

FPS = Panel(
    key="live.fps",
    title="Frame rate",
    kind="timeseries",
    unit="short",
    description="Mean frames per second of received video, server-side beside browser-side; a "
    "drop below about 15 fps with steady loss means encoders are limited by CPU or bandwidth.",
    sql="""
    SELECT
        $__timeInterval(minute) AS time,
        source,
        avgMerge(fps_avg) AS fps
    FROM live_qos_room_1m
    WHERE $__timeFilter(minute)
        AND $__conditionalAll(
            room_id IN (
                SELECT room_id FROM live_qos
                WHERE course_id IN (${course:singlequote}) AND $__timeFilter(occurred_at)
            ),
            $course
        )
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
        AND $__conditionalAll(region IN (${region:singlequote}), $region)
    GROUP BY time, source
    ORDER BY time, source
    """,
)

ROOMS = Panel(
    key="live.rooms",
    title="Rooms, server beside browser",
    kind="table",
    unit="short",
    description="Per room over the range, each figure as the server and as the browsers saw "
    "it (score 0 to 100, poor share and loss as fractions); the lowest-scoring rooms come first.",
    sql="""
    WITH
        per_source AS
        (
            SELECT
                room_id,
                source,
                countMerge(samples) AS rows,
                avgMerge(score_avg) AS mean_score,
                sumMerge(poor) AS poor_rows,
                avgMerge(rtt_ms_avg) AS mean_rtt_ms,
                quantileMerge(0.95)(jitter_ms_p95) AS p95_jitter_ms,
                avgMerge(fraction_lost_avg) AS mean_fraction_lost,
                sumMerge(freeze_ms_sum) AS frozen_ms,
                avgMerge(fps_avg) AS mean_fps
            FROM live_qos_room_1m
            WHERE $__timeFilter(minute)
                AND $__conditionalAll(
                    room_id IN (
                        SELECT room_id FROM live_qos
                        WHERE course_id IN (${course:singlequote}) AND $__timeFilter(occurred_at)
                    ),
                    $course
                )
                AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
                AND $__conditionalAll(region IN (${region:singlequote}), $region)
            GROUP BY room_id, source
        )
    SELECT
        room_id,
        round(anyIf(mean_score, source = 'server'), 1) AS server_score,
        round(anyIf(mean_score, source = 'browser'), 1) AS browser_score,
        round(sumIf(poor_rows, source = 'server') / nullIf(sumIf(rows, source = 'server'), 0), 3)
            AS server_poor_share,
        round(sumIf(poor_rows, source = 'browser') / nullIf(sumIf(rows, source = 'browser'), 0), 3)
            AS browser_poor_share,
        round(anyIf(mean_rtt_ms, source = 'server'), 1) AS server_rtt_ms,
        round(anyIf(mean_rtt_ms, source = 'browser'), 1) AS browser_rtt_ms,
        round(anyIf(p95_jitter_ms, source = 'server'), 1) AS server_p95_jitter_ms,
        round(anyIf(p95_jitter_ms, source = 'browser'), 1) AS browser_p95_jitter_ms,
        round(anyIf(mean_fraction_lost, source = 'server'), 4) AS server_fraction_lost,
        round(anyIf(mean_fraction_lost, source = 'browser'), 4) AS browser_fraction_lost,
        round(anyIf(mean_fps, source = 'browser'), 1) AS browser_fps,
        round(anyIf(frozen_ms, source = 'browser') / 1000, 1) AS browser_frozen_s
    FROM per_source
    GROUP BY room_id
    ORDER BY least(ifNull(server_score, 100), ifNull(browser_score, 100)) ASC, room_id
    LIMIT 50
    """,
    width=24,
)

VR_MOTION_TO_PHOTON = Panel(
    key="live.vr_motion_to_photon",
    title="VR motion-to-photon latency",
    kind="timeseries",
    unit="ms",
    description="Head movement to updated picture in VR lessons: mean and p95 of the "
    "reporting intervals' means; above 20 ms comfort ends (the region filter does not apply).",
    sql="""
    SELECT
        $__timeInterval(minute) AS time,
        avgMerge(motion_to_photon_ms_avg) AS mean_ms,
        quantileMerge(0.95)(motion_to_photon_ms_p95) AS p95_ms
    FROM immersive_qos_course_1m
    WHERE $__timeFilter(minute)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
    GROUP BY time
    ORDER BY time
    """,
    width=10,
)

VR_FPS = Panel(
    key="live.vr_fps",
    title="VR frame rate by headset",
    kind="timeseries",
    unit="short",
    description="Mean frames per second rendered in VR lessons, per headset; below the "
    "headset's target (72 to 120 fps) it reprojects frames, which viewers feel as judder.",
    sql="""
    SELECT
        $__timeInterval(minute) AS time,
        headset,
        avgMerge(fps_avg) AS fps
    FROM immersive_qos_course_1m
    WHERE $__timeFilter(minute)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
    GROUP BY time, headset
    ORDER BY time, headset
    """,
    width=10,
)

VR_OVER_20MS = Panel(
    key="live.vr_over_20ms",
    title="VR intervals over 20 ms",
    kind="stat",
    unit="percentunit",
    description="Share of VR reporting intervals whose mean motion-to-photon latency was above "
    "20 ms, where comfort ends, over the range.",
    sql="""
    SELECT sumMerge(over_20ms) / nullIf(countMerge(intervals), 0) AS share_over_20ms
    FROM immersive_qos_course_1m
    WHERE $__timeFilter(minute)
        AND $__conditionalAll(course_id IN (${course:singlequote}), $course)
        AND $__conditionalAll(network_type IN (${network_type:singlequote}), $network_type)
    """,
    width=4,
)

DASHBOARD = Dashboard(
    uid="learnstream-live",
    title="learnstream · Live classes and immersive sessions",
    description="Call quality of live classes per room, as the live server and as the browsers "
    "measure it, and the comfort of VR lessons.",
    tags=("learnstream", "qos", "live"),
    variables=(COURSE, NETWORK_TYPE, REGION),
    panels=(
        SCORE_BY_ROOM,
        RTT,
        JITTER,
        LOSS,
        FREEZES,
        FPS,
        ROOMS,
        VR_MOTION_TO_PHOTON,
        VR_FPS,
        VR_OVER_20MS,
    ),
)
