//! Loader for ARX's "Adult" test data (30,162 records, ';'-separated, with
//! ARX's generalization hierarchies), used by the tests that compare our
//! figures with the ones ARX's own unit tests assert. Not test-only so that
//! the crate embedding this module can reuse it.

use std::path::{Path, PathBuf};

use super::dataset::{Dataset, DatasetBuilder};
use super::error::KanonError;
use super::hierarchy::Hierarchy;

/// The nine Adult columns, in file order.
pub const COLUMNS: [&str; 9] = [
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "occupation",
    "salary-class",
];

/// The data folder: `$ARX_ADULT_DIR`, else `../shared/data/arx_adult` beside the
/// project, else `/work/shared/data/arx_adult`.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ARX_ADULT_DIR") {
        return PathBuf::from(d);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/arx_adult");
    if beside.join("adult.csv").is_file() {
        return beside;
    }
    PathBuf::from("/work/shared/data/arx_adult")
}

fn read(path: &Path) -> Result<String, KanonError> {
    std::fs::read_to_string(path).map_err(|e| KanonError::Input {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The hierarchy file of a column. For native-country this is the
/// pre-2016 file ARX's expected figures were computed with.
pub fn hierarchy_path(dir: &Path, column: &str) -> PathBuf {
    if column == "native-country" {
        dir.join("adult_hierarchy_native-country.pre2016.csv")
    } else {
        dir.join(format!("adult_hierarchy_{column}.csv"))
    }
}

/// Loads all nine columns of `adult.csv` as quasi-identifiers with their
/// hierarchies. Returns the dataset and the column names.
pub fn load_adult(dir: &Path) -> Result<(Dataset, Vec<String>), KanonError> {
    load_adult_columns(dir, &COLUMNS)
}

/// Loads the given columns of `adult.csv` (in the given order) as
/// quasi-identifiers with their hierarchies.
pub fn load_adult_columns(
    dir: &Path,
    columns: &[&str],
) -> Result<(Dataset, Vec<String>), KanonError> {
    let path = dir.join("adult.csv");
    let text = read(&path)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let header: Vec<&str> = lines
        .next()
        .ok_or_else(|| KanonError::Input {
            path: path.display().to_string(),
            message: "empty file".into(),
        })?
        .split(';')
        .collect();
    let mut idx = Vec::with_capacity(columns.len());
    let mut hierarchies = Vec::with_capacity(columns.len());
    for &c in columns {
        let i = header
            .iter()
            .position(|h| *h == c)
            .ok_or_else(|| KanonError::Input {
                path: path.display().to_string(),
                message: format!("no column {c:?}"),
            })?;
        idx.push(i);
        let hp = hierarchy_path(dir, c);
        let h = Hierarchy::parse(&read(&hp)?, ';').map_err(|e| KanonError::Input {
            path: hp.display().to_string(),
            message: e.to_string(),
        })?;
        hierarchies.push(Some(h));
    }
    let names: Vec<String> = columns.iter().map(|s| s.to_string()).collect();
    let mut b = DatasetBuilder::new(names.clone(), hierarchies)?;
    let mut row = Vec::with_capacity(columns.len());
    for (n, line) in lines.enumerate() {
        if line.is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(';').collect();
        if cells.len() != header.len() {
            return Err(KanonError::Input {
                path: path.display().to_string(),
                message: format!(
                    "line {}: {} cells, header has {}",
                    n + 2,
                    cells.len(),
                    header.len()
                ),
            });
        }
        row.clear();
        row.extend(idx.iter().map(|&i| cells[i]));
        b.push_row(&row)?;
    }
    Ok((b.finish()?, names))
}

/// Minimal CSV reader for the expectation files: ',' separated, '"' quoting with "" escapes.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut chars = line.chars().peekable();
        while let Some(ch) = chars.next() {
            match ch {
                '"' if quoted && chars.peek() == Some(&'"') => {
                    cur.push('"');
                    chars.next();
                }
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        out.push(fields);
    }
    out
}

/// A level vector as ARX's tests print it: `[1, 0, 2]`.
pub fn parse_levels(s: &str) -> Vec<usize> {
    s.trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .map(|x| x.trim().parse().unwrap())
        .collect()
}

/// The rows of an expectation file of `dir` as column name -> value.
pub fn expectations(dir: &Path, file: &str) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    let mut rows = parse_csv(&text);
    if rows.is_empty() {
        return vec![];
    }
    let header = rows.remove(0);
    rows.into_iter()
        .map(|r| header.iter().cloned().zip(r).collect())
        .collect()
}
