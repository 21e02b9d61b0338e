-- revenue_by_currency: gross, refunds, chargebacks and net per month and currency.
--
-- From revenue_monthly, summed over countries and offer types.
--   month, currency   as in revenue_monthly.
--   gross, refunds, chargebacks, net   sums over the cells where the value was
--                     published: a lower bound when cells were withheld.
--   withheld_cells    rows of revenue_monthly in this month and currency with a withheld
--                     value (0 means the sums are exact).
SELECT month,
       currency,
       SUM(gross) AS gross,
       SUM(refunds) AS refunds,
       SUM(chargebacks) AS chargebacks,
       SUM(net) AS net,
       SUM(CASE WHEN suppressed THEN 1 ELSE 0 END) AS withheld_cells
FROM revenue_monthly
GROUP BY month, currency
ORDER BY month, currency
