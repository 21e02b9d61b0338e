//! Shared fixtures: a small generated export (made once per test process), keys, and
//! readers for published Parquet that do not go through the code under test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use anonymizer::generate::{GenerateOptions, generate};
use anonymizer::key::{Key, KeySource};
use anonymizer::run::{RunOptions, RunSummary, run};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

pub const KEY_HEX: &str = "3c9f1a5e7b2d4c6f8e0a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f2a4b6c8d0e";
pub const OTHER_KEY_HEX: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f91";

pub fn key() -> Key {
    Key::from_hex(KEY_HEX, KeySource::Provided).unwrap()
}

pub fn other_key() -> Key {
    Key::from_hex(OTHER_KEY_HEX, KeySource::Provided).unwrap()
}

pub const CUSTOMERS: u64 = 300;

/// A generated export with the sample policy beside it, shared by all tests (read-only).
pub fn fixture() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut o = GenerateOptions::new(dir.path().join("export"), CUSTOMERS);
        o.seed = 7;
        o.files = 2;
        generate(&o).unwrap();
        std::fs::write(
            dir.path().join("anonymizer.toml"),
            anonymizer::policy::SAMPLE_POLICY,
        )
        .unwrap();
        dir
    })
    .path()
}

pub fn sample_policy() -> PathBuf {
    fixture().join("anonymizer.toml")
}

/// A private copy of the fixture (for tests that modify the export or the policy).
pub fn fixture_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(fixture(), dir.path());
    dir
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.path().is_dir() {
            if e.file_name() == "out" {
                continue;
            }
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// The four aggregate tables.
pub const AGGREGATES: [&str; 4] = [
    "subscriptions_monthly",
    "cohort_retention",
    "revenue_monthly",
    "mrr_monthly",
];

/// Two runs published byte-identical aggregate tables.
pub fn assert_same_aggregates(a: &RunSummary, b: &RunSummary) {
    for t in AGGREGATES {
        assert_eq!(
            a.manifest.tables[t].files[0].sha256, b.manifest.tables[t].files[0].sha256,
            "{t}"
        );
    }
}

pub fn run_to(config: &Path, out: &Path, key: Key) -> Result<RunSummary, anonymizer::Error> {
    run(&RunOptions {
        config: config.to_path_buf(),
        out: Some(out.to_path_buf()),
        key: Some(key),
        threads: Some(2),
        ..Default::default()
    })
}

/// Runs the binary with `ANONYMIZER_KEY` set to `key` (or unset).
pub fn cli(args: &[&str], key: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_anonymizer"));
    c.args(args)
        .env_remove("ANONYMIZER_KEY")
        .env_remove("ANONYMIZER_LOG");
    if let Some(k) = key {
        c.env("ANONYMIZER_KEY", k);
    }
    c.output().unwrap()
}

pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let f = std::fs::File::open(path).unwrap();
    ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect()
}

/// Every `*.parquet` file below `dir`, sorted, relative paths as keys.
pub fn parquet_files(dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, PathBuf>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.insert(
                    p.strip_prefix(base).unwrap().to_string_lossy().into_owned(),
                    p,
                );
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

/// All batches of a table folder.
pub fn read_table(dir: &Path) -> Vec<RecordBatch> {
    parquet_files(dir)
        .values()
        .flat_map(|p| read_parquet(p))
        .collect()
}

/// The values of one column as optional strings (any type, via an Arrow cast).
pub fn column_strings(batches: &[RecordBatch], name: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in batches {
        let col = b
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name}"));
        out.extend(strings_of(col));
    }
    out
}

pub fn strings_of(col: &ArrayRef) -> Vec<Option<String>> {
    let s = cast(col, &DataType::Utf8).unwrap();
    let s = s.as_string::<i32>();
    (0..s.len())
        .map(|i| (!s.is_null(i)).then(|| s.value(i).to_string()))
        .collect()
}

/// Every cell of every string-typed column of every table in a run folder.
pub fn all_string_cells(run_dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (rel, p) in parquet_files(run_dir) {
        for b in read_parquet(&p) {
            for (i, f) in b.schema().fields().iter().enumerate() {
                if matches!(
                    f.data_type(),
                    DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
                ) || matches!(f.data_type(), DataType::Dictionary(_, _))
                {
                    for v in strings_of(b.column(i)).into_iter().flatten() {
                        out.push((format!("{rel}:{}", f.name()), v));
                    }
                }
            }
        }
    }
    out
}

/// A private fixture copy published by the CLI (`anonymizer run`), and its policy's path.
pub fn published_fixture() -> (tempfile::TempDir, String) {
    let dir = fixture_copy();
    let cfg = dir
        .path()
        .join("anonymizer.toml")
        .to_str()
        .unwrap()
        .to_string();
    let o = cli(&["run", "--config", &cfg], Some(KEY_HEX));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (dir, cfg)
}

