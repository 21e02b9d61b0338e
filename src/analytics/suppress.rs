//! Small-cell suppression of the aggregate tables: what makes them anonymous.
//!
//! Every count is a count of distinct people. A count of 1..k-1 people, or a sum or rate
//! whose cell has 1..k-1 contributing people, is withheld (null) and its row's
//! `suppressed` flag set: primary suppression. Then the published identities are taken
//! into account so that no withheld value can be recomputed from published ones
//! (secondary suppression, by [`protect`](super::protect)):
//!
//! - subscriptions_monthly: `active_end = active_start + new + reactivated - churned` in
//!   every row; each 'ALL' value is the sum of the countries' values; a month's
//!   active_end is the next month's active_start; a row that does not exist tells that
//!   its counts are 0 (so those cells are public and never serve as protection);
//! - revenue_monthly: `net = gross - refunds - chargebacks` in every row;
//! - mrr_monthly: a country's subscribers over its currencies add up to its
//!   subscriptions_monthly active_end (exactly when each customer pays in one currency;
//!   taken as exact, which only makes the protection stricter), so the two tables are
//!   protected together, as one problem; a country without an mrr_monthly row in a month
//!   has no subscribers at its end, so its active_end is a public 0;
//! - cohort_retention and revenue_monthly: a month's cohort members with a transaction,
//!   over every cohort, are the month's customers over revenue_monthly's cells (exactly
//!   when each customer falls in one cell a month; taken as exact), so their customers
//!   counts are protected together too;
//! - rates and averages (churn_rate, retention, arpu) are withheld whenever a count they
//!   are computed from is withheld; so are mrr beside a withheld subscribers count, and
//!   payments beside a withheld customers count (where everyone is on one price, or pays
//!   once, each gives the count back).
//!
//! Extra cells are chosen greedily by least loss (the fewest people withheld, ties broken
//! by position), so the choice is deterministic. Each cell carries its value and the least
//! value an attacker knows it to have: `>= 0` for counts and for gross, refunds and
//! chargebacks (not net); `>= 1` for the count of people a row that exists is made of
//! (revenue_monthly's customers, mrr_monthly's subscribers, a cohort's size: such a row
//! exists because someone is in it), and `active_start + active_end >= 1` for a
//! subscriptions_monthly row. Protection also withholds until no withheld cell is
//! pinned to one value by the identities and those bounds
//! ([`pinned`](super::protect::pinned)).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::nullif;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Field, Int64Type, Schema,
};

use super::SUBSCRIPTION_TERMS;
use super::period::month_of;
use super::protect::{Constraint, Problem, protect};
use crate::manifest::SuppressionReport;
use crate::rules::generalize::days_to_date;

/// Suppresses the computed aggregate tables together (their identities link them).
/// Returns, per table in the given order, the table to publish (helper columns starting
/// with `_` removed, a `suppressed` column added) and the counts of withheld cells.
pub fn apply_all(
    tables: &[(&str, RecordBatch)],
    k: u64,
    last_month: i64,
) -> Result<Vec<(RecordBatch, SuppressionReport)>, String> {
    let mut cells: Vec<Cells> = tables.iter().map(|(_, b)| Cells::new(b, k)).collect();
    let find = |name: &str| tables.iter().position(|(n, _)| *n == name);
    let mut p = Builder::default();
    let subs = match find("subscriptions_monthly") {
        Some(i) => Some(subscriptions(&cells[i], i, last_month, &mut p)?),
        None => None,
    };
    let revenue_customers = match find("revenue_monthly") {
        Some(i) => Some(revenue(&cells[i], i, &mut p)?),
        None => None,
    };
    if let Some(i) = find("mrr_monthly") {
        mrr(&cells[i], i, subs.as_ref(), &mut p)?;
    }
    if let Some(i) = find("cohort_retention") {
        cohorts(&cells[i], i, revenue_customers.as_ref(), &mut p)?;
    }
    let outcome = protect(&Problem {
        cells: p.owners.len(),
        cost: p.cost,
        primary: p.primary.clone(),
        constraints: p.constraints,
        values: p.values,
        lower: p.lower,
        at_most: p.at_most,
        at_least_one: p.at_least_one,
    });
    if !outcome.pinned.is_empty() {
        return Err(format!(
            "{} withheld value(s) stay pinned to one value by the published identities and bounds, with nothing left to withhold near them; this is a bug, please report it",
            outcome.pinned.len()
        ));
    }
    if !outcome.unresolved.is_empty() {
        return Err(format!(
            "{} withheld value(s) follow from the published identities alone; this is a bug, please report it",
            outcome.unresolved.len()
        ));
    }
    for (g, (table, row, col)) in p.owners.iter().enumerate() {
        if outcome.suppressed[g] {
            cells[*table].withhold(col, *row, p.primary[g])?;
        }
    }
    for (i, (name, _)) in tables.iter().enumerate() {
        let t = &mut cells[i];
        match *name {
            "subscriptions_monthly" => {
                // churn_rate = churned / active_start: withheld with either.
                let start = t.ints("active_start")?;
                for (r, s) in start.iter().enumerate() {
                    if t.withheld("active_start", r)? || t.withheld("churned", r)? {
                        t.withhold("churn_rate", r, t.is_small(*s))?;
                    }
                }
            }
            "revenue_monthly" => {
                let payers = t.ints("_payers")?;
                for (r, n) in payers.iter().enumerate() {
                    // payments counts the same paying customers as gross.
                    if t.is_small(*n) {
                        t.withhold("payments", r, true)?;
                    } else if t.withheld("customers", r)? {
                        // Where everyone pays once, payments is the customers count
                        // withheld to protect another cell.
                        t.withhold("payments", r, false)?;
                    }
                }
            }
            "mrr_monthly" => {
                let subscribers = t.ints("subscribers")?;
                for (r, n) in subscribers.iter().enumerate() {
                    if t.is_small(*n) {
                        t.withhold("mrr", r, true)?;
                        t.withhold("arpu", r, true)?;
                    } else if t.withheld("subscribers", r)? {
                        // arpu = mrr / subscribers would give the count back, and so would
                        // mrr over a known price (everyone on one plan): both go with it.
                        t.withhold("mrr", r, false)?;
                        t.withhold("arpu", r, false)?;
                    }
                }
            }
            "cohort_retention" => retention(t)?,
            other => return Err(format!("no suppression rules for table {other}")),
        }
    }
    cells.into_iter().map(Cells::finish).collect()
}

