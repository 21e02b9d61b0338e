//! k-anonymity enforcement inside `run`: a staged record-level table whose policy declares
//! quasi-identifiers is generalized to the optimal level vector (ARX's search and metric,
//! see [`super::optimize`]) and the records left in classes smaller than k are suppressed
//! (every quasi-identifier null), before the privacy gate re-checks the files.
//!
//! Writing back: a column kept at level 0 keeps its values and type (suppressed rows
//! null); a generalized string column gets the generalized text; a generalized date or
//! timestamp column stays a date or timestamp (the start of the coarser unit); any other
//! generalized column becomes text. `*` is written as null.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::{cast, nullif};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use serde::Serialize;

use super::builtin::{Builtin, TOP};
use super::read::read_parquet_ordered;
use crate::error::Error;
use crate::manifest::OutputFile;
use crate::policy::TablePolicy;
use crate::policy::raw::KAnonymity;
use crate::risk::{dataset, hierarchy_for, read_hierarchy};

/// What enforcement did to one table (the manifest's `k_anonymity`).
#[derive(Debug, Clone, Serialize)]
pub struct KAnonymityReport {
    pub k: u64,
    pub max_suppression: f64,
    pub quasi_identifiers: Vec<String>,
    /// The chosen level per quasi-identifier, and its name (`month`, `region`, ...).
    pub levels: Vec<usize>,
    pub level_names: Vec<String>,
    /// Where each hierarchy came from: `builtin:<kind>` or the file.
    pub hierarchies: Vec<String>,
    pub records: u64,
    pub records_suppressed: u64,
    pub classes: u64,
    pub smallest_class: u64,
    pub prosecutor_risk_max: f64,
    pub prosecutor_risk_avg: f64,
    /// ARX's precomputed non-uniform entropy of the chosen levels.
    pub info_loss: f64,
    pub lattice_size: u128,
    pub nodes_checked: usize,
}

fn is_temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..)
    )
}

/// Generalizes and suppresses the staged files of `table` in place (`files` are updated).
pub fn enforce(
    table: &TablePolicy,
    run_dir: &std::path::Path,
    files: &mut [OutputFile],
    ka: KAnonymity,
) -> Result<KAnonymityReport, Error> {
    let qis = &table.quasi_identifiers;
    let paths: Vec<_> = files.iter().map(|f| run_dir.join(&f.path)).collect();
    let cols = read_parquet_ordered(&paths, qis)?;
    // A time of day on a quasi-identifier is a policy mistake (the gate's check 5): stop
    // rather than let the search quietly generalize it away.
    for (c, q) in qis.iter().enumerate() {
        let n = cols.times_of_day(c);
        if n > 0 {
            return Err(Error::PrivacyCheckFailed(format!(
                "table {}, quasi-identifier {q}: {n} value(s) with a time of day; generalize it to a day or coarser",
                table.name
            )));
        }
    }
    let mut hs = Vec::new();
    let mut names = Vec::new();
    let mut sources = Vec::new();
    for (c, q) in qis.iter().enumerate() {
        let rule = table
            .rule_of(q)
            .expect("validated: a quasi-identifier has a rule");
        let role = table
            .roles
            .iter()
            .find(|(_, col)| *col == q)
            .map(|(r, _)| *r);
        let temporal = is_temporal(&cols.types[c]);
        let builtin = Builtin::for_column(rule, role, q, temporal);
        let given = match table.hierarchies.get(q) {
            Some(p) => {
                sources.push(p.display().to_string());
                Some(read_hierarchy(q, p)?)
            }
            None => {
                sources.push(format!("builtin:{}", builtin.kind()));
                None
            }
        };
        let file_given = given.is_some();
        let h = hierarchy_for(&cols, c, given, &builtin)?;
        names.push(if file_given {
            (0..h.height()).map(|l| format!("level {l}")).collect()
        } else {
            builtin.level_names()
        });
        hs.push(h);
    }
    let what = format!("table {}", table.name);
    let data = dataset(&cols, hs, &what)?;
    let types = cols.types.clone();
    drop(cols);
    let opt = super::optimize(&data, ka.k, ka.max_suppression)
        .map_err(|e| Error::Failed(format!("{what}: {e}")))?
        .ok_or_else(|| {
            Error::PrivacyCheckFailed(format!(
                "{what}: no generalization of its quasi-identifiers ({}) is {}-anonymous with at most {} of its {} records suppressed; allow more suppression, lower k, or give coarser hierarchies",
                qis.join(", "),
                ka.k,
                ka.max_suppression,
                data.num_rows()
            ))
        })?;
    let g = data
        .generalization(&opt.levels, ka.k)
        .map_err(|e| Error::Failed(format!("{what}: {e}")))?;

    // Rewrite every file: rows are numbered across files in file order, as read.
    let mut offset = 0usize;
    let props = crate::run::table_writer_properties(table);
    for f in files.iter_mut() {
        let new = crate::run::rewrite_parquet(run_dir, f, &props, |b| {
            let n = b.num_rows();
            let suppressed: BooleanArray = (offset..offset + n)
                .map(|r| Some(g.is_suppressed(r)))
                .collect();
            let schema = b.schema();
            let mut fields: Vec<Field> = Vec::new();
            let mut arrays: Vec<ArrayRef> = Vec::new();
            for (i, field) in schema.fields().iter().enumerate() {
                let a = b.column(i);
                let Some(c) = qis.iter().position(|q| q == field.name()) else {
                    fields.push(field.as_ref().clone());
                    arrays.push(a.clone());
                    continue;
                };
                let level = opt.levels[c];
                let new: ArrayRef = if level == 0 {
                    nullif(a, &suppressed).map_err(|e| e.to_string())?
                } else {
                    let texts = (offset..offset + n).map(|r| {
                        let v = g.value(r, c);
                        (!g.is_suppressed(r) && v != TOP).then_some(v)
                    });
                    generalized_array(texts, &types[c])?
                };
                fields.push(Field::new(field.name(), new.data_type().clone(), true));
                arrays.push(new);
            }
            offset += n;
            RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(|e| e.to_string())
        })
        .map_err(|message| Error::Transform {
            table: table.name.clone(),
            file: run_dir.join(&f.path),
            message,
        })?;
        *f = new;
    }
    let m = &opt.measures;
    Ok(KAnonymityReport {
        k: ka.k,
        max_suppression: ka.max_suppression,
        quasi_identifiers: qis.clone(),
        level_names: opt
            .levels
            .iter()
            .zip(&names)
            .map(|(l, n): (&usize, &Vec<String>)| n.get(*l).cloned().unwrap_or_default())
            .collect(),
        levels: opt.levels.clone(),
        hierarchies: sources,
        records: data.num_rows(),
        records_suppressed: opt.suppressed,
        classes: m.classes,
        smallest_class: m.smallest_class,
        prosecutor_risk_max: m.prosecutor_risk_max,
        prosecutor_risk_avg: m.prosecutor_risk_avg,
        info_loss: opt.info_loss,
        lattice_size: opt.lattice_size,
        nodes_checked: opt.nodes_checked,
    })
}

