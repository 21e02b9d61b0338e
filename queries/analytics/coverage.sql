-- coverage: paid subscription coverage intervals (a building block, never published).
-- requires: customer_key, event_time, transaction_type, offer_type, offer_period, subscription_id
--
-- Read by subscriptions_monthly and mrr_monthly. One row per purchase or renewal of a
-- subscription offer (two identical transactions are two intervals), after refunds and
-- chargebacks have cut it short.
--
-- Definitions:
--   s          the purchase or renewal time t (UTC).
--   e0         t + offer_period: PnD n days, PnW 7n days, PnM n calendar months at the
--              same time of day (the day is clamped to the month's last: Jan 31 + P1M is
--              Feb 28 or 29), PnY 12n months. Computed by anon_period_end.
--   e          where coverage really ends: the earliest refund or chargeback of the same
--              subscription at r with s <= r < e0 ends it at r; otherwise e0.
--              The interval is [s, e); intervals with e <= s are empty and dropped.
--   b_from     month index (year * 12 + month - 1) of the first month boundary (first
--              instant of a UTC month) inside [s, e).
--   b_to       month index of the last month boundary inside [s, e), capped at the
--              boundary that ends the last published month (params.last_month + 1).
--   monthly_units  the payment normalized to one month, in 1/10000 currency units:
--              round(amount * num / den * 10000), (num, den) = (1, n) for PnM, (1, 12n)
--              for PnY, (146097, 4800 * 7n) for PnW, (146097, 4800n) for PnD (a month
--              is 365.2425 / 12 = 146097 / 4800 = 30.436875 days). Computed by
--              anon_monthly_amount.
--
-- Inputs are views anonymizer run prepares from the export (never published): events
-- (one row per transaction; customer and subscription are keyed tokens) and params.
WITH paid AS (
    SELECT customer, subscription, event_time AS s, period_end AS e0, currency,
           CAST(ROUND(anon_monthly_amount(CAST(amount AS DOUBLE), offer_period) * 10000) AS BIGINT)
               AS monthly_units
    FROM events
    WHERE offer_type = 'subscription'
      AND event_type IN ('purchase', 'renewal')
      AND period_end IS NOT NULL
      AND customer IS NOT NULL
),
cuts AS (
    SELECT subscription, event_time AS r
    FROM events
    WHERE event_type IN ('refund', 'chargeback') AND subscription IS NOT NULL
      AND customer IS NOT NULL
),
-- The earliest cut of each purchase or renewal that has one (few have: an inner join).
cut AS (
    SELECT p.subscription, p.s, p.e0, MIN(c.r) AS r
    FROM paid p
    JOIN cuts c ON c.subscription = p.subscription AND c.r >= p.s AND c.r < p.e0
    GROUP BY p.subscription, p.s, p.e0
),
intervals AS (
    SELECT p.customer, p.subscription, p.s, COALESCE(cut.r, p.e0) AS e, p.currency,
           p.monthly_units
    FROM paid p
    LEFT JOIN cut ON cut.subscription = p.subscription AND cut.s = p.s AND cut.e0 = p.e0
)
SELECT i.customer, i.subscription, i.s, i.e, i.currency, i.monthly_units,
       anon_month_index(i.s) + CASE WHEN i.s = date_trunc('month', i.s) THEN 0 ELSE 1 END
           AS b_from,
       LEAST(anon_month_index(i.e - INTERVAL '1 microsecond'), params.last_month + 1) AS b_to
FROM intervals i CROSS JOIN params
WHERE i.e > i.s