/// The joint suppression problem being built: one cell per (table, row, column).
#[derive(Default)]
struct Builder {
    cost: Vec<u64>,
    primary: Vec<bool>,
    constraints: Vec<Constraint>,
    owners: Vec<(usize, usize, &'static str)>,
    /// Each cell's value and its known least value, for the bounds audit.
    values: Vec<i128>,
    lower: Vec<Option<i128>>,
    /// Per constraint: exact only when each customer falls in one cell (`sum <= 0`).
    at_most: Vec<bool>,
    /// Sets of cells of which at least one counts someone.
    at_least_one: Vec<Vec<usize>>,
}

impl Builder {
    /// Adds a count of `people`: small -> primary. `least`: what it is known to be at
    /// least, 0, or 1 for the count of people a row that exists is made of.
    fn cell(
        &mut self,
        t: &Cells,
        table: usize,
        row: usize,
        col: &'static str,
        people: i64,
        least: i128,
    ) -> usize {
        self.sum(t, table, row, col, people, i128::from(people), Some(least))
    }

    /// Adds a cell of `value` (a count, or a sum in the column's unscaled decimal units)
    /// with `people` contributing; small -> primary. `lower`: the least value it can
    /// have, as an attacker knows (0 for a count or a sum of amounts; `None`: unbounded).
    #[allow(clippy::too_many_arguments)]
    fn sum(
        &mut self,
        t: &Cells,
        table: usize,
        row: usize,
        col: &'static str,
        people: i64,
        value: i128,
        lower: Option<i128>,
    ) -> usize {
        self.cost.push(people.max(0) as u64);
        self.primary.push(t.is_small(people));
        self.owners.push((table, row, col));
        self.values.push(value);
        self.lower.push(lower);
        self.owners.len() - 1
    }
    /// Adds an identity. One of a single cell says that cell is 0, public knowledge (its
    /// partners are rows that do not exist): such a cell is never withheld to protect
    /// another, since withholding it would hide nothing.
    fn constrain(&mut self, c: Constraint) {
        if !c.is_empty() {
            self.constraints.push(c);
            self.at_most.push(false);
        }
    }

    /// Adds an identity that holds exactly only when each customer falls in one cell of
    /// its `-` side; the truth is `sum <= 0` (see [`Problem::at_most`]). Where this
    /// export's values satisfy it exactly (everyone pays in one currency, one cell a
    /// month), the bounds audit takes it as exact: an attacker who knows that about the
    /// business may too. Where they do not, as `sum <= 0`: the equality is false, and
    /// propagating a false equality can hide a pin.
    fn constrain_at_most(&mut self, c: Constraint) {
        if !c.is_empty() {
            let sum = c.iter().fold(0i128, |s, &(cell, a)| {
                s.saturating_add(i128::from(a).saturating_mul(self.values[cell]))
            });
            self.constraints.push(c);
            self.at_most.push(sum != 0);
        }
    }
}

/// The table being suppressed: a null mask per column, and the counts.
struct Cells<'a> {
    raw: &'a RecordBatch,
    k: u64,
    masks: Vec<Vec<bool>>,
    threshold: u64,
    protection: u64,
}

