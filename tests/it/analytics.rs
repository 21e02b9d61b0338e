//! The aggregate tables: hand-worked figures, a brute-force differential, small-cell and
//! secondary suppression, golden results of every saved query, and a mapped
//! transactions-only export.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anonymizer::run::{RunOptions, RunSummary, run};
use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Float64Type, Int32Type, Int64Type, Schema,
    TimeUnit,
};

use crate::common::*;
use crate::oracle::tests::{
    at, bare, cust, day, expected_through_june, expected_through_may, scenario, subs,
};
use crate::oracle::{CohortRow, Customer, MrrRow, Oracle, RevenueRow, SubRow, Tx};

// ---------------------------------------------------------------------------------------
// Writing hand-made exports

fn opt_strings<'a>(v: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(v.collect::<StringArray>())
}

/// Writes `txs` (and `customers`) as a Parquet export with the generator's column names,
/// and a policy with `k` beside it. Returns the policy's path.
fn write_export(dir: &Path, txs: &[Tx], customers: Option<&[Customer]>, k: u64) -> PathBuf {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("transaction_id", DataType::Utf8, false),
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("transaction_at", ts, false),
        Field::new("transaction_type", DataType::Utf8, false),
        Field::new("offer_type", DataType::Utf8, true),
        Field::new("offer_period", DataType::Utf8, true),
        Field::new("subscription_id", DataType::Utf8, true),
        Field::new("amount", DataType::Decimal128(12, 2), false),
        Field::new("currency", DataType::Utf8, true),
        Field::new("country", DataType::Utf8, true),
    ]));
    let ids: Vec<String> = (0..txs.len()).map(|i| format!("t{i}")).collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![
            opt_strings(ids.iter().map(|s| Some(s.as_str()))),
            opt_strings(txs.iter().map(|t| t.customer.as_deref())),
            Arc::new(
                TimestampMicrosecondArray::from(
                    txs.iter().map(|t| t.event_time).collect::<Vec<_>>(),
                )
                .with_timezone("UTC"),
            ),
            opt_strings(txs.iter().map(|t| Some(t.event_type.as_str()))),
            opt_strings(txs.iter().map(|t| t.offer_type.as_deref())),
            opt_strings(txs.iter().map(|t| t.offer_period.as_deref())),
            opt_strings(txs.iter().map(|t| t.subscription.as_deref())),
            Arc::new(
                Decimal128Array::from(txs.iter().map(|t| t.amount).collect::<Vec<_>>())
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
            opt_strings(txs.iter().map(|t| t.currency.as_deref())),
            opt_strings(txs.iter().map(|t| t.country.as_deref())),
        ],
    )
    .unwrap();
    write_parquet(&dir.join("export/transactions.parquet"), &batch);
    let mut policy = format!(
        r#"output = "out"

[analytics]
k = {k}

[tables.transactions]
input = "export/transactions.parquet"

[tables.transactions.columns]
transaction_id   = "pseudonymize"
customer_id      = "pseudonymize"
transaction_at   = {{ rule = "generalize", to = "day" }}
transaction_type = "keep"
offer_type       = "keep"
offer_period     = "keep"
subscription_id  = "pseudonymize"
amount           = "keep"
currency         = "keep"
country          = "keep"
"#
    );
    if let Some(cs) = customers {
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("country", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                opt_strings(cs.iter().map(|c| Some(c.customer.as_str()))),
                opt_strings(cs.iter().map(|c| c.country.as_deref())),
            ],
        )
        .unwrap();
        write_parquet(&dir.join("export/customers.parquet"), &batch);
        policy.push_str(
            r#"
[tables.customers]
input = "export/customers.parquet"

[tables.customers.columns]
customer_id = "pseudonymize"
country     = "keep"
"#,
        );
    }
    let path = dir.join("anonymizer.toml");
    std::fs::write(&path, policy).unwrap();
    path
}

fn run_as_of(config: &Path, out: &Path, as_of: Option<NaiveDate>, threads: usize) -> RunSummary {
    try_run_as_of(config, out, as_of, threads).unwrap_or_else(|e| panic!("run failed: {e}"))
}

/// [`run_as_of`], its error kept.
fn try_run_as_of(
    config: &Path,
    out: &Path,
    as_of: Option<NaiveDate>,
    threads: usize,
) -> Result<RunSummary, anonymizer::error::Error> {
    run(&RunOptions {
        config: config.to_path_buf(),
        out: Some(out.to_path_buf()),
        key: Some(key()),
        as_of,
        threads: Some(threads),
        ..Default::default()
    })
}

// ---------------------------------------------------------------------------------------
// Reading published aggregates back as oracle rows (null -> None)

fn col<'a>(b: &'a RecordBatch, name: &str) -> &'a ArrayRef {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
}

fn months(b: &RecordBatch, name: &str) -> Vec<NaiveDate> {
    let a = col(b, name).as_primitive::<Date32Type>();
    (0..a.len())
        .map(|i| NaiveDate::from_num_days_from_ce_opt(a.value(i) + 719_163).unwrap())
        .collect()
}

fn ints(b: &RecordBatch, name: &str) -> Vec<Option<i64>> {
    let a = datafusion::arrow::compute::cast(col(b, name), &DataType::Int64).unwrap();
    let a = a.as_primitive::<Int64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

fn floats(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let a = col(b, name).as_primitive::<Float64Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

fn decimals(b: &RecordBatch, name: &str) -> Vec<Option<i128>> {
    let a = col(b, name).as_primitive::<Decimal128Type>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i)))
        .collect()
}

fn texts(b: &RecordBatch, name: &str) -> Vec<String> {
    strings_of(col(b, name))
        .into_iter()
        .map(|s| s.unwrap())
        .collect()
}

/// One published aggregate as a single batch (empty when the table was not published).
fn aggregate(run_dir: &Path, table: &str) -> Option<RecordBatch> {
    let dir = run_dir.join(table);
    if !dir.exists() {
        return None;
    }
    let batches = read_table(&dir);
    let schema = batches[0].schema();
    Some(datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap())
}

/// The published tables as oracle rows; every value must be published (k = 1).
fn published(run_dir: &Path) -> Oracle {
    published_as(run_dir, false)
}

/// A withheld count or sum in [`published_as`]'s rows (a withheld mrr or retention is NaN).
const WITHHELD: i64 = i64::MIN;

/// The published tables as oracle rows, withheld values as [`WITHHELD`] where
/// `withheld_ok`, else a panic.
fn published_as(run_dir: &Path, withheld_ok: bool) -> Oracle {
    let u = |v: Option<i64>| match v {
        Some(v) => v,
        None if withheld_ok => WITHHELD,
        None => panic!("k = 1 withholds nothing"),
    };
    let d = |v: Option<i128>| v.unwrap_or_else(|| u(None).into());
    let f = |v: Option<f64>| v.unwrap_or_else(|| (u(None) as f64) * f64::NAN);
    let mut o = Oracle {
        subscriptions_monthly: vec![],
        cohort_retention: vec![],
        revenue_monthly: vec![],
        mrr_monthly: vec![],
    };
    if let Some(b) = aggregate(run_dir, "subscriptions_monthly") {
        let (m, c) = (months(&b, "month"), texts(&b, "country"));
        let (s, n, r, ch, e) = (
            ints(&b, "active_start"),
            ints(&b, "new"),
            ints(&b, "reactivated"),
            ints(&b, "churned"),
            ints(&b, "active_end"),
        );
        let rate = floats(&b, "churn_rate");
        for i in 0..b.num_rows() {
            o.subscriptions_monthly.push(SubRow {
                month: m[i],
                country: c[i].clone(),
                active_start: u(s[i]),
                new: u(n[i]),
                reactivated: u(r[i]),
                churned: u(ch[i]),
                active_end: u(e[i]),
                churn_rate: rate[i],
            });
        }
    }
    if let Some(b) = aggregate(run_dir, "cohort_retention") {
        let m = months(&b, "cohort_month");
        let since = col(&b, "months_since").as_primitive::<Int32Type>().clone();
        let (n, r) = (ints(&b, "customers"), floats(&b, "retention"));
        for i in 0..b.num_rows() {
            o.cohort_retention.push(CohortRow {
                cohort_month: m[i],
                months_since: since.value(i),
                customers: u(n[i]),
                retention: f(r[i]),
            });
        }
    }
    if let Some(b) = aggregate(run_dir, "revenue_monthly") {
        let m = months(&b, "month");
        let (c, cur, ot) = (
            texts(&b, "country"),
            texts(&b, "currency"),
            texts(&b, "offer_type"),
        );
        let (p, n) = (ints(&b, "payments"), ints(&b, "customers"));
        let (g, r, cb, net) = (
            decimals(&b, "gross"),
            decimals(&b, "refunds"),
            decimals(&b, "chargebacks"),
            decimals(&b, "net"),
        );
        for i in 0..b.num_rows() {
            o.revenue_monthly.push(RevenueRow {
                month: m[i],
                country: c[i].clone(),
                currency: cur[i].clone(),
                offer_type: ot[i].clone(),
                payments: u(p[i]),
                gross: d(g[i]),
                refunds: d(r[i]),
                chargebacks: d(cb[i]),
                net: d(net[i]),
                customers: u(n[i]),
            });
        }
    }
    if let Some(b) = aggregate(run_dir, "mrr_monthly") {
        let (m, ctry, cur) = (
            months(&b, "month"),
            texts(&b, "country"),
            texts(&b, "currency"),
        );
        let (s, mrr) = (ints(&b, "subscribers"), floats(&b, "mrr"));
        for i in 0..b.num_rows() {
            o.mrr_monthly.push(MrrRow {
                month: m[i],
                country: ctry[i].clone(),
                currency: cur[i].clone(),
                subscribers: u(s[i]),
                mrr: f(mrr[i]),
            });
        }
    }
    o
}

