//! The anonymous part of the output: churn, growth, cohort and revenue statistics.
//!
//! Record-level tables stay personal data even when pseudonymized; what the business may
//! keep without limit is aggregates that single nobody out. Each aggregate is a saved SQL
//! file in `queries/analytics/` (embedded in the binary; its header defines every
//! metric), run by `anonymizer run` inside the job, before publishing, over views of the
//! export in which customers and subscriptions are already keyed tokens:
//!
//! - `events`: one row per transaction, limited to event times before the end of the
//!   as-of date, with the columns customer, event_time, event_type, offer_type,
//!   subscription, offer_period, period_end, amount, currency, country and month (all
//!   present; null where the export lacks the role);
//! - `customers`: customer token and country, one row per customer (the smallest of their
//!   rows' countries; empty when the export has none);
//! - `params`: `last_month`, the month index (year * 12 + month - 1) of the last complete
//!   month at the as-of date;
//! - `coverage`: paid subscription coverage intervals (`coverage.sql`).
//!
//! In both views a key value that fewer than k customers carry (a country, currency or
//! offer type of the transactions, a customer's country) is already [`OTHER`], and so is
//! a rare combination of the three in `events` (revenue_monthly's key), and in `coverage`
//! the currency of a rare (customer country, currency) pair (mrr_monthly's key): a row's
//! key must not single anyone out even with its counts withheld. coverage.sql reads the
//! offer type as exported, so that a rare `subscription` offer still gives coverage. The
//! kernel finds the rare values in the read it makes anyway ([`kernel`]).
//!
//! The results then go through [`suppress`] (small-cell and secondary suppression, so
//! counts of people below k never appear and cannot be recomputed) and are written as
//! `OUT/<run>/<table>/part-00000.parquet`. A table whose roles the export lacks is skipped
//! with the reason in the manifest. Sums are exact (integers and decimals), so the result
//! never depends on partitioning: outputs stay byte-identical on any core count.

pub mod kernel;
pub mod period;
pub mod protect;
pub mod suppress;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{Expr, ScalarUDF};
use datafusion::prelude::{SessionContext, btrim, cast, ident, lit, lower, nullif, upper};

use crate::error::{Error, df_message};
use crate::key::Key;
use crate::manifest::{SuppressionReport, TableReport};
use crate::policy::{Engine, Policy, Role, TablePolicy};
use crate::rules::{Udfs, is_string};

/// The aggregate tables, in build order.
pub const TABLE_NAMES: [&str; 4] = [
    "subscriptions_monthly",
    "cohort_retention",
    "revenue_monthly",
    "mrr_monthly",
];

/// The counts of one subscriptions_monthly row, in the order of the identity
/// `active_start + new + reactivated - churned - active_end = 0`.
pub const SUBSCRIPTION_TERMS: [&str; 5] = [
    "active_start",
    "new",
    "reactivated",
    "churned",
    "active_end",
];

/// Each aggregate table's counts of people: none may be published in 1..k-1.
pub const COUNT_COLUMNS: [(&str, &[&str]); 4] = [
    ("subscriptions_monthly", &SUBSCRIPTION_TERMS),
    ("cohort_retention", &["customers"]),
    ("revenue_monthly", &["payments", "customers"]),
    ("mrr_monthly", &["subscribers"]),
];

/// What a rare value of an aggregate's key column is published as: a country, currency
/// or offer type that fewer than `[analytics] k` customers have. Its row would tell
/// that someone of that country (or paying in that currency) was a customer in that
/// month even with every count withheld; under `other` it is one of several.
pub const OTHER: &str = "other";

/// The key columns of the aggregates, in the order the kernel reads them: the
/// transactions' offer type, currency and country, and the customers' country.
fn key_columns<'a>(
    tx: &'a TablePolicy,
    customers: Option<&'a TablePolicy>,
) -> [(Option<&'a TablePolicy>, Role); 4] {
    [
        (Some(tx), Role::OfferType),
        (Some(tx), Role::Currency),
        (Some(tx), Role::Country),
        (customers, Role::Country),
    ]
}

/// A key column as errors name it: `table.column (role R)`.
fn key_column(t: Option<&TablePolicy>, role: Role) -> String {
    match t {
        Some(t) => match t.role(role) {
            Some(c) => format!("{}.{c} (role {})", t.name, role.as_str()),
            None => format!("{} (role {}: no column)", t.name, role.as_str()),
        },
        None => format!("(role {}: no table)", role.as_str()),
    }
}

/// The error of a run whose key columns hold more than `[analytics] max_key_values`
/// distinct values; `what`: the column that holds the most of them ([`key_column`]).
fn too_many_key_values(limit: usize, what: &str) -> String {
    format!(
        "the aggregates' key columns (country, currency, offer type) hold more than {limit} \
         distinct values together ([analytics] max_key_values), most of them in {what}: \
         a column of countries, currencies or offer types holds a few hundred, so this one \
         is likely ids, free text or another column given the role by mistake\n  \
         check which column the policy gives that role, or raise [analytics] max_key_values \
         if these values are right"
    )
}

/// How many distinct values of each key column of the aggregates were rare (1..k-1
/// customers with a transaction in the published months carry them) and were published
/// as [`OTHER`]. `unknown` (no value) and `other` itself are never recoded.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recoded {
    /// The transactions' country (revenue_monthly.country).
    pub country: u64,
    /// The transactions' currency (revenue_monthly and mrr_monthly).
    pub currency: u64,
    /// The transactions' offer type (revenue_monthly).
    pub offer_type: u64,
    /// The customers' country (subscriptions_monthly and mrr_monthly).
    pub customer_country: u64,
    /// revenue_monthly's (country, currency, offer type) combinations of values not rare
    /// one by one but together (published as `other`, `other`, `other`).
    pub combinations: u64,
    /// mrr_monthly's (country, currency) pairs of values not rare one by one but together
    /// (their currency published as `other`).
    pub currency_pairs: u64,
}