impl<'a> Cells<'a> {
    fn new(raw: &'a RecordBatch, k: u64) -> Self {
        Cells {
            raw,
            k,
            masks: vec![vec![false; raw.num_rows()]; raw.num_columns()],
            threshold: 0,
            protection: 0,
        }
    }
    fn rows(&self) -> usize {
        self.raw.num_rows()
    }
    fn idx(&self, col: &str) -> Result<usize, String> {
        self.raw
            .schema()
            .index_of(col)
            .map_err(|_| format!("the saved query returns no column '{col}'"))
    }
    /// A decimal column's unscaled values (nulls as 0); one table's sums share a scale.
    fn unscaled(&self, col: &str) -> Result<Vec<i128>, String> {
        let a = self.raw.column(self.idx(col)?);
        let a = match a.data_type() {
            DataType::Decimal128(..) => a.clone(),
            _ => datafusion::arrow::compute::cast(a, &DataType::Decimal128(38, 4))
                .map_err(|e| e.to_string())?,
        };
        let a = a.as_primitive::<Decimal128Type>();
        Ok((0..a.len())
            .map(|i| if a.is_valid(i) { a.value(i) } else { 0 })
            .collect())
    }

    /// An integer column as i64 (nulls as 0).
    fn ints(&self, col: &str) -> Result<Vec<i64>, String> {
        let a = self.raw.column(self.idx(col)?);
        let a = datafusion::arrow::compute::cast(a, &DataType::Int64).map_err(|e| e.to_string())?;
        let a = a.as_primitive::<Int64Type>();
        Ok((0..a.len())
            .map(|i| if a.is_valid(i) { a.value(i) } else { 0 })
            .collect())
    }
    fn strings(&self, col: &str) -> Result<Vec<String>, String> {
        let a = self.raw.column(self.idx(col)?);
        let a = datafusion::arrow::compute::cast(a, &DataType::Utf8).map_err(|e| e.to_string())?;
        let a = a.as_string::<i32>();
        Ok((0..a.len()).map(|i| a.value(i).to_string()).collect())
    }
    /// A Date32 month column as month indexes.
    fn months(&self, col: &str) -> Result<Vec<i64>, String> {
        let a = self.raw.column(self.idx(col)?);
        let a = a
            .as_primitive_opt::<Date32Type>()
            .ok_or_else(|| format!("column '{col}' is not a date"))?;
        Ok((0..a.len())
            .map(|i| days_to_date(i64::from(a.value(i))).map_or(0, month_of))
            .collect())
    }
    fn is_small(&self, people: i64) -> bool {
        people >= 1 && (people as u64) < self.k
    }
    /// Withholds `col` in `row`; `threshold` says whether for its own small count.
    fn withhold(&mut self, col: &str, row: usize, threshold: bool) -> Result<(), String> {
        let c = self.idx(col)?;
        if !self.masks[c][row] {
            self.masks[c][row] = true;
            if threshold {
                self.threshold += 1;
            } else {
                self.protection += 1;
            }
        }
        Ok(())
    }
    fn withheld(&self, col: &str, row: usize) -> Result<bool, String> {
        Ok(self.masks[self.idx(col)?][row])
    }

    fn finish(self) -> Result<(RecordBatch, SuppressionReport), String> {
        let schema = self.raw.schema();
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        let mut any = vec![false; self.rows()];
        for (i, f) in schema.fields().iter().enumerate() {
            if f.name().starts_with('_') {
                continue;
            }
            let mask = &self.masks[i];
            let array = if mask.iter().any(|m| *m) {
                for (a, m) in any.iter_mut().zip(mask) {
                    *a |= m;
                }
                let m = BooleanArray::from(mask.clone());
                nullif(self.raw.column(i), &m).map_err(|e| e.to_string())?
            } else {
                self.raw.column(i).clone()
            };
            fields.push(Field::new(f.name(), f.data_type().clone(), true));
            columns.push(array);
        }
        fields.push(Field::new("suppressed", DataType::Boolean, false));
        columns.push(Arc::new(BooleanArray::from(any.clone())));
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| e.to_string())?;
        let report = SuppressionReport {
            k: self.k,
            rows_suppressed: any.iter().filter(|a| **a).count() as u64,
            cells_suppressed_threshold: self.threshold,
            cells_suppressed_protection: self.protection,
            values_recoded: BTreeMap::new(),
        };
        Ok((batch, report))
    }
}

