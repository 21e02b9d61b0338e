//! `anonymizer risk`: re-identification risk of one table's quasi-identifiers (a file, or a
//! folder or glob of files measured together), measured the way ARX measures it, and the
//! optimal generalization when asked (`--optimize`).
//!
//! It exists so a privacy officer can measure any table (an export before the run, a
//! record-level output after it, a benchmark data set such as Adult) with the same code
//! the run uses to enforce k-anonymity, and compare the figures with ARX's.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::Error;
use crate::kanon::builtin::{Builtin, TOP};
use crate::kanon::read::{Columns, read_files};
use crate::kanon::{Dataset, DatasetBuilder, Hierarchy, Measures};

/// What `anonymizer risk` was asked, validated.
#[derive(Debug, Clone)]
pub struct RiskOptions {
    pub input: PathBuf,
    /// CSV delimiter (Parquet ignores it).
    pub delimiter: u8,
    pub qi: Vec<String>,
    /// Quasi-identifier -> ARX-format hierarchy file (`;`-separated).
    pub hierarchies: BTreeMap<String, PathBuf>,
    /// One level per quasi-identifier; `None`: all 0.
    pub levels: Option<Vec<usize>>,
    pub k: u64,
    pub max_suppression: f64,
    pub optimize: bool,
}

/// The figures `risk` prints (JSON keys are a contract): the measures (see
/// [`Measures`]: `records`, `classes`, `smallest_class`, `records_below_k`,
/// `sample_uniques`, `aecs`, `discernibility_monotonic`, `discernibility`,
/// `prosecutor_risk_max`, `prosecutor_risk_avg`) and what they were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct RiskReport {
    pub input: PathBuf,
    pub quasi_identifiers: Vec<String>,
    pub levels: Vec<usize>,
    pub k: u64,
    #[serde(flatten)]
    pub measures: Measures,
    /// ARX's precomputed non-uniform entropy of the levels (information loss).
    pub info_loss: f64,
    /// `--optimize`: the search's figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optimum: Option<OptimumReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OptimumReport {
    pub max_suppression: f64,
    pub records_suppressed: u64,
    pub lattice_size: u128,
    pub nodes_checked: usize,
}

impl RiskReport {
    /// Aligned `name  value` lines, in the order of the JSON keys.
    pub fn table(&self) -> String {
        const ORDER: [&str; 15] = [
            "input",
            "records",
            "quasi_identifiers",
            "levels",
            "k",
            "classes",
            "smallest_class",
            "records_below_k",
            "sample_uniques",
            "aecs",
            "discernibility_monotonic",
            "discernibility",
            "prosecutor_risk_max",
            "prosecutor_risk_avg",
            "info_loss",
        ];
        let v = serde_json::to_value(self).expect("the report serializes");
        let text = |x: &serde_json::Value| match x {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(a) => a
                .iter()
                .map(|e| match e {
                    serde_json::Value::String(s) => s.clone(),
                    e => e.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
            x => x.to_string(),
        };
        let mut rows: Vec<(String, String)> = ORDER
            .iter()
            .map(|k| (k.to_string(), text(&v[*k])))
            .collect();
        if let Some(serde_json::Value::Object(o)) = v.get("optimum") {
            rows.extend(o.iter().map(|(k, x)| (k.clone(), text(x))));
        }
        let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
        rows.iter()
            .map(|(k, v)| format!("{k:<w$}  {v}\n"))
            .collect()
    }
}

/// Reads an ARX-format hierarchy file (`;`-separated).
pub fn read_hierarchy(column: &str, path: &std::path::Path) -> Result<Hierarchy, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Usage(format!(
            "cannot read the hierarchy of {column} from {}: {e}",
            path.display()
        ))
    })?;
    Hierarchy::parse(&text, ';').map_err(|e| {
        Error::Usage(format!(
            "the hierarchy of {column} in {} is not in ARX's format (one row per value, one ';'-separated column per level, the last level '*'): {e}",
            path.display()
        ))
    })
}

