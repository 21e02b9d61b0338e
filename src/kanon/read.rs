//! Quasi-identifier columns read as text and dictionary-encoded, whatever the file type:
//! what `anonymizer risk`, the run's enforcement and the privacy gate measure.
//!
//! Text of a value ([`canonical`]): strings as they are; dates, and timestamps at
//! midnight, as `YYYY-MM-DD`; other timestamps as `YYYY-MM-DDTHH:MM:SS` (UTC), with the
//! fraction of a second when there is one (`...T00:00:00.000125`: never dropped, two
//! times that differ in it are two values); numbers and booleans as Arrow prints them; a
//! null is `*` (a suppressed value says nothing).

use std::collections::HashMap;
use std::path::Path;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, TimeUnit};
use datafusion::prelude::SessionContext;

use super::builtin::TOP;
use crate::error::{Error, df_message};
use crate::policy::Format;

/// Columns of text, dictionary-encoded: `codes[c][row]` indexes `dicts[c]`.
#[derive(Debug, Default)]
pub struct Columns {
    pub names: Vec<String>,
    pub dicts: Vec<Vec<String>>,
    pub codes: Vec<Vec<u32>>,
    /// Per column, the Arrow type it was read with.
    pub types: Vec<DataType>,
    lookup: Vec<HashMap<String, u32>>,
}

impl Columns {
    pub fn new(names: Vec<String>) -> Columns {
        let n = names.len();
        Columns {
            names,
            dicts: vec![Vec::new(); n],
            codes: vec![Vec::new(); n],
            types: vec![DataType::Null; n],
            lookup: vec![HashMap::new(); n],
        }
    }

    pub fn rows(&self) -> usize {
        self.codes.first().map_or(0, Vec::len)
    }

    /// The text of column `c` at `row`.
    pub fn value(&self, c: usize, row: usize) -> &str {
        &self.dicts[c][self.codes[c][row] as usize]
    }

    /// How many values of column `c` carry a time of day: a timestamp not at midnight, or
    /// text shaped like one (`2024-03-05T14:07`, `2024-03-05 14:07:09`). On a
    /// quasi-identifier that singles people out far more than a day does; the run and the
    /// privacy gate both refuse it.
    pub fn times_of_day(&self, c: usize) -> u64 {
        let temporal = is_time(&self.types[c]);
        let timed: Vec<bool> = self.dicts[c]
            .iter()
            .map(|v| {
                if temporal {
                    v.contains('T')
                } else {
                    text_has_time_of_day(v)
                }
            })
            .collect();
        self.codes[c].iter().filter(|x| timed[**x as usize]).count() as u64
    }

    /// Appends one batch's arrays (one per column, in order).
    pub fn push(&mut self, arrays: &[ArrayRef]) -> Result<(), String> {
        for (c, a) in arrays.iter().enumerate() {
            if self.types[c] == DataType::Null {
                self.types[c] = a.data_type().clone();
            }
            let (dict, lookup, codes) =
                (&mut self.dicts[c], &mut self.lookup[c], &mut self.codes[c]);
            let mut code_of = |v: &str| match lookup.get(v) {
                Some(x) => *x,
                None => {
                    let x = dict.len() as u32;
                    dict.push(v.to_string());
                    lookup.insert(v.to_string(), x);
                    x
                }
            };
            codes.reserve(a.len());
            if is_time(a.data_type()) {
                for t in canonical(a)? {
                    codes.push(code_of(&t));
                }
            } else {
                // Borrowed text: no allocation per value, only per distinct value.
                let s = text_of(a)?;
                let s = s.as_string::<i32>();
                for v in s.iter() {
                    codes.push(code_of(v.unwrap_or(TOP)));
                }
            }
        }
        Ok(())
    }
}

/// `2024-03-05T14:07` / `2024-03-05 14:07:09.123`, with a time other than midnight.
pub fn text_has_time_of_day(v: &str) -> bool {
    let b = v.trim().as_bytes();
    b.len() >= 16
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b' ')
        && b[13] == b':'
        && b[11..]
            .iter()
            .take_while(|c| !matches!(c, b'Z' | b'+'))
            .any(|c| matches!(c, b'1'..=b'9'))
}

