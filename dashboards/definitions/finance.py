"""Finance: money through the escrow contract, per asset; open escrow; settlement latency;
the latest reconciliation.

Everything comes from ``settlements`` (every contract log, read with ``FINAL``), joined to
``course_completed`` for latency, and ``reconciliations``. Money columns are UInt256 in the
asset's base units and are summed per asset only. The charts convert each sum to units of its
asset (``/ 10^decimals``, Float64) to draw it, and say so; the exact sums are the strings of the
"Money by asset" table. Settlement logs carry no course id (only its keccak key), so the
dashboard filters by asset rather than by course, network type or region.
"""

from __future__ import annotations

from dashboards.definitions.variables import ASSET
from dashboards.panels import Dashboard, Panel

DEPOSITS = Panel(
    key="finance.deposits",
    title="Deposits per asset",
    kind="timeseries",
    unit="short",
    description="Escrow deposits of pay-by-completion enrollments per asset, by block time, in "
    "units of the asset (converted to Float64 for drawing; exact base units in the table).",
    sql="""
    SELECT time, asset, toFloat64(base_units) / pow(10, asset_decimals) AS deposited
    FROM
    (
        SELECT
            $__timeInterval(block_time) AS time,
            ifNull(asset, '') AS asset,
            any(decimals) AS asset_decimals,
            sum(ifNull(amount, 0)) AS base_units
        FROM settlements FINAL
        WHERE kind = 'deposited' AND $__timeFilter(block_time)
            AND $__conditionalAll(asset IN (${asset:singlequote}), $asset)
        GROUP BY time, asset
    )
    ORDER BY time, asset
    """,
)

CREATOR_PAYOUTS = Panel(
    key="finance.creator_payouts",
    title="Creator payouts per asset",
    kind="timeseries",
    unit="short",
    description="What settlement credited to course creators per asset, by block time, in "
    "units of the asset (converted to Float64 for drawing; exact base units in the table).",
    sql="""
    SELECT time, asset, toFloat64(base_units) / pow(10, asset_decimals) AS creator_payouts
    FROM
    (
        SELECT
            $__timeInterval(block_time) AS time,
            ifNull(asset, '') AS asset,
            any(decimals) AS asset_decimals,
            sum(ifNull(creator_amount, 0)) AS base_units
        FROM settlements FINAL
        WHERE kind = 'settled' AND $__timeFilter(block_time)
            AND $__conditionalAll(asset IN (${asset:singlequote}), $asset)
        GROUP BY time, asset
    )
    ORDER BY time, asset
    """,
)

REFUNDS = Panel(
    key="finance.refunds",
    title="Refunds per asset",
    kind="timeseries",
    unit="short",
    description="What went back to learners per asset (the unearned part at settlement, the "
    "whole deposit at expiry), by block time, in units of the asset (Float64 for drawing).",
    sql="""
    SELECT time, asset, toFloat64(base_units) / pow(10, asset_decimals) AS refunds
    FROM
    (
        SELECT
            $__timeInterval(block_time) AS time,
            ifNull(asset, '') AS asset,
            any(decimals) AS asset_decimals,
            sum(ifNull(learner_amount, 0)) AS base_units
        FROM settlements FINAL
        WHERE kind IN ('settled', 'expired') AND $__timeFilter(block_time)
            AND $__conditionalAll(asset IN (${asset:singlequote}), $asset)
        GROUP BY time, asset
    )
    ORDER BY time, asset
    """,
)

PLATFORM_FEES = Panel(
    key="finance.platform_fees",
    title="Platform fees per asset",
    kind="timeseries",
    unit="short",
    description="The platform's share of settled escrows per asset, by block time, in units of "
    "the asset (converted to Float64 for drawing; exact base units in the table).",
    sql="""
    SELECT time, asset, toFloat64(base_units) / pow(10, asset_decimals) AS platform_fees
    FROM
    (
        SELECT
            $__timeInterval(block_time) AS time,
            ifNull(asset, '') AS asset,
            any(decimals) AS asset_decimals,
            sum(ifNull(platform_amount, 0)) AS base_units
        FROM settlements FINAL
        WHERE kind = 'settled' AND $__timeFilter(block_time)
            AND $__conditionalAll(asset IN (${asset:singlequote}), $asset)
        GROUP BY time, asset
    )
    ORDER BY time, asset
    """,
)

MONEY_BY_ASSET = Panel(
    key="finance.money_by_asset",
    title="Money by asset (exact base units)",
    kind="table",
    unit="none",
    description="Exact UInt256 sums in base units per chain and asset over the range "
    "(asset_decimals says how many make one unit): deposited, paid to creators, platform fees, "
    "refunded and withdrawn.",
    sql="""
    SELECT
        chain_id,
        ifNull(asset, '') AS asset,
        any(decimals) AS asset_decimals,
        toString(sumIf(ifNull(amount, 0), kind = 'deposited')) AS deposited,
        toString(sumIf(ifNull(creator_amount, 0), kind = 'settled')) AS creator_payouts,
        toString(sumIf(ifNull(platform_amount, 0), kind = 'settled')) AS platform_fees,
        toString(sumIf(ifNull(learner_amount, 0), kind IN ('settled', 'expired'))) AS refunds,
        toString(sumIf(ifNull(amount, 0), kind = 'withdrawn')) AS withdrawn
    FROM settlements FINAL
    WHERE kind IN ('deposited', 'settled', 'expired', 'withdrawn')
        AND $__timeFilter(block_time)
        AND $__conditionalAll(asset IN (${asset:singlequote}), $asset)
    GROUP BY chain_id, asset
    ORDER BY chain_id, asset
    """,
    width=24,
    height=6,
)

