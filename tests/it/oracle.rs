//! Independent brute-force oracle for the analytics tables (see the exact definitions in the
//! analytics spec). Deliberately naive: every figure is computed per customer and per month by
//! scanning the inputs, never by translating the SQL. Clarity over speed.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};

/// One transaction row (see the spec for the meaning of each field).
#[derive(Debug, Clone)]
pub struct Tx {
    pub customer: Option<String>,
    /// Microseconds since the Unix epoch, UTC.
    pub event_time: i64,
    /// Lower-cased already.
    pub event_type: String,
    pub offer_type: Option<String>,
    pub subscription: Option<String>,
    pub offer_period: Option<String>,
    /// Units of 10^-scale.
    pub amount: i128,
    pub currency: Option<String>,
    pub country: Option<String>,
}

/// One row of the customers table.
#[derive(Debug, Clone)]
pub struct Customer {
    pub customer: String,
    pub country: Option<String>,
}

/// Months are `NaiveDate`s on the first day of the month.
#[derive(Debug, Clone, PartialEq)]
pub struct SubRow {
    pub month: NaiveDate,
    pub country: String,
    pub active_start: i64,
    pub new: i64,
    pub reactivated: i64,
    pub churned: i64,
    pub active_end: i64,
    pub churn_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CohortRow {
    pub cohort_month: NaiveDate,
    pub months_since: i32,
    pub customers: i64,
    pub retention: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RevenueRow {
    pub month: NaiveDate,
    pub country: String,
    pub currency: String,
    pub offer_type: String,
    pub payments: i64,
    pub gross: i128,
    pub refunds: i128,
    pub chargebacks: i128,
    pub net: i128,
    pub customers: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MrrRow {
    pub month: NaiveDate,
    pub country: String,
    pub currency: String,
    pub subscribers: i64,
    pub mrr: f64,
}

/// The four analytics tables, rows in their published order.
#[derive(Debug, Clone, PartialEq)]
pub struct Oracle {
    pub subscriptions_monthly: Vec<SubRow>,
    pub cohort_retention: Vec<CohortRow>,
    pub revenue_monthly: Vec<RevenueRow>,
    pub mrr_monthly: Vec<MrrRow>,
}

const UNKNOWN: &str = "unknown";
const ALL: &str = "ALL";
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `customers` is None when the export has no customers table. `scale` is the decimal scale of
/// `amount`.
pub fn compute(txs: &[Tx], customers: Option<&[Customer]>, as_of: NaiveDate, scale: u32) -> Oracle {
    let as_of_end = as_of_end(as_of);
    let last_month = last_month(as_of);
    // Rows with a null customer, and everything at or after as_of_end, are as if absent.
    let txs: Vec<&Tx> = txs
        .iter()
        .filter(|t| t.customer.is_some() && t.event_time < as_of_end)
        .collect();
    let intervals = coverage_intervals(&txs, scale);
    Oracle {
        subscriptions_monthly: subscriptions_monthly(&txs, &intervals, customers, last_month),
        cohort_retention: cohort_retention(&txs, last_month),
        revenue_monthly: revenue_monthly(&txs, last_month),
        mrr_monthly: mrr_monthly(&txs, &intervals, customers, last_month),
    }
}

/// The export rewritten by the rare-value rule on its own ([`recode_rare`]).
pub struct Recoded {
    /// Each rare value of the transactions' country, currency and offer type -> "other".
    pub txs: Vec<Tx>,
    /// `txs` with revenue_monthly's rare combinations of (country, currency, offer type)
    /// -> ("other", "other", "other"): what revenue_monthly is computed from.
    pub revenue_txs: Vec<Tx>,
    /// `txs` with the currency of mrr_monthly's rare (customer country, currency) pairs
    /// -> "other": what mrr_monthly is computed from.
    pub mrr_txs: Vec<Tx>,
    /// A rare customer's country -> "other" in every row of that customer.
    pub customers: Vec<Customer>,
}

impl Recoded {
    /// The tables of the rewritten export: revenue_monthly from `revenue_txs`,
    /// mrr_monthly from `mrr_txs`, the rest from `txs`.
    pub fn compute(&self, as_of: NaiveDate, scale: u32) -> Oracle {
        let mut o = compute(&self.txs, Some(&self.customers), as_of, scale);
        o.revenue_monthly =
            compute(&self.revenue_txs, Some(&self.customers), as_of, scale).revenue_monthly;
        o.mrr_monthly = compute(&self.mrr_txs, Some(&self.customers), as_of, scale).mrr_monthly;
        o
    }
}

/// The rare-value rule on its own, as a rewrite of the export: a country, currency or
/// offer type of the transactions, or a customer's country, that fewer than `k`
/// customers with a transaction in the published months carry becomes "other" (in every
/// row of that customer, for a customer's country); then a combination of the three
/// that fewer than `k` such customers have becomes ("other", "other", "other") for
/// revenue_monthly. None ('unknown') and "other" stay. And for mrr_monthly, a pair of
/// (customer country, currency) that fewer than `k` such customers have has its currency
/// rewritten to "other" (null too). The offer type is only rewritten
/// as a key: a rare "subscription" would also lose its coverage here, so the caller
/// checks that it is not rare.
pub fn recode_rare(txs: &[Tx], customers: &[Customer], as_of: NaiveDate, k: usize) -> Recoded {
    let (end, last) = (as_of_end(as_of), last_month(as_of));
    let published =
        |t: &Tx| t.customer.is_some() && t.event_time < end && month_of(t.event_time) <= last;
    let rare = |value: &dyn Fn(&Tx) -> Option<String>| -> BTreeSet<String> {
        let mut by: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for t in txs.iter().filter(|t| published(t)) {
            if let Some(v) = value(t) {
                by.entry(v)
                    .or_default()
                    .insert(t.customer.as_deref().unwrap());
            }
        }
        by.into_iter()
            .filter(|(v, c)| c.len() < k && v != UNKNOWN && v != "other")
            .map(|(v, _)| v)
            .collect()
    };
    let countries = rare(&|t| t.country.clone());
    let currencies = rare(&|t| t.currency.clone());
    let offers = rare(&|t| t.offer_type.clone());
    let to = |v: &Option<String>, set: &BTreeSet<String>| match v {
        Some(x) if set.contains(x) => Some("other".to_string()),
        _ => v.clone(),
    };
    let txs_out: Vec<Tx> = txs
        .iter()
        .map(|t| Tx {
            country: to(&t.country, &countries),
            currency: to(&t.currency, &currencies),
            offer_type: to(&t.offer_type, &offers),
            ..t.clone()
        })
        .collect();
    let key = |t: &Tx| {
        [&t.country, &t.currency, &t.offer_type].map(|v| v.clone().unwrap_or(UNKNOWN.into()))
    };
    let mut by_key: BTreeMap<[String; 3], BTreeSet<&str>> = BTreeMap::new();
    for t in txs_out.iter().filter(|t| published(t)) {
        by_key
            .entry(key(t))
            .or_default()
            .insert(t.customer.as_deref().unwrap());
    }
    let other = || "other".to_string();
    let rare_keys: BTreeSet<[String; 3]> = by_key
        .into_iter()
        .filter(|(key, c)| c.len() < k && *key != [other(), other(), other()])
        .map(|(key, _)| key)
        .collect();
    let revenue_txs = txs_out
        .iter()
        .map(|t| {
            if rare_keys.contains(&key(t)) {
                Tx {
                    country: Some(other()),
                    currency: Some(other()),
                    offer_type: Some(other()),
                    ..t.clone()
                }
            } else {
                t.clone()
            }
        })
        .collect();
    let active: BTreeSet<&str> = txs
        .iter()
        .filter(|t| published(t))
        .map(|t| t.customer.as_deref().unwrap())
        .collect();
    let mut per_country: BTreeMap<String, usize> = BTreeMap::new();
    for c in &active {
        *per_country
            .entry(customer_country(Some(customers), c))
            .or_default() += 1;
    }
    let rare_countries: BTreeSet<String> = per_country
        .into_iter()
        .filter(|(v, n)| *n < k && v != UNKNOWN && v != "other")
        .map(|(v, _)| v)
        .collect();
    let customers_out: Vec<Customer> = customers
        .iter()
        .map(|c| {
            if rare_countries.contains(&customer_country(Some(customers), &c.customer)) {
                Customer {
                    country: Some(other()),
                    ..c.clone()
                }
            } else {
                c.clone()
            }
        })
        .collect();
    // mrr_monthly's pairs: the customers with a transaction in the published months of
    // each (customer country, currency).
    let mut country_of: BTreeMap<String, String> = BTreeMap::new();
    let mut country = |c: &str| {
        country_of
            .entry(c.to_string())
            .or_insert_with(|| customer_country(Some(&customers_out), c))
            .clone()
    };
    let currency_of = |t: &Tx| t.currency.clone().unwrap_or_else(|| UNKNOWN.to_string());
    let mut pairs: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for t in txs_out.iter().filter(|t| published(t)) {
        let c = t.customer.clone().unwrap();
        pairs
            .entry((country(&c), currency_of(t)))
            .or_default()
            .insert(c);
    }
    let rare_pair =
        |p: &(String, String)| k > 1 && p.1 != "other" && pairs.get(p).map_or(0, BTreeSet::len) < k;
    let mrr_txs = txs_out
        .iter()
        .map(|t| match &t.customer {
            Some(c) if rare_pair(&(country(c), currency_of(t))) => Tx {
                currency: Some(other()),
                ..t.clone()
            },
            _ => t.clone(),
        })
        .collect();
    Recoded {
        txs: txs_out,
        revenue_txs,
        mrr_txs,
        customers: customers_out,
    }
}

// ---------------------------------------------------------------------------------------------
// Time helpers. A month is an index: year * 12 + (month - 1).

fn micros_to_datetime(t: i64) -> NaiveDateTime {
    DateTime::from_timestamp_micros(t)
        .unwrap_or_else(|| panic!("oracle: event_time {t} out of range"))
        .naive_utc()
}

fn datetime_to_micros(dt: NaiveDateTime) -> i64 {
    dt.and_utc().timestamp_micros()
}

fn month_index(d: NaiveDate) -> i32 {
    d.year() * 12 + d.month0() as i32
}

fn month_of(t: i64) -> i32 {
    month_index(micros_to_datetime(t).date())
}

/// The first day of month `m`.
fn month_date(m: i32) -> NaiveDate {
    let year = m.div_euclid(12);
    let month = m.rem_euclid(12) as u32 + 1;
    NaiveDate::from_ymd_opt(year, month, 1).expect("oracle: month out of range")
}

/// The first instant of month `m`, in microseconds.
fn month_start(m: i32) -> i64 {
    datetime_to_micros(month_date(m).and_hms_opt(0, 0, 0).unwrap())
}

/// as_of + 1 day at 00:00:00 UTC, in microseconds.
fn as_of_end(as_of: NaiveDate) -> i64 {
    let next = as_of.succ_opt().expect("oracle: as_of out of range");
    datetime_to_micros(next.and_hms_opt(0, 0, 0).unwrap())
}

/// The last month m with month_start(m + 1) <= as_of_end.
fn last_month(as_of: NaiveDate) -> i32 {
    let end = as_of_end(as_of);
    let mut m = month_index(as_of);
    while month_start(m + 1) > end {
        m -= 1;
    }
    m
}

fn is_leap_year(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(y) => 29,
        2 => 28,
        _ => unreachable!("month {m}"),
    }
}

/// Adds `n` calendar months keeping the time of day, clamping the day to the last day of the
/// target month.
fn add_months(t: i64, n: i64) -> i64 {
    let dt = micros_to_datetime(t);
    let n = i32::try_from(n).expect("oracle: offer_period too long");
    let target = dt.year() * 12 + dt.month0() as i32 + n;
    let year = target.div_euclid(12);
    let month = target.rem_euclid(12) as u32 + 1;
    let day = dt.day().min(days_in_month(year, month));
    let date = NaiveDate::from_ymd_opt(year, month, day).expect("oracle: date out of range");
    datetime_to_micros(date.and_time(dt.time()))
}

// ---------------------------------------------------------------------------------------------
// Offer periods.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    Day,
    Week,
    Month,
    Year,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Period {
    n: i64,
    unit: Unit,
}

/// Parses "PnD" | "PnW" | "PnM" | "PnY" (case-insensitive, n >= 1); panics on anything else.
fn parse_period(s: &str) -> Period {
    try_parse_period(s).unwrap_or_else(|| panic!("oracle: unparsable offer_period {s:?}"))
}

fn try_parse_period(s: &str) -> Option<Period> {
    let upper = s.to_ascii_uppercase();
    let rest = upper.strip_prefix('P')?;
    let unit = match rest.chars().last()? {
        'D' => Unit::Day,
        'W' => Unit::Week,
        'M' => Unit::Month,
        'Y' => Unit::Year,
        _ => return None,
    };
    let digits = &rest[..rest.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = digits.parse::<i64>().ok()?;
    (n >= 1).then_some(Period { n, unit })
}

fn add_period(t: i64, p: Period) -> i64 {
    match p.unit {
        Unit::Day => t + p.n * MICROS_PER_DAY,
        Unit::Week => t + 7 * p.n * MICROS_PER_DAY,
        Unit::Month => add_months(t, p.n),
        Unit::Year => add_months(t, 12 * p.n),
    }
}

/// round_half_away_from_zero(amount_as_f64 * num / den * 10000) with amount_as_f64 =
/// amount / 10^scale.
fn monthly_units(amount: i128, scale: u32, p: Period) -> i64 {
    let amount_as_f64 = amount as f64 / 10f64.powi(i32::try_from(scale).unwrap());
    let (num, den) = match p.unit {
        Unit::Month => (1, p.n),
        Unit::Year => (1, 12 * p.n),
        Unit::Week => (146_097, 4_800 * 7 * p.n),
        Unit::Day => (146_097, 4_800 * p.n),
    };
    // f64::round rounds half away from zero.
    (amount_as_f64 * num as f64 / den as f64 * 10000.0).round() as i64
}

/// round(units / 10000, 2) computed exactly (half away from zero), as f64.
fn units_to_money(units: i64) -> f64 {
    let mut cents = units / 100;
    let rest = units % 100;
    if rest.abs() * 2 >= 100 {
        cents += units.signum();
    }
    cents as f64 / 100.0
}

// ---------------------------------------------------------------------------------------------
// Coverage intervals.

/// A non-empty coverage interval [start, end) of one customer.
#[derive(Debug, Clone)]
struct Interval {
    customer: String,
    start: i64,
    end: i64,
    /// The purchase/renewal currency, or 'unknown'.
    currency: String,
    /// Monthly-normalized amount in 10^-4 units.
    units: i64,
}

fn coverage_intervals(txs: &[&Tx], scale: u32) -> Vec<Interval> {
    let reversals: Vec<&Tx> = txs
        .iter()
        .filter(|r| r.event_type == "refund" || r.event_type == "chargeback")
        .copied()
        .collect();
    let mut out = Vec::new();
    for p in txs {
        let is_payment = p.event_type == "purchase" || p.event_type == "renewal";
        if p.offer_type.as_deref() != Some("subscription") || !is_payment {
            continue;
        }
        let Some(period) = p.offer_period.as_deref() else {
            continue;
        };
        let period = parse_period(period);
        let start = p.event_time;
        let nominal_end = add_period(start, period);
        let mut end = nominal_end;
        if let Some(sub) = p.subscription.as_deref() {
            for r in &reversals {
                if r.subscription.as_deref() == Some(sub)
                    && start <= r.event_time
                    && r.event_time < nominal_end
                {
                    end = end.min(r.event_time);
                }
            }
        }
        if end <= start {
            continue; // empty: covers nothing
        }
        out.push(Interval {
            customer: p.customer.clone().unwrap(),
            start,
            end,
            currency: p.currency.clone().unwrap_or_else(|| UNKNOWN.to_string()),
            units: monthly_units(p.amount, scale, period),
        });
    }
    out
}

fn active_at(intervals: &[&Interval], x: i64) -> bool {
    intervals.iter().any(|i| i.start <= x && x < i.end)
}

// ---------------------------------------------------------------------------------------------
// Tables.

/// The smallest non-empty customers-table country of `customer`; 'unknown' when there is
/// none.
fn customer_country(customers: Option<&[Customer]>, customer: &str) -> String {
    let smallest = customers
        .unwrap_or(&[])
        .iter()
        .filter(|c| c.customer == customer)
        .filter_map(|c| c.country.as_deref())
        .filter(|c| !c.is_empty())
        .min();
    match smallest {
        Some(c) if !c.is_empty() => c.to_string(),
        _ => UNKNOWN.to_string(),
    }
}

/// The earliest month any table could publish (one before the earliest transaction: an
/// interval starting exactly at a month start is active at the end of the previous month).
fn first_month(txs: &[&Tx]) -> Option<i32> {
    txs.iter()
        .map(|t| month_of(t.event_time))
        .min()
        .map(|m| m - 1)
}

#[derive(Default, Clone, Copy)]
struct SubCounts {
    active_start: i64,
    new: i64,
    reactivated: i64,
    churned: i64,
    active_end: i64,
}

fn sub_row(month: NaiveDate, country: &str, c: SubCounts) -> SubRow {
    SubRow {
        month,
        country: country.to_string(),
        active_start: c.active_start,
        new: c.new,
        reactivated: c.reactivated,
        churned: c.churned,
        active_end: c.active_end,
        churn_rate: (c.active_start != 0).then(|| c.churned as f64 / c.active_start as f64),
    }
}

fn subscriptions_monthly(
    txs: &[&Tx],
    intervals: &[Interval],
    customers: Option<&[Customer]>,
    last_month: i32,
) -> Vec<SubRow> {
    // Each customer's own intervals, and country.
    let names: BTreeSet<&str> = txs.iter().map(|t| t.customer.as_deref().unwrap()).collect();
    let per_customer: Vec<(String, Vec<&Interval>)> = names
        .iter()
        .map(|&c| {
            let own = intervals.iter().filter(|i| i.customer == c).collect();
            (customer_country(customers, c), own)
        })
        .collect();
    let mut rows = Vec::new();
    let Some(first) = first_month(txs) else {
        return rows;
    };
    for m in first..=last_month {
        let (start, end) = (month_start(m), month_start(m + 1));
        let mut by_country: BTreeMap<&str, SubCounts> = BTreeMap::new();
        for (country, own) in &per_customer {
            let Some(first_start) = own.iter().map(|i| i.start).min() else {
                continue; // never active
            };
            let was = active_at(own, start);
            let is = active_at(own, end);
            if !was && !is {
                continue;
            }
            let c = by_country.entry(country.as_str()).or_default();
            c.active_start += i64::from(was);
            c.active_end += i64::from(is);
            c.churned += i64::from(was && !is);
            c.new += i64::from(is && !was && first_start >= start);
            c.reactivated += i64::from(is && !was && first_start < start);
        }
        if by_country.is_empty() {
            continue;
        }
        let mut all = SubCounts::default();
        for c in by_country.values() {
            all.active_start += c.active_start;
            all.new += c.new;
            all.reactivated += c.reactivated;
            all.churned += c.churned;
            all.active_end += c.active_end;
        }
        rows.push(sub_row(month_date(m), ALL, all));
        for (country, c) in by_country {
            rows.push(sub_row(month_date(m), country, c));
        }
    }
    rows
}

fn cohort_retention(txs: &[&Tx], last_month: i32) -> Vec<CohortRow> {
    // Each customer's transaction times and the set of months they transacted in.
    let mut times: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    for t in txs {
        let c = t.customer.as_deref().unwrap();
        times.entry(c).or_default().push(t.event_time);
    }
    let mut cohorts: BTreeMap<i32, Vec<BTreeSet<i32>>> = BTreeMap::new();
    for own in times.values() {
        let first = *own.iter().min().unwrap();
        let months: BTreeSet<i32> = own.iter().map(|&t| month_of(t)).collect();
        cohorts.entry(month_of(first)).or_default().push(months);
    }
    let mut rows = Vec::new();
    for (&cohort, members) in &cohorts {
        if cohort > last_month {
            continue;
        }
        let transacting_in = |m: i32| members.iter().filter(|months| months.contains(&m)).count();
        let size = transacting_in(cohort) as i64;
        for since in 0..=last_month - cohort {
            let n = transacting_in(cohort + since) as i64;
            rows.push(CohortRow {
                cohort_month: month_date(cohort),
                months_since: since,
                customers: n,
                retention: n as f64 / size as f64,
            });
        }
    }
    rows
}

#[derive(Default)]
struct RevenueCell<'a> {
    payments: i64,
    gross: i128,
    refunds: i128,
    chargebacks: i128,
    customers: BTreeSet<&'a str>,
}

fn country_or_unknown(country: Option<&str>) -> String {
    match country {
        Some(c) if !c.is_empty() => c.to_string(),
        _ => UNKNOWN.to_string(),
    }
}

fn revenue_monthly(txs: &[&Tx], last_month: i32) -> Vec<RevenueRow> {
    type Key = (NaiveDate, String, String, String);
    let mut cells: BTreeMap<Key, RevenueCell> = BTreeMap::new();
    for t in txs {
        let m = month_of(t.event_time);
        if m > last_month {
            continue;
        }
        let key = (
            month_date(m),
            country_or_unknown(t.country.as_deref()),
            t.currency.clone().unwrap_or_else(|| UNKNOWN.to_string()),
            t.offer_type.clone().unwrap_or_else(|| UNKNOWN.to_string()),
        );
        let cell = cells.entry(key).or_default();
        match t.event_type.as_str() {
            "purchase" | "renewal" => {
                cell.payments += 1;
                cell.gross += t.amount;
            }
            "refund" => cell.refunds += t.amount,
            "chargeback" => cell.chargebacks += t.amount,
            _ => {}
        }
        cell.customers.insert(t.customer.as_deref().unwrap());
    }
    cells
        .into_iter()
        .map(|((month, country, currency, offer_type), c)| RevenueRow {
            month,
            country,
            currency,
            offer_type,
            payments: c.payments,
            gross: c.gross,
            refunds: c.refunds,
            chargebacks: c.chargebacks,
            net: c.gross - c.refunds - c.chargebacks,
            customers: c.customers.len() as i64,
        })
        .collect()
}

fn mrr_monthly(
    txs: &[&Tx],
    intervals: &[Interval],
    customers: Option<&[Customer]>,
    last_month: i32,
) -> Vec<MrrRow> {
    let mut rows = Vec::new();
    let Some(first) = first_month(txs) else {
        return rows;
    };
    for m in first..=last_month {
        let x = month_start(m + 1);
        let mut cells: BTreeMap<(String, &str), (BTreeSet<&str>, i64)> = BTreeMap::new();
        for i in intervals {
            if i.start <= x && x < i.end {
                let country = customer_country(customers, &i.customer);
                let (subscribers, units) = cells.entry((country, i.currency.as_str())).or_default();
                subscribers.insert(i.customer.as_str());
                *units += i.units;
            }
        }
        for ((country, currency), (subscribers, units)) in cells {
            rows.push(MrrRow {
                month: month_date(m),
                country,
                currency: currency.to_string(),
                subscribers: subscribers.len() as i64,
                mrr: units_to_money(units),
            });
        }
    }
    rows
}

/// Hand-worked scenarios; `scenario` and `expected_through_may` are also run through
/// `anonymizer run` by the analytics tests.
pub mod tests {
    use super::*;

    /// Microseconds of y-mo-d h:mi:00 UTC.
    pub fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
        let dt = NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap();
        dt.and_utc().timestamp_micros()
    }

    pub fn day(y: i32, mo: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, mo, d).unwrap()
    }