fn is_time(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    )
}

/// A non-temporal column as one Utf8 array.
fn text_of(a: &ArrayRef) -> Result<ArrayRef, String> {
    cast(a, &DataType::Utf8).map_err(|_| {
        format!(
            "a column of type {} cannot be a quasi-identifier (no text form)",
            a.data_type()
        )
    })
}

fn ticks_per_second(u: &TimeUnit) -> i64 {
    match u {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    }
}

/// The text of every value of `a` (see the module doc).
pub fn canonical(a: &ArrayRef) -> Result<Vec<String>, String> {
    let t = a.data_type();
    let texts: Vec<Option<String>> = match t {
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            let secs_per_tick_inv = match t {
                DataType::Date32 => 0,
                DataType::Date64 => 1_000,
                DataType::Timestamp(u, _) => ticks_per_second(u),
                _ => unreachable!(),
            };
            let ticks = cast(a, &DataType::Int64).map_err(|e| e.to_string())?;
            ticks
                .as_primitive::<Int64Type>()
                .iter()
                .map(|v| {
                    v.map(|v| {
                        if secs_per_tick_inv == 0 {
                            time_text(v * 86_400, 0, 1)
                        } else {
                            time_text(
                                v.div_euclid(secs_per_tick_inv),
                                v.rem_euclid(secs_per_tick_inv),
                                secs_per_tick_inv,
                            )
                        }
                    })
                })
                .collect()
        }
        _ => {
            let s = text_of(a)?;
            let s = s.as_string::<i32>();
            s.iter().map(|v| v.map(str::to_string)).collect()
        }
    };
    Ok(texts
        .into_iter()
        .map(|v| v.unwrap_or_else(|| TOP.to_string()))
        .collect())
}

/// A time `ticks` of `1 / per_second` after `secs` (UTC): `YYYY-MM-DD` at midnight, else
/// `YYYY-MM-DDTHH:MM:SS`, with the fraction of a second when there is one
/// (`2025-01-05T00:00:00.25`), so two times that differ in it stay apart and a midnight
/// plus a fraction is not a date. Found by the fourth audit (2026-12-04): the fraction
/// was dropped, so 200 distinct times at midnight plus a few microseconds were 5
/// "dates", each shared by 40 records, for k-anonymity, the time-of-day check and
/// `anonymizer risk`.
pub fn time_text(secs: i64, ticks: i64, per_second: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp(secs, 0) else {
        return format!("{secs}s");
    };
    if ticks == 0 && secs.rem_euclid(86_400) == 0 {
        return t.format("%Y-%m-%d").to_string();
    }
    let whole = t.format("%Y-%m-%dT%H:%M:%S");
    if ticks == 0 {
        return whole.to_string();
    }
    let digits = per_second.ilog10() as usize;
    let fraction = format!("{ticks:0digits$}");
    format!("{whole}.{}", fraction.trim_end_matches('0'))
}

/// Reads `columns` of every file (Parquet or CSV) into [`Columns`], in file order.
pub async fn read_files(
    ctx: &SessionContext,
    table: &str,
    files: &[std::path::PathBuf],
    format: Format,
    delimiter: u8,
    columns: &[String],
) -> Result<Columns, Error> {
    let mut out = Columns::new(columns.to_vec());
    for file in files {
        read_file(ctx, table, file, format, delimiter, &mut out).await?;
    }
    Ok(out)
}

