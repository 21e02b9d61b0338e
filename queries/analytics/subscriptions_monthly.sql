-- subscriptions_monthly: paying subscribers per month and country, and how they moved.
-- requires: customer_key, event_time, transaction_type, offer_type, offer_period, subscription_id
--
-- Paid coverage (see coverage.sql): a purchase or renewal of a subscription offer at time
-- t covers [t, t + offer_period); a refund or chargeback of the same subscription at r
-- ends, at r, every coverage interval of it that contains r. Passes, events and rentals
-- are not subscriptions. A customer is active at instant x when one of their coverage
-- intervals contains x.
--
-- One row per UTC calendar month and country (months up to the last complete month at
-- the as-of date; a month/country where nobody was active at either end has no row),
-- plus one row per month with country = 'ALL' summing every country.
--   month         first day of the month.
--   country       the customer's country in the customers table; 'unknown' when the
--                 export has no customers table, the customer is not in it, or the
--                 country is empty; 'other' for every country that fewer than k
--                 customers with a transaction in the published months have (the
--                 customers view arrives recoded). 'ALL' for the all-countries row.
--   active_start  customers active at the first instant of the month.
--   active_end    customers active at the first instant of the next month (so
--                 active_end of one month is active_start of the next).
--   churned       active at the start, not at the end.
--   new           active at the end, not at the start, and no coverage of theirs starts
--                 before this month (coverage starting at exactly the first instant of the
--                 next month also counts here: that customer is active at this month's end).
--   reactivated   active at the end, not at the start, with coverage before this month.
--   churn_rate    churned / active_start; null when active_start is 0.
--   suppressed    true when a value of the row was withheld (small-cell protection).
-- In every row: active_end = active_start + new + reactivated - churned.
-- Every count is of distinct customers. Counts of 1..k-1 people are withheld (null), and
-- further cells are withheld so that none can be recomputed from the identity above, from
-- the 'ALL' rows, or from the neighbouring month.
WITH covered AS (
    SELECT customer, b_from, b_to,
           anon_month_index(MIN(s) OVER (PARTITION BY customer)) AS first_month
    FROM coverage
),
-- A customer active at month boundary b is active at the start of month b and at the
-- end of month b - 1.
marks AS (
    SELECT customer, first_month, b, unnest(make_array(b, b - 1)) AS m
    FROM (
        SELECT customer, first_month, unnest(generate_series(b_from, b_to)) AS b
        FROM covered
        WHERE b_from <= b_to
    ) boundaries
),
flags AS (
    SELECT customer, m, MIN(first_month) AS first_month,
           MAX(CASE WHEN m = b THEN 1 ELSE 0 END) AS at_start,
           MAX(CASE WHEN m = b - 1 THEN 1 ELSE 0 END) AS at_end
    FROM marks CROSS JOIN params
    WHERE m <= params.last_month
    GROUP BY customer, m
),
customer_country AS (
    SELECT customer, MIN(country) AS country
    FROM customers
    WHERE country IS NOT NULL
    GROUP BY customer
),
moves AS (
    SELECT f.m,
           COALESCE(cc.country, 'unknown') AS country,
           f.at_start,
           f.at_end,
           CASE WHEN f.at_start = 1 AND f.at_end = 0 THEN 1 ELSE 0 END AS churned,
           CASE WHEN f.at_start = 0 AND f.at_end = 1 AND f.first_month >= f.m THEN 1 ELSE 0 END
               AS is_new,
           CASE WHEN f.at_start = 0 AND f.at_end = 1 AND f.first_month < f.m THEN 1 ELSE 0 END
               AS reactivated
    FROM flags f
    LEFT JOIN customer_country cc ON cc.customer = f.customer
),
cells AS (
    SELECT m, country, SUM(at_start) AS active_start, SUM(is_new) AS new_,
           SUM(reactivated) AS reactivated, SUM(churned) AS churned, SUM(at_end) AS active_end
    FROM moves
    GROUP BY m, country
    UNION ALL
    SELECT m, 'ALL' AS country, SUM(at_start), SUM(is_new), SUM(reactivated), SUM(churned),
           SUM(at_end)
    FROM moves
    GROUP BY m
)
SELECT anon_month_date(m) AS month,
       country,
       active_start,
       new_ AS "new",
       reactivated,
       churned,
       active_end,
       CASE WHEN active_start = 0 THEN NULL
            ELSE CAST(churned AS DOUBLE) / CAST(active_start AS DOUBLE) END AS churn_rate
FROM cells
ORDER BY m, country <> 'ALL', country
