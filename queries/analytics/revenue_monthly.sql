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
SELECT anon_month_date(anon_month_index(event_time)) AS month,
       COALESCE(country, 'unknown') AS country,
       COALESCE(currency, 'unknown') AS currency,
       COALESCE(offer_type, 'unknown') AS offer_type,
       SUM(CASE WHEN event_type IN ('purchase', 'renewal') THEN 1 ELSE 0 END) AS payments,
       SUM(CASE WHEN event_type IN ('purchase', 'renewal') THEN amount ELSE 0 END) AS gross,
       SUM(CASE WHEN event_type = 'refund' THEN amount ELSE 0 END) AS refunds,
       SUM(CASE WHEN event_type = 'chargeback' THEN amount ELSE 0 END) AS chargebacks,
       SUM(CASE WHEN event_type IN ('purchase', 'renewal') THEN amount ELSE 0 END)
         - SUM(CASE WHEN event_type = 'refund' THEN amount ELSE 0 END)
         - SUM(CASE WHEN event_type = 'chargeback' THEN amount ELSE 0 END) AS net,
       COUNT(DISTINCT customer) AS customers,
       COUNT(DISTINCT CASE WHEN event_type IN ('purchase', 'renewal') THEN customer END)
           AS _payers,
       COUNT(DISTINCT CASE WHEN event_type = 'refund' THEN customer END) AS _refunded,
       COUNT(DISTINCT CASE WHEN event_type = 'chargeback' THEN customer END) AS _charged_back,
       COUNT(DISTINCT CASE WHEN event_type IN ('purchase', 'renewal', 'refund', 'chargeback')
                           THEN customer END) AS _net_contributors
FROM events CROSS JOIN params
WHERE customer IS NOT NULL AND anon_month_index(event_time) <= params.last_month
GROUP BY anon_month_index(event_time), COALESCE(country, 'unknown'),
         COALESCE(currency, 'unknown'), COALESCE(offer_type, 'unknown')
ORDER BY month, country, currency, offer_type
