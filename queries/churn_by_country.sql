-- churn_by_country: churn per country over the last 12 published months.
--
-- From subscriptions_monthly (country rows, 'ALL' last), for the 12 most recent months.
--   country          the customer's country ('unknown' when not known; 'ALL' = every country).
--   months           months with a row for this country.
--   avg_active       mean of active_start over the months whose value was published.
--   churned          sum of churned over the months whose value was published.
--   churn_pct        churned / sum of active_start, both over months where both were
--                    published, in percent.
--   withheld_months  months where a value of the row was withheld.
WITH recent AS (
    SELECT * FROM subscriptions_monthly
    WHERE month > (SELECT MAX(month) FROM subscriptions_monthly) - INTERVAL '12 months'
)
SELECT country,
       COUNT(*) AS months,
       ROUND(AVG(active_start), 1) AS avg_active,
       SUM(churned) AS churned,
       ROUND(100.0 * SUM(CASE WHEN churned IS NOT NULL THEN churned END)
             / SUM(CASE WHEN churned IS NOT NULL AND active_start IS NOT NULL
                        THEN active_start END), 2) AS churn_pct,
       SUM(CASE WHEN suppressed THEN 1 ELSE 0 END) AS withheld_months
FROM recent
GROUP BY country
ORDER BY country = 'ALL', country
