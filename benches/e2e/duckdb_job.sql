-- duckdb_job.sql: the anonymizer job of anonymizer.toml, written for DuckDB.
--
-- bench.py fills in the double-braced placeholders and runs the statements one by one (each ends
-- with a line ending in ';'). Produces, like `anonymizer run`:
--   OUT/customers, OUT/transactions        record-level tables (the sample policy's rules)
--   OUT/subscriptions_monthly, OUT/cohort_retention, OUT/revenue_monthly, OUT/mrr_monthly
--                                          aggregates (queries/analytics/*.sql, ported)
-- each as OUT/<table>/part-00000.parquet, zstd level 1, 1M-row groups (the anonymizer's
-- Parquet settings).
--
-- What is the same and what is approximated (see README.md, "What differs"):
--   pseudonymize  sha256(key_hex || normalized value), first 32 hex characters (anonymizer:
--                 keyed BLAKE3, 32 hex characters). Same normalization: integers via their
--                 decimal text, text trimmed, emails trimmed and lower-cased.
--   generalize    day/month truncation, age bands at the as-of date (full years, width 10,
--                 top-coded 90+), postal prefix (trimmed, upper-cased, first 2 characters):
--                 same definitions. IP network: IPv4 -> a.b.c.0/24 exactly; IPv6 -> /48
--                 from the first three groups (approximated for '::' inside them).
--   mask, redact, keep, drop: the same.
--   scrub         approximated: emails, IPv4, cards (4-4-4-4 / 4-6-5 digit layouts, no Luhn
--                 check) and phone-like digit runs, by regexp_replace; no IBAN or IPv6
--                 detection, no ISO-date exception, no [NUMBER] for long runs. The row's
--                 own first and last name (`names`) -> [NAME] as whole words in any case,
--                 by a per-row regexp (the generated names hold no regexp syntax); no
--                 accent or umlaut folding, no joining of a run into one [NAME].
--   aggregates    the same SQL (ported to DuckDB), the same primary small-cell rule
--                 (counts of 1..k-1 withheld, with the sums and rates that depend on
--                 them); NO secondary suppression (anonymizer also withholds the cells from
--                 which a withheld one could be recomputed).
--   not done      k-anonymity of the customers' quasi-identifiers; the privacy gate
--                 (`verify` stage); the manifest; atomic publish; erasure.

SET threads = {{THREADS}};
SET TimeZone = 'UTC';
SET preserve_insertion_order = {{PRESERVE_ORDER}};

-- ---------------------------------------------------------------------------------------
-- Rules as macros.

-- Keyed token of an already-normalized text value (null stays null).
-- The events view's trim: every kind of ASCII white space, as anonymizer's text() does.
CREATE MACRO ws_trim(s) AS trim(s, ' ' || chr(9) || chr(10) || chr(11) || chr(12) || chr(13));
CREATE MACRO kh(v) AS CASE WHEN v IS NULL THEN NULL ELSE left(sha256('{{KEY}}' || v), 32) END;

-- Full years between birth date b and the as-of date a; null when born after a.
CREATE MACRO age_years(b, a) AS CASE WHEN b IS NULL OR b > a THEN NULL
    ELSE year(a) - year(b) - CASE WHEN month(a) * 100 + day(a) < month(b) * 100 + day(b) THEN 1 ELSE 0 END
END;

-- Band of width w ('30-39'), top-coded '90+'.
CREATE MACRO age_band(b, a, w) AS CASE
    WHEN age_years(b, a) IS NULL THEN NULL
    WHEN age_years(b, a) >= 90 THEN '90+'
    ELSE CAST(age_years(b, a) // w * w AS VARCHAR) || '-'
         || CAST(least(age_years(b, a) // w * w + w - 1, 89) AS VARCHAR)
END;

-- IP address -> network: IPv4 /24, IPv6 /48; anything else null.
CREATE MACRO hex_group(s) AS coalesce(nullif(ltrim(s, '0'), ''), '0');
CREATE MACRO v6_head(x) AS list_resize(string_split(split_part(x, '::', 1), ':'), 3, '0');
CREATE MACRO v6_fmt(a, b, c) AS CASE
    WHEN b = '0' AND c = '0' THEN a || '::/48'
    WHEN c = '0' THEN a || ':' || b || '::/48'
    ELSE a || ':' || b || ':' || c || '::/48'
END;
CREATE MACRO ip_network(ip) AS CASE
    WHEN ip IS NULL THEN NULL
    WHEN regexp_full_match(trim(ip), '[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}')
        THEN regexp_replace(trim(ip), '\.[0-9]{1,3}$', '.0') || '/24'
    WHEN contains(ip, ':') AND regexp_full_match(lower(trim(ip)), '[0-9a-f:.]+')
        THEN v6_fmt(hex_group(v6_head(lower(trim(ip)))[1]),
                    hex_group(v6_head(lower(trim(ip)))[2]),
                    hex_group(v6_head(lower(trim(ip)))[3]))
    ELSE NULL
END;

-- "****" + the last n characters ("****" alone when the value has n characters or fewer).
CREATE MACRO mask_last(v, n) AS CASE WHEN v IS NULL THEN NULL
    WHEN length(v) > n THEN '****' || right(v, n) ELSE '****' END;

-- Free text: emails, IPv4 addresses, card numbers and phone numbers replaced (approximation
-- of anonymizer's scrub, see the header). Cards: only the 4-4-4-4 and 4-6-5 layouts, without
-- the Luhn check anonymizer applies (so that long phone numbers stay phones).
CREATE MACRO scrub(t) AS
    regexp_replace(
      regexp_replace(
        regexp_replace(
          regexp_replace(t, '(?i)[a-z0-9._%+''\-]+\s?@\s?[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}', '[EMAIL]', 'g'),
          '\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b', '[IP]', 'g'),
        '\b[0-9]{4}[ \-]?[0-9]{4}[ \-]?[0-9]{4}[ \-]?[0-9]{4}\b|\b[0-9]{4}[ \-]?[0-9]{6}[ \-]?[0-9]{5}\b',
        '[CARD]', 'g'),
      '\+?\(?[0-9](?:[ .\-()/]{0,3}[0-9]){6,}\)?', '[PHONE]', 'g');

-- The row's own name out of its scrubbed text (approximation, see the header).
CREATE MACRO scrub_names(t, f, l) AS CASE WHEN t IS NULL THEN NULL
    ELSE regexp_replace(t, '(?i)\b(?:' || coalesce(f, 'a^') || '|' || coalesce(l, 'a^') || ')\b',
                        '[NAME]', 'g') END;

-- Calendar helpers of queries/analytics (src/analytics/period.rs).
CREATE MACRO month_index(t) AS year(t) * 12 + month(t) - 1;
CREATE MACRO month_date(m) AS make_date(CAST(m // 12 AS BIGINT), CAST(m % 12 + 1 AS BIGINT), 1);
-- ISO 8601 period -> (unit, n): 'd' days or 'm' months (PnW = 7n days, PnY = 12n months,
-- and the words daily/weekly/monthly/quarterly/yearly/annual/annually).
CREATE MACRO period_unit(p) AS CASE lower(trim(p))
    WHEN 'daily' THEN 'd' WHEN 'weekly' THEN 'd'
    WHEN 'monthly' THEN 'm' WHEN 'quarterly' THEN 'm'
    WHEN 'yearly' THEN 'm' WHEN 'annual' THEN 'm' WHEN 'annually' THEN 'm'
    ELSE CASE regexp_extract(lower(trim(p)), '^p([0-9]+)([dwmy])$', 2)
        WHEN 'd' THEN 'd' WHEN 'w' THEN 'd' WHEN 'm' THEN 'm' WHEN 'y' THEN 'm' END
END;
CREATE MACRO period_n(p) AS CASE lower(trim(p))
    WHEN 'daily' THEN 1 WHEN 'weekly' THEN 7
    WHEN 'monthly' THEN 1 WHEN 'quarterly' THEN 3
    WHEN 'yearly' THEN 12 WHEN 'annual' THEN 12 WHEN 'annually' THEN 12
    ELSE TRY_CAST(nullif(regexp_extract(lower(trim(p)), '^p([0-9]+)([dwmy])$', 1), '') AS BIGINT)
         * CASE regexp_extract(lower(trim(p)), '^p([0-9]+)([dwmy])$', 2)
               WHEN 'w' THEN 7 WHEN 'y' THEN 12 ELSE 1 END
END;
-- anon_period_end: t + period, months clamped to the month's last day (DuckDB's interval
-- arithmetic clamps the same way), days as exact 24 h.
CREATE MACRO period_end(t, p) AS CASE period_unit(p)
    WHEN 'd' THEN t + to_days(CAST(period_n(p) AS INTEGER))
    WHEN 'm' THEN t + to_months(CAST(period_n(p) AS INTEGER))
END;
-- anon_monthly_amount: amount * num / den in double, left to right.
CREATE MACRO monthly_amount(a, p) AS CASE period_unit(p)
    WHEN 'm' THEN CAST(a AS DOUBLE) * 1.0 / CAST(period_n(p) AS DOUBLE)
    WHEN 'd' THEN CAST(a AS DOUBLE) * 146097.0 / CAST(4800 * period_n(p) AS DOUBLE)
END;

-- ROUND(x, 2) as DataFusion computes it (and so anonymizer's mrr and arpu): scale by 100,
-- round half away from zero, scale back. DuckDB's own ROUND(x, 2) rounds the exact binary
-- value instead: 8435.445 (stored as 8435.44499...) gives 8435.44 there, 8435.45 here.
CREATE MACRO round2(x) AS round(x * 100) / 100;

-- Small-cell rule: a count of 1..k-1 people.
CREATE MACRO small(n) AS (n >= 1 AND n < {{K}});

CREATE VIEW src_customers AS SELECT * FROM read_parquet({{CUSTOMERS}});
CREATE VIEW src_transactions AS SELECT * FROM read_parquet({{TRANSACTIONS}});

-- ---------------------------------------------------------------------------------------
-- Record-level tables (the column rules of anonymizer.toml).

-- customers
COPY (
    SELECT kh(CAST(customer_id AS VARCHAR))                 AS customer_id,
           kh(lower(trim(email)))                           AS email,
           '[company]'                                      AS company_name,
           mask_last(phone, 2)                              AS phone,
           upper(left(trim(postal_code), 2))                AS postal_code,
           country,
           age_band(birth_date, DATE '{{AS_OF}}', 10)       AS birth_date,
           date_trunc('month', registered_at)               AS registered_at,
           scrub_names(scrub(custom_answers), first_name, last_name) AS custom_answers,
           marketing_opt_in
    FROM src_customers
) TO '{{OUT}}/customers/part-00000.parquet'
  (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 1048576);

-- transactions
COPY (
    SELECT kh(trim(transaction_id))                         AS transaction_id,
           date_trunc('day', transaction_at)                AS transaction_at,
           kh(CAST(customer_id AS VARCHAR))                 AS customer_id,
           kh(lower(trim(customer_email)))                  AS customer_email,
           offer_id,
           offer_type,
           offer_period,
           kh(trim(subscription_id))                        AS subscription_id,
           transaction_type,
           amount,
           currency,
           country,
           ip_network(ip_address)                           AS ip_address,
           payment_method
    FROM src_transactions
) TO '{{OUT}}/transactions/part-00000.parquet'
  (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 1048576);

-- ---------------------------------------------------------------------------------------
-- The views the analytics SQL reads (src/analytics/mod.rs): events, customers, params,
-- coverage. Customers and subscriptions are keyed tokens, as in anonymizer.

CREATE VIEW events_exported AS
SELECT {{EVENT_CUSTOMER}}                                   AS customer,
       event_time,
       lower(nullif(ws_trim(transaction_type), ''))            AS event_type,
       lower(nullif(ws_trim(offer_type), ''))                  AS offer_type,
       {{EVENT_SUBSCRIPTION}}                               AS subscription,
       nullif(ws_trim(offer_period), '')                       AS offer_period,
       period_end(event_time, nullif(ws_trim(offer_period), '')) AS period_end,
       CAST(amount AS DECIMAL(38, 2))                       AS amount,
       upper(nullif(ws_trim(currency), ''))                    AS currency,
       nullif(ws_trim(country), '')                            AS country,
       month_index(event_time)                              AS month
FROM (SELECT *, CAST(transaction_at AS TIMESTAMP) AS event_time FROM src_transactions)
WHERE event_time < TIMESTAMP '{{END}}';

CREATE VIEW customers_exported AS
SELECT {{CUSTOMER_KEY}} AS customer, nullif(ws_trim(country), '') AS country
FROM src_customers;

CREATE VIEW params AS SELECT CAST({{LAST_MONTH}} AS BIGINT) AS last_month;

-- Rare key values (src/analytics/mod.rs, RareValues): a country, currency or offer type
-- of the transactions, or a customer's country (the smallest of their rows), that fewer
-- than k customers with a transaction in the published months carry is published as
-- 'other' ('unknown' and 'other' themselves stay).
CREATE TABLE rare AS
WITH published AS (
    SELECT e.* FROM events_exported e CROSS JOIN params
    WHERE e.customer IS NOT NULL AND e.month <= params.last_month
)
SELECT 'country' AS col, country AS v FROM published
WHERE country NOT IN ('unknown', 'other') GROUP BY country
HAVING COUNT(DISTINCT customer) < {{K}}
UNION ALL
SELECT 'currency', currency FROM published
WHERE currency NOT IN ('unknown', 'other') GROUP BY currency
HAVING COUNT(DISTINCT customer) < {{K}}
UNION ALL
SELECT 'offer_type', offer_type FROM published
WHERE offer_type NOT IN ('unknown', 'other') GROUP BY offer_type
HAVING COUNT(DISTINCT customer) < {{K}}
UNION ALL
SELECT 'customer_country', country
FROM (SELECT customer, MIN(country) AS country FROM customers_exported
      WHERE country IS NOT NULL GROUP BY customer) cc
WHERE country NOT IN ('unknown', 'other')
  AND customer IN (SELECT customer FROM published)
GROUP BY country HAVING COUNT(*) < {{K}};

-- coverage reads the offer type as exported ('subscription' gives coverage even when
-- rare); the aggregates read every key recoded.
CREATE VIEW events_coverage AS
SELECT * REPLACE (
    CASE WHEN country IN (SELECT v FROM rare WHERE col = 'country') THEN 'other'
         ELSE country END AS country,
    CASE WHEN currency IN (SELECT v FROM rare WHERE col = 'currency') THEN 'other'
         ELSE currency END AS currency)
FROM events_exported;

CREATE VIEW events_values AS
SELECT * REPLACE (
    CASE WHEN offer_type IN (SELECT v FROM rare WHERE col = 'offer_type') THEN 'other'
         ELSE offer_type END AS offer_type)
FROM events_coverage;

-- revenue_monthly's (country, currency, offer type) combinations, once each value is
-- recoded, that fewer than k customers have -> ('other', 'other', 'other').
CREATE TABLE rare_combinations AS
SELECT c, cu, o
FROM (SELECT COALESCE(country, 'unknown') AS c, COALESCE(currency, 'unknown') AS cu,
             COALESCE(offer_type, 'unknown') AS o, customer
      FROM events_values CROSS JOIN params
      WHERE customer IS NOT NULL AND month <= params.last_month)
WHERE NOT (c = 'other' AND cu = 'other' AND o = 'other')
GROUP BY c, cu, o
HAVING COUNT(DISTINCT customer) < {{K}};

CREATE VIEW events AS
SELECT e.* REPLACE (
    CASE WHEN r.c IS NULL THEN e.country ELSE 'other' END AS country,
    CASE WHEN r.c IS NULL THEN e.currency ELSE 'other' END AS currency,
    CASE WHEN r.c IS NULL THEN e.offer_type ELSE 'other' END AS offer_type)
FROM events_values e
LEFT JOIN rare_combinations r
  ON r.c = COALESCE(e.country, 'unknown') AND r.cu = COALESCE(e.currency, 'unknown')
 AND r.o = COALESCE(e.offer_type, 'unknown');

CREATE VIEW customers AS
SELECT customer,
       CASE WHEN country IN (SELECT v FROM rare WHERE col = 'customer_country') THEN 'other'
            ELSE country END AS country
FROM (SELECT customer, MIN(country) AS country FROM customers_exported
      WHERE country IS NOT NULL GROUP BY customer);

-- coverage.sql: paid subscription coverage intervals [s, e), month boundaries b_from..b_to.
CREATE VIEW coverage AS
WITH paid AS (
    SELECT customer, subscription, event_time AS s, period_end AS e0, currency,
           CAST(ROUND(monthly_amount(amount, offer_period) * 10000) AS BIGINT) AS monthly_units
    FROM events_coverage
    WHERE offer_type = 'subscription'
      AND event_type IN ('purchase', 'renewal')
      AND period_end IS NOT NULL
      AND customer IS NOT NULL
),
cuts AS (
    SELECT subscription, event_time AS r
    FROM events_coverage
    WHERE event_type IN ('refund', 'chargeback') AND subscription IS NOT NULL
      AND customer IS NOT NULL
),
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
       month_index(i.s) + CASE WHEN i.s = date_trunc('month', i.s) THEN 0 ELSE 1 END AS b_from,
       LEAST(month_index(i.e - INTERVAL '1 microsecond'), params.last_month + 1) AS b_to
FROM intervals i CROSS JOIN params
WHERE i.e > i.s;

-- ---------------------------------------------------------------------------------------
-- Aggregates: the SQL of queries/analytics, then the primary small-cell rule.

-- subscriptions_monthly
COPY (
WITH covered AS (
    SELECT customer, b_from, b_to,
           month_index(MIN(s) OVER (PARTITION BY customer)) AS first_month
    FROM coverage
),
marks AS (
    SELECT customer, first_month, b, unnest([b, b - 1]) AS m
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
           CASE WHEN f.at_start = 0 AND f.at_end = 1 AND f.first_month >= f.m THEN 1 ELSE 0 END AS is_new,
           CASE WHEN f.at_start = 0 AND f.at_end = 1 AND f.first_month < f.m THEN 1 ELSE 0 END AS reactivated
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
),
raw AS (
    SELECT m, country,
           CAST(active_start AS BIGINT) AS active_start, CAST(new_ AS BIGINT) AS new_,
           CAST(reactivated AS BIGINT) AS reactivated, CAST(churned AS BIGINT) AS churned,
           CAST(active_end AS BIGINT) AS active_end,
           CASE WHEN active_start = 0 THEN NULL
                ELSE CAST(churned AS DOUBLE) / CAST(active_start AS DOUBLE) END AS churn_rate
    FROM cells
)
SELECT month_date(m) AS month,
       country,
       CASE WHEN small(active_start) THEN NULL ELSE active_start END AS active_start,
       CASE WHEN small(new_) THEN NULL ELSE new_ END AS "new",
       CASE WHEN small(reactivated) THEN NULL ELSE reactivated END AS reactivated,
       CASE WHEN small(churned) THEN NULL ELSE churned END AS churned,
       CASE WHEN small(active_end) THEN NULL ELSE active_end END AS active_end,
       CASE WHEN small(active_start) OR small(churned) THEN NULL ELSE churn_rate END AS churn_rate,
       (small(active_start) OR small(new_) OR small(reactivated) OR small(churned)
        OR small(active_end)) AS suppressed
FROM raw
ORDER BY m, country <> 'ALL', country
) TO '{{OUT}}/subscriptions_monthly/part-00000.parquet'
  (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 1048576);

-- cohort_retention (the same definition; the triangle is built with a join instead of
-- anonymizer's array_agg/array_position, which DataFusion needed for speed)
COPY (
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
sizes AS (
    SELECT c, customers AS size FROM counts WHERE since = 0
),
grid AS (
    SELECT s.c, s.size, unnest(generate_series(0, params.last_month - s.c)) AS since
    FROM sizes s CROSS JOIN params
    WHERE s.c <= params.last_month
),
raw AS (
    SELECT g.c, CAST(g.since AS INTEGER) AS since, g.size,
           CAST(COALESCE(n.customers, 0) AS BIGINT) AS customers,
           CAST(COALESCE(n.customers, 0) AS DOUBLE) / CAST(g.size AS DOUBLE) AS retention
    FROM grid g LEFT JOIN counts n ON n.c = g.c AND n.since = g.since
)
SELECT month_date(c) AS cohort_month,
       since AS months_since,
       CASE WHEN small(customers) THEN NULL ELSE customers END AS customers,
       CASE WHEN small(customers) OR small(size) THEN NULL ELSE retention END AS retention,
       (small(customers) OR small(size)) AS suppressed
FROM raw
ORDER BY c, since
) TO '{{OUT}}/cohort_retention/part-00000.parquet'
  (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 1048576);

-- revenue_monthly
COPY (
WITH per_customer AS (
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
),
raw AS (
    SELECT m, country, currency, offer_type,
           CAST(SUM(payments) AS BIGINT) AS payments,
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
)
SELECT month_date(m) AS month, country, currency, offer_type,
       CASE WHEN small(_payers) THEN NULL ELSE payments END AS payments,
       CASE WHEN small(_payers) THEN NULL ELSE gross END AS gross,
       CASE WHEN small(_refunded) THEN NULL ELSE refunds END AS refunds,
       CASE WHEN small(_charged_back) THEN NULL ELSE chargebacks END AS chargebacks,
       CASE WHEN small(_net_contributors) THEN NULL ELSE net END AS net,
       CASE WHEN small(customers) THEN NULL ELSE customers END AS customers,
       (small(_payers) OR small(_refunded) OR small(_charged_back)
        OR small(_net_contributors) OR small(customers)) AS suppressed
FROM raw
ORDER BY month, country, currency, offer_type
) TO '{{OUT}}/revenue_monthly/part-00000.parquet'
  (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 1048576);

-- mrr_monthly
COPY (
WITH customer_country AS (
    SELECT customer, MIN(country) AS country
    FROM customers
    WHERE country IS NOT NULL
    GROUP BY customer
),
-- (customer country, currency) pairs of the rows that fewer than k customers with a
-- transaction in the currency in the published months have: the currency published as
-- 'other' (src/analytics/mod.rs, recode_currency_pairs).
paying AS (
    SELECT COALESCE(cc.country, 'unknown') AS c, COALESCE(e.currency, 'unknown') AS cu,
           COUNT(DISTINCT e.customer) AS n
    FROM events_values e LEFT JOIN customer_country cc ON cc.customer = e.customer
    CROSS JOIN params
    WHERE e.customer IS NOT NULL AND e.month <= params.last_month
    GROUP BY 1, 2
),
rare_pairs AS (
    SELECT k.c, k.cu
    FROM (SELECT DISTINCT COALESCE(cc.country, 'unknown') AS c,
                 COALESCE(cov.currency, 'unknown') AS cu
          FROM coverage cov LEFT JOIN customer_country cc ON cc.customer = cov.customer
          WHERE cov.b_from <= cov.b_to) k
    LEFT JOIN paying p ON p.c = k.c AND p.cu = k.cu
    WHERE k.cu <> 'other' AND COALESCE(p.n, 0) < {{K}} AND {{K}} > 1
),
ends AS (
    SELECT cov.customer,
           CASE WHEN r.c IS NULL THEN cov.currency ELSE 'other' END AS currency,
           cov.monthly_units, unnest(generate_series(cov.b_from, cov.b_to)) AS b
    FROM coverage cov
    LEFT JOIN customer_country cc ON cc.customer = cov.customer
    LEFT JOIN rare_pairs r ON r.c = COALESCE(cc.country, 'unknown')
                          AND r.cu = COALESCE(cov.currency, 'unknown')
    WHERE cov.b_from <= cov.b_to
),
raw AS (
    SELECT e.b,
           COALESCE(cc.country, 'unknown') AS country,
           COALESCE(e.currency, 'unknown') AS currency,
           COUNT(DISTINCT e.customer) AS subscribers,
           round2(CAST(SUM(e.monthly_units) AS DOUBLE) / 10000) AS mrr,
           round2(CAST(SUM(e.monthly_units) AS DOUBLE) / 10000
                  / CAST(COUNT(DISTINCT e.customer) AS DOUBLE)) AS arpu
    FROM ends e
    LEFT JOIN customer_country cc ON cc.customer = e.customer
    CROSS JOIN params
    WHERE e.b - 1 <= params.last_month
    GROUP BY e.b, COALESCE(cc.country, 'unknown'), COALESCE(e.currency, 'unknown')
)
SELECT month_date(b - 1) AS month, country, currency,
       CASE WHEN small(subscribers) THEN NULL ELSE subscribers END AS subscribers,
       CASE WHEN small(subscribers) THEN NULL ELSE mrr END AS mrr,
       CASE WHEN small(subscribers) THEN NULL ELSE arpu END AS arpu,
       small(subscribers) AS suppressed
FROM raw
ORDER BY month, country, currency
) TO '{{OUT}}/mrr_monthly/part-00000.parquet'
  (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, ROW_GROUP_SIZE 1048576);