    fn month(y: i32, mo: u32) -> NaiveDate {
        day(y, mo, 1)
    }

    /// A bare transaction: no offer, no subscription, no amount, no currency, no country.
    pub fn bare(customer: Option<&str>, event_type: &str, time: i64) -> Tx {
        Tx {
            customer: customer.map(str::to_string),
            event_time: time,
            event_type: event_type.to_string(),
            offer_type: None,
            subscription: None,
            offer_period: None,
            amount: 0,
            currency: None,
            country: None,
        }
    }

    /// A subscription transaction in EUR.
    pub fn subs(
        customer: &str,
        event_type: &str,
        sub: &str,
        period: Option<&str>,
        time: i64,
        amount: i128,
        country: Option<&str>,
    ) -> Tx {
        Tx {
            offer_type: Some("subscription".to_string()),
            subscription: Some(sub.to_string()),
            offer_period: period.map(str::to_string),
            amount,
            currency: Some("EUR".to_string()),
            country: country.map(str::to_string),
            ..bare(Some(customer), event_type, time)
        }
    }

    pub fn cust(customer: &str, country: Option<&str>) -> Customer {
        Customer {
            customer: customer.to_string(),
            country: country.map(str::to_string),
        }
    }

    /// The hand-made scenario (scale 2, amounts in cents). Coverage intervals, worked out:
    /// - c: P1Y from 2023-05-15 10:00 -> [2023-05-15 10:00, 2024-05-15 10:00): active at the
    ///   12 month starts 2023-06-01 ..= 2024-05-01. (The null-customer refund of "c1" on
    ///   2024-01-10 is ignored, so it does not cut c.)
    /// - a: monthly; [01-10 12:00, 02-10 12:00) and the renewal [02-10 12:00, 02-20 08:00)
    ///   cut short by the refund on 02-20 (the refund does not touch the first interval: it is
    ///   after its nominal end). Active at 02-01 only.
    /// - b: [01-05, 02-05) and, after a lapse, [03-20, 04-20); the renewal on 04-20 has no
    ///   offer_period, so no interval. Active at 02-01 and 04-01.
    /// - e: Jan 31 + P1M = Feb 29 (leap year): [01-31 15:00, 02-29 15:00). Active at 02-01 only
    ///   (without clamping it would run to 03-02 and be active at 03-01).
    /// - f: P7D [02-05, 02-12) starts and ends inside February (no boundary), then P1M
    ///   [04-10, 05-10). Active at 05-01 only.
    /// - d: weekly "p1w" [03-28 18:00, 04-04 18:00) crosses the March end: active at 04-01 only.
    /// - g: P1M from 03-25 cut by a chargeback (offer_type null) on 03-31: [03-25, 03-31),
    ///   active at no month start (uncut it would be active at 04-01).
    /// - h: P1M from exactly 2024-05-01 00:00 -> [05-01, 06-01): active at 05-01, not 06-01.
    /// - i: P1M from 06-10 -> [06-10, 07-10); its refund at exactly 07-01 00:00 is ignored
    ///   for every as_of <= 06-30 (so i stays active at 07-01).
    /// - k: purchase at exactly 07-01 00:00: ignored for every as_of <= 06-30.
    /// - p: a pass (no coverage) in April and a "view" event with no offer, currency or
    ///   country in May.
    ///
    /// Customer countries (customers table): a DE, b FR, c DE (rows null, FR, DE: the
    /// smallest non-null wins), d "" -> unknown, g FR, h FR, i DE; e, f, k, p missing ->
    /// unknown; z has no transactions.
    pub fn scenario() -> (Vec<Tx>, Vec<Customer>) {
        let txs = vec![
            subs(
                "c",
                "purchase",
                "c1",
                Some("P1Y"),
                at(2023, 5, 15, 10, 0),
                12000,
                Some("AT"),
            ),
            subs(
                "a",
                "purchase",
                "a1",
                Some("P1M"),
                at(2024, 1, 10, 12, 0),
                999,
                Some("DE"),
            ),
            subs(
                "a",
                "renewal",
                "a1",
                Some("P1M"),
                at(2024, 2, 10, 12, 0),
                999,
                Some("DE"),
            ),
            subs(
                "a",
                "refund",
                "a1",
                None,
                at(2024, 2, 20, 8, 0),
                999,
                Some("DE"),
            ),
            Tx {
                offer_type: Some("pass".to_string()),
                amount: 300,
                currency: Some("EUR".to_string()),
                country: Some("DE".to_string()),
                ..bare(Some("a"), "purchase", at(2024, 3, 5, 9, 0))
            },
            subs(
                "b",
                "purchase",
                "b1",
                Some("P1M"),
                at(2024, 1, 5, 0, 0),
                500,
                Some("FR"),
            ),
            subs(
                "b",
                "purchase",
                "b2",
                Some("P1M"),
                at(2024, 3, 20, 0, 0),
                500,
                Some("FR"),
            ),
            subs(
                "b",
                "renewal",
                "b2",
                None,
                at(2024, 4, 20, 0, 0),
                500,
                Some("FR"),
            ),
            subs(
                "e",
                "purchase",
                "e1",
                Some("P1M"),
                at(2024, 1, 31, 15, 0),
                999,
                None,
            ),
            subs(
                "f",
                "purchase",
                "f1",
                Some("P7D"),
                at(2024, 2, 5, 0, 0),
                299,
                Some(""),
            ),
            subs(
                "f",
                "purchase",
                "f2",
                Some("P1M"),
                at(2024, 4, 10, 0, 0),
                999,
                None,
            ),
            Tx {
                currency: Some("GBP".to_string()),
                ..subs(
                    "d",
                    "purchase",
                    "d1",
                    Some("p1w"),
                    at(2024, 3, 28, 18, 0),
                    299,
                    Some("GB"),
                )
            },
            subs(
                "g",
                "purchase",
                "g1",
                Some("P1M"),
                at(2024, 3, 25, 0, 0),
                999,
                Some("FR"),
            ),
            Tx {
                offer_type: None,
                ..subs(
                    "g",
                    "chargeback",
                    "g1",
                    None,
                    at(2024, 3, 31, 0, 0),
                    999,
                    Some("FR"),
                )
            },
            subs(
                "h",
                "purchase",
                "h1",
                Some("P1M"),
                at(2024, 5, 1, 0, 0),
                999,
                Some("FR"),
            ),
            Tx {
                offer_type: Some("pass".to_string()),
                amount: 1500,
                currency: Some("USD".to_string()),
                country: Some("ES".to_string()),
                ..bare(Some("p"), "purchase", at(2024, 4, 2, 10, 0))
            },
            bare(Some("p"), "view", at(2024, 5, 6, 0, 0)),
            Tx {
                customer: None,
                ..subs(
                    "-",
                    "refund",
                    "c1",
                    None,
                    at(2024, 1, 10, 0, 0),
                    12000,
                    Some("AT"),
                )
            },
            subs(
                "i",
                "purchase",
                "i1",
                Some("P1M"),
                at(2024, 6, 10, 0, 0),
                999,
                Some("DE"),
            ),
            subs(
                "i",
                "refund",
                "i1",
                None,
                at(2024, 7, 1, 0, 0),
                999,
                Some("DE"),
            ),
            subs(
                "k",
                "purchase",
                "k1",
                Some("P1M"),
                at(2024, 7, 1, 0, 0),
                999,
                Some("FR"),
            ),
        ];
        let customers = vec![
            cust("a", Some("DE")),
            cust("b", Some("FR")),
            cust("c", None),
            cust("c", Some("FR")),
            cust("c", Some("DE")),
            cust("d", Some("")),
            cust("g", Some("FR")),
            cust("h", Some("FR")),
            cust("i", Some("DE")),
            cust("z", Some("NL")),
        ];
        (txs, customers)
    }