/// Each term's sign in `active_start + new + reactivated - churned - active_end = 0`.
const SUB_SIGNS: [i64; 5] = [1, 1, 1, -1, -1];

/// subscriptions_monthly's cells, for mrr_monthly to link to.
struct SubscriptionCells {
    /// (month index, country) -> the global cell of active_end, when not public.
    active_end: HashMap<(i64, String), usize>,
}

fn subscriptions(
    t: &Cells,
    table: usize,
    last_month: i64,
    p: &mut Builder,
) -> Result<SubscriptionCells, String> {
    let n = t.rows();
    let months = t.months("month")?;
    let countries = t.strings("country")?;
    let values: Vec<Vec<i64>> = SUBSCRIPTION_TERMS
        .iter()
        .map(|c| t.ints(c))
        .collect::<Result<_, _>>()?;
    let at: HashMap<(i64, &str), usize> = (0..n)
        .map(|r| ((months[r], countries[r].as_str()), r))
        .collect();
    // Cells a missing neighbour row makes public (they are 0) are left out: never
    // withheld, never protection.
    let mut cell: Vec<[Option<usize>; 5]> = vec![[None; 5]; n];
    for r in 0..n {
        let c = countries[r].as_str();
        let public_start = !at.contains_key(&(months[r] - 1, c));
        let public_end = months[r] < last_month && !at.contains_key(&(months[r] + 1, c));
        for (term, name) in SUBSCRIPTION_TERMS.iter().enumerate() {
            if (term == 0 && public_start) || (term == 4 && public_end) {
                continue;
            }
            cell[r][term] = Some(p.cell(t, table, r, name, values[term][r], 0));
        }
    }
    for r in 0..n {
        p.constrain(
            (0..5)
                .filter_map(|i| cell[r][i].map(|c| (c, SUB_SIGNS[i])))
                .collect(),
        );
        // A row exists because someone was active at its month's start or end.
        let someone: Vec<usize> = [cell[r][0], cell[r][4]].into_iter().flatten().collect();
        if !someone.is_empty() {
            p.at_least_one.push(someone);
        }
        if let Some(&next) = at.get(&(months[r] + 1, countries[r].as_str()))
            && let (Some(e), Some(s)) = (cell[r][4], cell[next][0])
        {
            p.constrain(vec![(e, 1), (s, -1)]);
        }
    }
    // 'ALL' = sum of the countries, per month and term.
    let mut by_month: BTreeMap<i64, (Option<usize>, Vec<usize>)> = BTreeMap::new();
    for r in 0..n {
        let e = by_month.entry(months[r]).or_default();
        if countries[r] == "ALL" {
            e.0 = Some(r);
        } else {
            e.1.push(r);
        }
    }
    for (all, rows) in by_month.values() {
        let all = all.ok_or("a month without its 'ALL' row")?;
        for (term, own) in cell[all].iter().enumerate() {
            let mut c: Constraint = own.map(|c| (c, 1)).into_iter().collect();
            c.extend(rows.iter().filter_map(|r| cell[*r][term].map(|c| (c, -1))));
            p.constrain(c);
        }
    }
    Ok(SubscriptionCells {
        active_end: (0..n)
            .filter(|r| countries[*r] != "ALL")
            .filter_map(|r| cell[r][4].map(|c| ((months[r], countries[r].clone()), c)))
            .collect(),
    })
}

/// cohort_retention's counts, as cells. A month's cohort members with a transaction,
/// over every cohort, are the customers with a transaction that month, which is also
/// revenue_monthly's customers over the month's cells (exactly when each customer falls
/// in one cell a month; taken as exact, which only makes the protection stricter). So
/// the two tables are protected together: a withheld cohort count is not the month's
/// revenue customers minus the other cohorts.
fn cohorts(
    t: &Cells,
    table: usize,
    revenue_customers: Option<&BTreeMap<i64, Vec<usize>>>,
    p: &mut Builder,
) -> Result<(), String> {
    let months = t.months("cohort_month")?;
    let since = t.ints("months_since")?;
    let customers = t.ints("customers")?;
    let mut by_month: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for r in 0..t.rows() {
        // A cohort exists because someone is in it: its size (months_since 0) is >= 1.
        let least = i128::from(since[r] == 0);
        let c = p.cell(t, table, r, "customers", customers[r], least);
        by_month.entry(months[r] + since[r]).or_default().push(c);
    }
    if let Some(revenue) = revenue_customers {
        // A month on one side only: the other side's rows that do not exist are zeros.
        let mut links: BTreeMap<i64, Constraint> = BTreeMap::new();
        for (m, cells) in &by_month {
            links
                .entry(*m)
                .or_default()
                .extend(cells.iter().map(|x| (*x, 1)));
        }
        for (m, cells) in revenue {
            links
                .entry(*m)
                .or_default()
                .extend(cells.iter().map(|x| (*x, -1)));
        }
        // Distinct customers of a month (each in one cohort) <= its customers over the
        // revenue cells (one customer may pay in several).
        for c in links.into_values() {
            p.constrain_at_most(c);
        }
    }
    Ok(())
}