impl Recoded {
    /// Column -> values recoded, for the key columns of `table`.
    pub fn of_table(&self, table: &str) -> BTreeMap<String, u64> {
        let cols: &[(&str, u64)] = match table {
            "subscriptions_monthly" => &[("country", self.customer_country)],
            "revenue_monthly" => &[
                ("country", self.country),
                ("currency", self.currency),
                ("offer_type", self.offer_type),
                ("combinations", self.combinations),
            ],
            "mrr_monthly" => &[
                ("country", self.customer_country),
                ("currency", self.currency),
                ("combinations", self.currency_pairs),
            ],
            _ => &[],
        };
        cols.iter().map(|(c, n)| (c.to_string(), *n)).collect()
    }
}

/// The coverage-interval building block shared by subscriptions_monthly and mrr_monthly.
pub const COVERAGE_SQL: &str = include_str!("../../queries/analytics/coverage.sql");

/// The saved SQL of an aggregate table.
pub fn sql_of(table: &str) -> Option<&'static str> {
    Some(match table {
        "subscriptions_monthly" => {
            include_str!("../../queries/analytics/subscriptions_monthly.sql")
        }
        "cohort_retention" => include_str!("../../queries/analytics/cohort_retention.sql"),
        "revenue_monthly" => include_str!("../../queries/analytics/revenue_monthly.sql"),
        "mrr_monthly" => include_str!("../../queries/analytics/mrr_monthly.sql"),
        _ => return None,
    })
}

/// SHA-256 (hex) of the SQL an aggregate runs: its file, plus coverage.sql when it reads
/// the coverage view.
pub fn query_digest(table: &str) -> String {
    use sha2::{Digest, Sha256};
    let sql = sql_of(table).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(sql.as_bytes());
    if sql.contains("FROM coverage") {
        h.update(COVERAGE_SQL.as_bytes());
    }
    hex::encode(h.finalize())
}

/// The roles a saved query needs, from its `-- requires:` header line.
pub fn required_roles(sql: &str) -> Vec<Role> {
    sql.lines()
        .find_map(|l| l.trim().strip_prefix("-- requires:"))
        .map(|list| {
            list.split(',')
                .filter_map(|r| Role::parse(r.trim()))
                .collect()
        })
        .unwrap_or_default()
}

const TS: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

/// What the analytics stage produced.
#[derive(Debug, Default)]
pub struct Built {
    pub tables: BTreeMap<String, TableReport>,
    /// Of the customers asked about, those with paid coverage at the end of the as-of date.
    pub active: HashSet<String>,
    /// Aggregate table -> why it was not built.
    pub skipped: BTreeMap<String, String>,
    /// Transactions table -> its subscription payments without an offer period (left
    /// out of subscriptions_monthly and mrr_monthly); only when there are some.
    pub without_period: BTreeMap<String, u64>,
}

/// What [`compute`] returns.
#[derive(Debug, Default)]
pub struct Computed {
    pub aggregates: Vec<Aggregate>,
    /// Aggregate table -> why it was not built.
    pub skipped: BTreeMap<String, String>,
    /// Of the customers asked about, those whose paid coverage continues past the as-of
    /// date.
    pub active: HashSet<String>,
    /// How many parts the kernel spilled to disk (0: it held them in memory, or the SQL
    /// engine ran).
    pub spilled_parts: usize,
    /// Of those, how many held more records than their share of `memory_mb` (one
    /// customer with a large share of the transactions) and were sorted on disk.
    pub sorted_parts: usize,
    /// Payments (purchases, renewals) of a subscription offer with a customer and an
    /// event time, and how many of them have no offer period: those give no coverage,
    /// so subscriptions_monthly and mrr_monthly leave them out.
    pub subscription_payments: u64,
    pub without_period: u64,
    /// How many rare key values were published as [`OTHER`].
    pub recoded: Recoded,
}

/// Of `customers` (tokens as in the events view), those whose paid coverage continues past
/// the as-of date: an interval containing `end`, the first instant after the as-of date
/// (the instant subscriptions_monthly's active_end is measured at, for a month ending on
/// the as-of date). Empty when the export cannot tell (no subscription roles).
async fn active_at_end(
    ctx: &SessionContext,
    tx: &TablePolicy,
    end: i64,
    customers: &[String],
) -> Result<HashSet<String>, Error> {
    let sql = sql_of("subscriptions_monthly").unwrap_or_default();
    if customers.is_empty() || required_roles(sql).iter().any(|r| tx.role(*r).is_none()) {
        return Ok(HashSet::new());
    }
    let end = lit(ScalarValue::TimestampMicrosecond(Some(end), None));
    let list: Vec<Expr> = customers.iter().map(|c| lit(c.as_str())).collect();
    let batches = ctx
        .table("coverage")
        .await
        .and_then(|d| {
            d.filter(
                ident("customer")
                    .in_list(list, false)
                    .and(ident("s").lt_eq(end.clone()))
                    .and(ident("e").gt(end)),
            )
        })
        .and_then(|d| d.select(vec![ident("customer")]))
        .map_err(|e| err("coverage", df_message(&e)))?
        .collect()
        .await
        .map_err(|e| err("coverage", df_message(&e)))?;
    let mut out = HashSet::new();
    for b in batches {
        let c = b.column(0).as_string::<i32>();
        out.extend((0..c.len()).map(|i| c.value(i).to_string()));
    }
    Ok(out)
}

/// One computed aggregate, suppressed.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub name: &'static str,
    /// What is published.
    pub published: RecordBatch,
    pub suppression: SuppressionReport,
}

/// The month index of the last complete month at `as_of` (whose next month starts on
/// or before the end of the as-of date).
pub fn last_complete_month(as_of: NaiveDate) -> i64 {
    let end = as_of.succ_opt().unwrap_or(as_of);
    period::month_of(end) - 1
}

fn err(table: &str, message: String) -> Error {
    Error::Analytics {
        table: table.to_string(),
        message,
    }
}