    /// counts = [active_start, new, reactivated, churned, active_end]
    fn sr(m: NaiveDate, country: &str, counts: [i64; 5], churn_rate: Option<f64>) -> SubRow {
        let [active_start, new, reactivated, churned, active_end] = counts;
        SubRow {
            month: m,
            country: country.to_string(),
            active_start,
            new,
            reactivated,
            churned,
            active_end,
            churn_rate,
        }
    }

    fn cr(cohort: NaiveDate, since: i32, customers: i64, retention: f64) -> CohortRow {
        CohortRow {
            cohort_month: cohort,
            months_since: since,
            customers,
            retention,
        }
    }

    /// figures = [payments, gross, refunds, chargebacks, net, customers]
    fn rr(m: NaiveDate, cell: [&str; 3], figures: [i128; 6]) -> RevenueRow {
        let [payments, gross, refunds, chargebacks, net, customers] = figures;
        RevenueRow {
            month: m,
            country: cell[0].to_string(),
            currency: cell[1].to_string(),
            offer_type: cell[2].to_string(),
            payments: payments as i64,
            gross,
            refunds,
            chargebacks,
            net,
            customers: customers as i64,
        }
    }

    fn mr(m: NaiveDate, country: &str, currency: &str, subscribers: i64, mrr: f64) -> MrrRow {
        MrrRow {
            country: country.to_string(),
            month: m,
            currency: currency.to_string(),
            subscribers,
            mrr,
        }
    }

