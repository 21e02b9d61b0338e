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
//! - rates and averages (churn_rate, retention, arpu) are withheld whenever a count they
//!   are computed from is withheld.
//!
//! Extra cells are chosen greedily by least loss (the fewest people withheld, ties broken
//! by position), so the choice is deterministic.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::nullif;
use datafusion::arrow::datatypes::{DataType, Date32Type, Field, Int32Type, Int64Type, Schema};

use super::period::month_of;
use super::protect::{Constraint, Problem, protect};
use crate::manifest::SuppressionReport;
use crate::rules::generalize::days_to_date;

/// Suppresses one computed aggregate table. Returns the table to publish (helper columns
/// starting with `_` removed, a `suppressed` column added) and the counts of withheld
/// cells.
pub fn apply(
    table: &str,
    raw: &RecordBatch,
    k: u64,
    last_month: i64,
) -> Result<(RecordBatch, SuppressionReport), String> {
    let mut t = Cells::new(raw, k);
    match table {
        "subscriptions_monthly" => subscriptions(&mut t, last_month)?,
        "cohort_retention" => cohorts(&mut t)?,
        "revenue_monthly" => revenue(&mut t)?,
        "mrr_monthly" => mrr(&mut t)?,
        other => return Err(format!("no suppression rules for table {other}")),
    }
    t.finish()
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
        };
        Ok((batch, report))
    }
}

/// The counts of subscriptions_monthly, in the order of one row's cells.
const SUB_TERMS: [&str; 5] = [
    "active_start",
    "new",
    "reactivated",
    "churned",
    "active_end",
];
/// Each term's sign in `active_start + new + reactivated - churned - active_end = 0`.
const SUB_SIGNS: [i64; 5] = [1, 1, 1, -1, -1];

fn subscriptions(t: &mut Cells, last_month: i64) -> Result<(), String> {
    let n = t.rows();
    let months = t.months("month")?;
    let countries = t.strings("country")?;
    let values: Vec<Vec<i64>> = SUB_TERMS
        .iter()
        .map(|c| t.ints(c))
        .collect::<Result<_, _>>()?;
    let cell = |row: usize, term: usize| row * 5 + term;
    let at: HashMap<(i64, &str), usize> = (0..n)
        .map(|r| ((months[r], countries[r].as_str()), r))
        .collect();

    // Cells a missing neighbour row makes public (they are 0): never protection.
    let mut public = vec![false; n * 5];
    for r in 0..n {
        let c = countries[r].as_str();
        if !at.contains_key(&(months[r] - 1, c)) {
            public[cell(r, 0)] = true;
        }
        if months[r] < last_month && !at.contains_key(&(months[r] + 1, c)) {
            public[cell(r, 4)] = true;
        }
    }
    let mut constraints: Vec<Constraint> = Vec::new();
    let keep = |list: Vec<(usize, i64)>| -> Constraint {
        list.into_iter().filter(|(c, _)| !public[*c]).collect()
    };
    for r in 0..n {
        constraints.push(keep((0..5).map(|i| (cell(r, i), SUB_SIGNS[i])).collect()));
        if let Some(&next) = at.get(&(months[r] + 1, countries[r].as_str())) {
            constraints.push(keep(vec![(cell(r, 4), 1), (cell(next, 0), -1)]));
        }
    }
    // 'ALL' = sum of the countries, per month and term.
    let mut by_month: HashMap<i64, (Option<usize>, Vec<usize>)> = HashMap::new();
    for r in 0..n {
        let e = by_month.entry(months[r]).or_default();
        if countries[r] == "ALL" {
            e.0 = Some(r);
        } else {
            e.1.push(r);
        }
    }
    let mut month_keys: Vec<_> = by_month.keys().copied().collect();
    month_keys.sort_unstable();
    for m in month_keys {
        let (all, rows) = &by_month[&m];
        let Some(all) = *all else {
            return Err("a month without its 'ALL' row".into());
        };
        for term in 0..5 {
            let mut c = vec![(cell(all, term), 1)];
            c.extend(rows.iter().map(|r| (cell(*r, term), -1)));
            constraints.push(keep(c));
        }
    }
    constraints.retain(|c| c.len() > 1);

    let mut cost = vec![0u64; n * 5];
    let mut primary = vec![false; n * 5];
    for r in 0..n {
        for (term, v) in values.iter().enumerate() {
            cost[cell(r, term)] = v[r].max(0) as u64;
            primary[cell(r, term)] = t.is_small(v[r]);
        }
    }
    let outcome = protect(&Problem {
        cells: n * 5,
        cost,
        primary: primary.clone(),
        constraints,
    });
    for r in 0..n {
        for (term, name) in SUB_TERMS.iter().enumerate() {
            let c = cell(r, term);
            if outcome.suppressed[c] {
                debug_assert!(!public[c], "a public cell was chosen for protection");
                t.withhold(name, r, primary[c])?;
            }
        }
        // churn_rate = churned / active_start: withheld with either.
        if t.withheld("active_start", r)? || t.withheld("churned", r)? {
            t.withhold("churn_rate", r, primary[cell(r, 0)])?;
        }
    }
    Ok(())
}

