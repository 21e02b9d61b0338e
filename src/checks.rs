//! Checks on the export's rows that its schema cannot express, made before anything is
//! written: a table with no rows at all, event times outside any plausible range,
//! negative or unparsable amounts, and a customers table with quasi-identifiers that
//! names a customer twice.
//!
//! Each of these would publish something wrong rather than fail: an empty export would
//! replace the last good tables with empty ones; one transaction dated in year 9999
//! stretches every monthly table across eight thousand years; a negative amount turns a
//! refund's sign around; a customer on two rows is counted twice by k-anonymity, so a
//! "group of k" could be fewer people. So the run stops (exit 2) and says where: the
//! table, the file, the column and the 1-based row within the file, never the value.
//!
//! The counts, date ranges and amount minimums come from one aggregate per file, over
//! plain columns so that DataFusion may answer it from Parquet statistics where they
//! are exact; only when one of them is out of range is the file read again, in order,
//! to find the first offending row. Files are checked a few at a time, each in its own
//! task; the first failing file in the table's order is the one reported.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float64Type, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::functions_aggregate::expr_fn::{count, max, min};
use datafusion::logical_expr::{Expr, TryCast, cast, ident, lit};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::analytics::{PAYMENT_TYPES, REVERSAL_TYPES};
use crate::error::{Error, df_message};
use crate::policy::{Policy, Role, TablePolicy};

/// Event times must fall on or after this date ...
pub const EARLIEST_EVENT: (i32, u32, u32) = (1970, 1, 1);
/// ... and before this one.
pub const LATEST_EVENT: (i32, u32, u32) = (2100, 1, 1);
/// Amounts must be below this (a trillion in any currency's units): larger ones are
/// export errors, and summed over an export they could overflow the revenue tables.
pub const LARGEST_AMOUNT: f64 = 1e12;

/// Finite and below [`LARGEST_AMOUNT`] (NaN is not).
fn plausible_amount(v: f64) -> bool {
    v.is_finite() && v < LARGEST_AMOUNT
}

/// The event dates the input checks accept: from [`EARLIEST_EVENT`] up to, not
/// including, [`LATEST_EVENT`].
pub fn event_range() -> (NaiveDate, NaiveDate) {
    (date(EARLIEST_EVENT), date(LATEST_EVENT))
}

fn date((y, m, d): (i32, u32, u32)) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("a valid constant date")
}

fn days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")).num_days() as i32
}

/// What the checks learnt about one table.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub rows: u64,
    /// The latest event date, for tables that map the event_time role.
    pub latest_event: Option<NaiveDate>,
    /// Rows with a null customer_key or event_time, by column: the aggregates leave
    /// them out (the record-level table keeps them).
    pub missing: BTreeMap<String, u64>,
    /// The earliest event date, for tables that map the event_time role.
    pub first_event: Option<NaiveDate>,
    /// For tables that map the transaction_type role: rows by how the aggregates read
    /// their type (see [`TypeTally`]).
    pub types: Option<TypeTally>,
}

/// Rows of a transactions table by type, as the aggregates read it (trimmed,
/// lower-cased): payments (purchase, renewal), reversals (refund, chargeback), and the
/// rest (another type, or none), which only the cohorts and revenue customers count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeTally {
    pub payments: u64,
    pub reversals: u64,
    pub other: u64,
}

impl TypeTally {
    fn add(&mut self, o: TypeTally) {
        self.payments += o.payments;
        self.reversals += o.reversals;
        self.other += o.other;
    }
}

/// Runs every check on every table of the policy. Returns the facts per table.
pub async fn check_export(
    ctx: &SessionContext,
    policy: &Policy,
) -> Result<BTreeMap<String, Facts>, Error> {
    let mut out = BTreeMap::new();
    for table in &policy.tables {
        out.insert(table.name.clone(), check_table(ctx, table).await?);
        if !table.quasi_identifiers.is_empty()
            && table.role(Role::CustomerKey).is_some()
            && table.role(Role::EventTime).is_none()
        {
            unique_customers(ctx, table).await?;
        }
    }
    Ok(out)
}