/// Computes every aggregate the policy asks for (unwritten): the work of the analytics
/// stage, callable from tests and benches.
pub async fn compute(
    policy: &Policy,
    key: &Key,
    as_of: Option<NaiveDate>,
    threads: usize,
    active_check: &[String],
    spill_dir: Option<&Path>,
) -> Result<Computed, Error> {
    let mut skipped = BTreeMap::new();
    let a = &policy.analytics;
    let skip_all = |reason: &str, skipped: &mut BTreeMap<String, String>| {
        for t in &a.tables {
            skipped.insert(t.to_string(), reason.to_string());
        }
    };
    let Some(as_of) = as_of else {
        skip_all("no as-of date: no table maps event_time", &mut skipped);
        return Ok(Computed {
            skipped,
            ..Default::default()
        });
    };
    let Some(tx) = a.transactions.as_deref().and_then(|t| policy.table(t)) else {
        skip_all(
            "no transactions table: no table maps both customer_key and event_time",
            &mut skipped,
        );
        return Ok(Computed {
            skipped,
            ..Default::default()
        });
    };
    let customers = a.customers.as_deref().and_then(|t| policy.table(t));
    if a.k < 2 {
        tracing::warn!(
            k = a.k,
            "[analytics] k = 1 withholds nothing: the aggregates are not protected against singling out"
        );
    }

    let ctx = session(threads);
    let udfs = Udfs::new(key);
    udfs.register(&ctx);
    for u in period::udfs() {
        ctx.register_udf(u);
    }
    let end = as_of
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
        .ok_or_else(|| err("events", "the as-of date is out of range".into()))?;
    let last_month = last_complete_month(as_of);

    let mut build: Vec<&'static str> = Vec::new();
    for name in &a.tables {
        let sql = sql_of(name).expect("aggregate names are validated with the policy");
        let missing: Vec<&str> = required_roles(sql)
            .into_iter()
            .filter(|r| tx.role(*r).is_none())
            .map(Role::as_str)
            .collect();
        if missing.is_empty() {
            build.push(name);
        } else {
            skipped.insert(
                name.to_string(),
                format!(
                    "table {} maps no column to the role(s) {}",
                    tx.name,
                    missing.join(", ")
                ),
            );
        }
    }
    let (mut spilled_parts, mut sorted_parts) = (0, 0);
    let subscription_payments;
    let (raws, active, recoded) = match a.engine {
        Engine::Kernel => {
            let spill = spill_dir
                .map(Path::to_path_buf)
                .unwrap_or_else(std::env::temp_dir);
            let job = kernel::Job {
                table: &tx.name,
                events: events_frame(&ctx, tx, &udfs, end, Ids::Raw).await?,
                customers: customers_df(&ctx, customers, &udfs, Ids::Raw)
                    .await?
                    .zip(customers.map(|t| t.name.clone())),
                tables: &build,
                end,
                last_month,
                k: a.k,
                amount_type: amount_type(tx),
                rows_estimate: [Some(tx), customers]
                    .into_iter()
                    .flatten()
                    .map(|t| crate::input::estimate_rows(t.format, &t.files))
                    .sum(),
                single_row_group: single_row_group(tx),
                memory_bytes: a.memory_bytes,
                max_key_values: a.max_key_values,
                key_columns: key_columns(tx, customers).map(|(t, role)| key_column(t, role)),
                threads,
                spill_dir: &spill,
                active_check,
                pseudonymizer: Some(crate::rules::pseudonymize::Pseudonymizer::new(key, None)),
            };
            let t = Instant::now();
            let out = kernel::compute(&job).await?;
            tracing::debug!(
                ms = t.elapsed().as_millis() as u64,
                spilled_parts = out.spilled_parts,
                sorted_parts = out.sorted_parts,
                "aggregates computed by the kernel"
            );
            (spilled_parts, sorted_parts) = (out.spilled_parts, out.sorted_parts);
            subscription_payments = out.subscription_payments;
            (out.tables, out.active, out.recoded)
        }
        Engine::Sql => {
            let tables = sql_tables(
                &ctx,
                tx,
                customers,
                &udfs,
                end,
                last_month,
                &build,
                active_check,
                a.k,
                a.max_key_values,
            )
            .await?;
            subscription_payments = sql_subscription_payments(&ctx).await?;
            tables
        }
    };
    // Every subscription payment without a period: the subscription tables would be
    // empty, which is never what the export means (a role mapped to the wrong column,
    // a column the export left empty).
    let (paid, unperiodic) = subscription_payments;
    let coverage_tables = ["subscriptions_monthly", "mrr_monthly"];
    if paid > 0 && unperiodic == paid && build.iter().any(|t| coverage_tables.contains(t)) {
        let column = tx.role(Role::OfferPeriod).unwrap_or("offer_period");
        return Err(err(
            &tx.name,
            format!(
                "none of its {paid} subscription payment(s) (purchases and renewals of \
                 offer_type 'subscription') has an offer period in column '{column}' \
                 (offer_period), so subscriptions_monthly and mrr_monthly would be empty\n  \
                 map the offer_period role to the column holding each payment's billing \
                 period (ISO 8601: P1M, P1Y, P7D), or fill it in the export"
            ),
        ));
    }
    let t = std::time::Instant::now();
    let published = suppress::apply_all(&raws, a.k, last_month)
        .map_err(|m| err("(small-cell protection)", m))?;
    tracing::debug!(
        ms = t.elapsed().as_millis() as u64,
        "aggregates: small cells withheld and protected"
    );
    let out = raws
        .into_iter()
        .zip(published)
        .map(|((name, _), (published, mut suppression))| {
            suppression.values_recoded = recoded.of_table(name);
            Aggregate {
                name,
                published,
                suppression,
            }
        })
        .collect();
    Ok(Computed {
        aggregates: out,
        skipped,
        active,
        recoded,
        spilled_parts,
        sorted_parts,
        subscription_payments: subscription_payments.0,
        without_period: subscription_payments.1,
    })
}

/// The SQL engine's count of subscription payments, and of those without an offer
/// period (the kernel counts them as it reads): over the `events` view coverage.sql
/// reads.
async fn sql_subscription_payments(ctx: &SessionContext) -> Result<(u64, u64), Error> {
    let fail = |e: datafusion::error::DataFusionError| err("events", df_message(&e));
    let b = ctx
        .sql(
            "SELECT count(*) AS paid, count(*) FILTER (WHERE period_end IS NULL) AS unperiodic \
             FROM events_exported WHERE offer_type = 'subscription' \
             AND event_type IN ('purchase', 'renewal') \
             AND customer IS NOT NULL AND event_time IS NOT NULL",
        )
        .await
        .map_err(fail)?
        .collect()
        .await
        .map_err(fail)?;
    let value = |c: usize| {
        b.first()
            .and_then(|b| {
                b.column(c)
                    .as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>()
            })
            .map_or(0, |a| a.value(0).max(0) as u64)
    };
    Ok((value(0), value(1)))
}