    /// The scenario's tables for any as_of in 2024-06-01 ..= 2024-06-29 (last_month = May).
    pub fn expected_through_may() -> Oracle {
        let mut subscriptions = vec![
            // May 2023: c is new (first interval starts 2023-05-15 >= May 1, active at Jun 1).
            sr(month(2023, 5), "ALL", [0, 1, 0, 0, 1], None),
            sr(month(2023, 5), "DE", [0, 1, 0, 0, 1], None),
        ];
        // Jun..Dec 2023: c alone, active at both ends.
        for mo in 6..=12 {
            subscriptions.push(sr(month(2023, mo), "ALL", [1, 0, 0, 0, 1], Some(0.0)));
            subscriptions.push(sr(month(2023, mo), "DE", [1, 0, 0, 0, 1], Some(0.0)));
        }
        subscriptions.extend([
            // Jan 2024: c stays; a (DE), b (FR), e (unknown) are new (active at Feb 1).
            sr(month(2024, 1), "ALL", [1, 3, 0, 0, 4], Some(0.0)),
            sr(month(2024, 1), "DE", [1, 1, 0, 0, 2], Some(0.0)),
            sr(month(2024, 1), "FR", [0, 1, 0, 0, 1], None),
            sr(month(2024, 1), "unknown", [0, 1, 0, 0, 1], None),
            // Feb 2024: a (refund cut), b and e churn; c stays; f's week is inside Feb.
            sr(month(2024, 2), "ALL", [4, 0, 0, 3, 1], Some(0.75)),
            sr(month(2024, 2), "DE", [2, 0, 0, 1, 1], Some(0.5)),
            sr(month(2024, 2), "FR", [1, 0, 0, 1, 0], Some(1.0)),
            sr(month(2024, 2), "unknown", [1, 0, 0, 1, 0], Some(1.0)),
            // Mar 2024: c stays; b comes back (first = Jan 5 < Mar 1: reactivated); d is new
            // (weekly plan over the month end); g (chargeback) covers no boundary.
            sr(month(2024, 3), "ALL", [1, 1, 1, 0, 3], Some(0.0)),
            sr(month(2024, 3), "DE", [1, 0, 0, 0, 1], Some(0.0)),
            sr(month(2024, 3), "FR", [0, 0, 1, 0, 1], None),
            sr(month(2024, 3), "unknown", [0, 1, 0, 0, 1], None),
            // Apr 2024: c stays; b churns (the renewal without period covers nothing); h is
            // new (purchase at exactly May 1 00:00 is active at May 1: counts in April);
            // d churns; f reactivated (first = Feb 5, never counted as new).
            sr(month(2024, 4), "ALL", [3, 1, 1, 2, 3], Some(2.0 / 3.0)),
            sr(month(2024, 4), "DE", [1, 0, 0, 0, 1], Some(0.0)),
            sr(month(2024, 4), "FR", [1, 1, 0, 1, 1], Some(1.0)),
            sr(month(2024, 4), "unknown", [1, 0, 1, 1, 1], Some(1.0)),
            // May 2024: c (annual ends May 15), h (ends at exactly Jun 1), f churn.
            sr(month(2024, 5), "ALL", [3, 0, 0, 3, 0], Some(1.0)),
            sr(month(2024, 5), "DE", [1, 0, 0, 1, 0], Some(1.0)),
            sr(month(2024, 5), "FR", [1, 0, 0, 1, 0], Some(1.0)),
            sr(month(2024, 5), "unknown", [1, 0, 0, 1, 0], Some(1.0)),
        ]);

        let mut cohorts = vec![cr(month(2023, 5), 0, 1, 1.0)];
        for since in 1..=12 {
            cohorts.push(cr(month(2023, 5), since, 0, 0.0)); // c never transacts again
        }
        cohorts.extend([
            // {a, b, e}; Feb: a; Mar: a (pass), b; Apr: b (renewal); May: nobody.
            cr(month(2024, 1), 0, 3, 1.0),
            cr(month(2024, 1), 1, 1, 1.0 / 3.0),
            cr(month(2024, 1), 2, 2, 2.0 / 3.0),
            cr(month(2024, 1), 3, 1, 1.0 / 3.0),
            cr(month(2024, 1), 4, 0, 0.0),
            // {f}: back in April.
            cr(month(2024, 2), 0, 1, 1.0),
            cr(month(2024, 2), 1, 0, 0.0),
            cr(month(2024, 2), 2, 1, 1.0),
            cr(month(2024, 2), 3, 0, 0.0),
            // {d, g}: d's coverage runs into April but d has no April transaction.
            cr(month(2024, 3), 0, 2, 1.0),
            cr(month(2024, 3), 1, 0, 0.0),
            cr(month(2024, 3), 2, 0, 0.0),
            // {p}: the "view" event counts.
            cr(month(2024, 4), 0, 1, 1.0),
            cr(month(2024, 4), 1, 1, 1.0),
            // {h}
            cr(month(2024, 5), 0, 1, 1.0),
        ]);

        let sub = "subscription";
        let revenue = vec![
            rr(
                month(2023, 5),
                ["AT", "EUR", sub],
                [1, 12000, 0, 0, 12000, 1],
            ),
            rr(month(2024, 1), ["DE", "EUR", sub], [1, 999, 0, 0, 999, 1]),
            rr(month(2024, 1), ["FR", "EUR", sub], [1, 500, 0, 0, 500, 1]),
            rr(
                month(2024, 1),
                ["unknown", "EUR", sub],
                [1, 999, 0, 0, 999, 1],
            ),
            // a: renewal and its refund.
            rr(month(2024, 2), ["DE", "EUR", sub], [1, 999, 999, 0, 0, 1]),
            // f: transaction country "" -> unknown.
            rr(
                month(2024, 2),
                ["unknown", "EUR", sub],
                [1, 299, 0, 0, 299, 1],
            ),
            rr(
                month(2024, 3),
                ["DE", "EUR", "pass"],
                [1, 300, 0, 0, 300, 1],
            ),
            // b and g.
            rr(month(2024, 3), ["FR", "EUR", sub], [2, 1499, 0, 0, 1499, 2]),
            // g's chargeback has no offer_type.
            rr(
                month(2024, 3),
                ["FR", "EUR", "unknown"],
                [0, 0, 0, 999, -999, 1],
            ),
            rr(month(2024, 3), ["GB", "GBP", sub], [1, 299, 0, 0, 299, 1]),
            rr(
                month(2024, 4),
                ["ES", "USD", "pass"],
                [1, 1500, 0, 0, 1500, 1],
            ),
            // b's renewal without offer_period is still a payment.
            rr(month(2024, 4), ["FR", "EUR", sub], [1, 500, 0, 0, 500, 1]),
            rr(
                month(2024, 4),
                ["unknown", "EUR", sub],
                [1, 999, 0, 0, 999, 1],
            ),
            rr(month(2024, 5), ["FR", "EUR", sub], [1, 999, 0, 0, 999, 1]),
            rr(
                month(2024, 5),
                ["unknown", "unknown", "unknown"],
                [0, 0, 0, 0, 0, 1],
            ),
        ];

        // Units per interval: c 120.00/12 -> 100000; a, e, f2, h 9.99 -> 99900; b 5.00 ->
        // 50000; d 2.99 * 146097 / 33600 = 13.00089... -> 130009 (13.00).
        let mut mrr = Vec::new();
        for mo in 5..=12 {
            mrr.push(mr(month(2023, mo), "DE", "EUR", 1, 10.0)); // c at Jun 1 ..= Jan 1
        }
        mrr.extend([
            // At Feb 1: c, a (DE: 100000 + 99900), b (FR: 50000), e (unknown: 99900).
            mr(month(2024, 1), "DE", "EUR", 2, 19.99),
            mr(month(2024, 1), "FR", "EUR", 1, 5.0),
            mr(month(2024, 1), "unknown", "EUR", 1, 9.99),
            // At Mar 1: c only.
            mr(month(2024, 2), "DE", "EUR", 1, 10.0),
            // At Apr 1: c (DE), b (FR) and d (unknown, GBP).
            mr(month(2024, 3), "DE", "EUR", 1, 10.0),
            mr(month(2024, 3), "FR", "EUR", 1, 5.0),
            mr(month(2024, 3), "unknown", "GBP", 1, 13.0),
            // At May 1: c (DE), h (FR), f (unknown).
            mr(month(2024, 4), "DE", "EUR", 1, 10.0),
            mr(month(2024, 4), "FR", "EUR", 1, 9.99),
            mr(month(2024, 4), "unknown", "EUR", 1, 9.99),
            // At Jun 1: nobody (c ended May 15, h at exactly Jun 1).
        ]);

        Oracle {
            subscriptions_monthly: subscriptions,
            cohort_retention: cohorts,
            revenue_monthly: revenue,
            mrr_monthly: mrr,
        }
    }