fn input_error(table: &TablePolicy, file: &Path, message: String) -> Error {
    Error::Transform {
        table: table.name.clone(),
        file: file.to_path_buf(),
        message,
    }
}

/// Files checked at once, each in its own task: a file's check is mostly opening it
/// (footer, schema, statistics) and planning, work done on the task's thread.
const FILES_AT_ONCE: usize = 4;

async fn check_table(ctx: &SessionContext, table: &TablePolicy) -> Result<Facts, Error> {
    // The transform's units: a group of small files is checked by one query. Worked out
    // before the table is cloned, so that the clone keeps them (a large CSV file is read
    // once to cut it into pieces).
    let units: Vec<Vec<PathBuf>> = crate::run::units(table)
        .iter()
        .map(|u| u.files.iter().map(|f| f.0.clone()).collect())
        .collect();
    let shared = std::sync::Arc::new(table.clone());
    let tasks = units.into_iter().map(|files| {
        let (ctx, table) = (ctx.clone(), shared.clone());
        async move {
            tokio::spawn(async move { check_unit(&ctx, &table, &files).await })
                .await
                .unwrap_or_else(|e| Err(Error::Failed(format!("an input check failed: {e}"))))
        }
    });
    // In file order, so that the first failing file is the one reported, as if the files
    // were checked one after another.
    let per_file: Vec<Result<Facts, Error>> = futures::stream::iter(tasks)
        .buffered(FILES_AT_ONCE)
        .collect()
        .await;
    let mut facts = Facts::default();
    for f in per_file {
        let f = f?;
        facts.rows += f.rows;
        facts.latest_event = facts.latest_event.max(f.latest_event);
        facts.first_event = match (facts.first_event, f.first_event) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(t) = f.types {
            facts.types.get_or_insert_default().add(t);
        }
        for (c, n) in f.missing {
            *facts.missing.entry(c).or_default() += n;
        }
    }
    if let (Some(t), Some(c)) = (facts.types, table.role(Role::TransactionType))
        && t.payments == 0
        && facts.rows > 0
    {
        return Err(Error::Usage(format!(
            "table {}: none of its {} rows is a payment: column '{c}' (transaction_type) holds no {} \
             (trimmed, any case), so every subscription and revenue table would be empty and the run stops.\n  \
             the aggregates count the types {}, {}, {} and {}; export those, or map the role to the right column \
             under [tables.{}.roles]",
            table.name,
            facts.rows,
            PAYMENT_TYPES.join(" or "),
            PAYMENT_TYPES[0],
            PAYMENT_TYPES[1],
            REVERSAL_TYPES[0],
            REVERSAL_TYPES[1],
            table.name,
        )));
    }
    if facts.rows == 0 {
        return Err(Error::Usage(no_rows(&table.name, &table.files)));
    }
    Ok(facts)
}

/// The error of a table none of whose files holds a row.
pub fn no_rows(table: &str, files: &[PathBuf]) -> String {
    format!(
        "table {table}: none of its {} file(s) holds a row ({}{}); an empty export would replace the published \
         tables with empty ones, so the run stops.\n  check the job that wrote the export",
        files.len(),
        files
            .first()
            .map(|f| f.display().to_string())
            .unwrap_or_default(),
        if files.len() > 1 { ", ..." } else { "" },
    )
}

/// The checks of a group of files: one query over them all, whose facts are the sums,
/// least and greatest of the files'; when it fails, the files one by one, in order, so
/// that the error names the first failing file and row, as if each had been checked alone.
async fn check_unit(
    ctx: &SessionContext,
    table: &TablePolicy,
    files: &[PathBuf],
) -> Result<Facts, Error> {
    crate::input::first_failing_file(files, |f| check_file(ctx, table, f)).await
}