/// The cut into row ranges of a table that is one Parquet file of one large row group.
fn single_row_group(table: &TablePolicy) -> Option<crate::run::RowGroupSplit> {
    match (table.format, table.files.as_slice()) {
        (crate::policy::Format::Parquet, [file]) => {
            crate::input::parquet_layout(file, crate::input::Cut::LoneRowGroup)
                .ok()
                .and_then(|l| crate::run::lone_row_group_split(&l))
        }
        _ => None,
    }
}

/// The SQL engine: the saved queries, run by DataFusion over token views.
#[allow(clippy::too_many_arguments)]
async fn sql_tables(
    ctx: &SessionContext,
    tx: &TablePolicy,
    customers: Option<&TablePolicy>,
    udfs: &Udfs,
    end: i64,
    last_month: i64,
    build: &[&'static str],
    active_check: &[String],
    k: u64,
    max_key_values: usize,
) -> Result<(Vec<(&'static str, RecordBatch)>, HashSet<String>, Recoded), Error> {
    let events = events_frame(ctx, tx, udfs, end, Ids::Tokens).await?;
    ctx.register_table("events_exported", events.into_view())
        .map_err(|e| err("events", df_message(&e)))?;
    let cust = customers_frame(ctx, customers, udfs).await?;
    ctx.register_table("customers_exported", cust)
        .map_err(|e| err("customers", df_message(&e)))?;
    let params = ctx
        .sql(&format!(
            "SELECT CAST({last_month} AS BIGINT) AS last_month"
        ))
        .await
        .map_err(|e| err("params", df_message(&e)))?;
    ctx.register_table("params", params.into_view())
        .map_err(|e| err("params", df_message(&e)))?;
    sql_key_values_within(ctx, tx, customers, max_key_values).await?;
    let mut rare = RareValues::find(ctx, k).await?;
    // coverage.sql reads the offer type as exported ('subscription' gives coverage even
    // when it is rare); its currency is a key of mrr_monthly.
    rare.register_views(ctx, false).await?;
    let coverage = ctx
        .sql(COVERAGE_SQL)
        .await
        .map_err(|e| err("coverage", df_message(&e)))?;
    ctx.register_table("coverage", coverage.into_view())
        .map_err(|e| err("coverage", df_message(&e)))?;
    rare.register_views(ctx, true).await?;
    rare.recode_currency_pairs(ctx, k).await?;
    rare.recode_combinations(ctx, k).await?;

    let active = active_at_end(ctx, tx, end, active_check).await?;

    let mut raws: Vec<(&'static str, RecordBatch)> = Vec::new();
    for name in build {
        let sql = sql_of(name).expect("aggregate names are validated with the policy");
        if std::env::var_os("ANONYMIZER_EXPLAIN").is_some() {
            explain(ctx, name, sql).await;
        }
        let t = Instant::now();
        let df = ctx.sql(sql).await.map_err(|e| {
            err(
                name,
                format!("cannot plan the saved query: {}", df_message(&e)),
            )
        })?;
        let schema = Arc::new(df.schema().as_arrow().clone());
        // A decoder's panic on a damaged page is the scan's error (`crate::contain`); one
        // elsewhere in the plan, resumed here from DataFusion's task, the table's error.
        let batches = match crate::error::contained_async(df.collect()).await {
            Ok(r) => r.map_err(|e| df_message(&e)),
            Err(panic) => Err(crate::error::damaged_read(&panic)),
        }
        .map_err(|m| {
            err(
                name,
                format!(
                    "failed reading table {} ({} files): {m}",
                    tx.name,
                    tx.files.len(),
                ),
            )
        })?;
        let raw = concat_batches(&schema, &batches).map_err(|e| err(name, e.to_string()))?;
        tracing::debug!(
            table = name,
            rows = raw.num_rows(),
            ms = t.elapsed().as_millis() as u64,
            "aggregate computed"
        );
        raws.push((*name, raw));
    }
    Ok((raws, active, rare.recoded()))
}

/// The SQL engine's guard of `[analytics] max_key_values` (the kernel counts as it
/// interns): the distinct values of the key columns together (as the kernel's one
/// interner counts them: a value in two columns once) over the views as exported,
/// estimated by HyperLogLog (`approx_distinct`, in bounded memory, within a few
/// percent). The column with the most (estimated likewise) is the one named.
async fn sql_key_values_within(
    ctx: &SessionContext,
    tx: &TablePolicy,
    customers: Option<&TablePolicy>,
    limit: usize,
) -> Result<(), Error> {
    let fail = |e: datafusion::error::DataFusionError| err(&tx.name, df_message(&e));
    let batches = ctx
        .sql(
            "SELECT * FROM (SELECT approx_distinct(offer_type), approx_distinct(currency), \
             approx_distinct(country) FROM events_exported) \
             CROSS JOIN (SELECT approx_distinct(country) FROM customers_exported) \
             CROSS JOIN (SELECT approx_distinct(v) FROM ( \
               SELECT offer_type AS v FROM events_exported \
               UNION ALL SELECT currency FROM events_exported \
               UNION ALL SELECT country FROM events_exported \
               UNION ALL SELECT country FROM customers_exported))",
        )
        .await
        .map_err(fail)?
        .collect()
        .await
        .map_err(fail)?;
    let Some(b) = batches.iter().find(|b| b.num_rows() == 1) else {
        return Ok(());
    };
    let counts: Vec<u64> = (0..5)
        .map(|i| {
            datafusion::arrow::compute::cast(b.column(i), &DataType::UInt64).map(|a| {
                a.as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                    .value(0)
            })
        })
        .collect::<Result<_, _>>()
        .map_err(|e| err(&tx.name, e.to_string()))?;
    if counts[4] <= limit as u64 {
        return Ok(());
    }
    let most = (0..4)
        .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
        .expect("four");
    let (t, role) = key_columns(tx, customers)[most];
    let table = t.map_or(tx.name.as_str(), |t| t.name.as_str());
    Err(err(table, too_many_key_values(limit, &key_column(t, role))))
}

/// The SQL engine's rare key values, found over the views as exported
/// (`events_exported`, `customers_exported`): what the kernel counts as it reads (see
/// [`Recoded`]).
#[derive(Debug, Default)]
struct RareValues {
    /// The events view's country, currency and offer type.
    events: [(&'static str, Vec<String>); 3],
    /// The customers' country (the smallest of a customer's rows, as the queries take it).
    customer_country: Vec<String>,
    /// revenue_monthly's (country, currency, offer type) combinations, once each value is
    /// recoded, that fewer than k customers have.
    combinations: Vec<[String; 3]>,
    /// mrr_monthly's (customer country, currency) pairs, once each value is recoded, that
    /// fewer than k customers with a transaction in the published months have.
    currency_pairs: Vec<[String; 2]>,
}

impl RareValues {
    async fn find(ctx: &SessionContext, k: u64) -> Result<RareValues, Error> {
        let mut out = RareValues {
            events: [
                ("country", Vec::new()),
                ("currency", Vec::new()),
                ("offer_type", Vec::new()),
            ],
            customer_country: Vec::new(),
            combinations: Vec::new(),
            currency_pairs: Vec::new(),
        };
        if k < 2 {
            return Ok(out);
        }
        // Customers with a transaction in the published months carry a value.
        let published = "customer IS NOT NULL AND month <= params.last_month";
        let never = format!("NOT IN ('unknown', '{OTHER}')");
        for (col, values) in &mut out.events {
            *values = strings(
                ctx,
                &format!(
                    "SELECT {col} FROM events_exported CROSS JOIN params \
                     WHERE {published} AND {col} {never} \
                     GROUP BY {col} HAVING COUNT(DISTINCT customer) < {k}"
                ),
            )
            .await?;
        }
        out.customer_country = strings(
            ctx,
            &format!(
                "SELECT country FROM ({CUSTOMER_COUNTRY}) cc \
                 WHERE country {never} AND customer IN \
                 (SELECT customer FROM events_exported CROSS JOIN params WHERE {published}) \
                 GROUP BY country HAVING COUNT(*) < {k}"
            ),
        )
        .await?;
        Ok(out)
    }

    /// Registers `customers` (one row per customer, its country recoded) and `events`
    /// (country and currency recoded, and the offer type too when `offer_type`).
    async fn register_views(&self, ctx: &SessionContext, offer_type: bool) -> Result<(), Error> {
        fn fail(t: &'static str) -> impl Fn(datafusion::error::DataFusionError) -> Error {
            move |e| err(t, df_message(&e))
        }
        let recode = |df: DataFrame, col: &str, values: &[String]| {
            if values.is_empty() {
                return Ok(df);
            }
            let list = values.iter().map(|v| lit(v.as_str())).collect();
            df.with_column(
                col,
                datafusion::prelude::when(ident(col).in_list(list, false), lit(OTHER))
                    .otherwise(ident(col))?,
            )
        };
        let mut events = ctx.table("events_exported").await.map_err(fail("events"))?;
        for (col, values) in &self.events {
            if *col != "offer_type" || offer_type {
                events = recode(events, col, values).map_err(fail("events"))?;
            }
        }
        ctx.deregister_table("events").map_err(fail("events"))?;
        ctx.register_table("events", events.into_view())
            .map_err(fail("events"))?;
        let customers = ctx.sql(CUSTOMER_COUNTRY).await.map_err(fail("customers"))?;
        let customers =
            recode(customers, "country", &self.customer_country).map_err(fail("customers"))?;
        ctx.deregister_table("customers")
            .map_err(fail("customers"))?;
        ctx.register_table("customers", customers.into_view())
            .map_err(fail("customers"))?;
        Ok(())
    }

    /// Finds revenue_monthly's rare combinations over `events` (its values recoded) and
    /// registers `events` again with them as (`other`, `other`, `other`).
    async fn recode_combinations(&mut self, ctx: &SessionContext, k: u64) -> Result<(), Error> {
        if k < 2 {
            return Ok(());
        }
        let fail = |e: datafusion::error::DataFusionError| err("events", df_message(&e));
        let keyed = "COALESCE(country, 'unknown') AS c, COALESCE(currency, 'unknown') AS cu, \
                     COALESCE(offer_type, 'unknown') AS o";
        self.combinations = string_rows(
            ctx,
            &format!(
                "SELECT c, cu, o FROM (SELECT {keyed}, customer FROM events CROSS JOIN params \
                 WHERE customer IS NOT NULL AND month <= params.last_month) \
                 WHERE NOT (c = '{OTHER}' AND cu = '{OTHER}' AND o = '{OTHER}') \
                 GROUP BY c, cu, o HAVING COUNT(DISTINCT customer) < {k} ORDER BY c, cu, o"
            ),
            "events",
        )
        .await?;
        if self.combinations.is_empty() {
            return Ok(());
        }
        // A join, not one condition per combination (a deep expression for thousands).
        let rare = string_batch(
            ["rare_c", "rare_cu", "rare_o"],
            &self.combinations,
            "events",
        )?;
        let rare = ctx.read_batch(rare).map_err(fail)?;
        let or_unknown = |c: &str| datafusion::prelude::coalesce(vec![ident(c), lit("unknown")]);
        let events = ctx.table("events").await.map_err(fail)?;
        let names: Vec<String> = events
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let events = events
            .join_on(
                rare,
                datafusion::common::JoinType::Left,
                [
                    or_unknown("country").eq(ident("rare_c")),
                    or_unknown("currency").eq(ident("rare_cu")),
                    or_unknown("offer_type").eq(ident("rare_o")),
                ],
            )
            .map_err(fail)?;
        let exprs: Vec<Expr> = names
            .iter()
            .map(|name| {
                let name = name.as_str();
                if ["country", "currency", "offer_type"].contains(&name) {
                    datafusion::prelude::when(ident("rare_c").is_not_null(), lit(OTHER))
                        .otherwise(ident(name))
                        .map(|e| e.alias(name))
                } else {
                    Ok(ident(name))
                }
            })
            .collect::<datafusion::error::Result<_>>()
            .map_err(fail)?;
        let events = events.select(exprs).map_err(fail)?;
        ctx.deregister_table("events").map_err(fail)?;
        ctx.register_table("events", events.into_view())
            .map_err(fail)?;
        Ok(())
    }

    /// Finds mrr_monthly's rare (customer country, currency) pairs (counting the customers
    /// with a transaction in the currency in the published months, over `events` with its
    /// values recoded) among the pairs of `coverage` in its rows, and registers
    /// `coverage` again with their currency as `other`.
    async fn recode_currency_pairs(&mut self, ctx: &SessionContext, k: u64) -> Result<(), Error> {
        if k < 2 {
            return Ok(());
        }
        let fail = |e: datafusion::error::DataFusionError| err("coverage", df_message(&e));
        // Every interval with b_from <= b_to is in an mrr_monthly row (b_to is capped at
        // the last published month's end). A pair of such an interval without such
        // customers (a payment at the first instant after the published months) is rare.
        let pair = |t: &str| {
            format!("COALESCE(cc.country, 'unknown') AS c, COALESCE({t}.currency, 'unknown') AS cu")
        };
        self.currency_pairs = string_rows(
            ctx,
            &format!(
                "WITH paying AS (SELECT {}, COUNT(DISTINCT e.customer) AS n \
                 FROM events e LEFT JOIN customers cc ON cc.customer = e.customer \
                 CROSS JOIN params \
                 WHERE e.customer IS NOT NULL AND e.month <= params.last_month \
                 GROUP BY 1, 2), \
                 keys AS (SELECT DISTINCT {} FROM coverage cov \
                 LEFT JOIN customers cc ON cc.customer = cov.customer \
                 WHERE cov.b_from <= cov.b_to) \
                 SELECT keys.c, keys.cu FROM keys \
                 LEFT JOIN paying p ON p.c = keys.c AND p.cu = keys.cu \
                 WHERE keys.cu <> '{OTHER}' AND COALESCE(p.n, 0) < {k} \
                 ORDER BY keys.c, keys.cu",
                pair("e"),
                pair("cov")
            ),
            "coverage",
        )
        .await?;
        if self.currency_pairs.is_empty() {
            return Ok(());
        }
        let rare = string_batch(["rare_c", "rare_cu"], &self.currency_pairs, "coverage")?;
        ctx.register_batch("mrr_rare_pairs", rare).map_err(fail)?;
        let coverage = ctx
            .sql(&format!(
                "SELECT cov.customer, cov.subscription, cov.s, cov.e, \
                 CASE WHEN r.rare_c IS NULL THEN cov.currency ELSE '{OTHER}' END AS currency, \
                 cov.monthly_units, cov.b_from, cov.b_to \
                 FROM coverage cov LEFT JOIN customers cc ON cc.customer = cov.customer \
                 LEFT JOIN mrr_rare_pairs r ON r.rare_c = COALESCE(cc.country, 'unknown') \
                 AND r.rare_cu = COALESCE(cov.currency, 'unknown')"
            ))
            .await
            .map_err(fail)?;
        ctx.deregister_table("coverage").map_err(fail)?;
        ctx.register_table("coverage", coverage.into_view())
            .map_err(fail)?;
        Ok(())
    }

    fn recoded(&self) -> Recoded {
        let n = |i: usize| self.events[i].1.len() as u64;
        Recoded {
            country: n(0),
            currency: n(1),
            offer_type: n(2),
            customer_country: self.customer_country.len() as u64,
            combinations: self.combinations.len() as u64,
            currency_pairs: self.currency_pairs.len() as u64,
        }
    }
}

/// Each customer's country as the saved queries take it: the smallest of their rows'.
const CUSTOMER_COUNTRY: &str = "SELECT customer, MIN(country) AS country \
     FROM customers_exported WHERE country IS NOT NULL GROUP BY customer";

/// A query's result (`table`: for the error).
async fn collect_sql(
    ctx: &SessionContext,
    sql: &str,
    table: &'static str,
) -> Result<Vec<RecordBatch>, Error> {
    let fail = |e: datafusion::error::DataFusionError| err(table, df_message(&e));
    ctx.sql(sql)
        .await
        .map_err(fail)?
        .collect()
        .await
        .map_err(fail)
}

/// A query's rows of `N` text columns (`table`: for the error).
async fn string_rows<const N: usize>(
    ctx: &SessionContext,
    sql: &str,
    table: &'static str,
) -> Result<Vec<[String; N]>, Error> {
    let mut out = Vec::new();
    for b in collect_sql(ctx, sql, table).await? {
        let columns = (0..N)
            .map(|i| datafusion::arrow::compute::cast(b.column(i), &DataType::Utf8))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| err(table, e.to_string()))?;
        for r in 0..b.num_rows() {
            out.push(std::array::from_fn(|i| {
                columns[i].as_string::<i32>().value(r).to_string()
            }));
        }
    }
    Ok(out)
}

/// `rows` as a batch of `N` text columns named `names`.
fn string_batch<const N: usize>(
    names: [&str; N],
    rows: &[[String; N]],
    table: &'static str,
) -> Result<RecordBatch, Error> {
    use datafusion::arrow::array::{ArrayRef, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    let schema = Arc::new(Schema::new(
        names.map(|n| Field::new(n, DataType::Utf8, false)).to_vec(),
    ));
    let columns: Vec<ArrayRef> = (0..N)
        .map(|i| {
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r[i].as_str()),
            )) as ArrayRef
        })
        .collect();
    RecordBatch::try_new(schema, columns).map_err(|e| err(table, e.to_string()))
}

/// The first column of a query's rows, as text, sorted.
async fn strings(ctx: &SessionContext, sql: &str) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for b in collect_sql(ctx, sql, "events").await? {
        let a = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)
            .map_err(|e| err("events", e.to_string()))?;
        let a = a.as_string::<i32>();
        out.extend(a.iter().flatten().map(str::to_string));
    }
    out.sort();
    Ok(out)
}