OPEN_ESCROW = Panel(
    key="finance.open_escrow",
    title="Open escrow",
    kind="table",
    unit="none",
    description="Escrows deposited and neither settled nor expired, now, per chain and asset: "
    "count, exact base units (string), units of the asset (Float64), and how many are past "
    "their deadline (a few are normal before the settle delay).",
    sql="""
    WITH
        escrows AS
        (
            SELECT
                chain_id,
                enrollment_key,
                countIf(kind = 'deposited') AS deposits,
                countIf(kind IN ('settled', 'expired')) AS closings,
                anyIf(asset, kind = 'deposited') AS deposit_asset,
                anyIf(decimals, kind = 'deposited') AS deposit_decimals,
                sumIf(ifNull(amount, 0), kind = 'deposited') AS deposited,
                anyIf(deadline_at, kind = 'deposited') AS deadline
            FROM settlements FINAL
            WHERE kind IN ('deposited', 'settled', 'expired')
            GROUP BY chain_id, contract, enrollment_key
        )
    SELECT
        chain_id,
        ifNull(deposit_asset, '') AS asset,
        count() AS open_escrows,
        toString(sum(deposited)) AS open_base_units,
        toFloat64(sum(deposited)) / pow(10, any(deposit_decimals)) AS open_units,
        countIf(deadline < now64(3)) AS past_deadline
    FROM escrows
    WHERE deposits > 0 AND closings = 0
        AND $__conditionalAll(deposit_asset IN (${asset:singlequote}), $asset)
    GROUP BY chain_id, asset
    ORDER BY chain_id, asset
    """,
    height=6,
)

LATEST_RECONCILIATION = Panel(
    key="finance.latest_reconciliation",
    title="Latest reconciliation",
    kind="table",
    unit="none",
    description="The last run of `learnstream settlement reconcile`, whatever the range: ok "
    "is 1 when chain and stream agree; any non-zero mismatch or missing count needs a look "
    "(details in `settlement reconcile`).",
    sql="""
    SELECT
        started_at,
        finished_at,
        ok,
        matched,
        missing_on_chain,
        missing_off_chain,
        amount_mismatches,
        metric_mismatches,
        reorged_blocks,
        chain_id,
        contract
    FROM reconciliations
    ORDER BY started_at DESC, run_id
    LIMIT 1
    """,
    height=6,
)

SETTLEMENT_LATENCY = Panel(
    key="finance.settlement_latency",
    title="Settlement latency",
    kind="timeseries",
    unit="s",
    description="Seconds from a completion's received_at to the block time of its settlement "
    "(counted completions only), p50/p90/p99 and max per bucket of settlement time; a rising "
    "p99 means a job, the sink or the chain is slow.",
    sql="""
    SELECT
        $__timeInterval(settled_at) AS time,
        quantileExact(0.5)(latency_ms) / 1000 AS p50_s,
        quantileExact(0.9)(latency_ms) / 1000 AS p90_s,
        quantileExact(0.99)(latency_ms) / 1000 AS p99_s,
        max(latency_ms) / 1000 AS max_s
    FROM
    (
        SELECT
            s.block_time AS settled_at,
            dateDiff('millisecond', c.received_at, s.block_time) AS latency_ms
        FROM
        (
            SELECT enrollment_key, block_time
            FROM settlements FINAL
            WHERE kind = 'settled' AND counted AND metric = 'completion'
                AND $__timeFilter(block_time)
                AND $__conditionalAll(asset IN (${asset:singlequote}), $asset)
        ) AS s
        INNER JOIN
        (
            SELECT enrollment_key, received_at FROM course_completed FINAL
        ) AS c ON c.enrollment_key = s.enrollment_key
    )
    GROUP BY time
    ORDER BY time
    """,
    width=24,
)

DASHBOARD = Dashboard(
    uid="learnstream-finance",
    title="learnstream · Finance",
    description="Money through the pay-by-completion escrow per asset, what is still in escrow, "
    "how fast completions settle, and whether the books reconcile.",
    tags=("learnstream", "finance", "settlement"),
    variables=(ASSET,),
    panels=(
        DEPOSITS,
        CREATOR_PAYOUTS,
        REFUNDS,
        PLATFORM_FEES,
        MONEY_BY_ASSET,
        OPEN_ESCROW,
        LATEST_RECONCILIATION,
        SETTLEMENT_LATENCY,
    ),
    time_from="now-7d",
)