/// The checks of one file (or of a group of files, read as one table): one aggregate
/// query, then a second read to locate the first offending row when one is out of range.
async fn check_file(
    ctx: &SessionContext,
    table: &TablePolicy,
    files: &[PathBuf],
) -> Result<Facts, Error> {
    // A damaged page can make a decoder panic rather than fail: the file's error (in a
    // group, `first_failing_file` then finds which file).
    crate::error::contained_async(check_read(ctx, table, files, false))
        .await
        .unwrap_or_else(|panic| {
            Err(Error::Transform {
                table: table.name.clone(),
                file: files[0].clone(),
                message: crate::error::damaged_read(&panic),
            })
        })
}

/// [`check_file`], reading one file whole and in order when `in_order` (so that a
/// failure names its row as in the file: a read of a CSV file in pieces that fails is
/// done again so).
async fn check_read(
    ctx: &SessionContext,
    table: &TablePolicy,
    files: &[PathBuf],
    in_order: bool,
) -> Result<Facts, Error> {
    let file = files[0].as_path();
    let event = table.role(Role::EventTime).map(str::to_string);
    let amount = table.role(Role::Amount).map(str::to_string);
    let amount_type = crate::analytics::amount_type(table);
    let (lo, hi) = event_range();
    let (lo, hi) = (days(lo), days(hi));
    let mut facts = Facts::default();
    let df = match files {
        [f] if in_order => table.open_in_order(ctx, f).await?,
        _ => table.open_files(ctx, files).await?,
    };

    let mut aggs = vec![count(lit(1)).alias("rows")];
    let counted: Vec<String> = [Role::CustomerKey, Role::EventTime]
        .iter()
        .filter_map(|r| table.role(*r).map(str::to_string))
        .collect();
    for (i, c) in counted.iter().enumerate() {
        aggs.push(count(ident(c)).alias(format!("nonnull{i}")));
    }
    // Plain min/max/count of columns, which Parquet statistics can answer. Event
    // times held as text are read as the aggregates read them (a cast to a UTC
    // timestamp), so an unparsable one fails here, and text is not compared as text.
    if let Some(c) = &event {
        let t = event_as_time(table, c);
        aggs.push(min(t.clone()).alias("first"));
        aggs.push(max(t).alias("last"));
    }
    let amount_is_text = amount.as_ref().is_some_and(|c| is_text(table, c));
    if let Some(c) = &amount {
        if amount_is_text {
            let a = Expr::TryCast(TryCast::new(Box::new(ident(c)), amount_type.clone()));
            aggs.push(min(a.clone()).alias("least"));
            aggs.push(max(a.clone()).alias("most"));
            aggs.push(count(ident(c)).alias("present"));
            aggs.push(count(a).alias("parsed"));
        } else {
            aggs.push(min(ident(c)).alias("least"));
            aggs.push(max(ident(c)).alias("most"));
        }
    }
    let err = |what: &str, e: datafusion::error::DataFusionError| read_error(table, file, what, &e);
    let batches = match df
        .clone()
        .aggregate(vec![], aggs)
        .map_err(|e| err("plan the input checks", e))?
        .collect()
        .await
    {
        Ok(b) => b,
        Err(e) => {
            // Text that is no time: say where, rather than that the file failed.
            if let Some(c) = event.as_deref().filter(|c| is_text(table, c)) {
                let not_time = ident(c)
                    .is_not_null()
                    .and(Expr::TryCast(TryCast::new(Box::new(ident(c)), utc_micros())).is_null());
                let row =
                    first_row(ctx, table, file, not_time, |a, i| a.as_boolean().value(i)).await?;
                if row.is_some() {
                    return Err(input_error(
                        table,
                        file,
                        format!(
                            "{}column '{c}' (event_time) holds text that is not a time.\n  \
                             write times as RFC 3339 (2025-01-31T12:00:00Z) or YYYY-MM-DD HH:MM:SS",
                            at_row(row)
                        ),
                    ));
                }
            }
            // A file read in pieces: the error of the same checks over the whole file.
            if let [f] = files
                && !in_order
                && table.reads_in_pieces(f)
            {
                return Box::pin(check_read(ctx, table, files, true)).await;
            }
            return Err(err("read the file", e));
        }
    };
    let Some(b) = batches.first().filter(|b| b.num_rows() == 1) else {
        return Ok(facts);
    };
    let scalar =
        |name: &str| ScalarValue::try_from_array(b.column_by_name(name).expect("an aggregate"), 0);
    let rows = match scalar("rows") {
        Ok(ScalarValue::Int64(Some(n))) => n as u64,
        _ => 0,
    };
    facts.rows += rows;
    for (i, c) in counted.iter().enumerate() {
        if let Ok(ScalarValue::Int64(Some(n))) = scalar(&format!("nonnull{i}"))
            && (n as u64) < rows
        {
            *facts.missing.entry(c.clone()).or_default() += rows - n as u64;
        }
    }
    if let Some(c) = &event {
        // `Err` for a time that has no date: one past the calendar's range (about 262,000
        // years either way), which must stop the run like any other time out of range,
        // not pass as a table without times.
        let day = |name| match scalar(name) {
            Ok(v) if v.is_null() => Ok(None),
            Ok(v) => match v.cast_to(&DataType::Date32) {
                Ok(ScalarValue::Date32(Some(d))) => Ok(Some(d)),
                _ => Err(()),
            },
            Err(_) => Err(()),
        };
        let (first, last) = (day("first"), day("last"));
        let outside = |d: &Result<Option<i32>, ()>| match d {
            Ok(d) => d.is_some_and(|d| d < lo || d >= hi),
            Err(()) => true,
        };
        if outside(&first) || outside(&last) {
            // Compared in the column's own type (the bounds cast to it, not every value to
            // a date: a time past the calendar has none, and its cast fails).
            let t = event_as_time(table, c);
            let ty = if is_text(table, c) {
                utc_micros()
            } else {
                table
                    .schema
                    .field_with_name(c)
                    .map(|f| f.data_type().clone())
                    .unwrap_or_else(|_| utc_micros())
            };
            let bound = |d: i32| {
                cast(
                    lit(ScalarValue::TimestampMicrosecond(
                        Some(i64::from(d) * 86_400_000_000),
                        Some("UTC".into()),
                    )),
                    ty.clone(),
                )
            };
            let bad = t.clone().lt(bound(lo)).or(t.gt_eq(bound(hi)));
            let row = first_row(ctx, table, file, bad, |a, i| a.as_boolean().value(i)).await?;
            return Err(input_error(
                table,
                file,
                format!(
                    "{}column '{c}' (event_time) holds a time before {} or after {}; such a time is an export error, \
                     and it would stretch every monthly table across the years between.\n  \
                     correct or remove the row in the export and rerun",
                    at_row(row),
                    date(EARLIEST_EVENT),
                    date(LATEST_EVENT).pred_opt().expect("a date"),
                ),
            ));
        }
        if let Ok(Some(d)) = last {
            let d = crate::rules::generalize::days_to_date(i64::from(d));
            facts.latest_event = facts.latest_event.max(d);
        }
        if let Ok(Some(d)) = first {
            facts.first_event = crate::rules::generalize::days_to_date(i64::from(d));
        }
    }
    if let Some(c) = &amount {
        let a = Expr::TryCast(TryCast::new(Box::new(ident(c)), amount_type.clone()));
        let n = if amount_is_text {
            match (scalar("present"), scalar("parsed")) {
                (Ok(ScalarValue::Int64(Some(p))), Ok(ScalarValue::Int64(Some(q)))) => p - q,
                _ => 0,
            }
        } else {
            0
        };
        if n > 0 {
            let both = datafusion::functions::expr_fn::nvl(
                cast(a.clone().is_null(), DataType::Int8),
                lit(0i8),
            ) + cast(ident(c).is_not_null(), DataType::Int8);
            // 2: a value that is not null but does not cast.
            let row = first_row(ctx, table, file, both, |arr, i| {
                arr.as_primitive::<datafusion::arrow::datatypes::Int8Type>()
                    .value(i)
                    == 2
            })
            .await?;
            return Err(input_error(
                table,
                file,
                format!(
                    "{}column '{c}' (amount): {n} value(s) are not numbers (as {amount_type}).\n  \
                     export amounts as decimals with a dot, e.g. 12.50, without a currency sign",
                    at_row(row)
                ),
            ));
        }
        let negative = scalar("least")
            .ok()
            .and_then(|s| s.cast_to(&DataType::Float64).ok())
            .is_some_and(|s| matches!(s, ScalarValue::Float64(Some(v)) if v < 0.0));
        if negative {
            let row = first_row(ctx, table, file, cast(a, DataType::Float64), |arr, i| {
                arr.as_primitive::<Float64Type>().value(i) < 0.0
            })
            .await?;
            return Err(input_error(
                table,
                file,
                format!(
                    "{}column '{c}' (amount) is negative; amounts are positive, and refunds and chargebacks \
                     are told apart by the transaction_type column, not by their sign.\n  \
                     if the export signs refunds, export their absolute value",
                    at_row(row)
                ),
            ));
        }
        // A float column may hold NaN or an infinity, which min and max do not reveal,
        // so it is read again (exports rarely keep money in floats).
        let float = table
            .schema
            .field_with_name(c)
            .is_ok_and(|f| f.data_type().is_floating());
        let too_large = scalar("most")
            .ok()
            .and_then(|s| s.cast_to(&DataType::Float64).ok())
            .is_some_and(|s| matches!(s, ScalarValue::Float64(Some(v)) if !plausible_amount(v)));
        if float || too_large {
            let value = if amount_is_text { a } else { ident(c) };
            let row = first_row(
                ctx,
                table,
                file,
                cast(value, DataType::Float64),
                |arr, i| !plausible_amount(arr.as_primitive::<Float64Type>().value(i)),
            )
            .await?;
            if row.is_some() {
                return Err(input_error(
                    table,
                    file,
                    format!(
                        "{}column '{c}' (amount) is not a finite number below {LARGEST_AMOUNT:e} (NaN, an infinity, \
                         or too large to be a transaction's amount; it would overflow the revenue tables).\n  \
                         correct or remove the row in the export and rerun",
                        at_row(row)
                    ),
                ));
            }
        }
    }
    if let Some(c) = table.role(Role::TransactionType) {
        facts.types = Some(type_tally(table, file, &df, c).await?);
    }
    Ok(facts)
}

