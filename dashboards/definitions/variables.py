"""The template variables the dashboards share, each filled from ClickHouse.

Panels filter with ``$__conditionalAll(col IN (${name:singlequote}), $name)``: "All" drops the
filter (``1=1``), so rows with an empty value (live rows without a course) still count.
The lists come from the small per-minute tables, within the dashboard's time range.
"""

from __future__ import annotations

from dashboards.panels import Variable

COURSE = Variable(
    "course",
    "Course",
    """
    SELECT course_id, title
    FROM course_catalog FINAL
    ORDER BY title, course_id
    """,
)

NETWORK_TYPE = Variable(
    "network_type",
    "Network type",
    """
    SELECT DISTINCT network_type
    FROM
    (
        SELECT network_type FROM qos_1m WHERE $__timeFilter(window_start)
        UNION ALL
        SELECT network_type FROM live_qos_room_1m WHERE $__timeFilter(minute)
        UNION ALL
        SELECT network_type FROM immersive_qos_course_1m WHERE $__timeFilter(minute)
    )
    WHERE network_type != ''
    ORDER BY network_type
    """,
)

REGION = Variable(
    "region",
    "Region",
    """
    SELECT DISTINCT region
    FROM
    (
        SELECT region FROM qos_1m WHERE $__timeFilter(window_start)
        UNION ALL
        SELECT region FROM live_qos_room_1m WHERE $__timeFilter(minute)
    )
    WHERE region != ''
    ORDER BY region
    """,
)

ASSET = Variable(
    "asset",
    "Asset",
    """
    SELECT DISTINCT assumeNotNull(asset) AS value
    FROM settlements
    WHERE kind = 'deposited'
    ORDER BY value
    """,
)
