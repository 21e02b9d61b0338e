//! Calendar arithmetic the saved analytics SQL needs and SQL does not express well:
//! ISO 8601 offer periods (P1M, P1Y, P7D, P2W ...) added to timestamps with month-end
//! clamping, a payment normalized to one month, and month indexes (year * 12 + month - 1)
//! that make "the next month" plain integer arithmetic.
//!
//! Registered as `anon_period_end`, `anon_monthly_amount`, `anon_month_index` and
//! `anon_month_date` in the analytics session only. Timestamps are microseconds since the
//! epoch, UTC, without a time zone (the events view normalizes them).

use std::sync::Arc;

use chrono::{DateTime, Datelike, Months, NaiveDate};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Builder, Float64Builder, Int64Builder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use datafusion::common::{Result as DfResult, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::rules::generalize::date_to_days;

/// An offer_period value that is not a period (see [`PERIOD_HELP`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAPeriod;

/// A subscription or pass length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Days(u32),
    Months(u32),
}

impl Period {
    /// `PnD`, `PnW`, `PnM`, `PnY` (n >= 1, case-insensitive), or one of the words daily,
    /// weekly, monthly, quarterly, yearly, annual, annually.
    pub fn parse(s: &str) -> Option<Period> {
        let s = s.trim();
        let lower = s.to_ascii_lowercase();
        match lower.as_str() {
            "daily" => return Some(Period::Days(1)),
            "weekly" => return Some(Period::Days(7)),
            "monthly" => return Some(Period::Months(1)),
            "quarterly" => return Some(Period::Months(3)),
            "yearly" | "annual" | "annually" => return Some(Period::Months(12)),
            _ => {}
        }
        let rest = lower.strip_prefix('p')?;
        let unit = rest.chars().last()?;
        let n: u32 = rest[..rest.len() - 1].parse().ok()?;
        if n == 0 || n > 1200 {
            return None;
        }
        match unit {
            'd' => Some(Period::Days(n)),
            'w' => Some(Period::Days(n * 7)),
            'm' => Some(Period::Months(n)),
            'y' => Some(Period::Months(n * 12)),
            _ => None,
        }
    }

    /// One exported offer_period value, as every reader of the role takes it: white
    /// space only is no period (`Ok(None)`), any other text must parse
    /// ([`Period::parse`]; `Err` is the run's [`PERIOD_HELP`] error).
    pub fn cell(s: &str) -> Result<Option<Period>, NotAPeriod> {
        if s.trim().is_empty() {
            return Ok(None);
        }
        Period::parse(s).map(Some).ok_or(NotAPeriod)
    }

    /// `t + period`, t in microseconds since the epoch (UTC). Adding months keeps the
    /// time of day and clamps the day to the target month's last day.
    pub fn add_to(self, micros: i64) -> Option<i64> {
        match self {
            Period::Days(d) => micros.checked_add(i64::from(d) * 86_400_000_000),
            Period::Months(m) => add_months_by_table(micros, m).or_else(|| {
                let t = DateTime::from_timestamp_micros(micros)?.naive_utc();
                let end = t.checked_add_months(Months::new(m))?;
                Some(end.and_utc().timestamp_micros())
            }),
        }
    }

    /// (num, den): one payment for this period is worth num / den of it per month
    /// (a month being 365.2425 / 12 = 146097 / 4800 = 30.436875 days).
    pub fn monthly_factor(self) -> (u64, u64) {
        match self {
            Period::Months(n) => (1, u64::from(n)),
            Period::Days(d) => (146_097, 4_800 * u64::from(d)),
        }
    }
}

/// Month index of a timestamp in microseconds: year * 12 + month - 1.
///
/// Days from 1900 to 2099 from a table (the aggregates take one or more per
/// transaction: 2.7 % of a run's CPU by arithmetic), other years 1 to 9999 by arithmetic
/// on the day number (H. Hinnant's `civil_from_days`), other instants through chrono;
/// tests hold the three equal.
pub fn month_index(micros: i64) -> Option<i64> {
    month_of_day_by_table(micros.div_euclid(MICROS_PER_DAY))
        .or_else(|| month_index_by_arithmetic(micros))
}

/// The month index of a day (days since 1970-01-01) of 1900 to 2099; `None` outside.
fn month_of_day_by_table(day: i64) -> Option<i64> {
    let i = usize::try_from(day - TABLE_FIRST_DAY).ok()?;
    MONTH_OF_DAY.get(i).map(|&m| i64::from(m))
}

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// 1900-01-01, in days since 1970-01-01.
const TABLE_FIRST_DAY: i64 = -25_567;
/// 1900-01-01 to 2099-12-31.
const TABLE_DAYS: i64 = 73_049;