/// The rows of a file (or group of files) by type: one count per distinct exported
/// value, each classified as the aggregates normalize it. No value is kept or shown.
async fn type_tally(
    table: &TablePolicy,
    file: &Path,
    df: &datafusion::prelude::DataFrame,
    c: &str,
) -> Result<TypeTally, Error> {
    let fail = |e: datafusion::error::DataFusionError| {
        input_error(
            table,
            file,
            format!(
                "cannot read column '{c}' (transaction_type): {}\n  is it a complete file? Re-export it, or remove it from the input folder",
                df_message(&e)
            ),
        )
    };
    let batches = df
        .clone()
        .aggregate(vec![ident(c).alias("t")], vec![count(lit(1)).alias("n")])
        .map_err(fail)?
        .collect()
        .await
        .map_err(fail)?;
    let mut tally = TypeTally::default();
    for b in &batches {
        // One row per distinct exported value: cast here, not every row in the query.
        let t = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8).map_err(|e| {
            input_error(
                table,
                file,
                format!("column '{c}' (transaction_type) cannot be read as text: {e}"),
            )
        })?;
        let (Some(t), Some(n)) = (
            t.as_string_opt::<i32>(),
            b.column(1)
                .as_primitive_opt::<datafusion::arrow::datatypes::Int64Type>(),
        ) else {
            continue;
        };
        for i in 0..b.num_rows() {
            let n = n.value(i).max(0) as u64;
            let kind = t
                .is_valid(i)
                .then(|| {
                    crate::analytics::normalized_text(t.value(i), crate::analytics::Case::Lower)
                })
                .flatten();
            match kind.as_deref() {
                Some(k) if PAYMENT_TYPES.contains(&k) => tally.payments += n,
                Some(k) if REVERSAL_TYPES.contains(&k) => tally.reversals += n,
                _ => tally.other += n,
            }
        }
    }
    Ok(tally)
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The event-time column as the aggregates read it: text cast to a UTC timestamp (so an
/// unparsable one fails), anything else as it is.
fn event_as_time(table: &TablePolicy, c: &str) -> Expr {
    if is_text(table, c) {
        cast(ident(c), utc_micros())
    } else {
        ident(c)
    }
}

fn is_text(table: &TablePolicy, column: &str) -> bool {
    table
        .schema
        .field_with_name(column)
        .is_ok_and(|f| crate::rules::is_string(f.data_type()))
}

fn at_row(row: Option<u64>) -> String {
    match row {
        Some(r) => format!("row {r}, "),
        None => String::new(),
    }
}

/// A failure to read `file`: where a CSV value does not parse, that row and column and
/// what to do; else what failed, and the hint for a broken file.
fn read_error(
    table: &TablePolicy,
    file: &Path,
    what: &str,
    e: &datafusion::error::DataFusionError,
) -> Error {
    let message = crate::error::file_read_message(e);
    let position = (table.format == crate::policy::Format::Csv)
        .then(|| crate::error::csv_parse_position(&message, &table.schema))
        .flatten();
    input_error(
        table,
        file,
        match position {
            Some(at) => format!(
                "{at}: cannot {what}: {message}\n  {}",
                crate::error::CSV_PARSE_HINT
            ),
            None => format!(
                "cannot {what}: {message}\n  is it a complete file? Re-export it, or remove it from the input folder"
            ),
        },
    )
}

/// Calls `f(row, key)` with each non-empty trimmed key of a one-column batch of text
/// (`row` from 0); `false` as soon as `f` returns `false`.
fn each_key(batch: &RecordBatch, mut f: impl FnMut(usize, &[u8]) -> bool) -> bool {
    let keys = batch.column(0).as_string::<i32>();
    (0..keys.len()).all(|i| {
        let k = if keys.is_null(i) {
            ""
        } else {
            keys.value(i).trim()
        };
        k.is_empty() || f(i, k.as_bytes())
    })
}

/// One expression over `file`, as a stream of one-column batches in file order.
async fn column_stream(
    ctx: &SessionContext,
    table: &TablePolicy,
    file: &Path,
    expr: Expr,
) -> Result<datafusion::execution::SendableRecordBatchStream, Error> {
    table
        .open_in_order(ctx, file)
        .await?
        .select(vec![expr.alias("v")])
        .map_err(|e| read_error(table, file, "read the file", &e))?
        .execute_stream()
        .await
        .map_err(|e| read_error(table, file, "read the file", &e))
}

/// The 1-based row of `file` where `bad(values, i)` first holds, `values` being `expr`
/// evaluated over the file in order (nulls are never bad).
async fn first_row(
    ctx: &SessionContext,
    table: &TablePolicy,
    file: &Path,
    expr: Expr,
    bad: impl Fn(&ArrayRef, usize) -> bool,
) -> Result<Option<u64>, Error> {
    let mut stream = column_stream(ctx, table, file, expr).await?;
    let mut seen = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| read_error(table, file, "read the file", &e))?;
        let a = batch.column(0);
        if let Some(i) = (0..a.len()).find(|&i| a.is_valid(i) && bad(a, i)) {
            return Ok(Some(seen + i as u64 + 1));
        }
        seen += a.len() as u64;
    }
    Ok(None)
}