fn cohorts(t: &mut Cells) -> Result<(), String> {
    let months = t.months("cohort_month")?;
    let since = {
        let a = t.raw.column(t.idx("months_since")?);
        let a = datafusion::arrow::compute::cast(a, &DataType::Int32).map_err(|e| e.to_string())?;
        let a = a.as_primitive::<Int32Type>().clone();
        (0..a.len()).map(|i| a.value(i)).collect::<Vec<_>>()
    };
    let customers = t.ints("customers")?;
    let mut size_small: HashMap<i64, bool> = HashMap::new();
    for r in 0..t.rows() {
        if since[r] == 0 {
            size_small.insert(months[r], t.is_small(customers[r]));
        }
    }
    for r in 0..t.rows() {
        let small = t.is_small(customers[r]);
        if small {
            t.withhold("customers", r, true)?;
        }
        if small || size_small.get(&months[r]).copied().unwrap_or(false) {
            t.withhold("retention", r, true)?;
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

fn revenue(t: &mut Cells) -> Result<(), String> {
    let n = t.rows();
    let people: Vec<Vec<i64>> = REVENUE_TERMS
        .iter()
        .map(|(_, p, _)| t.ints(p))
        .collect::<Result<_, _>>()?;
    let customers = t.ints("customers")?;
    let mut cost = vec![0u64; n * 4];
    let mut primary = vec![false; n * 4];
    let mut constraints = Vec::with_capacity(n);
    for r in 0..n {
        for (i, p) in people.iter().enumerate() {
            cost[r * 4 + i] = p[r].max(0) as u64;
            primary[r * 4 + i] = t.is_small(p[r]);
        }
        constraints.push(
            REVENUE_TERMS
                .iter()
                .enumerate()
                .map(|(i, (_, _, sign))| (r * 4 + i, *sign))
                .collect(),
        );
    }
    let outcome = protect(&Problem {
        cells: n * 4,
        cost,
        primary: primary.clone(),
        constraints,
    });
    for r in 0..n {
        for (i, (name, _, _)) in REVENUE_TERMS.iter().enumerate() {
            if outcome.suppressed[r * 4 + i] {
                t.withhold(name, r, primary[r * 4 + i])?;
            }
        }
        // payments counts the same paying customers as gross.
        if primary[r * 4] {
            t.withhold("payments", r, true)?;
        }
        if t.is_small(customers[r]) {
            t.withhold("customers", r, true)?;
        }
    }
    Ok(())
}

fn mrr(t: &mut Cells) -> Result<(), String> {
    let subscribers = t.ints("subscribers")?;
    for (r, s) in subscribers.iter().enumerate() {
        if t.is_small(*s) {
            for c in ["subscribers", "mrr", "arpu"] {
                t.withhold(c, r, true)?;
            }
        }
    }
    Ok(())
}
