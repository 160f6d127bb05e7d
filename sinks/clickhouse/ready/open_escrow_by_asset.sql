WITH
    escrows AS
    (
        SELECT
            chain_id,
            contract,
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
    deposit_asset AS asset,
    any(deposit_decimals) AS decimals,
    count() AS open_escrows,
    sum(deposited) AS open_amount,
    countIf(deadline < now64(3)) AS past_deadline
FROM escrows
WHERE deposits > 0 AND closings = 0
GROUP BY chain_id, asset
ORDER BY chain_id, asset