async fn read_file(
    ctx: &SessionContext,
    table: &str,
    file: &Path,
    format: Format,
    delimiter: u8,
    out: &mut Columns,
) -> Result<(), Error> {
    let df = crate::input::open(ctx, table, file, format, delimiter, None)
        .await
        .map_err(crate::policy::PolicyError::from)?;
    let have: Vec<String> = df
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    for c in &out.names {
        if !have.contains(c) {
            let s = crate::policy::suggest::did_you_mean(c, have.iter().map(String::as_str));
            return Err(Error::Usage(format!(
                "{}: no column '{c}'{}; the file has: {}",
                file.display(),
                crate::policy::suggest::hint(&s),
                have.join(", ")
            )));
        }
    }
    let cols: Vec<&str> = out.names.iter().map(String::as_str).collect();
    let fail = |e: datafusion::error::DataFusionError| {
        Error::Failed(format!(
            "cannot read {}: {}",
            file.display(),
            df_message(&e)
        ))
    };
    let mut stream = df
        .select_columns(&cols)
        .map_err(fail)?
        .execute_stream()
        .await
        .map_err(fail)?;
    loop {
        // A damaged page can make a decoder panic rather than fail: the file's error.
        let b = match crate::error::next_contained(&mut stream).await {
            Ok(None) => break,
            Ok(Some(b)) => b.map_err(fail)?,
            Err(p) => {
                return Err(Error::Failed(format!(
                    "cannot read {}: {}",
                    file.display(),
                    crate::error::damaged_read(&p.panic)
                )));
            }
        };
        out.push(b.columns())
            .map_err(|e| Error::Usage(format!("{} (table {table}): {e}", file.display())))?;
    }
    Ok(())
}

/// Reads `columns` of Parquet files in file and row order (the run's own staged files,
/// which enforcement rewrites row by row).
pub fn read_parquet_ordered(
    files: &[std::path::PathBuf],
    columns: &[String],
) -> Result<Columns, Error> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut out = Columns::new(columns.to_vec());
    for p in files {
        let fail =
            |e: &dyn std::fmt::Display| Error::Failed(format!("cannot read {}: {e}", p.display()));
        let file = std::fs::File::open(p).map_err(|e| fail(&e))?;
        let b = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| fail(&e))?;
        // Columns in the order asked for, whatever the file's order.
        let schema = b.schema().clone();
        let mut idx = Vec::new();
        for c in columns {
            idx.push(
                schema
                    .index_of(c)
                    .map_err(|_| fail(&format!("no column '{c}'")))?,
            );
        }
        let mask = ProjectionMask::roots(b.parquet_schema(), idx.iter().copied());
        let reader = b
            .with_projection(mask)
            .with_batch_size(crate::input::BATCH_ROWS)
            .build()
            .map_err(|e| fail(&e))?;
        for batch in reader {
            let batch = batch.map_err(|e| fail(&e))?;
            let arrays: Vec<ArrayRef> = columns
                .iter()
                .map(|c| batch.column_by_name(c).expect("projected").clone())
                .collect();
            out.push(&arrays).map_err(|e| fail(&e))?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
        TimestampSecondArray,
    };

    use super::*;

    #[test]
    fn a_fraction_of_a_second_is_part_of_a_times_text() {
        let day = 1_736_035_200i64; // 2025-01-05T00:00:00Z
        let micros: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![
            Some(day * 1_000_000),
            Some(day * 1_000_000 + 125),
            Some(day * 1_000_000 + 250_000),
            Some((day + 36_000) * 1_000_000 + 1),
            Some(-1),
            None,
        ]));
        assert_eq!(
            canonical(&micros).unwrap(),
            [
                "2025-01-05",
                "2025-01-05T00:00:00.000125",
                "2025-01-05T00:00:00.25",
                "2025-01-05T10:00:00.000001",
                "1969-12-31T23:59:59.999999",
                TOP,
            ]
        );
        // The same instants in every unit give the same text; whole seconds as before.
        let millis: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![day * 1_000 + 250]));
        let nanos: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![
            day * 1_000_000_000 + 250_000_000,
        ]));
        let secs: ArrayRef = Arc::new(TimestampSecondArray::from(vec![day + 1]));
        assert_eq!(canonical(&millis).unwrap(), ["2025-01-05T00:00:00.25"]);
        assert_eq!(canonical(&nanos).unwrap(), ["2025-01-05T00:00:00.25"]);
        assert_eq!(canonical(&secs).unwrap(), ["2025-01-05T00:00:01"]);
        // A midnight plus a fraction has a time of day.
        let mut c = Columns::new(vec!["t".into()]);
        c.push(&[micros]).unwrap();
        assert_eq!(c.times_of_day(0), 4);
    }
}
