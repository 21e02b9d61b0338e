-- retention_curve: average cohort retention by months since the first transaction.
--
-- From cohort_retention.
--   months_since   whole months after the cohort's first month.
--   cohorts        cohorts whose retention at this age was published.
--   withheld       cohorts of this age whose retention was withheld (a cohort or a count
--                  of retained customers under k, or protecting another withheld cell).
--   avg_retention  unweighted mean of the published cohorts' retention, in percent
--                  (1 decimal). Withheld cohorts are left out, and they are the small
--                  cohorts and the small retained counts, i.e. often the low retention:
--                  where `withheld` is not 0 the mean is of the published cohorts only,
--                  and may lie well above the mean of all of them.
--   min_retention, max_retention   the lowest and highest published retention, in
--                  percent (the same caveat: a withheld cohort may be lower).
SELECT months_since,
       COUNT(retention) AS cohorts,
       COUNT(*) - COUNT(retention) AS withheld,
       ROUND(100 * AVG(retention), 1) AS avg_retention,
       ROUND(100 * MIN(retention), 1) AS min_retention,
       ROUND(100 * MAX(retention), 1) AS max_retention
FROM cohort_retention
GROUP BY months_since
ORDER BY months_since