/// retention = customers / cohort size: withheld with either.
fn retention(t: &mut Cells) -> Result<(), String> {
    let months = t.months("cohort_month")?;
    let since = t.ints("months_since")?;
    let customers = t.ints("customers")?;
    // Per cohort: whether its size is withheld, and whether for being small.
    let mut size: HashMap<i64, (bool, bool)> = HashMap::new();
    for r in 0..t.rows() {
        if since[r] == 0 {
            let withheld = t.withheld("customers", r)?;
            size.insert(months[r], (withheld, t.is_small(customers[r])));
        }
    }
    for r in 0..t.rows() {
        let (size_withheld, size_small) = size.get(&months[r]).copied().unwrap_or_default();
        if t.withheld("customers", r)? || size_withheld {
            t.withhold("retention", r, t.is_small(customers[r]) || size_small)?;
        }
    }
    Ok(())
}

/// revenue_monthly's sums, each with the helper column counting its contributors.
const REVENUE_TERMS: [(&str, &str, i64); 4] = [
    ("gross", "_payers", 1),
    ("refunds", "_refunded", -1),
    ("chargebacks", "_charged_back", -1),
    ("net", "_net_contributors", -1),
];

/// revenue_monthly's cells; returns its customers cells by month, for cohort_retention
/// to link to.
fn revenue(t: &Cells, table: usize, p: &mut Builder) -> Result<BTreeMap<i64, Vec<usize>>, String> {
    let people: Vec<Vec<i64>> = REVENUE_TERMS
        .iter()
        .map(|(_, c, _)| t.ints(c))
        .collect::<Result<_, _>>()?;
    let sums: Vec<Vec<i128>> = REVENUE_TERMS
        .iter()
        .map(|(c, _, _)| t.unscaled(c))
        .collect::<Result<_, _>>()?;
    let months = t.months("month")?;
    let customers = t.ints("customers")?;
    let mut by_month: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for r in 0..t.rows() {
        // A row exists because a customer had a transaction in its cell: >= 1.
        let c = p.cell(t, table, r, "customers", customers[r], 1);
        by_month.entry(months[r]).or_default().push(c);
        // Gross, refunds and chargebacks are sums of positive amounts; net may be < 0.
        let c = REVENUE_TERMS
            .iter()
            .zip(&people)
            .zip(&sums)
            .map(|(((name, _, sign), n), v)| {
                let lower = (*name != "net").then_some(0);
                let cell = p.sum(t, table, r, name, n[r], v[r], lower);
                (cell, *sign)
            })
            .collect();
        p.constrain(c);
    }
    Ok(by_month)
}

fn mrr(
    t: &Cells,
    table: usize,
    subs: Option<&SubscriptionCells>,
    p: &mut Builder,
) -> Result<(), String> {
    let months = t.months("month")?;
    let countries = t.strings("country")?;
    let subscribers = t.ints("subscribers")?;
    let mut by_end: BTreeMap<(i64, String), Vec<usize>> = BTreeMap::new();
    for r in 0..t.rows() {
        // A row exists because someone subscribed in its cell: >= 1.
        let c = p.cell(t, table, r, "subscribers", subscribers[r], 1);
        by_end
            .entry((months[r], countries[r].clone()))
            .or_default()
            .push(c);
    }
    // A country's subscribers over its currencies = its active_end. A country without
    // a row in a month has no subscribers at its end: its active_end is 0, public.
    if let Some(subs) = subs {
        for (key, e) in &subs.active_end {
            if !by_end.contains_key(key) {
                p.constrain(vec![(*e, 1)]);
            }
        }
        for (key, cells) in by_end {
            let mut c: Constraint = subs
                .active_end
                .get(&key)
                .map(|e| (*e, 1))
                .into_iter()
                .collect();
            c.extend(cells.into_iter().map(|x| (x, -1)));
            // active_end <= its subscribers over the currencies (one customer may pay in
            // several).
            p.constrain_at_most(c);
        }
    }
    Ok(())
}
