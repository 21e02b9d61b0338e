-- retention_curve: average cohort retention by months since the first transaction.
--
-- From cohort_retention.
--   months_since   whole months after the cohort's first month.
--   cohorts        cohorts whose retention at this age was published.
--   avg_retention  unweighted mean of those cohorts' retention, in percent (1 decimal).
--   min_retention, max_retention   the lowest and highest of them, in percent.
SELECT months_since,
       COUNT(retention) AS cohorts,
       ROUND(100 * AVG(retention), 1) AS avg_retention,
       ROUND(100 * MIN(retention), 1) AS min_retention,
       ROUND(100 * MAX(retention), 1) AS max_retention
FROM cohort_retention
GROUP BY months_since
ORDER BY months_since