/// `ANONYMIZER_EXPLAIN=1`: prints each aggregate's executed plan with its metrics
/// (EXPLAIN ANALYZE) on stderr, to see where the time goes. Plans hold no data values.
async fn explain(ctx: &SessionContext, name: &str, sql: &str) {
    let plan = match ctx.sql(&format!("EXPLAIN ANALYZE {sql}")).await {
        Ok(df) => df.collect().await,
        Err(e) => Err(e),
    };
    match plan {
        Ok(batches) => {
            let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                .map(|t| t.to_string())
                .unwrap_or_default();
            eprintln!("== {name}\n{text}");
        }
        Err(e) => eprintln!("== {name}: cannot explain: {}", df_message(&e)),
    }
}

/// A context for the aggregates: parallel (sums are exact, so partitioning never changes
/// a result; ORDER BY fixes the row order).
fn session(threads: usize) -> SessionContext {
    let config = crate::run::base_config()
        .with_target_partitions(threads.max(1))
        .with_information_schema(false);
    crate::contain::context(config)
}

/// All files of a table as one DataFrame (one scan of every file: see
/// [`crate::input::open_all`]).
async fn read_table(ctx: &SessionContext, table: &TablePolicy) -> Result<DataFrame, Error> {
    Ok(table.open_files(ctx, &table.files).await?)
}