/// The month index of each day of the table (292 KB).
static MONTH_OF_DAY: std::sync::LazyLock<Box<[i32]>> = std::sync::LazyLock::new(|| {
    (TABLE_FIRST_DAY..TABLE_FIRST_DAY + TABLE_DAYS)
        .map(|d| {
            month_index_by_arithmetic(d * MICROS_PER_DAY)
                .and_then(|m| i32::try_from(m).ok())
                .expect("a month of 1900 to 2099")
        })
        .collect()
});

fn month_index_by_arithmetic(micros: i64) -> Option<i64> {
    const FIRST: i64 = -62_135_596_800_000_000; // 0001-01-01T00:00:00Z
    const END: i64 = 253_402_300_800_000_000; // 10000-01-01T00:00:00Z
    if (FIRST..END).contains(&micros) {
        let z = micros.div_euclid(MICROS_PER_DAY) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        return Some(year * 12 + month - 1);
    }
    month_index_chrono(micros)
}

fn month_index_chrono(micros: i64) -> Option<i64> {
    let t = DateTime::from_timestamp_micros(micros)?;
    Some(i64::from(t.year()) * 12 + i64::from(t.month0()))
}

/// The first microsecond (midnight UTC on the 1st) of month index `m`: months of 1900 to
/// 2099 from a table (the aggregates kernel asks once per payment), others through
/// chrono; a test holds the two equal.
pub fn month_start_micros(m: i64) -> Option<i64> {
    month_start_by_table(m).or_else(|| month_start_chrono(m))
}

fn month_start_by_table(m: i64) -> Option<i64> {
    let i = usize::try_from(m.checked_sub(TABLE_FIRST_MONTH)?).ok()?;
    MONTH_START.get(i).copied()
}

/// [`Period::add_to`] for months when both the start and the end fall in 1900 to 2099,
/// from the day and month tables (the aggregates kernel adds a period to every payment);
/// `None` otherwise, for chrono to do it. A test holds the two equal.
fn add_months_by_table(micros: i64, months: u32) -> Option<i64> {
    let m = month_of_day_by_table(micros.div_euclid(MICROS_PER_DAY))?;
    let start = month_start_by_table;
    let to = m + i64::from(months);
    let (first, target, after) = (start(m)?, start(to)?, start(to + 1)?);
    // The day of the month (0-based) and the time of day carry over; the day is clamped
    // to the target month's last.
    let into = micros - first;
    let day_of_month = into.div_euclid(MICROS_PER_DAY);
    let last_day = (after - target) / MICROS_PER_DAY - 1;
    Some(target + day_of_month.min(last_day) * MICROS_PER_DAY + into.rem_euclid(MICROS_PER_DAY))
}

/// 1900-01 and 2100-01 (the first month past the table), as month indexes.
const TABLE_FIRST_MONTH: i64 = 1900 * 12;
const TABLE_END_MONTH: i64 = 2100 * 12;

/// The first microsecond of each month of 1900 to 2099 (19 KB).
static MONTH_START: std::sync::LazyLock<Box<[i64]>> = std::sync::LazyLock::new(|| {
    (TABLE_FIRST_MONTH..TABLE_END_MONTH)
        .map(|m| month_start_chrono(m).expect("a month of 1900 to 2099"))
        .collect()
});

