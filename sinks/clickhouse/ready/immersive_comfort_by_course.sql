SELECT
    course_id,
    minute,
    countMerge(intervals) AS interval_count,
    round(avgMerge(fps_avg), 1) AS mean_fps,
    round(avgMerge(motion_to_photon_ms_avg), 1) AS mean_motion_to_photon_ms,
    round(quantileMerge(0.95)(motion_to_photon_ms_p95), 1) AS p95_motion_to_photon_ms,
    round(sumMerge(over_20ms) / interval_count, 3) AS share_over_20ms,
    sumMerge(frames_dropped) AS dropped_frames,
    sumMerge(frames_reprojected) AS reprojected_frames
FROM immersive_qos_course_1m
WHERE minute >= now('UTC') - INTERVAL {hours:UInt32} HOUR
    AND ({course_id:String} = '' OR course_id = {course_id:String})
GROUP BY course_id, minute
ORDER BY course_id, minute
