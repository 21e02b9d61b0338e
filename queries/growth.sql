-- growth: paying subscribers per month (all countries), how they moved, and churn.
--
-- From subscriptions_monthly, country = 'ALL'.
--   month         first day of the UTC month.
--   active_start  subscribers at the first instant of the month.
--   new           first-time subscribers who are active at the month's end.
--   reactivated   returning subscribers (coverage before this month) active at its end.
--   churned       active at the start, not at the end.
--   active_end    subscribers at the first instant of the next month.
--   net_change    active_end - active_start.
--   churn_pct     churned / active_start, in percent (2 decimals).
-- Null means withheld (small-cell protection), never zero.
SELECT month,
       active_start,
       "new",
       reactivated,
       churned,
       active_end,
       active_end - active_start AS net_change,
       ROUND(churn_rate * 100, 2) AS churn_pct
FROM subscriptions_monthly
WHERE country = 'ALL'
ORDER BY month