fn month_start_chrono(m: i64) -> Option<i64> {
    month_date(m)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

/// The first day of month index `m`.
pub fn month_date(m: i64) -> Option<NaiveDate> {
    let year = i32::try_from(m.div_euclid(12)).ok()?;
    NaiveDate::from_ymd_opt(year, m.rem_euclid(12) as u32 + 1, 1)
}

/// Month index of a date.
pub fn month_of(d: NaiveDate) -> i64 {
    i64::from(d.year()) * 12 + i64::from(d.month0())
}

pub const PERIOD_HELP: &str = "offer_period holds a value that is not an ISO 8601 period; use PnD, PnW, PnM or PnY (P1M, P1Y, P7D, P2W) or daily/weekly/monthly/quarterly/yearly";

/// The periods of a column ([`Period::cell`] of each value's text; null is no period),
/// for the SQL UDFs and the aggregates kernel alike: each run of equal values is parsed
/// once, and each distinct text at most once per batch while there are few of them (an
/// export has a handful of offer periods and millions of rows, and [`Period::parse`]
/// lower-cases a copy). A text that is not a period fails the batch with [`PERIOD_HELP`].
pub(crate) fn periods(array: &ArrayRef) -> DfResult<Vec<Option<Period>>> {
    /// Distinct texts remembered per batch; past that, the rest are parsed per run.
    const SEEN: usize = 32;
    let mut out = Vec::with_capacity(array.len());
    let mut seen: Vec<(Box<str>, Option<Period>)> = Vec::new();
    let mut bad = false;
    crate::rules::for_each_text_run(array, |v, n| {
        let p = v.and_then(|s| {
            if let Some((_, p)) = seen.iter().find(|(t, _)| **t == *s) {
                return *p;
            }
            let p = Period::cell(s);
            bad |= p.is_err();
            let p = p.unwrap_or(None);
            if seen.len() < SEEN {
                seen.push((s.into(), p));
            }
            p
        });
        out.extend(std::iter::repeat_n(p, n));
    })?;
    if bad {
        return exec_err!("{PERIOD_HELP}");
    }
    Ok(out)
}

macro_rules! udf_struct {
    ($name:ident, $arity:literal) => {
        #[derive(Debug, PartialEq, Eq, Hash)]
        pub struct $name {
            signature: Signature,
        }
        impl $name {
            pub fn new() -> Self {
                $name {
                    signature: Signature::any($arity, Volatility::Immutable),
                }
            }
        }
        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

udf_struct!(PeriodEndUdf, 2);
udf_struct!(MonthlyAmountUdf, 2);
udf_struct!(MonthIndexUdf, 1);
udf_struct!(MonthDateUdf, 1);

fn arrays(args: &ScalarFunctionArgs) -> DfResult<Vec<ArrayRef>> {
    args.args
        .iter()
        .map(|a| a.to_array(args.number_rows))
        .collect()
}

const TS: DataType = DataType::Timestamp(TimeUnit::Microsecond, None);

fn expect(fname: &str, got: &DataType, want: &DataType) -> DfResult<()> {
    if got != want && *got != DataType::Null {
        return exec_err!("{fname} needs {want}, got {got}");
    }
    Ok(())
}

impl ScalarUDFImpl for PeriodEndUdf {
    fn name(&self) -> &str {
        "anon_period_end"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, t: &[DataType]) -> DfResult<DataType> {
        expect(self.name(), &t[0], &TS)?;
        Ok(TS)
    }
    /// `anon_period_end(t, offer_period)`: t + period; null when either is null.
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = arrays(&args)?;
        let ts = datafusion::arrow::compute::cast(&a[0], &TS)?;
        let ts = ts.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        let ps = periods(&a[1])?;
        let mut out = TimestampMicrosecondBuilder::with_capacity(ts.len());
        for (i, p) in ps.iter().enumerate() {
            match (ts.is_valid(i), p) {
                (true, Some(p)) => out.append_option(p.add_to(ts.value(i))),
                _ => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

impl ScalarUDFImpl for MonthlyAmountUdf {
    fn name(&self) -> &str {
        "anon_monthly_amount"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, t: &[DataType]) -> DfResult<DataType> {
        expect(self.name(), &t[0], &DataType::Float64)?;
        Ok(DataType::Float64)
    }
    /// `anon_monthly_amount(amount, offer_period)` = amount * num / den (see
    /// [`Period::monthly_factor`]), evaluated left to right in f64.
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = arrays(&args)?;
        let amounts = datafusion::arrow::compute::cast(&a[0], &DataType::Float64)?;
        let amounts = amounts.as_primitive::<Float64Type>();
        let ps = periods(&a[1])?;
        let mut out = Float64Builder::with_capacity(amounts.len());
        for (i, p) in ps.iter().enumerate() {
            match (amounts.is_valid(i), p) {
                (true, Some(p)) => {
                    let (num, den) = p.monthly_factor();
                    out.append_value(amounts.value(i) * num as f64 / den as f64)
                }
                _ => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

impl ScalarUDFImpl for MonthIndexUdf {
    fn name(&self) -> &str {
        "anon_month_index"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, t: &[DataType]) -> DfResult<DataType> {
        expect(self.name(), &t[0], &TS)?;
        Ok(DataType::Int64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = arrays(&args)?;
        let ts = datafusion::arrow::compute::cast(&a[0], &TS)?;
        let ts = ts.as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>();
        let mut out = Int64Builder::with_capacity(ts.len());
        for i in 0..ts.len() {
            if ts.is_valid(i) {
                out.append_option(month_index(ts.value(i)));
            } else {
                out.append_null();
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

impl ScalarUDFImpl for MonthDateUdf {
    fn name(&self) -> &str {
        "anon_month_date"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _t: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Date32)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = arrays(&args)?;
        let m = datafusion::arrow::compute::cast(&a[0], &DataType::Int64)?;
        let m = m.as_primitive::<Int64Type>();
        let mut out = Date32Builder::with_capacity(m.len());
        for i in 0..m.len() {
            if m.is_valid(i) {
                out.append_option(month_date(m.value(i)).map(date_to_days));
            } else {
                out.append_null();
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

/// The four UDFs, for registration in the analytics session.
pub fn udfs() -> [ScalarUDF; 4] {
    [
        ScalarUDF::from(PeriodEndUdf::new()),
        ScalarUDF::from(MonthlyAmountUdf::new()),
        ScalarUDF::from(MonthIndexUdf::new()),
        ScalarUDF::from(MonthDateUdf::new()),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::strategy::Strategy;

    proptest::proptest! {
        #[test]
        fn month_index_equals_chrono(
            micros in proptest::prop_oneof![
                proptest::num::i64::ANY,
                -62_135_596_800_000_000i64..253_402_300_800_000_000,
                // Around the ends of the arithmetic's range and of months.
                (-3i64..3, 0usize..4).prop_map(|(d, i)| [
                    -62_135_596_800_000_000i64,
                    253_402_300_800_000_000,
                    951_782_400_000_000, // 2000-02-29
                    0,
                ][i] + d),
                (-400i64..10400, 0i64..12).prop_map(|(y, m)| {
                    let d = chrono::NaiveDate::from_ymd_opt(y as i32, m as u32 + 1, 1).unwrap();
                    d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros() - 1
                }),
            ]
        ) {
            proptest::prop_assert_eq!(month_index(micros), month_index_chrono(micros));
            proptest::prop_assert_eq!(month_index_by_arithmetic(micros), month_index_chrono(micros));
        }
    }

    /// Every day of the table, at its first and last microsecond and just outside it.
    #[test]
    fn the_month_table_equals_chrono_on_every_day() {
        for d in TABLE_FIRST_DAY - 2..TABLE_FIRST_DAY + TABLE_DAYS + 2 {
            for t in [d * MICROS_PER_DAY, (d + 1) * MICROS_PER_DAY - 1] {
                assert_eq!(month_index(t), month_index_chrono(t), "day {d}");
            }
        }
        let first = chrono::NaiveDate::from_ymd_opt(1900, 1, 1).unwrap();
        let last = chrono::NaiveDate::from_ymd_opt(2099, 12, 31).unwrap();
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        assert_eq!((first - epoch).num_days(), TABLE_FIRST_DAY);
        assert_eq!((last - first).num_days() + 1, TABLE_DAYS);
    }

    proptest::proptest! {
        /// Adding months from the tables equals chrono's, wherever the tables answer:
        /// every day of a month's end (clamping), every time of day, across the tables'
        /// ends (where chrono takes over).
        #[test]
        fn adding_months_by_table_equals_chrono(
            micros in proptest::prop_oneof![
                // 1899 to 2101: in and around the tables.
                -2_240_000_000_000_000i64..4_150_000_000_000_000,
                proptest::num::i64::ANY,
                // The last days of months, at either end of the day.
                (1899i32..2101, 1u32..13, 25u32..32, proptest::bool::ANY).prop_filter_map(
                    "a real date",
                    |(y, m, d, late)| {
                        let t = chrono::NaiveDate::from_ymd_opt(y, m, d)?;
                        let t = if late { t.and_hms_micro_opt(23, 59, 59, 999_999)? } else { t.and_hms_opt(0, 0, 0)? };
                        Some(t.and_utc().timestamp_micros())
                    },
                ),
            ],
            months in proptest::prop_oneof![1u32..=24, 0u32..=3000, proptest::num::u32::ANY],
        ) {
            let chrono = chrono::DateTime::from_timestamp_micros(micros).and_then(|t| {
                t.naive_utc()
                    .checked_add_months(chrono::Months::new(months))
                    .map(|e| e.and_utc().timestamp_micros())
            });
            if let Some(t) = add_months_by_table(micros, months) {
                proptest::prop_assert_eq!(Some(t), chrono);
            }
            proptest::prop_assert_eq!(Period::Months(months).add_to(micros), chrono);
        }
    }

    /// Every month of the table and a few beyond each end, and months far out (chrono's
    /// range ends at year 262,143), against chrono.
    #[test]
    fn the_month_start_table_equals_chrono() {
        for m in TABLE_FIRST_MONTH - 13..TABLE_END_MONTH + 13 {
            assert_eq!(month_start_micros(m), month_start_chrono(m), "month {m}");
            assert_eq!(month_index(month_start_micros(m).unwrap()), Some(m));
            assert_eq!(month_index(month_start_micros(m).unwrap() - 1), Some(m - 1));
        }
        for m in [i64::MIN, -3_200_000, 0, 1, 119_999, 3_200_000, i64::MAX] {
            assert_eq!(month_start_micros(m), month_start_chrono(m), "month {m}");
        }
        assert_eq!(
            month_start_micros(2000 * 12 + 1),
            Some(micros("2000-02-01 00:00:00"))
        );
        assert_eq!(MONTH_START.len(), 2400);
    }

    use super::*;

    fn micros(s: &str) -> i64 {
        chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .unwrap()
            .and_utc()
            .timestamp_micros()
    }

    #[test]
    fn parses_periods() {
        assert_eq!(Period::parse("P1M"), Some(Period::Months(1)));
        assert_eq!(Period::parse(" p1y "), Some(Period::Months(12)));
        assert_eq!(Period::parse("P7D"), Some(Period::Days(7)));
        assert_eq!(Period::parse("P2W"), Some(Period::Days(14)));
        assert_eq!(Period::parse("monthly"), Some(Period::Months(1)));
        for bad in ["", "P", "PM", "P0M", "P1X", "1M", "P-1M", "P1.5M", "month"] {
            assert_eq!(Period::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn periods_of_a_column_equal_parsing_each_row() {
        // More distinct texts than the memo holds, repeated, with nulls and blanks.
        let texts: Vec<Option<String>> = (0..500)
            .map(|i| match i % 7 {
                0 => None,
                1 => Some("  ".to_string()),
                _ => Some(format!("P{}{}", i % 45 + 1, ["M", "d", "W", "y"][i % 4])),
            })
            .collect();
        let array: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(texts.clone()));
        let want: Vec<Option<Period>> = texts
            .iter()
            .map(|t| t.as_deref().and_then(Period::parse))
            .collect();
        assert_eq!(periods(&array).unwrap(), want);
        // A bad text is refused whether it comes before or after the memo is full.
        for at in [0, 499] {
            let mut bad = texts.clone();
            bad[at] = Some("fortnightly".into());
            let array: ArrayRef = Arc::new(datafusion::arrow::array::StringArray::from(bad));
            assert!(periods(&array).is_err(), "{at}");
        }
    }

    #[test]
    fn adds_months_with_clamping() {
        let end = |s, p: &str| {
            let e = Period::parse(p).unwrap().add_to(micros(s)).unwrap();
            DateTime::from_timestamp_micros(e)
                .unwrap()
                .naive_utc()
                .to_string()
        };
        assert_eq!(end("2024-01-31 10:00:00", "P1M"), "2024-02-29 10:00:00");
        assert_eq!(end("2023-01-31 10:00:00", "P1M"), "2023-02-28 10:00:00");
        assert_eq!(end("2024-02-29 00:00:00", "P1Y"), "2025-02-28 00:00:00");
        assert_eq!(end("2024-03-28 23:00:00", "P7D"), "2024-04-04 23:00:00");
    }

    #[test]
    fn month_indexes_round_trip() {
        let m = month_index(micros("2024-12-31 23:59:59")).unwrap();
        assert_eq!(m, 2024 * 12 + 11);
        assert_eq!(month_date(m + 1), NaiveDate::from_ymd_opt(2025, 1, 1));
        assert_eq!(
            month_of(NaiveDate::from_ymd_opt(2025, 1, 15).unwrap()),
            m + 1
        );
    }

    #[test]
    fn monthly_factors() {
        assert_eq!(Period::Months(12).monthly_factor(), (1, 12));
        let (n, d) = Period::Days(7).monthly_factor();
        assert!((n as f64 / d as f64 - 30.436875 / 7.0).abs() < 1e-12);
    }
}