/// The 1-based row and file of the first row whose offer period does not parse (the
/// events view only knows that some value failed).
pub async fn locate_bad_offer_period(
    ctx: &SessionContext,
    table: &TablePolicy,
) -> Result<Option<(PathBuf, u64)>, Error> {
    let Some(c) = table.role(Role::OfferPeriod) else {
        return Ok(None);
    };
    for file in &table.files {
        let row = first_row(ctx, table, file, cast(ident(c), DataType::Utf8), |a, i| {
            let s = a.as_string::<i32>().value(i);
            crate::analytics::period::Period::cell(s).is_err()
        })
        .await?;
        if let Some(r) = row {
            return Ok(Some((file.clone(), r)));
        }
    }
    Ok(None)
}

/// A table of customers (it maps customer_key and no event time) whose
/// quasi-identifiers are made k-anonymous must name each customer once. (Without
/// quasi-identifiers a repeated customer harms nothing: the aggregates count customers,
/// not rows, and take the first country by name.) Keys are compared trimmed, as tokens are, by a keyed 128-bit hash
/// with a random key (never written).
async fn unique_customers(ctx: &SessionContext, table: &TablePolicy) -> Result<(), Error> {
    let Some(c) = table.role(Role::CustomerKey) else {
        return Ok(());
    };
    let key = || cast(ident(c), DataType::Utf8);
    let hasher = crate::verify::Fingerprinter::new();
    // First every file in one scan, rows in any order (one plan, not one per file: an
    // export of a thousand small files took 0.8 s; a large CSV file in its pieces, on
    // every core): a repeat is a repeat in any order. Only when there is one (or a read
    // fails) are the files read again one by one, in order, to name the first repeated
    // row (and the file that fails).
    {
        let all = async {
            table
                .open_files(ctx, &table.files)
                .await
                .ok()?
                .select(vec![key().alias("v")])
                .ok()?
                .execute_stream()
                .await
                .ok()
        };
        if let Some(mut stream) = all.await {
            let mut seen: HashSet<u128> = HashSet::new();
            let mut repeated = false;
            let mut read = true;
            while let Some(batch) = stream.next().await {
                let Ok(batch) = batch else {
                    read = false;
                    break;
                };
                repeated |= !each_key(&batch, |_, k| seen.insert(hasher.hash_normalized(k)));
                if repeated {
                    break;
                }
            }
            if read && !repeated {
                return Ok(());
            }
        }
    }
    let mut seen: HashSet<u128> = HashSet::new();
    let mut first: Option<(PathBuf, u64)> = None;
    let mut repeats = 0u64;
    for file in &table.files {
        let mut stream = column_stream(ctx, table, file, key()).await?;
        let mut row = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| read_error(table, file, "read the file", &e))?;
            each_key(&batch, |i, k| {
                if !seen.insert(hasher.hash_normalized(k)) {
                    repeats += 1;
                    first.get_or_insert_with(|| (file.clone(), row + i as u64 + 1));
                }
                true
            });
            row += batch.num_rows() as u64;
        }
    }
    match first {
        None => Ok(()),
        Some((file, row)) => Err(input_error(
            table,
            &file,
            format!(
                "row {row}, column '{c}' (customer_key): this customer is already on an earlier row \
                 ({repeats} row(s) repeat a customer in all). A customers table has one row per customer; \
                 otherwise k-anonymity would count one person several times.\n  \
                 remove the duplicate rows from the export and rerun"
            ),
        )),
    }
}
