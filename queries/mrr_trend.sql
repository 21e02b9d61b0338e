-- mrr_trend: monthly recurring revenue per currency, with month-over-month change.
--
-- From mrr_monthly, summed over countries.
--   month, currency  as in mrr_monthly.
--   mrr              sum of the published mrr of the currency's countries (mrr is withheld
--                    only where a country has 1..k-1 subscribers: a lower bound then).
--   subscribers      sum of the published subscriber counts (a lower bound when some are
--                    withheld).
--   withheld_cells   countries of this month and currency with a withheld value.
--   mrr_change_pct   mrr against the previous month's mrr in the same currency, in
--                    percent (2 decimals); null for the first month.
WITH per_currency AS (
    SELECT month,
           currency,
           SUM(mrr) AS mrr,
           SUM(subscribers) AS subscribers,
           SUM(CASE WHEN suppressed THEN 1 ELSE 0 END) AS withheld_cells
    FROM mrr_monthly
    GROUP BY month, currency
)
SELECT month,
       currency,
       ROUND(mrr, 2) AS mrr,
       subscribers,
       withheld_cells,
       ROUND(100 * (mrr / LAG(mrr) OVER (PARTITION BY currency ORDER BY month) - 1), 2)
           AS mrr_change_pct
FROM per_currency
ORDER BY month, currency