/// A hierarchy over the column's distinct values: the given one (a row for `*`, the text
/// of a null, added when missing) or the built-in one.
pub fn hierarchy_for(
    cols: &Columns,
    c: usize,
    given: Option<Hierarchy>,
    builtin: &Builtin,
) -> Result<Hierarchy, Error> {
    match given {
        Some(h) => {
            if cols.dicts[c].iter().any(|v| v == TOP) && h.code0(TOP).is_none() {
                let mut rows = h.rows();
                rows.push(vec![TOP.to_string(); h.height()]);
                return Hierarchy::from_rows(rows)
                    .map_err(|e| Error::Usage(format!("column {}: {e}", cols.names[c])));
            }
            Ok(h)
        }
        None => {
            let rows =
                crate::kanon::builtin::rows(builtin, cols.dicts[c].iter().map(String::as_str));
            Hierarchy::from_rows(rows).map_err(|e| {
                Error::Failed(format!(
                    "column {}: the built-in hierarchy is inconsistent: {e}",
                    cols.names[c]
                ))
            })
        }
    }
}

/// A dataset of the columns under the hierarchies (one per column). Each distinct value
/// is looked up in its hierarchy once; rows are pushed as codes.
pub fn dataset(cols: &Columns, hierarchies: Vec<Hierarchy>, what: &str) -> Result<Dataset, Error> {
    let mut maps: Vec<Vec<u32>> = Vec::with_capacity(cols.names.len());
    for (c, h) in hierarchies.iter().enumerate() {
        let mut map = Vec::with_capacity(cols.dicts[c].len());
        for (i, v) in cols.dicts[c].iter().enumerate() {
            let Some(code) = h.code0(v) else {
                let row = cols.codes[c]
                    .iter()
                    .position(|x| *x as usize == i)
                    .unwrap_or(0)
                    + 1;
                return Err(Error::Usage(format!(
                    "{what}: column {:?}, row {row}: the value is not in the column's hierarchy; add a row for it to the hierarchy file",
                    cols.names[c]
                )));
            };
            map.push(code);
        }
        maps.push(map);
    }
    let mut b = DatasetBuilder::new(
        cols.names.clone(),
        hierarchies.into_iter().map(Some).collect(),
    )
    .map_err(|e| Error::Usage(format!("{what}: {e}")))?;
    b.reserve(cols.rows());
    let mut row: Vec<u32> = vec![0; cols.names.len()];
    for r in 0..cols.rows() {
        for (c, x) in row.iter_mut().enumerate() {
            *x = maps[c][cols.codes[c][r] as usize];
        }
        b.push_codes(&row)
            .map_err(|e| Error::Failed(format!("{what}: {e}")))?;
    }
    b.finish().map_err(|e| Error::Usage(format!("{what}: {e}")))
}