/// ASCII white space: what [`text`] trims from both ends.
const WHITE_SPACE: &str = " \t\n\r\u{b}\u{c}";

/// Trimmed text (every kind of ASCII white space, not only spaces: an export's
/// `"EUR\t"` is EUR), empty -> null.
fn text(e: Expr) -> Expr {
    nullif(
        btrim(vec![cast(e, DataType::Utf8), lit(WHITE_SPACE)]),
        lit(""),
    )
}

/// How a text role's values are compared: as they are, lower-cased or upper-cased (after
/// [`text`]'s trimming).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Case {
    AsIs,
    Lower,
    Upper,
}

/// [`text`] (then `lower` or `upper`) of one value, as the kernel computes it once per
/// distinct value instead of the view per row; `None` where the view gives null. The
/// kernel and SQL engines are held to the same tables by a test on exports with stray
/// white space and mixed case.
/// The transaction types the aggregates count, as they normalize them (trimmed,
/// lower-cased): payments, and reversals (a refund, a chargeback). Any other type is in
/// no aggregate (the input checks count such rows). The SQL engine's views
/// (`queries/analytics/`) spell the same four.
pub const PAYMENT_TYPES: [&str; 2] = ["purchase", "renewal"];
pub const REVERSAL_TYPES: [&str; 2] = ["refund", "chargeback"];

