-- churn_by_country: churn per country over the last 12 published months.
--
-- From subscriptions_monthly (country rows, 'ALL' last), for the 12 most recent months.
-- A figure made of several months is published only when every one of its months was:
-- a sum or mean over the published months alone would be biased (small cells are the
-- ones withheld, so churn would read low, even 0), and a 12-month sum beside 11
-- published months would give the withheld one away. Null means withheld, never zero.
--   country          the customer's country ('unknown' when not known; 'other' = the
--                    countries of fewer than k customers together; 'ALL' = every country).
--   months           months with a row for this country.
--   avg_active       mean of active_start over the months; null when any was withheld.
--   churned          sum of churned over the months; null when any was withheld.
--   churn_pct        churned / sum of active_start, in percent; null when either is.
--   withheld_months  months where a value of the row was withheld.
WITH recent AS (
    SELECT * FROM subscriptions_monthly
    WHERE month > (SELECT MAX(month) FROM subscriptions_monthly) - INTERVAL '12 months'
)
SELECT country,
       COUNT(*) AS months,
       CASE WHEN COUNT(active_start) = COUNT(*)
            THEN ROUND(AVG(active_start), 1) END AS avg_active,
       CASE WHEN COUNT(churned) = COUNT(*) THEN SUM(churned) END AS churned,
       CASE WHEN COUNT(churned) = COUNT(*) AND COUNT(active_start) = COUNT(*)
            THEN ROUND(100.0 * SUM(churned) / SUM(active_start), 2) END AS churn_pct,
       SUM(CASE WHEN suppressed THEN 1 ELSE 0 END) AS withheld_months
FROM recent
GROUP BY country
ORDER BY country = 'ALL', country
