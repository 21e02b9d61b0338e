-- mrr_trend: monthly recurring revenue per currency, with month-over-month change.
--
-- From mrr_monthly.
--   month, currency, subscribers, mrr, arpu   as in mrr_monthly (null = withheld).
--   mrr_change_pct   mrr against the previous month's mrr in the same currency, in
--                    percent; null when either is withheld or there is no previous month.
SELECT month,
       currency,
       subscribers,
       mrr,
       arpu,
       ROUND(100 * (mrr / LAG(mrr) OVER (PARTITION BY currency ORDER BY month) - 1), 2)
           AS mrr_change_pct
FROM mrr_monthly
ORDER BY month, currency