pub(crate) fn normalized_text(s: &str, case: Case) -> Option<String> {
    let t = s.trim_matches(|c: char| WHITE_SPACE.contains(c));
    if t.is_empty() {
        return None;
    }
    Some(match case {
        Case::AsIs => t.to_string(),
        Case::Lower => t.to_lowercase(),
        Case::Upper => t.to_uppercase(),
    })
}

/// How the views name customers and subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ids {
    /// Keyed tokens (the SQL engine: the session may be shown plans).
    Tokens,
    /// The id's text (the kernel trims and hashes it at once and never writes it); the
    /// text roles (event type, offer type, currency, country) as exported, which the
    /// kernel normalizes once per distinct value with [`normalized_text`]; the offer
    /// period as exported, without period_end and month (the kernel computes both).
    Raw,
}

/// The id column as the views give it: a keyed token (the same token for 42 and " 42 "),
/// or the text the token is computed from.
fn id_expr(table: &TablePolicy, column: &str, udfs: &Udfs, ids: Ids) -> Result<Expr, Error> {
    let t = table
        .schema
        .field_with_name(column)
        .map(|f| f.data_type().clone())
        .unwrap_or(DataType::Utf8);
    let string = is_string(&t);
    if ids == Ids::Raw {
        if !string && !crate::rules::is_integer_like(&t) {
            return Err(err(
                &table.name,
                format!("column {column} has type {t}; an id column must hold strings or integers"),
            ));
        }
        // Trimmed by the kernel as the token's "trim" does (Rust's `str::trim`, every
        // kind of white space, Unicode's too; `text` trims ASCII white space); integers
        // are printed by the kernel, as a cast to text prints them.
        return Ok(ident(column));
    }
    Ok(udfs.pseudonymize.call(vec![
        ident(column),
        lit(if string { "trim" } else { "none" }),
        lit(ScalarValue::Utf8(None)),
    ]))
}

/// The decimal type `amount` gets in the events view: the column's scale, 38 digits.
pub(crate) fn amount_type(table: &TablePolicy) -> DataType {
    let t = table.role(Role::Amount).and_then(|c| {
        table
            .schema
            .field_with_name(c)
            .ok()
            .map(|f| f.data_type().clone())
    });
    match t {
        Some(DataType::Decimal128(_, s)) | Some(DataType::Decimal256(_, s)) => {
            DataType::Decimal128(38, s.max(0))
        }
        Some(t) if t.is_integer() => DataType::Decimal128(38, 0),
        _ => DataType::Decimal128(38, 4),
    }
}