/// Generalized text back into a column: dates and timestamps stay so, strings stay
/// strings, anything else becomes text. `None` is null.
fn generalized_array<'a>(
    texts: impl Iterator<Item = Option<&'a str>>,
    original: &DataType,
) -> Result<ArrayRef, String> {
    let texts: Vec<Option<&str>> = texts.collect();
    let secs: Option<Vec<Option<(i64, u32)>>> = texts
        .iter()
        .map(|t| match t {
            None => Some(None),
            Some(t) => parse_secs(t).map(Some),
        })
        .collect();
    // Text when the column is not a date or time, or a hierarchy file made it something
    // else (`2020s`).
    let (true, Some(secs)) = (is_temporal(original), secs) else {
        return Ok(Arc::new(texts.into_iter().collect::<StringArray>()));
    };
    let per_sec: i64 = match original {
        DataType::Date32 => 0,
        DataType::Date64 => 1_000,
        DataType::Timestamp(TimeUnit::Second, _) => 1,
        DataType::Timestamp(TimeUnit::Millisecond, _) => 1_000,
        DataType::Timestamp(TimeUnit::Microsecond, _) => 1_000_000,
        _ => 1_000_000_000,
    };
    let ticks: Vec<Option<i64>> = secs
        .into_iter()
        .map(|s| {
            s.map(|(s, nanos)| {
                if per_sec == 0 {
                    s.div_euclid(86_400)
                } else {
                    // The fraction in the column's unit (none in seconds).
                    s * per_sec + i64::from(nanos) * per_sec / 1_000_000_000
                }
            })
        })
        .collect();
    let ints: ArrayRef = Arc::new(Int64Array::from(ticks));
    let ints = if *original == DataType::Date32 {
        cast(&ints, &DataType::Int32).map_err(|e| e.to_string())?
    } else {
        ints
    };
    cast(&ints, original).map_err(|e| e.to_string())
}

/// Seconds since the epoch and the nanoseconds past them of a value's text
/// ([`super::read::canonical`]), read as the built-in hierarchies read it.
fn parse_secs(t: &str) -> Option<(i64, u32)> {
    use chrono::Timelike;
    super::builtin::parse_time(t).map(|d| (d.and_utc().timestamp(), d.nanosecond()))
}

#[cfg(test)]
mod tests {
    use super::super::{DatasetBuilder, Hierarchy, optimize};

    #[test]
    fn an_empty_table_needs_no_generalization() {
        let h = Hierarchy::from_rows(vec![vec!["a".into(), "*".into()]]).unwrap();
        let data = DatasetBuilder::new(vec!["q".into()], vec![Some(h)])
            .unwrap()
            .finish()
            .unwrap();
        let o = optimize(&data, 10, 0.0).unwrap().expect("the bottom node");
        assert_eq!(o.levels, vec![0]);
        assert_eq!(o.suppressed, 0);
    }

    /// A time's text with a fraction of a second ([`super::super::read::canonical`] keeps
    /// it since 2026-12-04) goes back into the column with it, in the column's unit, and
    /// the column stays a timestamp column.
    #[test]
    fn a_fraction_of_a_second_goes_back_into_the_column() {
        use datafusion::arrow::array::AsArray;
        use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
        let ty = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let texts = [
            "2025-01-05T00:00:00.25",
            "2025-01-05",
            "2025-01-05T10:00:00.000125",
        ];
        let a = super::generalized_array(texts.iter().map(|t| Some(*t)), &ty).unwrap();
        assert_eq!(a.data_type(), &ty);
        let day = 1_736_035_200_000_000i64;
        let v = a.as_primitive::<TimestampMicrosecondType>();
        assert_eq!(
            v.values().to_vec(),
            vec![day + 250_000, day, day + 36_000_000_000 + 125]
        );
    }
}