/// `anonymizer risk`.
pub fn risk(o: &RiskOptions) -> Result<RiskReport, Error> {
    if o.qi.is_empty() {
        return Err(Error::Usage("--qi needs at least one column".into()));
    }
    if o.qi.iter().any(|c| c.trim().is_empty()) {
        return Err(Error::Usage(format!(
            "--qi {:?} holds an empty column name; list the columns separated by commas, e.g. --qi age,sex,zip",
            o.qi.join(",")
        )));
    }
    for (i, c) in o.qi.iter().enumerate() {
        if o.qi[..i].contains(c) {
            return Err(Error::Usage(format!(
                "--qi names {c} twice; name each quasi-identifier once"
            )));
        }
    }
    for c in o.hierarchies.keys() {
        if !o.qi.contains(c) {
            return Err(Error::Usage(format!(
                "--hierarchy {c}=...: {c} is not among --qi ({})",
                o.qi.join(",")
            )));
        }
    }
    if !(0.0..=1.0).contains(&o.max_suppression) {
        return Err(Error::Usage(
            "--max-suppression is a fraction of the records between 0 and 1 (0.04 = 4 %)".into(),
        ));
    }
    if o.k == 0 {
        return Err(Error::Usage("--k must be at least 1".into()));
    }
    // One file, every Parquet/CSV file directly in a folder (a published table is a
    // folder of part files), or a glob: the same discovery as a policy's `input`. The
    // quasi-identifiers' classes span files, so all of them are measured together.
    let spec = o.input.to_string_lossy();
    let files = match crate::input::discover("input", &spec, std::path::Path::new("")) {
        Ok(files) => files,
        Err(crate::input::InputError::NoFiles { .. }) => {
            return Err(Error::Usage(format!(
                "--input {}: no such file, and no *.parquet or *.csv file there; give a Parquet or CSV file, a folder of them (a published table), or a glob",
                o.input.display()
            )));
        }
        Err(e) => return Err(Error::Usage(format!("--input {}: {e}", o.input.display()))),
    };
    let format = match crate::input::format_of("input", &files, None) {
        Ok(format) => format,
        Err(crate::input::InputError::MixedFormats { first, other, .. }) => {
            return Err(Error::Usage(format!(
                "--input {}: mixes Parquet and CSV files ({} and {}); measure one format at a time",
                o.input.display(),
                first.display(),
                other.display()
            )));
        }
        Err(e) => return Err(Error::Usage(format!("--input {}: {e}", o.input.display()))),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the runtime: {e}")))?;
    let ctx = crate::run::session();
    let cols = rt.block_on(read_files(
        &ctx,
        "input",
        &files,
        format,
        o.delimiter,
        &o.qi,
    ))?;
    if cols.rows() == 0 {
        return Err(Error::Usage(format!(
            "--input {}: no rows (the files hold a header or a schema only); there is nothing to measure",
            o.input.display()
        )));
    }
    let mut hs = Vec::new();
    for (c, name) in o.qi.iter().enumerate() {
        let given = match o.hierarchies.get(name) {
            Some(p) => Some(read_hierarchy(name, p)?),
            None => None,
        };
        hs.push(hierarchy_for(&cols, c, given, &Builtin::Flat)?);
    }
    let what = o.input.display().to_string();
    let data = dataset(&cols, hs, &what)?;
    drop(cols);
    let heights = data.heights();
    if o.optimize {
        let Some(opt) = crate::kanon::optimize(&data, o.k, o.max_suppression)
            .map_err(|e| Error::Usage(format!("{what}: {e}")))?
        else {
            return Err(Error::PrivacyCheckFailed(format!(
                "{what}: no generalization makes the quasi-identifiers {}-anonymous with at most {} of the records suppressed; allow more suppression or give coarser hierarchies",
                o.k, o.max_suppression
            )));
        };
        return Ok(RiskReport {
            input: o.input.clone(),
            quasi_identifiers: o.qi.clone(),
            levels: opt.levels.clone(),
            k: o.k,
            measures: opt.measures.clone(),
            info_loss: opt.info_loss,
            optimum: Some(OptimumReport {
                max_suppression: o.max_suppression,
                records_suppressed: opt.suppressed,
                lattice_size: opt.lattice_size,
                nodes_checked: opt.nodes_checked,
            }),
        });
    }
    let levels = o.levels.clone().unwrap_or_else(|| vec![0; o.qi.len()]);
    if levels.len() != o.qi.len() {
        return Err(Error::Usage(format!(
            "--levels has {} level(s) for {} quasi-identifier(s); give one per --qi column, in order",
            levels.len(),
            o.qi.len()
        )));
    }
    for ((l, h), name) in levels.iter().zip(&heights).zip(&o.qi) {
        if l >= h {
            return Err(Error::Usage(format!(
                "--levels: {name} has levels 0..{} (its hierarchy has {h}), not {l}",
                h - 1
            )));
        }
    }
    let m = crate::kanon::measures(&data, &levels, o.k)
        .map_err(|e| Error::Usage(format!("{what}: {e}")))?;
    let loss = crate::kanon::entropy_loss(&data, &levels)
        .map_err(|e| Error::Usage(format!("{what}: {e}")))?;
    Ok(RiskReport {
        input: o.input.clone(),
        quasi_identifiers: o.qi.clone(),
        levels,
        k: o.k,
        measures: m,
        info_loss: loss,
        optimum: None,
    })
}