    /// The scenario's tables for as_of = 2024-06-30 (last_month = June).
    pub fn expected_through_june() -> Oracle {
        let mut o = expected_through_may();
        // i is new in June (active at Jul 1: its refund at exactly Jul 1 00:00 = as_of_end is
        // ignored); k's purchase at exactly Jul 1 00:00 is ignored.
        o.subscriptions_monthly.extend([
            sr(month(2024, 6), "ALL", [0, 1, 0, 0, 1], None),
            sr(month(2024, 6), "DE", [0, 1, 0, 0, 1], None),
        ]);
        // Every cohort gains a zero row for June (inserted in order); i's cohort is June.
        let mut cohorts = Vec::new();
        for (idx, row) in o.cohort_retention.iter().enumerate() {
            cohorts.push(row.clone());
            let last_of_cohort = o
                .cohort_retention
                .get(idx + 1)
                .is_none_or(|next| next.cohort_month != row.cohort_month);
            if last_of_cohort {
                cohorts.push(cr(row.cohort_month, row.months_since + 1, 0, 0.0));
            }
        }
        cohorts.push(cr(month(2024, 6), 0, 1, 1.0));
        o.cohort_retention = cohorts;
        o.revenue_monthly.push(rr(
            month(2024, 6),
            ["DE", "EUR", "subscription"],
            [1, 999, 0, 0, 999, 1],
        ));
        o.mrr_monthly.push(mr(month(2024, 6), "DE", "EUR", 1, 9.99));
        o
    }

