-- mrr_trend: monthly recurring revenue per currency, with month-over-month change.
--
-- From mrr_monthly, summed over countries. One row per month and currency, from the
-- currency's first month in mrr_monthly to the table's last month: a month where the
-- currency has no row (no subscribers paying in it at the month's end) shows mrr 0, so a
-- currency that stops shows its -100 % and the next change compares with a real 0, never
-- with an older month.
--   month, currency  as in mrr_monthly: the subscribers of a country that fewer than k
--                    customers pay in a currency in are under currency 'other' there
--                    (README, small-cell suppression), so a currency's sums here leave
--                    those countries out.
--   mrr              sum of the published mrr of the currency's countries (mrr is withheld
--                    where a country has 1..k-1 subscribers, or to protect another
--                    withheld cell: a lower bound then, since mrr >= 0, and null when
--                    every country's is withheld); 0 in a month without a row.
--   subscribers      sum of the published subscriber counts (a lower bound when some are
--                    withheld); 0 in a month without a row.
--   withheld_cells   countries of this month and currency with a withheld value.
--   mrr_change_pct   mrr against the previous calendar month's mrr in the same currency,
--                    in percent (2 decimals); null for the currency's first month, after
--                    a month of 0, and when either month has a withheld cell: a change
--                    between two lower bounds can be far from the true one (+107.6 %
--                    where the true change was +35.4 %), so none is shown.
WITH per_currency AS (
    SELECT month,
           currency,
           SUM(mrr) AS mrr,
           SUM(subscribers) AS subscribers,
           SUM(CASE WHEN suppressed THEN 1 ELSE 0 END) AS withheld_cells
    FROM mrr_monthly
    GROUP BY month, currency
),
months AS (
    SELECT unnest(range(MIN(month), MAX(month) + INTERVAL '1' MONTH, INTERVAL '1' MONTH))
               AS month
    FROM mrr_monthly
),
grid AS (
    SELECT m.month, c.currency
    FROM months m
    JOIN (SELECT currency, MIN(month) AS first_month FROM per_currency GROUP BY currency) c
      ON m.month >= c.first_month
),
filled AS (
    SELECT g.month,
           g.currency,
           CASE WHEN p.month IS NULL THEN 0 ELSE p.mrr END AS mrr,
           CASE WHEN p.month IS NULL THEN 0 ELSE p.subscribers END AS subscribers,
           CASE WHEN p.month IS NULL THEN 0 ELSE p.withheld_cells END AS withheld_cells
    FROM grid g
    LEFT JOIN per_currency p ON p.month = g.month AND p.currency = g.currency
)
SELECT cur.month,
       cur.currency,
       ROUND(cur.mrr, 2) AS mrr,
       cur.subscribers,
       cur.withheld_cells,
       CASE WHEN cur.withheld_cells > 0 OR prev.withheld_cells > 0 THEN NULL
            ELSE ROUND(100 * (cur.mrr / NULLIF(prev.mrr, 0) - 1), 2)
       END AS mrr_change_pct
FROM filled cur
LEFT JOIN filled prev
  ON prev.currency = cur.currency AND prev.month = cur.month - INTERVAL '1' MONTH
ORDER BY cur.month, cur.currency
