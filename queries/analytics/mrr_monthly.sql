-- mrr_monthly: monthly recurring revenue at each month's end, per country and currency.
-- requires: customer_key, event_time, transaction_type, offer_type, offer_period, subscription_id, amount, currency
--
-- Paid coverage as in subscriptions_monthly (see coverage.sql). One row per UTC calendar
-- month (up to the last complete month at the as-of date), customer country and currency
-- with subscribers.
--   month        first day of the month.
--   country      the customer's country, as in subscriptions_monthly ('unknown' when not
--                known, 'other' when rare).
--   currency     the currency of the purchase or renewal that pays for the coverage;
--                'other' for a currency that fewer than k customers have a transaction
--                in during the published months (as in revenue_monthly), and for a
--                (country, currency) pair that fewer than k customers of the country
--                have a transaction in the currency in during those months (the
--                coverage view arrives so recoded).
--   subscribers  distinct customers with a coverage interval containing the first
--                instant of the next month (the month's end): with one currency per
--                customer, the currencies of a country add up to its
--                subscriptions_monthly.active_end.
--   mrr          sum over those intervals of the payment normalized to one month: a
--                monthly plan counts in full, an annual plan 1/12, a weekly plan
--                30.436875 / 7 = 4.348 times (a month is 365.2425 / 12 = 30.436875
--                days), PnD 30.436875 / n, PnM 1/n, PnY 1/(12 n); each interval rounded
--                to 1/10000, the sum to 2 decimals.
--   arpu         mrr / subscribers, rounded to 2 decimals.
--   suppressed   true when a value of the row was withheld (small-cell protection).
-- subscribers of 1..k-1 are withheld (null), with mrr and arpu. Because subscribers add up
-- to subscriptions_monthly.active_end, both tables are protected together: no withheld
-- count of either can be recomputed from the other.
WITH customer_country AS (
    SELECT customer, MIN(country) AS country
    FROM customers
    WHERE country IS NOT NULL
    GROUP BY customer
),
ends AS (
    SELECT customer, currency, monthly_units, unnest(generate_series(b_from, b_to)) AS b
    FROM coverage
    WHERE b_from <= b_to
)
SELECT anon_month_date(e.b - 1) AS month,
       COALESCE(cc.country, 'unknown') AS country,
       COALESCE(e.currency, 'unknown') AS currency,
       COUNT(DISTINCT e.customer) AS subscribers,
       ROUND(CAST(SUM(e.monthly_units) AS DOUBLE) / 10000, 2) AS mrr,
       ROUND(CAST(SUM(e.monthly_units) AS DOUBLE) / 10000
             / CAST(COUNT(DISTINCT e.customer) AS DOUBLE), 2) AS arpu
FROM ends e
LEFT JOIN customer_country cc ON cc.customer = e.customer
CROSS JOIN params
WHERE e.b - 1 <= params.last_month
GROUP BY e.b, COALESCE(cc.country, 'unknown'), COALESCE(e.currency, 'unknown')
ORDER BY month, country, currency