/// `batch` with column `name` replaced by `array` (whose type may differ), or added at
/// the end when there is no such column.
pub fn with_column(batch: &RecordBatch, name: &str, array: ArrayRef) -> RecordBatch {
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut cols = batch.columns().to_vec();
    let field = Field::new(name, array.data_type().clone(), true);
    match schema.index_of(name) {
        Ok(i) => {
            fields[i] = field;
            cols[i] = array;
        }
        Err(_) => {
            fields.push(field);
            cols.push(array);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
}

/// Writes one batch as a Parquet file (creating its folder): fixtures and hand edits.
pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let f = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// Runs the CLI on a private fixture copy whose policy line `from` is replaced by `to`.
pub fn run_with_policy_change(from: &str, to: &str) -> (tempfile::TempDir, std::process::Output) {
    let dir = fixture_copy();
    let policy = dir.path().join("anonymizer.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    assert!(text.contains(from), "{from}");
    std::fs::write(&policy, text.replacen(from, to, 1)).unwrap();
    let o = cli(
        &["run", "--config", policy.to_str().unwrap()],
        Some(KEY_HEX),
    );
    (dir, o)
}

/// One check of the privacy gate's `risk_report.json` in a run folder, by name.
pub fn gate_check(run_dir: &Path, name: &str) -> serde_json::Value {
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("risk_report.json")).unwrap()).unwrap();
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}"))
        .clone()
}

/// Whether every row group of every Parquet file under `dir` has min/max statistics for
/// `column`, or none has (panics on a mix).
pub fn column_statistics(dir: &Path, column: &str) -> bool {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut seen = vec![];
    for p in parquet_files(dir).values() {
        let r = SerializedFileReader::new(std::fs::File::open(p).unwrap()).unwrap();
        for rg in r.metadata().row_groups() {
            let c = rg
                .columns()
                .iter()
                .find(|c| c.column_path().string() == column);
            seen.push(c.expect("the column").statistics().is_some());
        }
    }
    assert!(
        !seen.is_empty() && seen.iter().all(|s| *s == seen[0]),
        "{column}: {seen:?}"
    );
    seen[0]
}

/// The sweeps' seed and size: `ANONYMIZER_SWEEP_SEED` (else the sweep's own) and
/// `ANONYMIZER_SWEEP_SCALE` (a multiple of the cases; default 1, what CI runs), for a
/// longer search by hand.
pub fn sweep_seed(default: u64) -> u64 {
    std::env::var("ANONYMIZER_SWEEP_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

pub fn sweep_scale() -> usize {
    std::env::var("ANONYMIZER_SWEEP_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// Rewrites `file` uncompressed (the writer's default, so that a damaged page reaches the
/// decoder as it is) and damages a data page of `column` so that parquet-rs's decoder
/// panics on it rather than failing ([`panicking_page_offset`]).
pub fn damage_a_page_to_panic(file: &Path, column: &str) {
    let batches = read_parquet(file);
    let all = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    write_parquet(file, &all);
    let at = panicking_page_offset(file, column);
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at..at + 12].fill(0xFF);
    std::fs::write(file, &bytes).unwrap();
}

/// The first offset in the data pages of `column` (row group 0) at which twelve bytes of
/// 0xFF make parquet-rs's decoder panic rather than fail (a run header longer than ten
/// bytes: `get_vlq_int`'s assertion), found by trying each offset in process. For a file
/// written uncompressed, whose pages' bytes reach the decoder as they are.
fn panicking_page_offset(file: &Path, column: &str) -> usize {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let good = std::fs::read(file).unwrap();
    let r = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
    let meta = r.metadata();
    let leaf = (0..meta.file_metadata().schema_descr().num_columns())
        .find(|&i| meta.file_metadata().schema_descr().column(i).name() == column)
        .unwrap();
    let chunk = meta.row_group(0).column(leaf);
    let (start, len) = chunk.byte_range();
    let from = chunk.data_page_offset() as usize;
    let end = (start + len) as usize;
    let scratch = tempfile::NamedTempFile::new().unwrap();
    for at in from..end - 12 {
        let mut bytes = good.clone();
        bytes[at..at + 12].fill(0xFF);
        std::fs::write(scratch.path(), &bytes).unwrap();
        let panicked = std::panic::catch_unwind(|| {
            let f = std::fs::File::open(scratch.path()).unwrap();
            let b = ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
            let mask = ProjectionMask::leaves(b.parquet_schema(), [leaf]);
            for batch in b.with_projection(mask).build().unwrap() {
                if batch.is_err() {
                    return;
                }
            }
        })
        .is_err();
        if panicked {
            return at;
        }
    }
    panic!("no offset in column {column}'s data pages makes the decoder panic");
}