/// Published == expected; mrr within one cent (the SQL rounds a float sum, the oracle
/// integers).
fn assert_same(got: &Oracle, want: &Oracle) {
    assert_eq!(got.subscriptions_monthly, want.subscriptions_monthly);
    assert_eq!(got.cohort_retention, want.cohort_retention);
    assert_eq!(got.revenue_monthly, want.revenue_monthly);
    assert_eq!(got.mrr_monthly.len(), want.mrr_monthly.len());
    for (g, w) in got.mrr_monthly.iter().zip(&want.mrr_monthly) {
        assert_eq!(
            (g.month, &g.country, &g.currency, g.subscribers),
            (w.month, &w.country, &w.currency, w.subscribers)
        );
        assert!((g.mrr - w.mrr).abs() < 0.0101, "{g:?} vs {w:?}");
    }
}

/// Published (at some k) against expected: the same rows in the same order, and every
/// value that is published equal to the expected one (withheld ones are checked by the
/// suppression tests).
fn assert_same_where_published(got: &Oracle, want: &Oracle) {
    let same_i = |g: i64, w: i64, what: &str| {
        assert!(
            g == WITHHELD || g == w,
            "{what}: published {g}, expected {w}"
        );
    };
    let same_d = |g: i128, w: i128, what: &str| {
        assert!(
            g == i128::from(WITHHELD) || g == w,
            "{what}: published {g}, expected {w}"
        );
    };
    let (gs, ws) = (&got.subscriptions_monthly, &want.subscriptions_monthly);
    assert_eq!(gs.len(), ws.len(), "subscriptions_monthly rows");
    for (g, w) in gs.iter().zip(ws) {
        assert_eq!((g.month, &g.country), (w.month, &w.country));
        let what = format!("subscriptions_monthly {} {}", g.month, g.country);
        same_i(g.active_start, w.active_start, &what);
        same_i(g.new, w.new, &what);
        same_i(g.reactivated, w.reactivated, &what);
        same_i(g.churned, w.churned, &what);
        same_i(g.active_end, w.active_end, &what);
        if g.churn_rate.is_some() {
            assert_eq!(g.churn_rate, w.churn_rate, "{what}");
        }
    }
    let (gc, wc) = (&got.cohort_retention, &want.cohort_retention);
    assert_eq!(gc.len(), wc.len(), "cohort_retention rows");
    for (g, w) in gc.iter().zip(wc) {
        assert_eq!(
            (g.cohort_month, g.months_since),
            (w.cohort_month, w.months_since)
        );
        same_i(g.customers, w.customers, "cohort_retention");
    }
    let (gr, wr) = (&got.revenue_monthly, &want.revenue_monthly);
    assert_eq!(gr.len(), wr.len(), "revenue_monthly rows");
    for (g, w) in gr.iter().zip(wr) {
        assert_eq!(
            (g.month, &g.country, &g.currency, &g.offer_type),
            (w.month, &w.country, &w.currency, &w.offer_type)
        );
        let what = format!(
            "revenue_monthly {} {} {} {}",
            g.month, g.country, g.currency, g.offer_type
        );
        same_i(g.payments, w.payments, &what);
        same_i(g.customers, w.customers, &what);
        same_d(g.gross, w.gross, &what);
        same_d(g.refunds, w.refunds, &what);
        same_d(g.chargebacks, w.chargebacks, &what);
        same_d(g.net, w.net, &what);
    }
    let (gm, wm) = (&got.mrr_monthly, &want.mrr_monthly);
    assert_eq!(gm.len(), wm.len(), "mrr_monthly rows");
    for (g, w) in gm.iter().zip(wm) {
        assert_eq!(
            (g.month, &g.country, &g.currency),
            (w.month, &w.country, &w.currency)
        );
        same_i(g.subscribers, w.subscribers, "mrr_monthly");
        assert!(
            g.mrr.is_nan() || (g.mrr - w.mrr).abs() < 0.0101,
            "{g:?} vs {w:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Hand-worked figures

#[test]
fn hand_fixture_matches_hand_worked_figures() {
    // The scenario (see oracle::tests::scenario) has a refund cutting coverage short, a
    // reactivation, an annual plan, a weekly plan crossing a month end, a customer who
    // starts and ends inside one month, a chargeback, a purchase at exactly a month's first
    // instant, Jan 31 + P1M, and transactions after the as-of date.
    let dir = tempfile::tempdir().unwrap();
    let (txs, customers) = scenario();
    let policy = write_export(dir.path(), &txs, Some(&customers), 1);
    let out = dir.path().join("out");
    let s = run_as_of(&policy, &out, Some(day(2024, 6, 15)), 2);
    assert_same(&published(&s.run_dir), &expected_through_may());
    let s = run_as_of(&policy, &out, Some(day(2024, 6, 30)), 2);
    assert_same(&published(&s.run_dir), &expected_through_june());
    // Every aggregate is in the manifest as anonymous, nothing skipped.
    for t in AGGREGATES {
        let r = &s.manifest.tables[t];
        assert_eq!(r.kind, "aggregate");
        assert_eq!(r.suppression.as_ref().unwrap().k, 1);
    }
    assert!(s.manifest.aggregates_skipped.is_empty());
}

// ---------------------------------------------------------------------------------------
// Brute force on generated data

/// The fixture export's raw input, normalized as the events view documents (trimmed,
/// empty -> none, types lower-case, currency upper-case), as oracle rows.
pub fn fixture_rows() -> (Vec<Tx>, Vec<Customer>) {
    let tx = read_table(&fixture().join("export/transactions"));
    let mut txs = Vec::new();
    let norm = |v: Option<String>| v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    for b in &tx {
        let s = |n: &str| strings_of(col(b, n));
        let (cust, ty, ot, per, sub, cur, ctry) = (
            s("customer_id"),
            s("transaction_type"),
            s("offer_type"),
            s("offer_period"),
            s("subscription_id"),
            s("currency"),
            s("country"),
        );
        let t = col(b, "transaction_at")
            .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        let amount = decimals(b, "amount");
        for i in 0..b.num_rows() {
            txs.push(Tx {
                customer: cust[i].clone(),
                event_time: t.value(i),
                event_type: norm(ty[i].clone()).unwrap().to_lowercase(),
                offer_type: norm(ot[i].clone()).map(|s| s.to_lowercase()),
                subscription: norm(sub[i].clone()),
                offer_period: norm(per[i].clone()),
                amount: amount[i].unwrap(),
                currency: norm(cur[i].clone()).map(|s| s.to_uppercase()),
                country: norm(ctry[i].clone()),
            });
        }
    }
    let mut customers = Vec::new();
    for b in &read_table(&fixture().join("export/customers")) {
        let (id, c) = (
            strings_of(col(b, "customer_id")),
            strings_of(col(b, "country")),
        );
        for i in 0..b.num_rows() {
            customers.push(Customer {
                customer: id[i].clone().unwrap(),
                country: norm(c[i].clone()),
            });
        }
    }
    (txs, customers)
}

/// The sample policy without its trailing `[analytics]` section.
fn sample_without_analytics() -> String {
    let text = anonymizer::policy::SAMPLE_POLICY;
    let at = text
        .find("\n[analytics]")
        .expect("the sample ends with [analytics]");
    assert!(
        !text[at + 1..].contains("\n["),
        "[analytics] is the sample's last section"
    );
    text[..at].to_string()
}

/// A private copy of the fixture whose policy sets `k`.
fn fixture_with_k(k: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = fixture_copy();
    let policy = dir.path().join("anonymizer.toml");
    let text = sample_without_analytics();
    std::fs::write(&policy, format!("{text}\n[analytics]\nk = {k}\n")).unwrap();
    (dir, policy)
}

#[test]
fn aggregates_match_brute_force_on_generated_data() {
    let (dir, policy) = fixture_with_k(1);
    let s = run_as_of(&policy, &dir.path().join("out"), None, 2);
    let as_of: NaiveDate = s.manifest.as_of.as_deref().unwrap().parse().unwrap();
    let (txs, customers) = fixture_rows();
    let want = crate::oracle::compute(&txs, Some(&customers), as_of, 2);
    assert!(want.subscriptions_monthly.len() > 100);
    assert!(want.revenue_monthly.len() > 100);
    assert_same(&published(&s.run_dir), &want);

    // Parallel and single-threaded runs publish byte-identical aggregates.
    let one = run_as_of(&policy, &dir.path().join("out1"), None, 1);
    for t in AGGREGATES {
        assert_eq!(
            s.manifest.tables[t].files[0].sha256, one.manifest.tables[t].files[0].sha256,
            "{t}"
        );
    }
}

/// Rare key values (a country, currency or offer type fewer than k customers have) are
/// published as 'other': the run at k = 10 gives the rows, and every published value, of
/// the brute-force tables of the export rewritten by the rule on its own
/// (`oracle::recode_rare`).
#[test]
fn rare_key_values_are_published_as_other_as_brute_force_says() {
    let (raw_tx, customers) = fixture_rows();
    // Per key column (table.column), values recoded at some k.
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for k in [10, 60] {
        let (dir, policy) = fixture_with_k(k);
        let s = run_as_of(&policy, &dir.path().join("out"), None, 2);
        let as_of: NaiveDate = s.manifest.as_of.as_deref().unwrap().parse().unwrap();
        let rewritten = crate::oracle::recode_rare(&raw_tx, &customers, as_of, k as usize);
        let rtx = &rewritten.txs;
        assert!(
            rtx.iter()
                .any(|t| t.offer_type.as_deref() == Some("subscription")),
            "the rewrite keeps subscriptions"
        );
        for (t, r) in &s.manifest.tables {
            for (c, n) in r.suppression.iter().flat_map(|x| &x.values_recoded) {
                *seen.entry(format!("{t}.{c}")).or_default() += n;
            }
        }
        let want = rewritten.compute(as_of, 2);
        assert_same_where_published(&published_as(&s.run_dir, true), &want);
        // No rare value is published under its own name.
        let rare: std::collections::BTreeSet<String> = raw_tx
            .iter()
            .zip(rtx)
            .flat_map(|(a, b)| {
                [
                    (&a.country, &b.country),
                    (&a.currency, &b.currency),
                    (&a.offer_type, &b.offer_type),
                ]
            })
            .filter(|(a, b)| a != b)
            .filter_map(|(a, _)| a.clone())
            .collect();
        for (t, c) in [
            ("revenue_monthly", "country"),
            ("revenue_monthly", "currency"),
            ("revenue_monthly", "offer_type"),
            ("mrr_monthly", "currency"),
        ] {
            let b = aggregate(&s.run_dir, t).unwrap();
            for v in texts(&b, c) {
                assert!(
                    !rare.contains(&v),
                    "k = {k}: {t}.{c} publishes a rare value"
                );
            }
        }
    }
    // Every key column but the offer type (never rare in this export: see the hand-built
    // test below) had rare values at one k or the other.
    for c in [
        "revenue_monthly.country",
        "revenue_monthly.currency",
        "revenue_monthly.combinations",
        "mrr_monthly.country",
        "mrr_monthly.currency",
        "subscriptions_monthly.country",
    ] {
        assert!(seen.get(c).is_some_and(|n| *n > 0), "{c}: {seen:?}");
    }
}

/// A hand-built export at k = 3: DE's three subscribers pay in EUR; one Austrian pays in
/// CHF and rents a film. AT (as the transactions' and as the customer's country), CHF and
/// the rental offer are each one customer's: published as 'other', counted in the
/// manifest, and never named; and (other, other, subscription), one customer's too, is
/// (other, other, other).
#[test]
fn a_lone_country_currency_and_offer_are_published_as_other() {
    let mut h = Hand::default();
    h.yearly("de", 3, "DE", "EUR", at(2024, 1, 10, 9, 0));
    let Hand { mut txs, mut custs } = h;
    let mut at_sub = subs(
        "at",
        "purchase",
        "at-s",
        Some("P1M"),
        at(2024, 1, 11, 9, 0),
        1500,
        Some("AT"),
    );
    at_sub.currency = Some("CHF".into());
    txs.push(at_sub.clone());
    txs.push(Tx {
        offer_type: Some("Rental ".into()),
        subscription: None,
        offer_period: None,
        amount: 399,
        event_time: at(2024, 2, 2, 20, 0),
        ..at_sub
    });
    custs.push(cust("at", Some("AT")));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_export(dir.path(), &txs, Some(&custs), 3);
    let as_of = day(2024, 3, 31);
    let s = run_as_of(&policy, &dir.path().join("out"), Some(as_of), 2);
    let counts = |t: &str| {
        s.manifest.tables[t]
            .suppression
            .as_ref()
            .unwrap()
            .values_recoded
            .iter()
            .map(|(c, n)| format!("{c}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    // AT's subscription paid in CHF is (other, other, subscription) by its values, and
    // that combination is one customer's too.
    assert_eq!(
        counts("revenue_monthly"),
        "combinations=1 country=1 currency=1 offer_type=1"
    );
    assert_eq!(counts("mrr_monthly"), "combinations=0 country=1 currency=1");
    assert_eq!(counts("subscriptions_monthly"), "country=1");
    assert_eq!(counts("cohort_retention"), "");
    let rev = aggregate(&s.run_dir, "revenue_monthly").unwrap();
    let keys: Vec<String> = (0..rev.num_rows())
        .map(|r| {
            ["country", "currency", "offer_type"]
                .map(|c| texts(&rev, c)[r].clone())
                .join(" ")
        })
        .collect();
    let mut distinct = keys.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct, ["DE EUR subscription", "other other other"]);
    for t in ["subscriptions_monthly", "mrr_monthly", "revenue_monthly"] {
        let b = aggregate(&s.run_dir, t).unwrap();
        let text = pretty(&[(t.to_string(), b)]);
        for v in ["AT", "CHF", "rental", "Rental"] {
            assert!(!text.contains(v), "{t} names {v}:\n{text}");
        }
    }
    let sub = aggregate(&s.run_dir, "subscriptions_monthly").unwrap();
    assert!(texts(&sub, "country").contains(&"other".to_string()));
    // The same rows and published values as brute force on the rewritten export (the
    // offer type normalized as the views do: trimmed, lower-cased).
    let txs: Vec<Tx> = txs
        .into_iter()
        .map(|t| Tx {
            offer_type: t.offer_type.map(|o| o.trim().to_lowercase()),
            ..t
        })
        .collect();
    let want = crate::oracle::recode_rare(&txs, &custs, as_of, 3).compute(as_of, 2);
    assert_same_where_published(&published_as(&s.run_dir, true), &want);
}

/// A hand-built export at k = 3 where every currency and country is common but some
/// (country, currency) pairs of mrr_monthly are not: German subscribers paying in US
/// dollars, pounds or francs. Those pairs publish their currency as 'other'; a customer
/// with coverage in two of them at once (USD and GBP) is one subscriber of (DE, other),
/// not two; one in EUR and USD is one of (DE, EUR) and one of (DE, other). A pair that
/// three customers pay in, only one of them a subscriber (SE, SEK), stays: the rule
/// counts customers with a transaction, as for every key. Both engines, and brute force
/// on the rewritten export, give the same rows.
#[test]
fn a_rare_country_currency_pair_of_mrr_is_published_as_other() {
    let start = at(2024, 1, 10, 9, 0);
    let paid = |c: &str, s: &str, currency: &str, country: &str, amount: i128| Tx {
        currency: Some(currency.into()),
        ..subs(c, "purchase", s, Some("P1Y"), start, amount, Some(country))
    };
    let mut h = Hand::default();
    h.yearly("de", 3, "DE", "EUR", start);
    for (prefix, country, currency) in [
        ("us", "US", "USD"),
        ("gb", "GB", "GBP"),
        ("ch", "CH", "CHF"),
    ] {
        h.yearly(prefix, 3, country, currency, start);
    }
    // One Swede subscribes in kronor; two more buy passes in kronor.
    h.yearly("se", 1, "SE", "SEK", start);
    h.pass_buyers("sp", 2, "SE", "SEK", start);
    let Hand { mut txs, mut custs } = h;
    // mix: EUR and USD; tri: USD and GBP; q: CHF. All German.
    txs.push(paid("mix", "mix-e", "EUR", "DE", 12000));
    txs.push(paid("mix", "mix-u", "USD", "DE", 2400));
    txs.push(paid("tri", "tri-u", "USD", "DE", 3600));
    txs.push(paid("tri", "tri-g", "GBP", "DE", 4800));
    txs.push(paid("q", "q-c", "CHF", "DE", 6000));
    for c in ["mix", "tri", "q"] {
        custs.push(cust(c, Some("DE")));
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = write_export(dir.path(), &txs, Some(&custs), 3);
    let as_of = day(2024, 3, 31);
    let want = crate::oracle::recode_rare(&txs, &custs, as_of, 3).compute(as_of, 2);
    let mut seen = Vec::new();
    let text = std::fs::read_to_string(&policy).unwrap();
    for engine in ["kernel", "sql"] {
        std::fs::write(
            &policy,
            text.replace("k = 3\n", &format!("k = 3\nengine = \"{engine}\"\n")),
        )
        .unwrap();
        let s = run_as_of(&policy, &dir.path().join(engine), Some(as_of), 2);
        let recoded = &s.manifest.tables["mrr_monthly"]
            .suppression
            .as_ref()
            .unwrap()
            .values_recoded;
        assert_eq!(recoded["combinations"], 3, "{engine}: (DE, USD/GBP/CHF)");
        assert_eq!(
            (recoded["country"], recoded["currency"]),
            (0, 0),
            "{engine}"
        );
        let mrr = aggregate(&s.run_dir, "mrr_monthly").unwrap();
        let rows: Vec<String> = (0..mrr.num_rows())
            .map(|r| {
                format!(
                    "{} {} {} {:?} {:?}",
                    months(&mrr, "month")[r],
                    texts(&mrr, "country")[r],
                    texts(&mrr, "currency")[r],
                    ints(&mrr, "subscribers")[r],
                    floats(&mrr, "mrr")[r],
                )
            })
            .collect();
        // (DE, other): mix's 24, tri's 36 + 48, q's 60 a year = 14 a month, 3 people.
        // The other rows' keys (their values are the protection's business).
        let mut want_rows = Vec::new();
        for m in ["2024-01-01", "2024-02-01", "2024-03-01"] {
            for row in ["CH CHF", "DE EUR", "DE other", "GB GBP", "SE SEK", "US USD"] {
                want_rows.push(format!("{m} {row}"));
            }
            for row in ["DE EUR Some(4) Some(40.0)", "DE other Some(3) Some(14.0)"] {
                let row = format!("{m} {row}");
                assert!(rows.contains(&row), "{engine}: no {row} in {rows:#?}");
            }
        }
        let keys: Vec<String> = rows
            .iter()
            .map(|r| r.splitn(4, ' ').take(3).collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(keys, want_rows, "{engine}");
        assert_same_where_published(&published_as(&s.run_dir, true), &want);
        seen.push(pretty(&[("mrr_monthly".to_string(), mrr)]));
    }
    assert_eq!(seen[0], seen[1]);
}

// ---------------------------------------------------------------------------------------
// Suppression

/// Independent checks that no withheld subscriptions_monthly count can be recomputed by
/// one subtraction: from its row's identity, from its month's 'ALL' column, or from the
/// neighbouring month. Then the exact check (null space) over all identities at once.
fn check_subscriptions_protected(run_dir: &Path, last_month: NaiveDate) {
    let b = &aggregate(run_dir, "subscriptions_monthly").unwrap();
    let mrr = aggregate(run_dir, "mrr_monthly");
    let terms = anonymizer::analytics::SUBSCRIPTION_TERMS;
    let m = months(b, "month");
    let c = texts(b, "country");
    let v: Vec<Vec<Option<i64>>> = terms.iter().map(|t| ints(b, t)).collect();
    let rate = floats(b, "churn_rate");
    let sup = col(b, "suppressed").as_boolean().clone();
    let at: HashMap<(NaiveDate, &str), usize> = (0..b.num_rows())
        .map(|r| ((m[r], c[r].as_str()), r))
        .collect();
    let next = |d: NaiveDate| d.checked_add_months(chrono::Months::new(1)).unwrap();
    let prev = |d: NaiveDate| d.checked_sub_months(chrono::Months::new(1)).unwrap();
    for r in 0..b.num_rows() {
        let nulls = (0..5).filter(|t| v[*t][r].is_none()).count();
        // A missing neighbour row publishes a 0; count it as published.
        let public_start = !at.contains_key(&(prev(m[r]), c[r].as_str()));
        let public_end = m[r] < last_month && !at.contains_key(&(next(m[r]), c[r].as_str()));
        assert!(
            !(public_start && v[0][r].is_none()),
            "row {r}: a public 0 withheld"
        );
        assert!(
            !(public_end && v[4][r].is_none()),
            "row {r}: a public 0 withheld"
        );
        assert_ne!(
            nulls, 1,
            "row {r} ({}, {}): one withheld term of the identity",
            m[r], c[r]
        );
        assert_eq!(sup.value(r), nulls > 0, "row {r}: suppressed flag");
        if v[0][r].is_none() || v[3][r].is_none() {
            assert!(rate[r].is_none(), "row {r}: churn_rate reveals churned");
        }
        if let Some(&n) = at.get(&(next(m[r]), c[r].as_str())) {
            assert_eq!(
                v[4][r].is_none(),
                v[0][n].is_none(),
                "row {r}: active_end vs next start"
            );
        }
    }
    let mut by_month: BTreeMap<NaiveDate, Vec<usize>> = BTreeMap::new();
    for (r, month) in m.iter().enumerate() {
        by_month.entry(*month).or_default().push(r);
    }
    for (month, rows) in &by_month {
        for (t, term) in terms.iter().enumerate() {
            let nulls = rows.iter().filter(|r| v[t][**r].is_none()).count();
            assert_ne!(
                nulls, 1,
                "{month} {term}: one withheld value in the ALL column"
            );
        }
    }
    // mrr_monthly: a country's subscribers over its currencies add up to its active_end.
    if let Some(mb) = &mrr {
        let (mm, mc) = (months(mb, "month"), texts(mb, "country"));
        let (subs, arpu) = (ints(mb, "subscribers"), floats(mb, "arpu"));
        let mut groups: BTreeMap<(NaiveDate, String), Vec<usize>> = BTreeMap::new();
        for r in 0..mb.num_rows() {
            groups.entry((mm[r], mc[r].clone())).or_default().push(r);
            if subs[r].is_none() {
                assert!(arpu[r].is_none(), "mrr row {r}: arpu reveals subscribers");
                let mrr = floats(mb, "mrr");
                assert!(
                    mrr[r].is_none(),
                    "mrr row {r}: mrr over a price reveals subscribers"
                );
            }
        }
        // A country without an mrr row in a month has no subscribers at its end: its
        // active_end is a public 0.
        for r in 0..b.num_rows() {
            if c[r] != "ALL" && !groups.contains_key(&(m[r], c[r].clone())) {
                assert_eq!(v[4][r], Some(0), "row {r}: active_end without mrr rows");
            }
        }
        for ((month, country), rows) in groups {
            let end = at[&(month, country.as_str())];
            let nulls = rows.iter().filter(|r| subs[**r].is_none()).count()
                + usize::from(v[4][end].is_none());
            assert_ne!(nulls, 1, "{month} {country}: one withheld subscriber count");
        }
    }
    check_cohorts_protected(run_dir);
    // Exact, over all identities at once: the privacy gate's own re-check of the files
    // (src/verify.rs rebuilds the identities from the published columns).
    let check = gate_check(run_dir, "aggregates_small_cells");
    assert_eq!(check["passed"], true, "{check}");
    assert_eq!(check["figures"]["recomputable"], 0);
}

/// Independent check that no withheld customers count of cohort_retention or
/// revenue_monthly follows from the other table: a month's cohort members with a
/// transaction (over every cohort) are its customers over revenue_monthly's cells. Each
/// count is in one such month identity only, so a withheld count is recomputable exactly
/// when it is the only withheld count of its month.
fn check_cohorts_protected(run_dir: &Path) {
    let (Some(co), Some(re)) = (
        aggregate(run_dir, "cohort_retention"),
        aggregate(run_dir, "revenue_monthly"),
    ) else {
        return;
    };
    let mut withheld: BTreeMap<NaiveDate, usize> = BTreeMap::new();
    let (cm, since, cc) = (
        months(&co, "cohort_month"),
        ints(&co, "months_since"),
        ints(&co, "customers"),
    );
    for r in 0..co.num_rows() {
        let m = cm[r]
            .checked_add_months(chrono::Months::new(since[r].unwrap() as u32))
            .unwrap();
        *withheld.entry(m).or_default() += usize::from(cc[r].is_none());
    }
    let (rm, rc) = (months(&re, "month"), ints(&re, "customers"));
    let payments = ints(&re, "payments");
    for r in 0..re.num_rows() {
        *withheld.entry(rm[r]).or_default() += usize::from(rc[r].is_none());
        if rc[r].is_none() {
            assert_eq!(
                payments[r], None,
                "revenue row {r}: payments reveals customers"
            );
        }
    }
    for (month, n) in withheld {
        assert_ne!(
            n, 1,
            "{month}: one withheld customers count over both tables"
        );
    }
}

fn last_complete_month(as_of: NaiveDate) -> NaiveDate {
    let m = anonymizer::analytics::last_complete_month(as_of);
    NaiveDate::from_ymd_opt((m / 12) as i32, (m % 12) as u32 + 1, 1).unwrap()
}

#[test]
fn small_cells_are_withheld_and_cannot_be_recomputed() {
    let (dir, policy) = fixture_with_k(1);
    let raw = run_as_of(&policy, &dir.path().join("raw"), None, 2);
    let s = run_to(&sample_policy(), &dir.path().join("out"), key()).unwrap();
    let as_of: NaiveDate = s.manifest.as_of.as_deref().unwrap().parse().unwrap();
    for (table, cols) in anonymizer::analytics::COUNT_COLUMNS {
        let b = aggregate(&s.run_dir, table).unwrap();
        let r = aggregate(&raw.run_dir, table).unwrap();
        for c in cols {
            for v in ints(&b, c).into_iter().flatten() {
                assert!(v == 0 || v >= 10, "{table}.{c}: published count {v} < k");
            }
        }
        // A row is keyed by its columns of text and dates; at k = 10 rare values are
        // merged into 'other' rows (tested against brute force above), every other row
        // is the k = 1 run's row with some values withheld.
        let key_cols: Vec<usize> = (0..r.num_columns())
            .filter(|&i| {
                matches!(
                    r.schema().field(i).data_type(),
                    DataType::Utf8 | DataType::Date32
                ) || r.schema().field(i).name() == "months_since"
            })
            .collect();
        let key_of = |batch: &RecordBatch, row: usize| -> Vec<Option<String>> {
            key_cols
                .iter()
                .map(|&i| strings_of(&batch.column(i).slice(row, 1)).remove(0))
                .collect()
        };
        let raw_rows: HashMap<Vec<Option<String>>, usize> = (0..r.num_rows())
            .map(|row| (key_of(&r, row), row))
            .collect();
        assert!(b.num_rows() <= r.num_rows(), "{table}: rows");
        // Withholding only nulls values; what is published is the true value.
        let (mut withheld, mut other_nulls, mut other_rows) = (0u64, 0u64, 0);
        for row in 0..b.num_rows() {
            let key = key_of(&b, row);
            let Some(&raw_row) = raw_rows.get(&key) else {
                assert!(
                    key.iter().any(|k| k.as_deref() == Some("other")),
                    "{table}: row {row} {key:?} is not in the k = 1 run"
                );
                other_rows += 1;
                for (i, f) in b.schema().fields().iter().enumerate() {
                    if !f.name().starts_with('_') && f.name() != "suppressed" {
                        other_nulls += b.column(i).is_null(row) as u64;
                    }
                }
                continue;
            };
            for (i, f) in r.schema().fields().iter().enumerate() {
                let name = f.name();
                if name.starts_with('_') || name == "suppressed" {
                    continue;
                }
                let pb = col(&b, name).slice(row, 1);
                let pr = r.column(i).slice(raw_row, 1);
                if pb.is_null(0) && !pr.is_null(0) {
                    withheld += 1;
                } else {
                    assert_eq!(strings_of(&pb), strings_of(&pr), "{table}.{name} row {row}");
                }
            }
        }
        let rep = s.manifest.tables[table].suppression.clone().unwrap();
        assert_eq!(rep.k, 10);
        // An 'other' row's null may be withheld or a rate of nothing (churn_rate over an
        // active_start of 0).
        let counted = rep.cells_suppressed_threshold + rep.cells_suppressed_protection;
        assert!(
            withheld <= counted && counted <= withheld + other_nulls,
            "{table}: manifest counts {counted}, withheld {withheld} + up to {other_nulls}"
        );
        if other_rows == 0 {
            assert_eq!(counted, withheld, "{table}: manifest counts");
        }
    }
    check_subscriptions_protected(&s.run_dir, last_complete_month(as_of));
    assert!(
        s.manifest.tables["subscriptions_monthly"]
            .suppression
            .as_ref()
            .unwrap()
            .cells_suppressed_protection
            > 0
    );
    // revenue: never exactly one withheld term of net = gross - refunds - chargebacks.
    let rev = aggregate(&s.run_dir, "revenue_monthly").unwrap();
    let terms: Vec<_> = ["gross", "refunds", "chargebacks", "net"]
        .iter()
        .map(|t| decimals(&rev, t))
        .collect();
    for r in 0..rev.num_rows() {
        let nulls = terms.iter().filter(|t| t[r].is_none()).count();
        assert_ne!(nulls, 1, "revenue row {r}");
    }
}

/// A hand-built export: its transactions and its customers rows.
#[derive(Default)]
struct Hand {
    txs: Vec<Tx>,
    custs: Vec<Customer>,
}

impl Hand {
    /// `n` customers of `country` (ids `prefix` and a number), each with the
    /// transaction `tx` makes for their id.
    fn customers_of(&mut self, prefix: &str, n: usize, country: &str, tx: impl Fn(&str) -> Tx) {
        for i in 0..n {
            let c = format!("{prefix}{i}");
            self.txs.push(tx(&c));
            self.custs.push(cust(&c, Some(country)));
        }
    }

    /// `n` customers of `country` with a yearly subscription paid in `currency` on
    /// `start`.
    fn yearly(&mut self, prefix: &str, n: usize, country: &str, currency: &str, start: i64) {
        self.customers_of(prefix, n, country, |c| Tx {
            currency: Some(currency.into()),
            ..subs(
                c,
                "purchase",
                &format!("{c}-s"),
                Some("P1Y"),
                start,
                12000,
                Some(country),
            )
        });
    }

    /// `n` customers of `country` who bought a pass in `currency` on `time` (no
    /// subscription): they make the country (and currency) one of at least k customers'
    /// without changing its subscriptions.
    fn pass_buyers(&mut self, prefix: &str, n: usize, country: &str, currency: &str, time: i64) {
        self.customers_of(prefix, n, country, |c| Tx {
            offer_type: Some("pass".into()),
            amount: 500,
            currency: Some(currency.into()),
            country: Some(country.into()),
            ..bare(Some(c), "purchase", time)
        });
    }
}

#[test]
fn secondary_suppression_protects_constructed_small_cells() {
    // k = 3. DE: 6 yearly subscribers from January, and one monthly subscriber who churns
    // in February (churned = 1: one term of DE's identity under k). FR: 2 yearly
    // subscribers (one country of the month under k, so ALL - DE would give it away).
    let mut h = Hand::default();
    h.yearly("de", 6, "DE", "EUR", at(2024, 1, 10, 9, 0));
    h.yearly("fr", 2, "FR", "EUR", at(2024, 1, 12, 9, 0));
    // A third French customer, so that FR is not a rare country (published as 'other').
    h.pass_buyers("frp", 1, "FR", "EUR", at(2024, 1, 13, 9, 0));
    let Hand { mut txs, mut custs } = h;
    txs.push(subs(
        "m",
        "purchase",
        "m-s",
        Some("P1M"),
        at(2024, 1, 20, 9, 0),
        999,
        Some("DE"),
    ));
    custs.push(cust("m", Some("DE")));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_export(dir.path(), &txs, Some(&custs), 3);
    let s = run_as_of(&policy, &dir.path().join("out"), Some(day(2024, 4, 30)), 2);
    let b = aggregate(&s.run_dir, "subscriptions_monthly").unwrap();
    let m = months(&b, "month");
    let c = texts(&b, "country");
    let row = |month: NaiveDate, country: &str| {
        (0..b.num_rows())
            .find(|r| m[*r] == month && c[*r] == country)
            .unwrap_or_else(|| panic!("no row {month} {country}"))
    };
    let feb_de = row(day(2024, 2, 1), "DE");
    let feb_fr = row(day(2024, 2, 1), "FR");
    let feb_all = row(day(2024, 2, 1), "ALL");
    let (start, churned) = (ints(&b, "active_start"), ints(&b, "churned"));
    // The small cells are withheld...
    assert_eq!(churned[feb_de], None);
    assert_eq!(start[feb_fr], None);
    // ...and so is a partner in each identity they are part of.
    let row_nulls = |r: usize| {
        [
            "active_start",
            "new",
            "reactivated",
            "churned",
            "active_end",
        ]
        .iter()
        .filter(|t| ints(&b, t)[r].is_none())
        .count()
    };
    assert!(row_nulls(feb_de) >= 2);
    assert!(start[feb_all].is_none() || start[feb_de].is_none());
    assert!(churned[feb_all].is_none() || churned[row(day(2024, 2, 1), "FR")].is_none());
    check_subscriptions_protected(&s.run_dir, day(2024, 4, 1));
    let rep = s.manifest.tables["subscriptions_monthly"]
        .suppression
        .clone()
        .unwrap();
    assert!(rep.cells_suppressed_threshold > 0 && rep.cells_suppressed_protection > 0);
}

/// Found by an audit (2026-12-03): GB's customer churned in March, so GB had a March
/// subscriptions_monthly row but no mrr_monthly row, which says its active_end is 0;
/// withholding that 0 to protect FR's active_end of 1 protected nothing (ALL - US - 0).
#[test]
fn a_country_without_mrr_rows_is_no_protection() {
    let mut h = Hand::default();
    h.yearly("us", 3, "US", "EUR", at(2025, 1, 10, 9, 0));
    // FR and GB of k = 3 customers each, so that neither is published as 'other'.
    h.pass_buyers("frp", 2, "FR", "EUR", at(2025, 1, 5, 9, 0));
    h.pass_buyers("gbp", 2, "GB", "EUR", at(2025, 1, 5, 9, 0));
    let Hand { mut txs, mut custs } = h;
    txs.push(subs(
        "fr",
        "purchase",
        "fr-s",
        Some("P1Y"),
        at(2025, 3, 3, 0, 0),
        900,
        Some("FR"),
    ));
    custs.push(cust("fr", Some("FR")));
    txs.push(subs(
        "gb",
        "purchase",
        "gb-s",
        Some("P1M"),
        at(2025, 2, 15, 0, 0),
        700,
        Some("GB"),
    ));
    custs.push(cust("gb", Some("GB")));
    let dir = tempfile::tempdir().unwrap();
    let policy = write_export(dir.path(), &txs, Some(&custs), 3);
    let s = run_as_of(&policy, &dir.path().join("out"), Some(day(2025, 3, 31)), 2);
    let b = aggregate(&s.run_dir, "subscriptions_monthly").unwrap();
    let (m, c, end) = (
        months(&b, "month"),
        texts(&b, "country"),
        ints(&b, "active_end"),
    );
    let row = |country: &str| {
        (0..b.num_rows())
            .find(|r| m[*r] == day(2025, 3, 1) && c[*r] == country)
            .unwrap()
    };
    assert_eq!(end[row("FR")], None, "FR's 1 is withheld");
    assert_eq!(end[row("GB")], Some(0), "GB's 0 is public: no mrr row");
    assert!(end[row("US")].is_none() || end[row("ALL")].is_none());
    check_subscriptions_protected(&s.run_dir, day(2025, 3, 1));
}

/// Found by an audit (2026-12-03): one country, currency and offer, so revenue_monthly's
/// customers in a month were the month's cohort members with a transaction; February's
/// cohort of 2 was withheld but was February's 5 revenue customers minus January's 3.
#[test]
fn cohort_counts_are_protected_against_revenue_customers() {
    let mut txs = Vec::new();
    let mut custs = Vec::new();
    let t = |c: &str, kind: &str, when: i64| {
        subs(
            c,
            kind,
            &format!("{c}-s"),
            Some("P1M"),
            when,
            1000,
            Some("US"),
        )
    };
    for i in 1..=5 {
        txs.push(t(&format!("c{i}"), "purchase", at(2025, 1, 10, 10, 0)));
    }
    for i in 1..=3 {
        txs.push(t(&format!("c{i}"), "renewal", at(2025, 2, 10, 10, 0)));
    }
    for i in [6, 7] {
        txs.push(t(&format!("c{i}"), "purchase", at(2025, 2, 12, 10, 0)));
    }
    for i in [1, 2, 3, 6, 7] {
        txs.push(t(&format!("c{i}"), "renewal", at(2025, 3, 10, 10, 0)));
    }
    for i in 1..=7 {
        custs.push(cust(&format!("c{i}"), Some("US")));
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = write_export(dir.path(), &txs, Some(&custs), 3);
    let s = run_as_of(&policy, &dir.path().join("out"), Some(day(2025, 3, 31)), 2);
    let co = aggregate(&s.run_dir, "cohort_retention").unwrap();
    let (cm, since, cc) = (
        months(&co, "cohort_month"),
        ints(&co, "months_since"),
        ints(&co, "customers"),
    );
    let feb = (0..co.num_rows())
        .find(|r| cm[*r] == day(2025, 2, 1) && since[*r] == Some(0))
        .unwrap();
    assert_eq!(cc[feb], None, "February's cohort of 2 is withheld");
    check_cohorts_protected(&s.run_dir);
    let check = gate_check(&s.run_dir, "aggregates_small_cells");
    assert_eq!(check["figures"]["recomputable"], 0, "{check}");
}

/// Found by an audit (2026-12-03): one country, 4 subscribers in EUR and 1 in USD, all
/// on 9.99 a month, k = 3. USD's 1 was withheld, and EUR's 4 withheld to protect it
/// (active_end 5 is published), but EUR's mrr of 39.96 (4 x 9.99) and its 4 payments
/// stayed: each gave the 4 back, and 5 - 4 the 1.
#[test]
fn money_beside_a_withheld_count_is_withheld_too() {
    let mut txs = Vec::new();
    let mut custs = Vec::new();
    for i in 0..5 {
        let c = format!("c{i}");
        let mut t = subs(
            &c,
            "purchase",
            &format!("{c}-s"),
            Some("P1M"),
            at(2025, 1, 10, 9, 0),
            999,
            Some("DE"),
        );
        t.currency = Some(if i == 4 { "USD" } else { "EUR" }.to_string());
        txs.push(t);
        custs.push(cust(&c, Some("DE")));
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = write_export(dir.path(), &txs, Some(&custs), 3);
    let s = run_as_of(&policy, &dir.path().join("out"), Some(day(2025, 1, 31)), 2);
    let mb = aggregate(&s.run_dir, "mrr_monthly").unwrap();
    let (subs_, mrr) = (ints(&mb, "subscribers"), floats(&mb, "mrr"));
    assert!(subs_.iter().any(Option::is_none), "a count is withheld");
    for r in 0..mb.num_rows() {
        if subs_[r].is_none() {
            assert_eq!(mrr[r], None, "row {r}");
        }
    }
    check_subscriptions_protected(&s.run_dir, day(2025, 1, 1));
}

// ---------------------------------------------------------------------------------------
// Golden results of every saved query

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Compares with tests/golden/NAME.csv; `UPDATE_GOLDEN=1` rewrites the files.
fn check_golden(name: &str, actual: &str) {
    let path = golden_dir().join(format!("{name}.csv"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(golden_dir()).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {}; run with UPDATE_GOLDEN=1", path.display()));
    if want != actual {
        let line = want
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(want.lines().count().min(actual.lines().count()));
        panic!(
            "{name} differs from {} at line {}: want {:?}, got {:?} (UPDATE_GOLDEN=1 rewrites it)",
            path.display(),
            line + 1,
            want.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

#[test]
fn saved_queries_golden() {
    let dir = fixture_copy();
    let out = dir.path().join("out");
    run_to(&dir.path().join("anonymizer.toml"), &out, key()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let csv = |sql: &str| {
        let batches = rt.block_on(anonymizer::query::run_sql(&out, sql)).unwrap();
        String::from_utf8(
            anonymizer::query::render(&batches, anonymizer::query::QueryFormat::Csv).unwrap(),
        )
        .unwrap()
    };
    for t in AGGREGATES {
        check_golden(t, &csv(&format!("SELECT * FROM {t}")));
    }
    for (name, sql) in anonymizer::query::BUILTIN {
        check_golden(name, &csv(sql));
    }
    // The demo's growth table is the last 12 months of the growth query.
    let full = csv(include_str!("../../queries/growth.sql"));
    let tail = csv(&anonymizer::demo::growth_sql());
    assert_eq!(tail.lines().count(), 13, "{tail}");
    let rows: String = tail.lines().skip(1).map(|l| format!("{l}\n")).collect();
    assert!(full.ends_with(&rows), "{full}\n---\n{tail}");
}

// ---------------------------------------------------------------------------------------
// A transactions-only export with other column names

#[test]
fn transactions_only_mapped_export_gives_cohort_retention() {
    // An Online-Retail-style CSV: no customers table, no transaction types, no offers.
    let mut csv = String::from("InvoiceNo,InvoiceDate,CustomerID,UnitPrice,Country\n");
    let mut txs = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..400 {
        let customer = 10_000 + next() % 60;
        let t = at(2023, 1, 1, 0, 0) + (next() % (400 * 86_400)) as i64 * 1_000_000;
        let dt = chrono::DateTime::from_timestamp_micros(t)
            .unwrap()
            .naive_utc();
        csv.push_str(&format!(
            "{},{},{customer},{}.{:02},Spain\n",
            500_000 + i,
            dt.format("%Y-%m-%d %H:%M:%S"),
            next() % 50,
            next() % 100
        ));
        txs.push(bare(Some(&customer.to_string()), "", t));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("invoices.csv"), csv).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(
        &policy,
        r#"output = "out"

[analytics]
k = 1

[tables.invoices]
input = "invoices.csv"

[tables.invoices.roles]
customer_key = "CustomerID"
event_time = "InvoiceDate"

[tables.invoices.columns]
InvoiceNo = "pseudonymize"
InvoiceDate = { rule = "generalize", to = "month" }
CustomerID = "pseudonymize"
UnitPrice = "keep"
Country = "keep"
"#,
    )
    .unwrap();
    let s = run_as_of(&policy, &dir.path().join("out"), Some(day(2024, 1, 31)), 2);
    let want = crate::oracle::compute(&txs, None, day(2024, 1, 31), 2);
    let got = published(&s.run_dir);
    assert!(want.cohort_retention.len() > 50);
    assert_eq!(got.cohort_retention, want.cohort_retention);
    for t in ["subscriptions_monthly", "revenue_monthly", "mrr_monthly"] {
        assert!(!s.run_dir.join(t).exists(), "{t} published");
        let why = &s.manifest.aggregates_skipped[t];
        assert!(
            why.contains("table invoices maps no column to the role(s)"),
            "{why}"
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.run_dir.join("_manifest.json")).unwrap()).unwrap();
    assert!(
        manifest["aggregates_skipped"]["revenue_monthly"]
            .as_str()
            .unwrap()
            .contains("transaction_type")
    );
    assert_eq!(manifest["tables"]["cohort_retention"]["kind"], "aggregate");
}

// ---------------------------------------------------------------------------------------
// Policy

#[test]
fn analytics_section_is_validated() {
    let dir = fixture_copy();
    let policy = dir.path().join("anonymizer.toml");
    let base = sample_without_analytics();
    let check = |extra: &str, want: &str| {
        std::fs::write(&policy, format!("{base}\n{extra}\n")).unwrap();
        let e = run_to(&policy, &dir.path().join("out"), key())
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{extra}: {e}");
    };
    check("[analytics]\nk = 0", "'k' is 0, must be between 1");
    check(
        "[analytics]\ntables = [\"subscription_monthly\"]",
        "did you mean 'subscriptions_monthly'",
    );
    check(
        "[analytics]\ntransactions = \"transaction\"",
        "did you mean 'transactions'",
    );
    check("[analytics]\nkk = 5", "unknown key 'kk'");
    check(
        "[analytics]\nengine = \"duckdb\"",
        "engine = 'duckdb' is not an engine; use \"kernel\" (the default) or \"sql\"",
    );
    check(
        "[analytics]\nmemory_mb = 8",
        "[analytics]: 'memory_mb' is 8, must be between 64 and",
    );
    check(
        "[analytics]\nmax_key_values = 5",
        "[analytics]: 'max_key_values' is 5, must be between 16 and",
    );
    // Only the aggregates named are built.
    std::fs::write(
        &policy,
        format!("{base}\n[analytics]\ntables = [\"cohort_retention\"]\n"),
    )
    .unwrap();
    let s = run_to(&policy, &dir.path().join("out"), key()).unwrap();
    assert!(s.run_dir.join("cohort_retention").exists());
    assert!(!s.run_dir.join("revenue_monthly").exists());
    // A policy table may not take an aggregate's name.
    std::fs::write(
        &policy,
        base.replace("tables.customers", "tables.revenue_monthly"),
    )
    .unwrap();
    let e = run_to(&policy, &dir.path().join("out"), key())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("table revenue_monthly: the name is taken by the aggregate"),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------
// The two engines

/// An export full of awkward rows: ids that differ only in spaces, empty and missing ids,
/// types in any case, unknown types and periods missing, refunds of other customers'
/// subscriptions, transactions at the first instant of a month, negative amounts, and
/// missing currencies and countries.
fn awkward_export(seed: u64, n: usize) -> (Vec<Tx>, Vec<Customer>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let pick = |rng: &mut rand_chacha::ChaCha8Rng, v: &[Option<&str>]| {
        v[rng.random_range(0..v.len())].map(str::to_string)
    };
    let start = at(2023, 1, 1, 0, 0);
    let mut txs = Vec::new();
    for _ in 0..n {
        let c = rng.random_range(0..60);
        let customer = match rng.random_range(0..40) {
            0 => None,
            1 => Some(String::new()),
            2 => Some(format!("  c{c} ")),
            3 => Some(format!("c{c}\t")),
            _ => Some(format!("c{c}")),
        };
        let event_time = if rng.random_bool(0.1) {
            at(
                2023 + rng.random_range(0..3),
                rng.random_range(1..13),
                1,
                0,
                0,
            )
        } else {
            start + rng.random_range(0..(3 * 365 * 86_400_000_000i64))
        };
        let event_type = pick(
            &mut rng,
            &[
                Some("purchase"),
                Some("renewal"),
                Some("renewal"),
                Some("Renewal "),
                Some("refund"),
                Some("\tRefund"),
                Some("chargeback"),
                Some("CHARGEBACK\r\n"),
                Some("trial"),
                Some(" "),
            ],
        )
        .unwrap();
        txs.push(Tx {
            customer,
            event_time,
            event_type,
            offer_type: pick(
                &mut rng,
                &[
                    Some("subscription"),
                    Some("subscription"),
                    Some("Subscription"),
                    Some(" subscription\t"),
                    Some("pass"),
                    Some("\t"),
                    None,
                ],
            ),
            subscription: match rng.random_range(0..10) {
                0 => None,
                1 => Some(format!("s{}", rng.random_range(0..200))),
                2 => Some(format!(" s{c}-0\n")),
                _ => Some(format!("s{c}-{}", rng.random_range(0..2))),
            },
            offer_period: pick(
                &mut rng,
                &[
                    Some("P1M"),
                    Some("P1M"),
                    Some("P1Y"),
                    Some("P2W"),
                    Some("monthly"),
                    Some("P10D"),
                    None,
                ],
            ),
            amount: rng.random_range(-500..5000),
            currency: pick(
                &mut rng,
                &[
                    Some("EUR"),
                    Some("usd"),
                    Some(" EUR"),
                    Some("Usd\r"),
                    Some("\t"),
                    None,
                ],
            ),
            country: pick(
                &mut rng,
                &[
                    Some("NL"),
                    Some("DE"),
                    Some(""),
                    Some(" NL\t"),
                    Some(" "),
                    None,
                ],
            ),
        });
    }
    // Rare values at k = 3 (one or two customers each): a country, a currency and an
    // offer type of the transactions, and two customers' countries. And a rare pair of
    // mrr_monthly: pounds are paid by three French customers (c1, c15, c22) and one Dutch
    // one (c20), who also has a year paid in pounds and one in francs (rare: 'other' too)
    // from the same day: two currencies at each month's end that are both 'other'.
    for (i, t) in txs.iter_mut().enumerate() {
        match t.customer.as_deref().map(str::trim) {
            Some("c7") if i % 2 == 0 => t.country = Some(" LU".into()),
            Some("c8") => t.currency = Some("chf ".into()),
            Some("c9" | "c10") if i % 3 == 0 => t.offer_type = Some("Rental".into()),
            Some("c1" | "c15" | "c22" | "c20") if i % 3 == 0 => t.currency = Some("GBP".into()),
            _ => {}
        }
    }
    for (sub, currency) in [("c20-gbp", "GBP"), ("c20-chf", "chf")] {
        txs.push(Tx {
            currency: Some(currency.into()),
            ..subs(
                "c20",
                "purchase",
                sub,
                Some("P1Y"),
                at(2024, 1, 10, 9, 0),
                6000,
                Some("NL"),
            )
        });
    }
    let customers = (0..70)
        .map(|c| Customer {
            customer: if c % 7 == 0 {
                format!(" c{c}")
            } else {
                format!("c{c}")
            },
            country: match c % 7 {
                _ if c == 5 => Some("LI".into()),
                _ if c == 12 => Some(" LI".into()),
                _ if c == 19 => Some("MC".into()),
                0 => None,
                1 => Some("FR".into()),
                2 => Some("".into()),
                3 => Some(" \t".into()),
                4 => Some("\tFR ".into()),
                _ => Some("NL".into()),
            },
        })
        .collect();
    (txs, customers)
}

/// An awkward export of `n` transactions written to `dir`, and its policy loaded.
fn awkward_policy(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    seed: u64,
    n: usize,
) -> anonymizer::policy::Policy {
    let (txs, customers) = awkward_export(seed, n);
    let config = write_export(dir, &txs, Some(&customers), 1);
    let ctx = datafusion::prelude::SessionContext::new();
    rt.block_on(anonymizer::policy::Policy::load(&config, &ctx))
        .unwrap()
}

/// The aggregates of `policy` as of 2025-06-17 (the awkward exports' as-of), on `threads`.
fn compute_awkward(
    rt: &tokio::runtime::Runtime,
    policy: &anonymizer::policy::Policy,
    threads: usize,
    asked: &[String],
    spill: Option<&Path>,
) -> anonymizer::analytics::Computed {
    rt.block_on(anonymizer::analytics::compute(
        policy,
        &key(),
        Some(day(2025, 6, 17)),
        threads,
        asked,
        spill,
    ))
    .unwrap()
}

/// The published tables of a computation, by name.
fn published_tables(c: &anonymizer::analytics::Computed) -> Vec<(String, RecordBatch)> {
    c.aggregates
        .iter()
        .map(|a| (a.name.to_string(), a.published.clone()))
        .collect()
}

fn pretty(batches: &[(String, RecordBatch)]) -> String {
    batches
        .iter()
        .map(|(n, b)| {
            let fields: Vec<String> = b
                .schema()
                .fields()
                .iter()
                .map(|f| format!("{}:{}", f.name(), f.data_type()))
                .collect();
            format!(
                "== {n} [{}]\n{}",
                fields.join(", "),
                datafusion::arrow::util::pretty::pretty_format_batches(std::slice::from_ref(b))
                    .unwrap()
            )
        })
        .collect()
}

/// One customer with most of the transactions (a guest or reseller id): their part holds
/// more than its share of `memory_mb`, is sorted on disk in runs and merged, and the
/// tables are the SQL engine's, on one thread and on two.
#[test]
fn a_customer_with_most_of_the_transactions_is_sorted_on_disk() {
    use anonymizer::policy::Engine;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut txs, customers) = awkward_export(11, 12_000);
    for (i, t) in txs.iter_mut().enumerate() {
        if i % 10 < 7 {
            t.customer = Some("c7".into());
        }
    }
    let config = write_export(dir.path(), &txs, Some(&customers), 1);
    let ctx = datafusion::prelude::SessionContext::new();
    let mut policy = rt
        .block_on(anonymizer::policy::Policy::load(&config, &ctx))
        .unwrap();
    policy.analytics.k = 1;
    policy.analytics.engine = Engine::Sql;
    let want = pretty(&published_tables(&compute_awkward(
        &rt,
        &policy,
        2,
        &[],
        None,
    )));
    policy.analytics.engine = Engine::Kernel;
    for (memory, threads, sorted) in [(512 << 20, 2, false), (1, 1, true), (1, 2, true)] {
        policy.analytics.memory_bytes = memory;
        let spill = tempfile::tempdir().unwrap();
        let c = compute_awkward(&rt, &policy, threads, &[], Some(spill.path()));
        assert_eq!(
            c.sorted_parts,
            usize::from(sorted),
            "one customer's part; memory {memory}, {threads} threads"
        );
        // The sorted runs are gone with the parts.
        assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
        assert_eq!(
            pretty(&published_tables(&c)),
            want,
            "memory {memory}, {threads} threads"
        );
    }
}

#[test]
fn kernel_and_sql_engines_give_the_same_tables() {
    use anonymizer::policy::Engine;
    let rt = tokio::runtime::Runtime::new().unwrap();
    for seed in 0..3u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut policy = awkward_policy(&rt, dir.path(), seed, 3000);
        let mut outputs = Vec::new();
        let mut recoded = Vec::new();
        for (engine, k, memory, threads) in [
            (Engine::Sql, 1, 512 << 20, 2),
            (Engine::Kernel, 1, 512 << 20, 2),
            (Engine::Kernel, 1, 1, 1),
            (Engine::Kernel, 1, 1, 3),
            (Engine::Sql, 3, 512 << 20, 2),
            (Engine::Kernel, 3, 1, 2),
        ] {
            policy.analytics.engine = engine;
            policy.analytics.k = k;
            policy.analytics.memory_bytes = memory;
            let spill = tempfile::tempdir().unwrap();
            let c = compute_awkward(&rt, &policy, threads, &[], Some(spill.path()));
            // Spilled when memory is short, and the spill files are gone afterwards.
            assert_eq!(
                c.spilled_parts > 0,
                engine == Engine::Kernel && memory == 1,
                "{engine:?} {memory}"
            );
            assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
            let tables = published_tables(&c);
            assert_eq!(tables.len(), 4);
            assert!(tables.iter().all(|(_, b)| b.num_rows() > 0));
            // The rare values (see awkward_export): none at k = 1, each at k = 3, the
            // same in both engines.
            let r = c.recoded;
            recoded.push(r);
            if k == 1 {
                assert_eq!(r, Default::default());
            } else {
                assert_eq!(
                    (r.country, r.currency, r.offer_type, r.customer_country),
                    (1, 1, 1, 2),
                    "seed {seed}: {engine:?}"
                );
                assert!(r.currency_pairs >= 1, "seed {seed}: {engine:?}: {r:?}");
            }
            outputs.push((engine, k, memory, threads, pretty(&tables)));
        }
        assert_eq!(recoded[4], recoded[5], "seed {seed}");
        let same = |a: &str, b: &str, what: String| {
            if let Some((x, y)) = a.lines().zip(b.lines()).find(|(x, y)| x != y) {
                panic!("{what}: first difference:\n  sql:    {x}\n  kernel: {y}");
            }
            assert_eq!(a.lines().count(), b.lines().count(), "{what}");
        };
        for o in &outputs[1..4] {
            same(
                &outputs[0].4,
                &o.4,
                format!("seed {seed}: {:?}", (o.0, o.2, o.3)),
            );
        }
        same(&outputs[4].4, &outputs[5].4, format!("seed {seed}: k = 3"));
    }
}

#[test]
fn the_kernel_reads_one_large_row_group_in_row_ranges_and_agrees_with_sql() {
    use anonymizer::policy::Engine;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One file of one row group of more than 131,072 rows: the kernel cuts its scan into
    // row ranges (the SQL engine reads it whole).
    let mut policy = awkward_policy(&rt, dir.path(), 11, 140_000);
    policy.analytics.k = 1;
    let mut outputs = Vec::new();
    for engine in [Engine::Sql, Engine::Kernel] {
        policy.analytics.engine = engine;
        outputs.push(pretty(&published_tables(&compute_awkward(
            &rt,
            &policy,
            2,
            &[],
            None,
        ))));
    }
    assert_eq!(outputs[0], outputs[1]);
}

#[test]
fn kernel_finds_the_asked_customers_with_coverage() {
    use anonymizer::policy::Engine;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut policy = awkward_policy(&rt, dir.path(), 7, 3000);
    let p = anonymizer::rules::pseudonymize::Pseudonymizer::new(&key(), None);
    let asked: Vec<String> = (0..70)
        .map(|c| p.token_str(&format!("c{c}"), anonymizer::rules::Normalize::Trim))
        .collect();
    let mut active = Vec::new();
    for engine in [Engine::Sql, Engine::Kernel] {
        policy.analytics.engine = engine;
        let c = compute_awkward(&rt, &policy, 2, &asked, None);
        let mut a: Vec<String> = c.active.into_iter().collect();
        a.sort();
        active.push(a);
    }
    assert!(!active[0].is_empty());
    assert!(active[0].len() < asked.len());
    assert_eq!(active[0], active[1]);
}

#[test]
fn text_roles_are_trimmed_of_every_kind_of_white_space() {
    // "EUR\t", "\nEUR" and "eur " are the currency EUR, "Renewal\t" a renewal, "NL\r" NL:
    // an export's stray tabs and line ends must not split a cell.
    let dir = tempfile::tempdir().unwrap();
    let variants = ["EUR", "EUR\t", "\nEUR", "eur ", "EUR\r\n"];
    let types = [
        "purchase",
        "Renewal\t",
        "renewal\n",
        " renewal",
        "renewal\u{b}",
    ];
    let txs: Vec<Tx> = (0..5)
        .map(|i| Tx {
            currency: Some(variants[i].to_string()),
            country: Some(["NL", "NL\r", "\tNL", "NL ", "NL\u{c}"][i].to_string()),
            ..subs(
                "c1",
                types[i],
                "s1",
                Some("P1M"),
                at(2024, 1 + i as u32, 5, 0, 0),
                999,
                None,
            )
        })
        .collect();
    let policy = write_export(dir.path(), &txs, None, 1);
    let original = std::fs::read_to_string(&policy).unwrap();
    for engine in ["kernel", "sql"] {
        let text = original.replace(
            "[analytics]",
            &format!("[analytics]\nengine = \"{engine}\""),
        );
        std::fs::write(&policy, text).unwrap();
        let s = run_as_of(&policy, &dir.path().join("out"), Some(day(2024, 6, 30)), 2);
        let rev = aggregate(&s.run_dir, "revenue_monthly").unwrap();
        let currencies: std::collections::BTreeSet<String> =
            texts(&rev, "currency").into_iter().collect();
        assert_eq!(
            currencies.into_iter().collect::<Vec<_>>(),
            vec!["EUR".to_string()],
            "{engine}"
        );
        // Every month's payment counted: the purchase and four renewals.
        let payments: i64 = ints(&rev, "payments").into_iter().flatten().sum();
        assert_eq!(payments, 5, "{engine}");
    }
}

/// [`awkward_export`] as the run's input checks accept it: positive amounts, periods that
/// parse.
fn accepted_export(seed: u64, n: usize) -> (Vec<Tx>, Vec<Customer>) {
    let (txs, customers) = awkward_export(seed, n);
    let txs = txs
        .into_iter()
        .map(|t| Tx {
            amount: t.amount.abs(),
            offer_period: t.offer_period.map(|p| p.replace("monthly", "P1M")),
            ..t
        })
        .collect();
    (txs, customers)
}

/// Found by an audit (2026-12-03): subscription payments without an offer period gave no
/// coverage and were left out of subscriptions_monthly and mrr_monthly without a word,
/// and an export where none had one published empty subscription tables. Both engines
/// count them alike; some are reported (manifest, attention line), all stop the run.
#[test]
fn subscription_payments_without_a_period_are_counted_and_all_of_them_stop_the_run() {
    use anonymizer::policy::Engine;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (txs, customers) = accepted_export(5, 3_000);
    let config = write_export(dir.path(), &txs, Some(&customers), 1);
    let ctx = datafusion::prelude::SessionContext::new();
    let mut policy = rt
        .block_on(anonymizer::policy::Policy::load(&config, &ctx))
        .unwrap();
    policy.analytics.k = 1;
    let mut counts = Vec::new();
    for engine in [Engine::Sql, Engine::Kernel] {
        policy.analytics.engine = engine;
        let c = compute_awkward(&rt, &policy, 2, &[], None);
        counts.push((c.subscription_payments, c.without_period));
    }
    assert_eq!(counts[0], counts[1]);
    let (paid, unperiodic) = counts[0];
    assert!(paid > unperiodic && unperiodic > 0, "{counts:?}");
    let s = run_as_of(&config, &dir.path().join("out"), Some(day(2025, 6, 17)), 2);
    assert_eq!(
        s.manifest.payments_without_period.get("transactions"),
        Some(&unperiodic)
    );
    assert!(
        s.attention.iter().any(|a| a.contains(&format!(
            "{unperiodic} subscription payment(s) have no offer_period"
        ))),
        "{:?}",
        s.attention
    );

    // None with a period: the run stops, naming the column.
    let none: Vec<Tx> = txs
        .into_iter()
        .map(|t| Tx {
            offer_period: None,
            ..t
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = write_export(dir.path(), &none, Some(&customers), 1);
    let e = try_run_as_of(&config, &dir.path().join("out"), Some(day(2025, 6, 17)), 2)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("subscription payment(s)")
            && e.contains("has an offer period in column 'offer_period'"),
        "{e}"
    );
    assert!(!dir.path().join("out/current").exists());
}

/// A key column that is not what its role says (here a transaction's country that is
/// different on every row, as ids or free text would be) holds more distinct values than
/// `[analytics] max_key_values`: both engines stop with an error that names the column and
/// the setting, never a value, and the run publishes nothing. Below the bound, and for
/// the same export with the bound raised, the aggregates are computed as before.
#[test]
fn a_key_column_with_too_many_distinct_values_stops_the_run() {
    use anonymizer::policy::Engine;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (txs, customers) = accepted_export(7, 600);
    let txs: Vec<Tx> = txs
        .into_iter()
        .enumerate()
        .map(|(i, t)| Tx {
            country: Some(format!("Secret value {i}")),
            ..t
        })
        .collect();
    let config = write_export(dir.path(), &txs, Some(&customers), 1);
    let ctx = datafusion::prelude::SessionContext::new();
    let mut policy = rt
        .block_on(anonymizer::policy::Policy::load(&config, &ctx))
        .unwrap();
    assert_eq!(policy.analytics.max_key_values, 10_000, "the default");
    policy.analytics.max_key_values = 100;
    for engine in [Engine::Kernel, Engine::Sql] {
        policy.analytics.engine = engine;
        for threads in [1, 2] {
            let e = rt
                .block_on(anonymizer::analytics::compute(
                    &policy,
                    &key(),
                    Some(day(2025, 6, 17)),
                    threads,
                    &[],
                    None,
                ))
                .err()
                .unwrap_or_else(|| panic!("{engine:?} computed the aggregates"))
                .to_string();
            assert!(
                e.contains("more than 100 distinct values")
                    && e.contains("transactions.country (role country)")
                    && e.contains("[analytics] max_key_values")
                    && !e.contains("Secret"),
                "{engine:?}: {e}"
            );
        }
        // The same export within a raised bound.
        policy.analytics.max_key_values = 2_000;
        let c = compute_awkward(&rt, &policy, 2, &[], None);
        assert!(!c.aggregates.is_empty());
        policy.analytics.max_key_values = 100;
    }

    // The same 60 countries in both tables are 60 values, not 120: both engines count
    // the columns together, a value in two of them once.
    let (mut txs, mut customers) = accepted_export(7, 600);
    let country = |i: usize| Some(format!("C{:02}", i % 60));
    for (i, t) in txs.iter_mut().enumerate() {
        t.country = country(i);
    }
    for (i, c) in customers.iter_mut().enumerate() {
        c.country = country(i);
    }
    let shared = tempfile::tempdir().unwrap();
    let config60 = write_export(shared.path(), &txs, Some(&customers), 1);
    let mut policy = rt
        .block_on(anonymizer::policy::Policy::load(&config60, &ctx))
        .unwrap();
    policy.analytics.max_key_values = 100;
    for engine in [Engine::Kernel, Engine::Sql] {
        policy.analytics.engine = engine;
        let c = compute_awkward(&rt, &policy, 2, &[], None);
        assert!(!c.aggregates.is_empty(), "{engine:?}");
    }

    // Through the policy file: the run stops and publishes nothing.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[analytics]", "[analytics]\nmax_key_values = 100"),
    )
    .unwrap();
    let e = try_run_as_of(&config, &dir.path().join("out"), Some(day(2025, 6, 17)), 2).unwrap_err();
    assert!(e.to_string().contains("max_key_values"), "{e}");
    assert!(!dir.path().join("out/current").exists());
}

/// A data page the decoder panics on, read by the aggregates straight from the export
/// (in a run the transform reads it first and stops; here `compute` alone): the table's
/// error from either engine, not a panic out of `compute`.
#[test]
fn a_page_the_decoder_panics_on_is_the_tables_error_in_both_engines() {
    use anonymizer::policy::Engine;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = fixture_copy();
    let file = parquet_files(&dir.path().join("export/transactions"))
        .into_values()
        .next()
        .unwrap();
    damage_a_page_to_panic(&file, "customer_id");
    let ctx = datafusion::prelude::SessionContext::new();
    let mut policy = rt
        .block_on(anonymizer::policy::Policy::load(
            &dir.path().join("anonymizer.toml"),
            &ctx,
        ))
        .unwrap();
    for engine in [Engine::Kernel, Engine::Sql] {
        policy.analytics.engine = engine;
        let Err(e) = rt.block_on(anonymizer::analytics::compute(
            &policy,
            &key(),
            Some(day(2025, 6, 17)),
            2,
            &[],
            None,
        )) else {
            panic!("{engine:?}: a damaged page did not fail the aggregates");
        };
        let e = e.to_string();
        // The kernel reads the streams itself and says which table; the SQL engine's
        // scans (polled in DataFusion's tasks) name the file.
        let said = match engine {
            Engine::Kernel => format!(
                "failed reading the transactions table: {}: the file reader panicked on it (",
                file.display()
            ),
            Engine::Sql => format!("{}: the file reader panicked on it (", file.display()),
        };
        assert!(e.contains(&said), "{engine:?}: {e}");
    }
}
