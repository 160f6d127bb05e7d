SELECT
    service,
    instance,
    argMax(consumer_group, at) AS consumer_group,
    max(at) AS last_report,
    dateDiff('second', last_report, now64(3)) AS age_s,
    argMax(in_per_s, at) AS in_per_s,
    argMax(out_per_s, at) AS out_per_s,
    argMax(lag, at) AS lag
FROM pipeline_metrics
WHERE at >= now64(3) - INTERVAL {hours:UInt32} HOUR
  AND _topic = 'pipeline.metrics'
GROUP BY service, instance
ORDER BY service, instance
