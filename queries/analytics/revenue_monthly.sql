-- revenue_monthly: money in and out per month, country, currency and offer type.
-- requires: customer_key, event_time, transaction_type, amount, currency
--
-- One row per UTC calendar month (up to the last complete month at the as-of date),
-- country, currency and offer_type that holds at least one transaction.
--   month        first day of the month of the transaction.
--   country      the transaction's country ('unknown' when empty or not in the export).
--   currency     the transaction's currency, upper-case ('unknown' when empty).
--   offer_type   subscription, pass, event, rental, ... ('unknown' when empty or not in
--                the export).
--   A country, currency or offer type that fewer than k distinct customers have a
--   transaction with in the published months is 'other', and then a combination of the
--   three that fewer than k such customers have is ('other', 'other', 'other') (the
--   events view arrives recoded): a row's key must not single anyone out even when its
--   counts are withheld.
--   payments     number of purchase and renewal transactions.
--   gross        sum of amount over purchases and renewals.
--   refunds      sum of amount over refunds.
--   chargebacks  sum of amount over chargebacks.
--   net          gross - refunds - chargebacks.
--   customers    distinct customers with a transaction of any type in the cell.
--   suppressed   true when a value of the row was withheld (small-cell protection).
-- Amounts keep the export's decimal scale and are summed exactly. A count, or a sum whose
-- contributing customers number 1..k-1, is withheld (null): payments and gross by the
-- paying customers, refunds by the refunded, chargebacks by the charged back, net by all
-- of them; and one more term is withheld when needed so that none can be recomputed from
-- net = gross - refunds - chargebacks.
-- The columns starting with _ count those contributors; anonymizer drops them before
-- publishing.
WITH per_customer AS (
    -- One row per cell and customer: distinct customers become plain counts below.
    SELECT month AS m,
           COALESCE(country, 'unknown') AS country,
           COALESCE(currency, 'unknown') AS currency,
           COALESCE(offer_type, 'unknown') AS offer_type,
           SUM(CASE WHEN event_type IN ('purchase', 'renewal') THEN 1 ELSE 0 END) AS payments,
           SUM(CASE WHEN event_type IN ('purchase', 'renewal') THEN amount ELSE 0 END) AS gross,
           SUM(CASE WHEN event_type = 'refund' THEN amount ELSE 0 END) AS refunds,
           SUM(CASE WHEN event_type = 'chargeback' THEN amount ELSE 0 END) AS chargebacks,
           MAX(CASE WHEN event_type IN ('purchase', 'renewal') THEN 1 ELSE 0 END) AS paid,
           MAX(CASE WHEN event_type = 'refund' THEN 1 ELSE 0 END) AS refunded,
           MAX(CASE WHEN event_type = 'chargeback' THEN 1 ELSE 0 END) AS charged_back,
           MAX(CASE WHEN event_type IN ('purchase', 'renewal', 'refund', 'chargeback')
                    THEN 1 ELSE 0 END) AS contributed
    FROM events CROSS JOIN params
    WHERE customer IS NOT NULL AND month <= params.last_month
    GROUP BY month, COALESCE(country, 'unknown'), COALESCE(currency, 'unknown'),
             COALESCE(offer_type, 'unknown'), customer
)
SELECT anon_month_date(m) AS month,
       country,
       currency,
       offer_type,
       SUM(payments) AS payments,
       SUM(gross) AS gross,
       SUM(refunds) AS refunds,
       SUM(chargebacks) AS chargebacks,
       SUM(gross) - SUM(refunds) - SUM(chargebacks) AS net,
       COUNT(*) AS customers,
       SUM(paid) AS _payers,
       SUM(refunded) AS _refunded,
       SUM(charged_back) AS _charged_back,
       SUM(contributed) AS _net_contributors
FROM per_customer
GROUP BY m, country, currency, offer_type
ORDER BY month, country, currency, offer_type