async fn events_frame(
    ctx: &SessionContext,
    table: &TablePolicy,
    udfs: &Udfs,
    end_micros: i64,
    ids: Ids,
) -> Result<DataFrame, Error> {
    let df = read_table(ctx, table).await?;
    let role = |r: Role| table.role(r).map(|c| c.to_string());
    let null_text = || lit(ScalarValue::Utf8(None));
    let opt = |r: Role, f: &dyn Fn(&str) -> Expr, null: Expr| match role(r) {
        Some(c) => f(&c),
        None => null,
    };
    let id = |r: Role| -> Result<Expr, Error> {
        match role(r) {
            Some(c) => id_expr(table, &c, udfs, ids),
            None => Ok(null_text()),
        }
    };
    let event_time = opt(
        Role::EventTime,
        &|c| cast(ident(c), TS),
        lit(ScalarValue::TimestampMicrosecond(None, None)),
    );
    // Normalized for the SQL; as exported for the kernel, which parses it once per run
    // of equal values (period::periods) and adds the period itself.
    let offer_period = opt(
        Role::OfferPeriod,
        &|c| match ids {
            Ids::Raw => ident(c),
            Ids::Tokens => text(ident(c)),
        },
        null_text(),
    );
    let amount_type = amount_type(table);
    let amount = opt(
        Role::Amount,
        &|c| cast(ident(c), amount_type.clone()),
        lit(ScalarValue::Decimal128(None, 38, 0)),
    );
    let period_end = ScalarUDF::from(period::PeriodEndUdf::new());
    let month_index = ScalarUDF::from(period::MonthIndexUdf::new());
    // A text role: normalized here for the SQL, as exported for the kernel.
    let role_text = |r: Role, case: Case| {
        opt(
            r,
            &|c| match (ids, case) {
                (Ids::Raw, _) => ident(c),
                (Ids::Tokens, Case::AsIs) => text(ident(c)),
                (Ids::Tokens, Case::Lower) => lower(text(ident(c))),
                (Ids::Tokens, Case::Upper) => upper(text(ident(c))),
            },
            null_text(),
        )
    };
    let mut exprs = vec![
        id(Role::CustomerKey)?.alias("customer"),
        event_time.clone().alias("event_time"),
        role_text(Role::TransactionType, Case::Lower).alias("event_type"),
        role_text(Role::OfferType, Case::Lower).alias("offer_type"),
        id(Role::SubscriptionId)?.alias("subscription"),
        offer_period.clone().alias("offer_period"),
    ];
    // The kernel computes the period's end, the month and coverage.sql's monthly_units
    // itself (kernel::monthly_units), as these expressions do.
    let sql = ids == Ids::Tokens;
    if sql {
        exprs.push(
            period_end
                .call(vec![event_time.clone(), offer_period])
                .alias("period_end"),
        );
    }
    exprs.extend([
        amount.alias("amount"),
        role_text(Role::Currency, Case::Upper).alias("currency"),
        role_text(Role::Country, Case::AsIs).alias("country"),
    ]);
    if sql {
        exprs.push(month_index.call(vec![event_time]).alias("month"));
    }
    let end = lit(ScalarValue::TimestampMicrosecond(Some(end_micros), None));
    let df = df
        .select(exprs)
        .and_then(|d| d.filter(ident("event_time").lt(end)));
    df.map_err(|e| {
        err(
            &table.name,
            format!("cannot prepare the events view: {}", df_message(&e)),
        )
    })
}

/// Customer id (as [`Ids`] says) and country, one row per customer record; `None` when
/// the export has no customers table with a customer_key.
async fn customers_df(
    ctx: &SessionContext,
    table: Option<&TablePolicy>,
    udfs: &Udfs,
    ids: Ids,
) -> Result<Option<DataFrame>, Error> {
    let Some(table) = table.filter(|t| t.role(Role::CustomerKey).is_some()) else {
        return Ok(None);
    };
    let key = table.role(Role::CustomerKey).expect("filtered above");
    let country = match (table.role(Role::Country), ids) {
        (Some(c), Ids::Raw) => ident(c),
        (Some(c), Ids::Tokens) => text(ident(c)),
        (None, _) => lit(ScalarValue::Utf8(None)),
    };
    let df = read_table(ctx, table).await?;
    let df = df
        .select(vec![
            id_expr(table, key, udfs, ids)?.alias("customer"),
            country.alias("country"),
        ])
        .map_err(|e| {
            err(
                &table.name,
                format!("cannot prepare the customers view: {}", df_message(&e)),
            )
        })?;
    Ok(Some(df))
}

async fn customers_frame(
    ctx: &SessionContext,
    table: Option<&TablePolicy>,
    udfs: &Udfs,
) -> Result<Arc<dyn datafusion::catalog::TableProvider>, Error> {
    use datafusion::arrow::datatypes::{Field, Schema};
    match customers_df(ctx, table, udfs, Ids::Tokens).await? {
        Some(df) => Ok(df.into_view()),
        None => {
            let schema = Arc::new(Schema::new(vec![
                Field::new("customer", DataType::Utf8, true),
                Field::new("country", DataType::Utf8, true),
            ]));
            let empty = MemTable::try_new(schema, vec![vec![]])
                .map_err(|e| err("customers", df_message(&e)))?;
            Ok(Arc::new(empty))
        }
    }
}

/// Computes the aggregates (the records that do not fit in `[analytics] memory_mb` spill
/// into a temporary folder in `spill_dir`) and writes them into the staging folder.
pub async fn build(
    policy: &Policy,
    key: &Key,
    as_of: Option<NaiveDate>,
    threads: usize,
    staging: &Path,
    spill_dir: &Path,
    active_check: &[String],
) -> Result<Built, Error> {
    let Computed {
        aggregates,
        skipped,
        active,
        spilled_parts,
        sorted_parts,
        without_period,
        ..
    } = compute(policy, key, as_of, threads, active_check, Some(spill_dir)).await?;
    if spilled_parts > 0 {
        tracing::info!(
            parts = spilled_parts,
            sorted_on_disk = sorted_parts,
            "aggregates: the transactions did not fit in [analytics] memory_mb and were spilled to disk by customer"
        );
    }
    let mut tables = BTreeMap::new();
    for agg in aggregates {
        let dir = staging.join(agg.name);
        let file = crate::run::write_parquet(&dir, agg.name, "part-00000.parquet", &agg.published)
            .map_err(|m| err(agg.name, m))?;
        tables.insert(
            agg.name.to_string(),
            TableReport {
                kind: "aggregate".into(),
                rows_read: None,
                rows_written: agg.published.num_rows() as u64,
                columns: vec![],
                roles: BTreeMap::new(),
                files: vec![file],
                query: Some(format!("queries/analytics/{}.sql", agg.name)),
                query_sha256: Some(query_digest(agg.name)),
                suppression: Some(agg.suppression),
                k_anonymity: None,
            },
        );
    }
    for (t, why) in &skipped {
        tracing::warn!(table = %t, reason = %why, "aggregate skipped");
    }
    let tx = policy
        .analytics
        .transactions
        .as_deref()
        .and_then(|t| policy.table(t));
    let without_period = match tx {
        Some(tx) if without_period > 0 => BTreeMap::from([(tx.name.clone(), without_period)]),
        _ => BTreeMap::new(),
    };
    Ok(Built {
        tables,
        active,
        skipped,
        without_period,
    })
}
