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
    SELECT DISTINCT customer, month AS m
    FROM events
    WHERE customer IS NOT NULL
),
counts AS (
    SELECT c, m - c AS since, COUNT(*) AS customers
    FROM (SELECT m, MIN(m) OVER (PARTITION BY customer) AS c FROM active) tagged
    GROUP BY c, m - c
),
-- One row per cohort with its counts as lists, so that the full triangle (zeros
-- included) comes from one pass over the data.
cohorts AS (
    SELECT c,
           array_agg(since) AS sinces,
           array_agg(customers) AS counts,
           MAX(CASE WHEN since = 0 THEN customers END) AS size
    FROM counts
    GROUP BY c
),
grid AS (
    SELECT c, sinces, counts, size, unnest(generate_series(0, params.last_month - c)) AS since
    FROM cohorts CROSS JOIN params
    WHERE c <= params.last_month
)
SELECT anon_month_date(c) AS cohort_month,
       CAST(since AS INT) AS months_since,
       COALESCE(array_element(counts, CAST(array_position(sinces, since) AS BIGINT)), 0) AS customers,
       CAST(COALESCE(array_element(counts, CAST(array_position(sinces, since) AS BIGINT)), 0) AS DOUBLE)
           / CAST(size AS DOUBLE) AS retention
FROM grid
ORDER BY c, since
