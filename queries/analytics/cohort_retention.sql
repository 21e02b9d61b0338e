-- cohort_retention: of the customers who first appeared in a month, how many are back later.
-- requires: customer_key, event_time
--
-- One row per cohort month and months_since = 0, 1, ... up to the last complete month
-- at the as-of date (every row of the triangle, also those with 0 customers).
--   cohort_month  first day of the UTC month of the customer's first transaction of any
--                 type (purchase, renewal, refund, chargeback, ...; any offer).
--   months_since  whole months after the cohort month.
--   customers     cohort members with at least one transaction of any type in month
--                 cohort_month + months_since (distinct customers).
--   retention     customers / customers at months_since 0 (the cohort's size).
--   suppressed    true when a value of the row was withheld (small-cell protection).
-- Counts of 1..k-1 people are withheld (null); a retention is withheld with its count or
-- when the cohort's size is withheld.
WITH active AS (
    SELECT DISTINCT customer, anon_month_index(event_time) AS m
    FROM events
    WHERE customer IS NOT NULL
),
cohort AS (
    SELECT customer, MIN(m) AS c FROM active GROUP BY customer
),
counts AS (
    SELECT co.c, a.m - co.c AS since, COUNT(*) AS customers
    FROM active a JOIN cohort co ON co.customer = a.customer
    GROUP BY co.c, a.m - co.c
),
grid AS (
    SELECT c, unnest(generate_series(0, params.last_month - c)) AS since
    FROM (SELECT DISTINCT c FROM cohort) cohorts CROSS JOIN params
    WHERE c <= params.last_month
)
SELECT anon_month_date(g.c) AS cohort_month,
       CAST(g.since AS INT) AS months_since,
       COALESCE(n.customers, 0) AS customers,
       CAST(COALESCE(n.customers, 0) AS DOUBLE) / CAST(size.customers AS DOUBLE) AS retention
FROM grid g
LEFT JOIN counts n ON n.c = g.c AND n.since = g.since
JOIN counts size ON size.c = g.c AND size.since = 0
ORDER BY g.c, g.since