    /// Identity, ALL = sum of countries, churn_rate, row order and cross-table sanity.
    pub fn check_invariants(o: &Oracle) {
        let subs = &o.subscriptions_monthly;
        for r in subs {
            assert_eq!(
                r.active_end,
                r.active_start + r.new + r.reactivated - r.churned,
                "identity: {r:?}"
            );
            let rate = (r.active_start > 0).then(|| r.churned as f64 / r.active_start as f64);
            assert_eq!(r.churn_rate, rate, "{r:?}");
            assert!(r.active_start > 0 || r.active_end > 0, "empty row {r:?}");
        }
        let mut months: Vec<NaiveDate> = subs.iter().map(|r| r.month).collect();
        months.dedup();
        for m in months {
            let rows: Vec<&SubRow> = subs.iter().filter(|r| r.month == m).collect();
            assert_eq!(rows[0].country, "ALL", "ALL first in {m}");
            let countries: Vec<&str> = rows[1..].iter().map(|r| r.country.as_str()).collect();
            assert!(!countries.is_empty(), "{m}");
            assert!(countries.windows(2).all(|w| w[0] < w[1]), "{countries:?}");
            let sum = |f: fn(&SubRow) -> i64| rows[1..].iter().map(|&r| f(r)).sum::<i64>();
            assert_eq!(rows[0].active_start, sum(|r| r.active_start), "{m}");
            assert_eq!(rows[0].new, sum(|r| r.new), "{m}");
            assert_eq!(rows[0].reactivated, sum(|r| r.reactivated), "{m}");
            assert_eq!(rows[0].churned, sum(|r| r.churned), "{m}");
            assert_eq!(rows[0].active_end, sum(|r| r.active_end), "{m}");
            // Every subscriber at month_start(m + 1) is in some currency of the MRR table.
            let mrr: Vec<i64> = o
                .mrr_monthly
                .iter()
                .filter(|r| r.month == m)
                .map(|r| r.subscribers)
                .collect();
            assert!(mrr.iter().sum::<i64>() >= rows[0].active_end, "{m}");
            assert!(mrr.iter().all(|&n| n <= rows[0].active_end), "{m}");
        }
        assert!(subs.windows(2).all(|w| w[0].month <= w[1].month));

        let cohorts = &o.cohort_retention;
        assert!(cohorts.windows(2).all(|w| {
            (w[0].cohort_month, w[0].months_since) < (w[1].cohort_month, w[1].months_since)
        }));
        for r in cohorts.iter().filter(|r| r.months_since == 0) {
            assert!(r.customers > 0 && r.retention == 1.0, "{r:?}");
        }

        let rev = &o.revenue_monthly;
        let key = |r: &RevenueRow| {
            (
                r.month,
                r.country.clone(),
                r.currency.clone(),
                r.offer_type.clone(),
            )
        };
        assert!(rev.windows(2).all(|w| key(&w[0]) < key(&w[1])));
        for r in rev {
            assert_eq!(r.net, r.gross - r.refunds - r.chargebacks, "{r:?}");
            assert!(r.customers > 0, "{r:?}");
        }

        let mrr = &o.mrr_monthly;
        assert!(
            mrr.windows(2)
                .all(|w| (w[0].month, &w[0].country, &w[0].currency)
                    < (w[1].month, &w[1].country, &w[1].currency))
        );
        assert!(mrr.iter().all(|r| r.subscribers > 0));
    }

    #[test]
    fn scenario_as_of_mid_month() {
        let (txs, customers) = scenario();
        // as_of 2024-06-15 is not the last day of June: last_month = May.
        let o = compute(&txs, Some(&customers), day(2024, 6, 15), 2);
        let want = expected_through_may();
        assert_eq!(o.subscriptions_monthly, want.subscriptions_monthly);
        assert_eq!(o.cohort_retention, want.cohort_retention);
        assert_eq!(o.revenue_monthly, want.revenue_monthly);
        assert_eq!(o.mrr_monthly, want.mrr_monthly);
        check_invariants(&o);
        // June is incomplete, July is past as_of: same tables for any as_of in Jun 1..=29.
        for d in [1, 29] {
            assert_eq!(compute(&txs, Some(&customers), day(2024, 6, d), 2), want);
        }
        // as_of = May 31 is the last day of May: May is complete, June transactions ignored.
        assert_eq!(compute(&txs, Some(&customers), day(2024, 5, 31), 2), want);
    }

    #[test]
    fn scenario_as_of_last_day_of_month() {
        let (txs, customers) = scenario();
        let o = compute(&txs, Some(&customers), day(2024, 6, 30), 2);
        let want = expected_through_june();
        assert_eq!(o.subscriptions_monthly, want.subscriptions_monthly);
        assert_eq!(o.cohort_retention, want.cohort_retention);
        assert_eq!(o.revenue_monthly, want.revenue_monthly);
        assert_eq!(o.mrr_monthly, want.mrr_monthly);
        check_invariants(&o);
        // as_of = Jul 1 (not a last day): June is still last_month, but now the two
        // transactions at Jul 1 00:00 count: k is new in June (unknown) and i's refund cuts its
        // interval to [Jun 10, Jul 1), so i is active at no boundary and leaves no June row.
        let o = compute(&txs, Some(&customers), day(2024, 7, 1), 2);
        let june = month(2024, 6);
        let june_subs: Vec<SubRow> = o
            .subscriptions_monthly
            .iter()
            .filter(|r| r.month == june)
            .cloned()
            .collect();
        assert_eq!(
            june_subs,
            vec![
                sr(june, "ALL", [0, 1, 0, 0, 1], None),
                sr(june, "unknown", [0, 1, 0, 0, 1], None),
            ]
        );
        assert_eq!(
            o.mrr_monthly.last(),
            Some(&mr(june, "unknown", "EUR", 1, 9.99))
        );
        // Revenue and cohorts only see July months, which are not published.
        assert_eq!(o.revenue_monthly, want.revenue_monthly);
        assert_eq!(o.cohort_retention, want.cohort_retention);
        check_invariants(&o);
    }

