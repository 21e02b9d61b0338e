-- mrr_monthly: monthly recurring revenue per currency at each month's end.
-- requires: customer_key, event_time, transaction_type, offer_type, offer_period, subscription_id, amount, currency
--
-- Paid coverage as in subscriptions_monthly (see coverage.sql). One row per UTC calendar
-- month (up to the last complete month at the as-of date) and currency with subscribers.
--   month        first day of the month.
--   currency     the currency of the purchase or renewal that pays for the coverage.
--   subscribers  distinct customers with a coverage interval containing the first
--                instant of the next month (the month's end; the same people as
--                subscriptions_monthly.active_end).
--   mrr          sum over those intervals of the payment normalized to one month: a
--                monthly plan counts in full, an annual plan 1/12, a weekly plan
--                30.436875 / 7 = 4.348 times (a month is 365.2425 / 12 = 30.436875
--                days), PnD 30.436875 / n, PnM 1/n, PnY 1/(12 n); each interval rounded
--                to 1/10000,
--                the sum to 2 decimals.
--   arpu         mrr / subscribers, rounded to 2 decimals.
--   suppressed   true when a value of the row was withheld (small-cell protection).
-- subscribers of 1..k-1 are withheld (null), with mrr and arpu.
SELECT anon_month_date(b - 1) AS month,
       COALESCE(currency, 'unknown') AS currency,
       COUNT(DISTINCT customer) AS subscribers,
       ROUND(CAST(SUM(monthly_units) AS DOUBLE) / 10000, 2) AS mrr,
       ROUND(CAST(SUM(monthly_units) AS DOUBLE) / 10000 / CAST(COUNT(DISTINCT customer) AS DOUBLE), 2)
           AS arpu
FROM (
    SELECT customer, currency, monthly_units, unnest(generate_series(b_from, b_to)) AS b
    FROM coverage
    WHERE b_from <= b_to
) ends
CROSS JOIN params
WHERE b - 1 <= params.last_month
GROUP BY b, COALESCE(currency, 'unknown')
ORDER BY month, currency
