-- revenue_by_currency: gross, refunds, chargebacks and net per month and currency.
--
-- From revenue_monthly, summed over countries and offer types.
--   month, currency   as in revenue_monthly: the payments of a (country, currency, offer
--                     type) combination that fewer than k customers have are under
--                     currency 'other' there (README, small-cell suppression), so a
--                     currency's sums here leave them out.
--   gross, refunds, chargebacks   sums over the cells where the value was published:
--                     a lower bound when cells were withheld (each value is >= 0).
--   net               sum of net, only when no cell of the month and currency was
--                     withheld, else null: a withheld cell's net can be negative (a
--                     refund in a month and country without payments), so a sum over
--                     the published cells would be no bound at all.
--   withheld_cells    rows of revenue_monthly in this month and currency with a withheld
--                     value (0 means the sums are exact).
SELECT month,
       currency,
       SUM(gross) AS gross,
       SUM(refunds) AS refunds,
       SUM(chargebacks) AS chargebacks,
       CASE WHEN SUM(CASE WHEN suppressed THEN 1 ELSE 0 END) = 0 THEN SUM(net) END AS net,
       SUM(CASE WHEN suppressed THEN 1 ELSE 0 END) AS withheld_cells
FROM revenue_monthly
GROUP BY month, currency
ORDER BY month, currency