    #[test]
    fn purchase_at_first_month_start_is_new_in_the_month_before() {
        // The only transaction: P1M from exactly 2024-03-01 00:00 -> [Mar 1, Apr 1). Active at
        // Mar 1 (February's end): new in February; not active at Apr 1: churned in March.
        let txs = vec![subs(
            "x",
            "purchase",
            "x1",
            Some("P1M"),
            at(2024, 3, 1, 0, 0),
            999,
            None,
        )];
        let o = compute(&txs, None, day(2024, 3, 31), 2);
        assert_eq!(
            o.subscriptions_monthly,
            vec![
                sr(month(2024, 2), "ALL", [0, 1, 0, 0, 1], None),
                sr(month(2024, 2), "unknown", [0, 1, 0, 0, 1], None),
                sr(month(2024, 3), "ALL", [1, 0, 0, 1, 0], Some(1.0)),
                sr(month(2024, 3), "unknown", [1, 0, 0, 1, 0], Some(1.0)),
            ]
        );
        assert_eq!(
            o.mrr_monthly,
            vec![mr(month(2024, 2), "unknown", "EUR", 1, 9.99)]
        );
        assert_eq!(o.cohort_retention, vec![cr(month(2024, 3), 0, 1, 1.0)]);
        assert_eq!(
            o.revenue_monthly,
            vec![rr(
                month(2024, 3),
                ["unknown", "EUR", "subscription"],
                [1, 999, 0, 0, 999, 1]
            )]
        );
        check_invariants(&o);
    }

    #[test]
    fn scenario_as_of_before_last_day_drops_the_month() {
        let (txs, customers) = scenario();
        // as_of 2024-05-30: last_month = April. h's purchase on May 1 is still seen (before
        // as_of_end), so April's figures are unchanged; May and later are not published.
        let o = compute(&txs, Some(&customers), day(2024, 5, 30), 2);
        let may = month(2024, 5);
        let mut want = expected_through_may();
        want.subscriptions_monthly.retain(|r| r.month < may);
        want.cohort_retention
            .retain(|r| month_index(r.cohort_month) + r.months_since < month_index(may));
        want.revenue_monthly.retain(|r| r.month < may);
        want.mrr_monthly.retain(|r| r.month < may);
        assert_eq!(o, want);
        check_invariants(&o);
    }

    #[test]
    fn scenario_without_customers_table() {
        let (txs, _) = scenario();
        let o = compute(&txs, None, day(2024, 6, 15), 2);
        let want = expected_through_may();
        // Every customer is 'unknown': each month has ALL and unknown with the same counts.
        let mut subs = Vec::new();
        for r in want
            .subscriptions_monthly
            .iter()
            .filter(|r| r.country == "ALL")
        {
            subs.push(r.clone());
            subs.push(SubRow {
                country: "unknown".to_string(),
                ..r.clone()
            });
        }
        assert_eq!(o.subscriptions_monthly, subs);
        // The other tables do not depend on the customers table.
        assert_eq!(o.cohort_retention, want.cohort_retention);
        assert_eq!(o.revenue_monthly, want.revenue_monthly);
        // MRR is by customer country: all 'unknown' now, same subscribers per month and
        // currency (each customer has one currency here).
        assert!(o.mrr_monthly.iter().all(|r| r.country == "unknown"));
        let per = |rows: &[MrrRow]| {
            let mut m: BTreeMap<(NaiveDate, String), i64> = BTreeMap::new();
            for r in rows {
                *m.entry((r.month, r.currency.clone())).or_default() += r.subscribers;
            }
            m
        };
        assert_eq!(per(&o.mrr_monthly), per(&want.mrr_monthly));
        check_invariants(&o);
    }

    #[test]
    fn empty_interval_is_no_coverage() {
        // x's first purchase is refunded at the very instant it starts: [s, s) is empty, so
        // first(x) is the second purchase and x is new (not reactivated) in April.
        let txs = vec![
            subs(
                "x",
                "purchase",
                "x1",
                Some("P1M"),
                at(2024, 3, 10, 0, 0),
                999,
                None,
            ),
            subs("x", "refund", "x1", None, at(2024, 3, 10, 0, 0), 999, None),
            subs(
                "x",
                "purchase",
                "x2",
                Some("P1M"),
                at(2024, 4, 20, 0, 0),
                999,
                None,
            ),
            // A refund at exactly the nominal end (May 20) changes nothing: e = e0 either way.
            subs("x", "refund", "x2", None, at(2024, 5, 20, 0, 0), 999, None),
        ];
        let o = compute(&txs, None, day(2024, 5, 31), 2);
        assert_eq!(
            o.subscriptions_monthly,
            vec![
                sr(month(2024, 4), "ALL", [0, 1, 0, 0, 1], None),
                sr(month(2024, 4), "unknown", [0, 1, 0, 0, 1], None),
                sr(month(2024, 5), "ALL", [1, 0, 0, 1, 0], Some(1.0)),
                sr(month(2024, 5), "unknown", [1, 0, 0, 1, 0], Some(1.0)),
            ]
        );
        assert_eq!(
            o.mrr_monthly,
            vec![mr(month(2024, 4), "unknown", "EUR", 1, 9.99)]
        );
        check_invariants(&o);
    }

    #[test]
    fn refund_matches_by_subscription_only() {
        // The spec matches refunds on the subscription id alone (any customer, any offer).
        let txs = vec![
            subs(
                "x",
                "purchase",
                "s1",
                Some("P1Y"),
                at(2024, 1, 10, 0, 0),
                1200,
                None,
            ),
            Tx {
                offer_type: Some("pass".to_string()),
                ..subs("y", "refund", "s1", None, at(2024, 2, 10, 0, 0), 1200, None)
            },
        ];
        let o = compute(&txs, None, day(2024, 3, 31), 2);
        assert_eq!(
            o.subscriptions_monthly,
            vec![
                sr(month(2024, 1), "ALL", [0, 1, 0, 0, 1], None),
                sr(month(2024, 1), "unknown", [0, 1, 0, 0, 1], None),
                sr(month(2024, 2), "ALL", [1, 0, 0, 1, 0], Some(1.0)),
                sr(month(2024, 2), "unknown", [1, 0, 0, 1, 0], Some(1.0)),
            ]
        );
        // 12.00 / 12 = 1.00 per month.
        assert_eq!(
            o.mrr_monthly,
            vec![mr(month(2024, 1), "unknown", "EUR", 1, 1.0)]
        );
    }

    #[test]
    fn no_transactions() {
        let o = compute(&[], None, day(2024, 6, 30), 2);
        assert!(o.subscriptions_monthly.is_empty());
        assert!(o.cohort_retention.is_empty());
        assert!(o.revenue_monthly.is_empty());
        assert!(o.mrr_monthly.is_empty());
    }

    #[test]
    #[should_panic(expected = "unparsable offer_period")]
    fn unparsable_period_panics() {
        let txs = vec![subs("x", "purchase", "s", Some("1M"), 0, 1, None)];
        compute(&txs, None, day(2024, 6, 30), 2);
    }

    #[test]
    fn unparsable_period_ignored_outside_subscription_payments() {
        // Only subscription purchases/renewals are parsed.
        let txs = vec![
            Tx {
                offer_type: Some("pass".to_string()),
                ..subs("x", "purchase", "s", Some("junk"), 0, 1, None)
            },
            subs("x", "refund", "s", Some("junk"), 0, 1, None),
        ];
        compute(&txs, None, day(2024, 6, 30), 2);
    }

