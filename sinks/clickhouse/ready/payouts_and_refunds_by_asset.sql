SELECT
    toDate(block_time) AS day,
    chain_id,
    asset,
    any(decimals) AS asset_decimals,
    countIf(kind = 'settled') AS settled,
    sumIf(ifNull(creator_amount, 0), kind = 'settled') AS settled_creator,
    sumIf(ifNull(platform_amount, 0), kind = 'settled') AS settled_platform,
    sumIf(ifNull(learner_amount, 0), kind = 'settled') AS settled_learner,
    countIf(kind = 'expired') AS expired,
    sumIf(ifNull(learner_amount, 0), kind = 'expired') AS expired_learner,
    countIf(kind = 'withdrawn') AS withdrawals,
    sumIf(ifNull(amount, 0), kind = 'withdrawn') AS withdrawn
FROM settlements FINAL
WHERE kind IN ('settled', 'expired', 'withdrawn')
    AND block_time >= now64(3) - INTERVAL {days:UInt32} DAY
GROUP BY day, chain_id, asset
ORDER BY day, chain_id, asset