    #[test]
    fn periods_parse() {
        let p = |n, unit| Period { n, unit };
        assert_eq!(parse_period("P1M"), p(1, Unit::Month));
        assert_eq!(parse_period("p1m"), p(1, Unit::Month));
        assert_eq!(parse_period("P7D"), p(7, Unit::Day));
        assert_eq!(parse_period("P2w"), p(2, Unit::Week));
        assert_eq!(parse_period("P12Y"), p(12, Unit::Year));
        assert_eq!(try_parse_period("P007d"), Some(p(7, Unit::Day)));
        for bad in [
            "", "P", "PM", "P0M", "P-1M", "P+1M", "P1", "P1H", "P1.5M", "1M", " P1M", "PT1M",
        ] {
            assert_eq!(try_parse_period(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn periods_add() {
        let add = |t, s: &str| add_period(t, parse_period(s));
        // Clamping to the end of the target month, keeping the time of day.
        assert_eq!(add(at(2024, 1, 31, 15, 30), "P1M"), at(2024, 2, 29, 15, 30));
        assert_eq!(add(at(2023, 1, 31, 15, 30), "P1M"), at(2023, 2, 28, 15, 30));
        assert_eq!(add(at(2024, 10, 31, 0, 0), "P1M"), at(2024, 11, 30, 0, 0));
        assert_eq!(add(at(2023, 11, 30, 0, 0), "P3M"), at(2024, 2, 29, 0, 0));
        assert_eq!(add(at(2024, 2, 29, 1, 2), "P1Y"), at(2025, 2, 28, 1, 2));
        assert_eq!(add(at(2024, 2, 29, 1, 2), "P4Y"), at(2028, 2, 29, 1, 2));
        assert_eq!(add(at(2024, 12, 15, 9, 0), "P1M"), at(2025, 1, 15, 9, 0));
        assert_eq!(add(at(2024, 1, 31, 0, 0), "P13M"), at(2025, 2, 28, 0, 0));
        // Days and weeks are exact multiples of 24 hours.
        assert_eq!(add(at(2024, 2, 28, 23, 59), "P2D"), at(2024, 3, 1, 23, 59));
        assert_eq!(add(at(2024, 12, 29, 0, 0), "P1W"), at(2025, 1, 5, 0, 0));
        assert_eq!(
            add(at(2024, 3, 28, 18, 0), "P7D"),
            add(at(2024, 3, 28, 18, 0), "P1W")
        );
        // Sub-second precision survives month arithmetic.
        assert_eq!(
            add(at(2024, 1, 31, 0, 0) + 7, "P1M"),
            at(2024, 2, 29, 0, 0) + 7
        );
    }

    #[test]
    fn last_months() {
        assert_eq!(month_date(last_month(day(2024, 6, 30))), month(2024, 6));
        assert_eq!(month_date(last_month(day(2024, 6, 29))), month(2024, 5));
        assert_eq!(month_date(last_month(day(2024, 6, 1))), month(2024, 5));
        assert_eq!(month_date(last_month(day(2024, 2, 29))), month(2024, 2));
        assert_eq!(month_date(last_month(day(2024, 2, 28))), month(2024, 1));
        assert_eq!(month_date(last_month(day(2023, 2, 28))), month(2023, 2));
        assert_eq!(month_date(last_month(day(2024, 12, 31))), month(2024, 12));
        assert_eq!(month_date(last_month(day(2025, 1, 1))), month(2024, 12));
        assert_eq!(as_of_end(day(2024, 12, 31)), at(2025, 1, 1, 0, 0));
    }

    #[test]
    fn monthly_amounts() {
        let p = |s| parse_period(s);
        assert_eq!(monthly_units(999, 2, p("P1M")), 99_900);
        assert_eq!(monthly_units(-999, 2, p("P1M")), -99_900);
        assert_eq!(monthly_units(1000, 2, p("P2M")), 50_000);
        assert_eq!(monthly_units(12000, 2, p("P1Y")), 100_000);
        // 2.99 * 146097 / 33600 = 13.00089375 -> 130008.9375 -> 130009
        assert_eq!(monthly_units(299, 2, p("P1W")), 130_009);
        // 9.99 * 146097 / 144000 = 10.13547... -> 101354.7... -> 101355
        assert_eq!(monthly_units(999, 2, p("P30D")), 101_355);
        // 1.000 at scale 3, P3Y: 1 / 36 = 0.02777... -> 277.77 -> 278
        assert_eq!(monthly_units(1000, 3, p("P3Y")), 278);
        // round(units / 10000, 2), half away from zero.
        assert_eq!(units_to_money(123_450), 12.35);
        assert_eq!(units_to_money(123_449), 12.34);
        assert_eq!(units_to_money(-123_450), -12.35);
        assert_eq!(units_to_money(-123_449), -12.34);
        assert_eq!(units_to_money(130_012), 13.0);
        assert_eq!(units_to_money(0), 0.0);
    }

    #[test]
    fn customer_countries() {
        let table = vec![
            cust("a", Some("FR")),
            cust("a", None),
            cust("a", Some("DE")),
            cust("b", None),
            cust("c", Some("")),
            cust("c", Some("AT")),
        ];
        let t = Some(table.as_slice());
        assert_eq!(customer_country(t, "a"), "DE");
        assert_eq!(customer_country(t, "b"), "unknown");
        // An empty country counts as none.
        assert_eq!(customer_country(t, "c"), "AT");
        assert_eq!(customer_country(t, "missing"), "unknown");
        assert_eq!(customer_country(None, "a"), "unknown");
    }

    /// A small deterministic generator (xorshift64*), for invariant checks on messier data.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len() as u64) as usize]
        }
    }

    #[test]
    fn invariants_on_generated_data() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let start = at(2022, 1, 1, 0, 0);
        let span = at(2024, 9, 1, 0, 0) - start;
        let mut txs = Vec::new();
        let mut customers = Vec::new();
        for c in 0..80 {
            let name = format!("c{c:03}");
            let country = rng.pick(&["DE", "FR", "", "US", "-"]);
            if country != "-" {
                customers.push(cust(&name, Some(country)));
            }
            for k in 0..12 {
                let mut time = start + (rng.next() % span as u64) as i64;
                if rng.below(8) == 0 {
                    time = month_start(month_of(time)); // exactly at a month start
                }
                let sub = format!("{name}-{}", k % 3);
                txs.push(Tx {
                    customer: (rng.below(50) != 0).then(|| name.clone()),
                    event_time: time,
                    event_type: rng
                        .pick(&[
                            "purchase",
                            "renewal",
                            "purchase",
                            "refund",
                            "chargeback",
                            "view",
                        ])
                        .to_string(),
                    offer_type: match rng.pick(&["subscription", "subscription", "pass", "-"]) {
                        "-" => None,
                        o => Some(o.to_string()),
                    },
                    subscription: (rng.below(10) != 0).then_some(sub),
                    offer_period: match rng.pick(&["P1M", "P1Y", "P7D", "p3d", "P2W", "P3M", "-"]) {
                        "-" => None,
                        p => Some(p.to_string()),
                    },
                    amount: rng.below(5000) as i128 - 200,
                    currency: match rng.pick(&["EUR", "EUR", "USD", "-"]) {
                        "-" => None,
                        c => Some(c.to_string()),
                    },
                    country: match rng.pick(&["DE", "FR", "", "-"]) {
                        "-" => None,
                        c => Some(c.to_string()),
                    },
                });
            }
        }
        for as_of in [day(2024, 6, 30), day(2024, 6, 29), day(2023, 12, 31)] {
            let o = compute(&txs, Some(&customers), as_of, 2);
            assert!(!o.subscriptions_monthly.is_empty());
            check_invariants(&o);
            let last = last_month(as_of);
            assert!(
                o.subscriptions_monthly
                    .iter()
                    .all(|r| month_index(r.month) <= last)
            );
            assert!(
                o.revenue_monthly
                    .iter()
                    .all(|r| month_index(r.month) <= last)
            );
            assert!(o.mrr_monthly.iter().all(|r| month_index(r.month) <= last));
            assert!(
                o.cohort_retention
                    .iter()
                    .all(|r| month_index(r.cohort_month) + r.months_since <= last)
            );
            // Without the customers table the ALL rows are unchanged.
            let no_table = compute(&txs, None, as_of, 2);
            check_invariants(&no_table);
            let all = |o: &Oracle| -> Vec<SubRow> {
                o.subscriptions_monthly
                    .iter()
                    .filter(|r| r.country == "ALL")
                    .cloned()
                    .collect()
            };
            assert_eq!(all(&o), all(&no_table));
        }
    }
}
