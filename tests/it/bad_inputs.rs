//! The bad-input corpus: every way an export, a policy, a key, a requests file, a ledger
//! or an output folder can be wrong, each run through the real binary.
//!
//! Every case starts from a copy of the shared fixture whose output folder already
//! holds a good published run, breaks one thing, runs the command, and checks:
//! - the documented exit code (0 ok, 1 privacy check failed, 2 any other error);
//! - no panic, and the key nowhere in what was printed;
//! - on failure: `OUT/current` still names the same run, every published file is
//!   unchanged, and no staging folder is left behind;
//! - the message itself, pinned by a snapshot (`tests/it/snapshots/`), with the
//!   case's temporary folder written as `[DIR]`.
//!
//! Inputs are generated in code from the seeded fixture; nothing binary is committed.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, TimestampMicrosecondType};

use crate::common::*;

/// A good published run, made once; every case's `out/` starts as a copy of it.
fn good_output() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        run_to(&sample_policy(), &dir.path().join("out"), key()).unwrap();
        dir
    })
    .path()
}

/// Copies a folder, recreating symlinks as symlinks (`current`).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ft.is_dir() {
            copy_tree(&src, &dst);
        } else if e.file_name() != ".lock" {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// Every entry under `dir` (relative path -> symlink target or file bytes' length and
/// hash), for "nothing lost, nothing half-written".
fn state(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(d) else {
            return;
        };
        for e in rd {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.insert(
                    rel,
                    format!("-> {}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if ft.is_dir() {
                out.insert(rel.clone(), "dir".into());
                walk(base, &p, out);
            } else if e.file_name() != ".lock" {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(
                    rel,
                    format!("{} bytes {}", bytes.len(), blake3::hash(&bytes).to_hex()),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// One case: a private copy of the fixture with a good run published in `out/`.
struct Case {
    name: &'static str,
    dir: tempfile::TempDir,
    before: BTreeMap<String, String>,
}

impl Case {
    fn new(name: &'static str) -> Case {
        let dir = fixture_copy();
        copy_tree(&good_output().join("out"), &dir.path().join("out"));
        let before = state(&dir.path().join("out"));
        assert!(before.contains_key("current"));
        Case { name, dir, before }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn policy(&self) -> PathBuf {
        self.path("anonymizer.toml")
    }

    fn edit_policy(&self, f: impl FnOnce(String) -> String) {
        let text = std::fs::read_to_string(self.policy()).unwrap();
        let new = f(text.clone());
        assert_ne!(new, text, "{}: the edit changed nothing", self.name);
        std::fs::write(self.policy(), new).unwrap();
    }

    /// The Parquet files of one table of the export, sorted.
    fn files(&self, table: &str) -> Vec<PathBuf> {
        parquet_files(&self.path(&format!("export/{table}")))
            .into_values()
            .collect()
    }

    fn first(&self, table: &str) -> PathBuf {
        self.files(table).remove(0)
    }

    /// Rewrites the bytes of the first file of `table` through `f`.
    fn damage_first(&self, table: &str, f: impl FnOnce(&mut Vec<u8>)) {
        let file = self.first(table);
        let mut bytes = std::fs::read(&file).unwrap();
        f(&mut bytes);
        std::fs::write(&file, &bytes).unwrap();
    }

    /// Rewrites one Parquet file through `f` (one batch holding the whole file).
    fn rewrite(&self, file: &Path, f: impl FnOnce(RecordBatch) -> RecordBatch) {
        let batches = read_parquet(file);
        let schema = batches[0].schema();
        let all = datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap();
        write_parquet(file, &f(all));
    }

    /// Rewrites every Parquet file of `table` through `f`.
    fn rewrite_all(&self, table: &str, f: impl Fn(RecordBatch) -> RecordBatch) {
        for file in self.files(table) {
            self.rewrite(&file, &f);
        }
    }

    /// Replaces column `name` in every file of `table` by `f(column)` (whose type may
    /// differ).
    fn map_column(&self, table: &str, name: &str, f: impl Fn(&ArrayRef) -> ArrayRef) {
        self.rewrite_all(table, |b| {
            let new = f(b.column_by_name(name).unwrap());
            with_column(&b, name, new)
        });
    }

    /// Runs the binary in the case's folder with `ANONYMIZER_KEY` set to `key`.
    fn cli_with(
        &self,
        args: &[&str],
        key: Option<&str>,
        setup: impl FnOnce(&mut Command),
    ) -> Outcome {
        let mut c = Command::new(env!("CARGO_BIN_EXE_anonymizer"));
        c.args(args)
            .current_dir(self.dir.path())
            .env_remove("ANONYMIZER_KEY")
            .env_remove("ANONYMIZER_LOG")
            .env("RUST_BACKTRACE", "0");
        if let Some(k) = key {
            c.env("ANONYMIZER_KEY", k);
        }
        setup(&mut c);
        let o = c.output().unwrap();
        Outcome {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    fn cli(&self, args: &[&str], key: Option<&str>) -> Outcome {
        self.cli_with(args, key, |_| {})
    }

    /// `anonymizer --quiet run --config anonymizer.toml --threads 2 ARGS` with the test
    /// key.
    fn run(&self, args: &[&str]) -> Outcome {
        self.run_with(args, |_| {})
    }

    /// [`Case::run`], with `setup` applied to the command (environment, limits).
    fn run_with(&self, args: &[&str], setup: impl FnOnce(&mut Command)) -> Outcome {
        let mut all = vec![
            "--quiet",
            "run",
            "--config",
            "anonymizer.toml",
            "--threads",
            "2",
        ];
        all.extend_from_slice(args);
        self.cli_with(&all, Some(KEY_HEX), setup)
    }

    /// The checks every case makes; then the message is pinned.
    fn expect(&self, o: &Outcome, code: i32) {
        let name = self.name;
        let printed = format!("{}{}", o.stdout, o.stderr);
        assert!(
            !printed.contains("panicked") && !printed.contains("RUST_BACKTRACE"),
            "{name}: panic\n{printed}"
        );
        assert!(
            !printed.to_lowercase().contains(KEY_HEX),
            "{name}: the key was printed"
        );
        assert_eq!(o.code, Some(code), "{name}: exit code\n{printed}");
        let out = self.path("out");
        if code != 0 {
            assert_eq!(
                state(&out),
                self.before,
                "{name}: the published output changed or a staging folder was left"
            );
            assert!(!o.stderr.trim().is_empty(), "{name}: no message");
        }
        let dir = self.dir.path().to_string_lossy().into_owned();
        // A run that succeeds shows its report too: what it made of the odd input.
        let shown = if code == 0 {
            format!("{}{}", o.stdout, o.stderr)
        } else {
            o.stderr.clone()
        };
        let message = shown.replace(&dir, "[DIR]");
        insta::with_settings!({
            snapshot_suffix => name,
            prepend_module_to_snapshot => false,
            omit_expression => true,
            filters => vec![
                (r"\d{8}T\d{6,9}Z(-[0-9a-f]+)?", "[RUN-ID]"),
                (r"erase-[0-9A-Za-z:_-]+", "[REQUEST-ID]"),
            ],
        }, {
            insta::assert_snapshot!("bad_input", format!("exit code: {code}\n{message}"));
        });
    }
}

fn without_column(batch: &RecordBatch, name: &str) -> RecordBatch {
    let i = batch.schema().index_of(name).unwrap();
    let mut b = batch.clone();
    b.remove_column(i);
    b
}

/// Column `name` as strings, changed row by row by `f(row, value)`.
fn map_strings(
    batch: &RecordBatch,
    name: &str,
    f: impl Fn(usize, Option<&str>) -> Option<String>,
) -> RecordBatch {
    let col =
        datafusion::arrow::compute::cast(batch.column_by_name(name).unwrap(), &DataType::Utf8)
            .unwrap();
    let s = col.as_any().downcast_ref::<StringArray>().unwrap();
    let new: StringArray = (0..s.len())
        .map(|i| f(i, (!s.is_null(i)).then(|| s.value(i))))
        .collect();
    with_column(batch, name, Arc::new(new))
}

fn map_timestamps(
    batch: &RecordBatch,
    name: &str,
    f: impl Fn(usize, i64) -> Option<i64>,
) -> RecordBatch {
    let col = batch.column_by_name(name).unwrap();
    let t = col
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .unwrap();
    let new =
        TimestampMicrosecondArray::from((0..t.len()).map(|i| f(i, t.value(i))).collect::<Vec<_>>())
            .with_timezone("UTC");
    with_column(batch, name, Arc::new(new))
}

/// Microseconds since the epoch of midnight UTC on a date.
fn micros(y: i32, m: u32, d: u32) -> i64 {
    chrono::NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

// ---------------------------------------------------------------------------------
// Export files
// ---------------------------------------------------------------------------------

#[test]
fn truncated_parquet() {
    let c = Case::new("truncated_parquet");
    c.damage_first("transactions", |b| b.truncate(b.len() / 2));
    c.expect(&c.run(&[]), 2);
}

#[test]
fn truncated_parquet_footer_intact() {
    // The tail (footer and magic) kept, a chunk of the middle zeroed: the footer
    // parses, the pages do not.
    let c = Case::new("corrupt_pages");
    c.damage_first("transactions", |b| {
        let n = b.len();
        b[n / 4..n / 2].fill(0xAB);
    });
    c.expect(&c.run(&[]), 2);
}

/// Found by the damaged-Parquet sweep (2026-12-05): a footer whose metadata length is
/// longer than the file overflowed in DataFusion's footer reader (a panic in a debug
/// build). Refused in words before DataFusion opens the file.
#[test]
fn parquet_footer_longer_than_the_file() {
    let c = Case::new("footer_longer_than_the_file");
    c.damage_first("transactions", |b| {
        let n = b.len();
        b[n - 8..n - 4].copy_from_slice(&(n as u32).to_le_bytes());
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn corrupt_column_in_the_second_file_of_a_group() {
    // Small files are read in groups, one plan for consecutive files; the fixture's two
    // transactions files are one group. A column the input checks do not read (so only
    // the transform finds it) is damaged in the second file: the error names that file
    // and the row in it, not the group's first file.
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let c = Case::new("corrupt_column_second_file");
    let f = c.files("transactions").remove(1);
    let (start, len) = {
        let r = SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
        let g = r.metadata().row_group(0);
        let col = g
            .columns()
            .iter()
            .find(|c| c.column_path().string() == "ip_address")
            .unwrap();
        (
            col.data_page_offset() as usize,
            col.compressed_size() as usize,
        )
    };
    let mut bytes = std::fs::read(&f).unwrap();
    bytes[start + len / 2..start + len * 3 / 4].fill(0xAB);
    std::fs::write(&f, &bytes).unwrap();
    c.expect(&c.run(&[]), 2);
}

#[test]
fn not_parquet() {
    let c = Case::new("not_parquet");
    std::fs::write(c.first("customers"), "customer_id,email\n1,a@example.com\n").unwrap();
    c.expect(&c.run(&[]), 2);
}

#[test]
fn empty_file() {
    let c = Case::new("empty_file");
    std::fs::write(c.first("transactions"), "").unwrap();
    c.expect(&c.run(&[]), 2);
}

#[test]
fn zero_rows_in_every_file() {
    let c = Case::new("zero_rows");
    c.rewrite_all("transactions", |b| b.slice(0, 0));
    c.expect(&c.run(&[]), 2);
}

#[test]
fn zero_rows_in_one_file_is_fine() {
    let c = Case::new("zero_rows_one_file");
    c.rewrite(&c.first("transactions"), |b| b.slice(0, 0));
    c.expect(&c.run(&[]), 0);
}

#[test]
fn column_of_the_wrong_type() {
    // Event times exported as integers (microseconds) instead of timestamps.
    let c = Case::new("wrong_type_column");
    c.map_column("transactions", "transaction_at", |t| {
        let ints: Int64Array = t
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .collect();
        Arc::new(ints)
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn amounts_as_text_are_read_but_not_words() {
    let c = Case::new("amount_not_a_number");
    c.rewrite_all("transactions", |b| {
        map_strings(&b, "amount", |i, v| {
            if i == 6 {
                Some("12,50 EUR".into())
            } else {
                v.map(str::to_string)
            }
        })
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn files_of_one_table_disagree_on_a_type() {
    let c = Case::new("schema_differs_between_files");
    c.rewrite(&c.first("transactions"), |b| {
        let ids = b.column_by_name("customer_id").unwrap();
        let s = datafusion::arrow::compute::cast(ids, &DataType::Utf8).unwrap();
        with_column(&b, "customer_id", s)
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn missing_role_column() {
    let c = Case::new("missing_role_column");
    c.rewrite_all("transactions", |b| without_column(&b, "customer_id"));
    c.expect(&c.run(&[]), 2);
}

#[test]
fn unclassified_column() {
    let c = Case::new("unclassified_column");
    c.rewrite_all("customers", |b| {
        let nick = map_strings(&b, "first_name", |_, v| v.map(|s| format!("{s}y")));
        let col = nick.column_by_name("first_name").unwrap().clone();
        with_column(&b, "nickname", col)
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn null_customer_keys() {
    let c = Case::new("null_customer_keys");
    c.rewrite(&c.first("transactions"), |b| {
        let ids = b.column_by_name("customer_id").unwrap();
        let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
        let new: Int64Array = (0..ids.len())
            .map(|i| (i % 7 != 3).then(|| ids.value(i)))
            .collect();
        with_column(&b, "customer_id", Arc::new(new))
    });
    c.expect(&c.run(&[]), 0);
}

#[test]
fn duplicate_customer_ids() {
    let c = Case::new("duplicate_customer_ids");
    c.rewrite(&c.first("customers"), |b| {
        datafusion::arrow::compute::concat_batches(&b.schema(), &[b.slice(0, 5), b.clone()])
            .unwrap()
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn a_customer_repeated_in_another_file() {
    // The repeat check reads every customers file in one scan first; the error still
    // names the file and row where the customer comes again: the second file's row 4.
    let c = Case::new("customer_repeated_in_another_file");
    let [first, second] = &c.files("customers")[..] else {
        panic!("the fixture has two customers files")
    };
    let again = read_parquet(first)[0].slice(0, 1);
    c.rewrite(second, |b| {
        datafusion::arrow::compute::concat_batches(
            &b.schema(),
            &[b.slice(0, 3), again.clone(), b.slice(3, b.num_rows() - 3)],
        )
        .unwrap()
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn null_event_times() {
    let c = Case::new("null_event_times");
    c.rewrite(&c.first("transactions"), |b| {
        map_timestamps(&b, "transaction_at", |i, t| (i % 11 != 0).then_some(t))
    });
    c.expect(&c.run(&[]), 0);
}

#[test]
fn a_ten_megabyte_string() {
    let c = Case::new("ten_megabyte_string");
    c.rewrite(&c.first("customers"), |b| {
        map_strings(&b, "custom_answers", |i, v| {
            if i == 2 {
                let mut s = "I like the series. ".repeat(10 * 1024 * 1024 / 19);
                s.push_str("Mail me at long.text@example.com");
                Some(s)
            } else {
                v.map(str::to_string)
            }
        })
    });
    c.expect(&c.run(&[]), 0);
}

/// Free text built so that every identifier the scrubber replaces exposes another (the
/// `scrub` fuzz target's slow unit, distilled) is published as `[REMOVED]` after the
/// scrubber's rounds run out, in time linear in its length; the run says so, and the
/// privacy report counts it per column.
#[test]
fn free_text_that_does_not_settle() {
    let c = Case::new("free_text_that_does_not_settle");
    let link = "31db8::18::CB82WEST B8 2T BA30db8::18::CB82WEST B8 2T 2T ";
    let hostile = format!("Über {}BA2 T B8280:", link.repeat(300));
    c.rewrite(&c.first("customers"), |b| {
        map_strings(&b, "custom_answers", |i, v| {
            if i == 1 || i == 4 {
                Some(hostile.clone())
            } else {
                v.map(str::to_string)
            }
        })
    });
    let o = c.run(&[]);
    c.expect(&o, 0);
    let run_dir = c.path("out/current");
    let answers = column_strings(&read_table(&run_dir.join("customers")), "custom_answers");
    let removed = answers
        .iter()
        .filter(|a| a.as_deref() == Some(anonymizer::rules::scrub::REMOVED))
        .count();
    assert_eq!(removed, 2);
    let detectors = gate_check(&run_dir, "residual_pii_detectors");
    assert_eq!(
        detectors["figures"]["removed_whole.customers.custom_answers"],
        serde_json::json!(2),
        "{detectors}"
    );
}

#[test]
fn timestamps_in_year_1() {
    let c = Case::new("year_1");
    c.rewrite(&c.first("transactions"), |b| {
        map_timestamps(&b, "transaction_at", |i, t| {
            Some(if i == 4 { micros(1, 1, 1) } else { t })
        })
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn timestamps_in_year_9999() {
    let c = Case::new("year_9999");
    c.rewrite(&c.first("transactions"), |b| {
        map_timestamps(&b, "transaction_at", |i, t| {
            Some(if i == 4 { micros(9999, 12, 31) } else { t })
        })
    });
    c.expect(&c.run(&[]), 2);
}

/// Times past the calendar's range (about 262,000 years either way) have no date: the
/// check must not take "no date" for "no time" and let them through.
#[test]
fn timestamps_past_any_calendar() {
    for (name, far, args) in [
        ("year_past_max", i64::MAX, &[][..]),
        ("year_past_min", i64::MIN + 1, &[][..]),
        (
            "year_past_max_as_of",
            9_000_000_000_000_000_000,
            &["--as-of", "2025-12-31"][..],
        ),
    ] {
        let c = Case::new(name);
        c.rewrite(&c.first("transactions"), |b| {
            map_timestamps(&b, "transaction_at", |i, t| {
                Some(if i == 6 { far } else { t })
            })
        });
        c.expect(&c.run(args), 2);
    }
}

#[test]
fn unknown_offer_period() {
    let c = Case::new("unknown_offer_period");
    c.rewrite(&c.first("transactions"), |b| {
        map_strings(&b, "offer_period", |i, v| {
            if i == 9 {
                Some("fortnightly".into())
            } else {
                v.map(str::to_string)
            }
        })
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn negative_amounts() {
    let c = Case::new("negative_amounts");
    c.rewrite(&c.first("transactions"), |b| {
        let a = b.column_by_name("amount").unwrap();
        let a = a.as_any().downcast_ref::<Decimal128Array>().unwrap();
        let new = Decimal128Array::from(
            (0..a.len())
                .map(|i| Some(-a.value(i).abs()))
                .collect::<Vec<_>>(),
        )
        .with_precision_and_scale(a.precision(), a.scale())
        .unwrap();
        with_column(&b, "amount", Arc::new(new))
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn binary_where_text_is_expected() {
    let c = Case::new("binary_column");
    c.map_column("customers", "custom_answers", |s| {
        datafusion::arrow::compute::cast(s, &DataType::Binary).unwrap()
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn no_input_files() {
    let c = Case::new("no_input_files");
    for f in c.files("transactions") {
        std::fs::remove_file(f).unwrap();
    }
    c.expect(&c.run(&[]), 2);
}

// ---------------------------------------------------------------------------------
// CSV exports
// ---------------------------------------------------------------------------------

const CSV_POLICY: &str = r#"
output = "out"

[tables.sales]
input = "sales.csv"

[tables.sales.roles]
customer_key = "CustomerID"
event_time = "InvoiceDate"

[tables.sales.columns]
InvoiceNo = "pseudonymize"
InvoiceDate = { rule = "generalize", to = "week" }
CustomerID = "pseudonymize"
Notes = "scrub"
"#;

fn csv_case(name: &'static str, csv: &[u8]) -> Case {
    let c = Case::new(name);
    std::fs::write(c.path("sales.csv"), csv).unwrap();
    std::fs::write(c.policy(), CSV_POLICY).unwrap();
    // The good output was made with another policy; this one publishes to the same
    // folder, so a failure must still leave it alone.
    c
}

#[test]
fn csv_with_invalid_utf8() {
    let mut csv =
        b"InvoiceNo,InvoiceDate,CustomerID,Notes\n1,2011-12-01 08:26:00,17850,fine\n".to_vec();
    csv.extend_from_slice(b"2,2011-12-02 08:26:00,17851,caf\xe9 au lait\n");
    let c = csv_case("csv_invalid_utf8", &csv);
    c.expect(&c.run(&[]), 2);
}

/// Found by the fourth audit (2026-12-04): a CSV table whose only file holds its header
/// was refused for a rule's column type (an empty column is inferred as text), not for
/// having no rows.
#[test]
fn csv_with_a_header_only() {
    let c = csv_case(
        "csv_header_only",
        b"InvoiceNo,InvoiceDate,CustomerID,Notes\n",
    );
    c.expect(&c.run(&[]), 2);
}

#[test]
fn csv_with_ragged_rows() {
    let csv = b"InvoiceNo,InvoiceDate,CustomerID,Notes\n1,2011-12-01 08:26:00,17850,fine\n2,2011-12-02 08:26:00\n";
    let c = csv_case("csv_ragged_rows", csv);
    c.expect(&c.run(&[]), 2);
}

#[test]
fn csv_with_an_unparsable_timestamp() {
    let csv = b"InvoiceNo,InvoiceDate,CustomerID,Notes\n1,2011-12-01 08:26:00,17850,fine\n2,yesterday noon,17851,x\n";
    let c = csv_case("csv_bad_timestamp", csv);
    c.expect(&c.run(&[]), 2);
}

#[test]
fn csv_row_with_an_apostrophe_is_not_printed() {
    // Found by an audit (2026-12-03): a value past the rows the reader infers types from
    // fails to parse, and Arrow's error prints the whole row in quotes; an apostrophe in
    // it (O'Brien) ended the blanked part early and printed the rest of the row.
    let mut csv = String::from("InvoiceNo,InvoiceDate,CustomerID,Notes,Quantity\n");
    for i in 0..1500 {
        csv.push_str(&format!("{i},2011-12-01 08:26:00,{},fine,3\n", 17000 + i));
    }
    csv.push_str("1500,2011-12-02 08:26:00,18500,o'brien.john@example.com called from 203.0.113.77 about JOHN O'BRIEN,n/a\n");
    let c = csv_case("csv_row_with_apostrophe", csv.as_bytes());
    std::fs::write(c.policy(), format!("{CSV_POLICY}Quantity = \"keep\"\n")).unwrap();
    let o = c.run(&[]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    for leaked in ["brien", "example.com", "203.0.113", "called"] {
        assert!(!o.stderr.contains(leaked), "{leaked}: {}", o.stderr);
    }
}

// ---------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------

#[test]
fn policy_with_a_typo() {
    let c = Case::new("policy_typo");
    c.edit_policy(|t| {
        t.replace(
            "customer_id      = \"pseudonymize\"",
            "customer_id      = \"pseudonymise\"",
        )
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn policy_that_is_not_toml() {
    let c = Case::new("policy_not_toml");
    c.edit_policy(|t| t.replace("keep_runs = 5", "keep_runs = = 5"));
    c.expect(&c.run(&[]), 2);
}

#[test]
fn policy_file_missing() {
    let c = Case::new("policy_missing");
    std::fs::remove_file(c.policy()).unwrap();
    c.expect(&c.run(&[]), 2);
}

#[test]
fn rule_that_does_not_fit_its_column_type() {
    let c = Case::new("rule_type_mismatch");
    c.edit_policy(|t| {
        t.replace(
            "country          = \"keep\"",
            "country          = { rule = \"generalize\", to = \"month\" }",
        )
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn bad_as_of_date() {
    let c = Case::new("bad_as_of");
    c.expect(&c.run(&["--as-of", "2026-02-30"]), 2);
}

// ---------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------

#[test]
fn key_missing() {
    let c = Case::new("key_missing");
    let o = c.cli(&["--quiet", "run", "--config", "anonymizer.toml"], None);
    c.expect(&o, 2);
}

#[test]
fn key_empty() {
    let c = Case::new("key_empty");
    let o = c.cli(&["--quiet", "run", "--config", "anonymizer.toml"], Some(""));
    c.expect(&o, 2);
}

#[test]
fn key_too_short() {
    let c = Case::new("key_too_short");
    let o = c.cli(
        &["--quiet", "run", "--config", "anonymizer.toml"],
        Some(&KEY_HEX[..40]),
    );
    c.expect(&o, 2);
}

#[test]
fn key_not_hex() {
    let c = Case::new("key_not_hex");
    let k = format!("{}zz", &KEY_HEX[..62]);
    let o = c.cli(&["--quiet", "run", "--config", "anonymizer.toml"], Some(&k));
    assert!(!o.stderr.contains(&k[..62]));
    c.expect(&o, 2);
}

#[test]
fn key_file_readable_by_everyone() {
    let c = Case::new("key_file_world_readable");
    let kf = c.path("anonymizer.key");
    std::fs::write(&kf, format!("{KEY_HEX}\n")).unwrap();
    std::fs::set_permissions(&kf, std::fs::Permissions::from_mode(0o644)).unwrap();
    c.edit_policy(|t| {
        t.replace(
            "# key_file = \"anonymizer.key\"",
            "key_file = \"anonymizer.key\"",
        )
    });
    let o = c.cli(&["--quiet", "run", "--config", "anonymizer.toml"], None);
    c.expect(&o, 2);
}

#[test]
fn key_file_missing() {
    let c = Case::new("key_file_missing");
    c.edit_policy(|t| {
        t.replace(
            "# key_file = \"anonymizer.key\"",
            "key_file = \"anonymizer.key\"",
        )
    });
    let o = c.cli(&["--quiet", "run", "--config", "anonymizer.toml"], None);
    c.expect(&o, 2);
}

/// Found by an audit (2026-12-03): the key given as key_file's value was printed as the
/// path that could not be read, and a key pasted into the policy was quoted by TOML's
/// error. Every error the binary prints blanks runs of 32+ hex digits.
#[test]
fn key_pasted_into_the_policy() {
    let c = Case::new("key_as_key_file_value");
    c.edit_policy(|t| {
        t.replace(
            "# key_file = \"anonymizer.key\"",
            &format!("key_file = \"{KEY_HEX}\""),
        )
    });
    let o = c.cli(&["--quiet", "run", "--config", "anonymizer.toml"], None);
    c.expect(&o, 2);
    let c = Case::new("key_line_in_the_policy");
    c.edit_policy(|t| format!("{t}\n{KEY_HEX}\n"));
    let o = c.cli(&["--quiet", "run", "--config", "anonymizer.toml"], None);
    c.expect(&o, 2);
}

// ---------------------------------------------------------------------------------
// Erasure requests and the ledger
// ---------------------------------------------------------------------------------

/// One pending erasure request (JSON Lines), for an email the fixture does not hold.
const REQUEST: &[u8] = br#"{"request_id":"j1","email":"a@example.com","received_at":"2025-01-02","jurisdiction":"GDPR","kind":"anonymize","explained":true}"#;

fn with_erasure(c: &Case, requests: &str, body: &[u8]) {
    std::fs::write(c.path(requests), body).unwrap();
    enable_erasure(c, requests);
}

/// Uncomments the sample policy's `[erasure]` section, naming `requests`.
fn enable_erasure(c: &Case, requests: &str) {
    c.edit_policy(|t| {
        t.replace(
            "# [erasure]\n# requests = \"erasure-requests.jsonl\"   # pending requests; `anonymizer erase` appends here\n# ledger = \"erasure-ledger.json\"",
            &format!("[erasure]\nrequests = \"{requests}\"\nledger = \"state/erasure-ledger.json\""),
        )
    });
}

#[test]
fn requests_with_every_kind_of_bad_row() {
    let c = Case::new("requests_bad_rows");
    let csv = "\
request_id,email,received_at,jurisdiction,kind,explained,note
ok-1,Ana@Example.com,2025-01-10,GDPR,anonymize,true,
no-email,,2025-01-10,GDPR,anonymize,true,
bad-email,not-an-email,2025-01-10,GDPR,anonymize,true,
no-date,b@example.com,,GDPR,anonymize,true,
bad-date,c@example.com,2025-02-30,GDPR,anonymize,true,
future,d@example.com,2099-01-01,GDPR,anonymize,true,
bad-jurisdiction,e@example.com,2025-01-10,MARS,anonymize,true,
bad-kind,f@example.com,2025-01-10,GDPR,shred,true,
bad-explained,g@example.com,2025-01-10,GDPR,anonymize,perhaps,
ok-1,h@example.com,2025-01-10,GDPR,anonymize,true,
,i@example.com,2025-01-10,GDPR,anonymize,true,
too,many,fields,2025-01-10,GDPR,anonymize,true,x,y
";
    with_erasure(&c, "requests.csv", csv.as_bytes());
    let o = c.run(&[]);
    c.expect(&o, 0);
    // Every bad row is reported with its reason, none silently dropped.
    let receipts = read_table(
        &anonymizer::publish::current_run(&c.path("out"))
            .unwrap()
            .join("erasure_receipts"),
    );
    let status = column_strings(&receipts, "status");
    let invalid = status
        .iter()
        .filter(|s| s.as_deref() == Some("invalid"))
        .count();
    assert_eq!(invalid, 11, "{status:?}");
    let mut reasons: Vec<String> = column_strings(&receipts, "reason")
        .into_iter()
        .flatten()
        .collect();
    reasons.sort();
    insta::assert_snapshot!("bad_input_requests_reasons", reasons.join("\n"));
}

#[test]
fn requests_file_with_a_bad_header() {
    let c = Case::new("requests_bad_header");
    with_erasure(
        &c,
        "requests.csv",
        b"id,mail,when\n1,a@example.com,2025-01-01\n",
    );
    c.expect(&c.run(&[]), 2);
}

#[test]
fn requests_file_not_utf8() {
    let c = Case::new("requests_not_utf8");
    with_erasure(
        &c,
        "requests.csv",
        b"request_id,email,received_at\nr1,a@example.com,2025-01-01\nr2,caf\xe9@example.com,2025-01-01\n",
    );
    c.expect(&c.run(&[]), 2);
}

#[test]
fn requests_file_named_on_the_command_line_is_missing() {
    let c = Case::new("requests_missing");
    with_erasure(&c, "requests.csv", b"");
    c.expect(&c.run(&["--requests", "no-such-requests.csv"]), 2);
}

#[test]
fn unreadable_ledger() {
    let c = Case::new("ledger_unreadable");
    with_erasure(&c, "requests.jsonl", b"");
    std::fs::create_dir_all(c.path("state")).unwrap();
    std::fs::write(
        c.path("state/erasure-ledger.json"),
        "{\"version\": 1, \"key_id\":",
    )
    .unwrap();
    c.expect(&c.run(&[]), 2);
}

// ---------------------------------------------------------------------------------
// The output folder
// ---------------------------------------------------------------------------------

#[test]
fn output_folder_on_a_read_only_path() {
    // /proc refuses new folders even to root, so this holds for every user.
    let c = Case::new("output_read_only");
    c.expect(&c.run(&["--out", "/proc/anonymizer-test-out"]), 2);
}

#[test]
fn output_folder_is_a_file() {
    let c = Case::new("output_is_a_file");
    std::fs::write(c.path("not-a-folder"), "x").unwrap();
    c.expect(&c.run(&["--out", "not-a-folder"]), 2);
}

#[test]
fn current_is_not_a_symlink() {
    let c = Case::new("current_not_symlink");
    let out = c.path("out");
    std::fs::remove_file(out.join("current")).unwrap();
    std::fs::create_dir(out.join("current")).unwrap();
    let before = state(&out);
    let o = c.run(&[]);
    assert_eq!(state(&out), before);
    let c = Case { before, ..c };
    c.expect(&o, 2);
}

#[test]
fn output_locked_by_another_run() {
    let c = Case::new("output_locked");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(c.path("out/.lock"))
        .unwrap();
    // SAFETY: flock on an open descriptor we own.
    assert_eq!(
        unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&lock),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        },
        0
    );
    let o = c.run(&[]);
    drop(lock);
    c.expect(&o, 2);
}

#[test]
fn spill_dir_that_does_not_exist() {
    // Checked before any work: nothing staged, nothing published.
    let c = Case::new("spill_dir_missing");
    c.expect(&c.run(&["--spill-dir", "no-such-folder"]), 2);
}

#[test]
fn spill_dir_of_the_policy_that_does_not_exist() {
    // The policy's spill_dir is checked as the flag is, before any work, for `run` and
    // for `verify`; the error names the policy and the key.
    let c = Case::new("spill_dir_policy_missing");
    c.edit_policy(|t| {
        t.replace(
            "keep_runs = 5",
            "keep_runs = 5\nspill_dir = \"no-such-folder\"",
        )
    });
    c.expect(&c.run(&[]), 2);
    let o = c.cli(
        &["--quiet", "verify", "--config", "anonymizer.toml", "out"],
        Some(KEY_HEX),
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(
        o.stderr.contains("anonymizer.toml: spill_dir ")
            && o.stderr.contains("no-such-folder: No such file"),
        "{}",
        o.stderr
    );
    // The flag wins over the policy's folder: with an existing one the run goes through.
    let o = c.run(&["--spill-dir", "."]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
}

#[test]
fn spill_dir_that_is_a_file() {
    let c = Case::new("spill_dir_file");
    c.expect(&c.run(&["--spill-dir", "anonymizer.toml"]), 2);
    let o = c.cli(
        &[
            "--quiet",
            "verify",
            "--config",
            "anonymizer.toml",
            "--spill-dir",
            "anonymizer.toml",
        ],
        Some(KEY_HEX),
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("--spill-dir anonymizer.toml: not a folder"),
        "{}",
        o.stderr
    );
}

#[test]
fn spill_dir_holds_the_spill_and_changes_no_output() {
    // Transaction ids masked instead of pseudonymized: some 6,000 distinct output values
    // the by-value check fingerprints (tokens it does not). First a run as is; then with
    // a bound of 1,000 values (the smallest allowed), which makes the gate spill them,
    // and --spill-dir saying where. The spill's folder is made there and removed, and the
    // published files are byte for byte those of the first run.
    let c = Case::new("spill_dir_used");
    c.edit_policy(|t| {
        t.replace(
            "transaction_id      = \"pseudonymize\"",
            "transaction_id      = { rule = \"mask\", keep_last = 4 }",
        )
    });
    let digests = |run: &Path| {
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run.join("_manifest.json")).unwrap()).unwrap();
        let mut files: Vec<(String, String)> = m["tables"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|t| t["files"].as_array())
            .flatten()
            .map(|f| {
                (
                    f["path"].as_str().unwrap().to_string(),
                    f["sha256"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let current = c.path("out/current");
    let o = c.run(&[]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let first = digests(&current);
    assert!(first.len() > 4, "{first:?}");
    assert_eq!(
        gate_check(&current, "residual_pii_input_values")["figures"]["values_spilled"],
        0
    );

    c.edit_policy(|t| format!("{t}\n[verify]\nmax_values = 1000\n"));
    let spill = tempfile::tempdir().unwrap();
    let at = spill.path().to_str().unwrap();
    // Already there: a killed run's aggregate spill (its lock file free), which the run
    // removes, and a live run's (this process holds its lock), which it leaves.
    let killed = spill.path().join(".aggregate-spill-killed");
    std::fs::create_dir(&killed).unwrap();
    std::fs::write(killed.join(".lock"), b"").unwrap();
    std::fs::write(killed.join("part-00000"), vec![7u8; 4096]).unwrap();
    let live = anonymizer::fsutil::SpillFolder::new(spill.path(), ".verify-spill-").unwrap();
    let o = c.run_with(&["--spill-dir", at], |cmd| {
        cmd.env("ANONYMIZER_LOG", "anonymizer=debug");
    });
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(!killed.exists(), "{}", o.stderr);
    assert!(
        o.stderr
            .contains("removed the spill folder of an interrupted run"),
        "{}",
        o.stderr
    );
    assert!(live.path().is_dir());
    drop(live);
    // The gate's debug line saying where the values past the bound spill.
    let spill_line = |o: &Outcome| {
        o.stderr
            .lines()
            .find(|l| l.contains("past the by-value bound spill to disk"))
            .unwrap_or_else(|| panic!("the gate did not spill:\n{}", o.stderr))
            .to_string()
    };
    let line = spill_line(&o);
    assert!(line.contains(at), "spilled elsewhere: {line}");
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
    let figures = gate_check(&current, "residual_pii_input_values")["figures"].clone();
    assert!(
        figures["values_spilled"].as_u64().unwrap() > 1000,
        "{figures}"
    );
    assert!(figures["passes"].as_u64().unwrap() > 1, "{figures}");
    assert_eq!(digests(&current), first);

    // The same folder named by the policy's spill_dir (relative to the policy file)
    // instead of the flag: the gate spills there too, and the files are the same.
    let rel = "policy-spill";
    std::fs::create_dir(c.path(rel)).unwrap();
    c.edit_policy(|t| {
        t.replace(
            "keep_runs = 5",
            &format!("keep_runs = 5\nspill_dir = \"{rel}\""),
        )
    });
    let o = c.run_with(&[], |cmd| {
        cmd.env("ANONYMIZER_LOG", "anonymizer=debug");
    });
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let line = spill_line(&o);
    assert!(line.contains(rel), "spilled elsewhere: {line}");
    assert_eq!(std::fs::read_dir(c.path(rel)).unwrap().count(), 0);
    assert_eq!(digests(&current), first);
}

#[test]
fn disk_fills_up_mid_write() {
    // RLIMIT_FSIZE makes every write past 64 KiB fail (EFBIG) the way a full disk fails
    // it (ENOSPC): the first Parquet file of the run outgrows it halfway.
    let c = Case::new("disk_full");
    let o = c.run_with(&[], |cmd| {
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                let lim = libc::rlimit {
                    rlim_cur: 64 * 1024,
                    rlim_max: 64 * 1024,
                };
                if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    });
    // Which of the two files outgrows the limit first depends on the threads.
    let o = Outcome {
        stderr: regex::Regex::new(r"part-0000\d")
            .unwrap()
            .replace_all(&o.stderr, "part-0000N")
            .into_owned(),
        ..o
    };
    c.expect(&o, 2);
}

// ---------------------------------------------------------------------------------
// Other commands
// ---------------------------------------------------------------------------------

#[test]
fn query_unknown_saved_query() {
    let c = Case::new("query_unknown");
    let o = c.cli(
        &["query", "churn_by_planet", "--config", "anonymizer.toml"],
        None,
    );
    c.expect(&o, 2);
}

#[test]
fn query_bad_sql() {
    let c = Case::new("query_bad_sql");
    let o = c.cli(
        &[
            "query",
            "--config",
            "anonymizer.toml",
            "--sql",
            "SELEC count(*) FROM growth",
        ],
        None,
    );
    c.expect(&o, 2);
}

/// Damages the first published file of `table` through `damage` (the output's state the
/// case then expects unchanged is the damaged one), and queries `sql` over the output.
fn query_damaged(c: &mut Case, table: &str, damage: impl FnOnce(&Path), sql: &str) -> Outcome {
    let file = parquet_files(&c.path(&format!("out/current/{table}")))
        .into_values()
        .next()
        .unwrap();
    damage(&file);
    c.before = state(&c.path("out"));
    c.cli(
        &["query", "--config", "anonymizer.toml", "--sql", sql],
        None,
    )
}

/// A published file whose footer was damaged after the run (a disk, a copy): `query`
/// refuses it in words, naming the table and the file, before DataFusion opens it.
#[test]
fn query_a_published_file_with_a_damaged_footer() {
    let mut c = Case::new("query_damaged_footer");
    let damage = |file: &Path| {
        let mut bytes = std::fs::read(file).unwrap();
        let n = bytes.len();
        bytes[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(file, &bytes).unwrap();
    };
    let o = query_damaged(
        &mut c,
        "transactions",
        damage,
        "SELECT count(*) FROM transactions",
    );
    c.expect(&o, 2);
}

/// A published page the decoder panics on: `query` fails with exit 2 and names the file
/// (the scan is polled in DataFusion's tasks, where the panic is contained too: the
/// panic hook prints nothing).
#[test]
fn query_a_published_page_the_decoder_panics_on() {
    let mut c = Case::new("query_panicking_page");
    let mut name = String::new();
    let damage = |file: &Path| {
        name = file.file_name().unwrap().to_string_lossy().into_owned();
        damage_a_page_to_panic(file, "customer_id");
    };
    let sql = "SELECT count(DISTINCT customer_id) FROM transactions";
    let o = query_damaged(&mut c, "transactions", damage, sql);
    let printed = format!("{}{}", o.stdout, o.stderr);
    assert!(
        !printed.contains("this is a bug in anonymizer") && !printed.contains("RUST_BACKTRACE"),
        "{printed}"
    );
    assert_eq!(o.code, Some(2), "{printed}");
    assert!(
        o.stderr.starts_with("error: query failed: /")
            && o.stderr
                .contains(&format!("{name}: the file reader panicked on it (")),
        "{printed}"
    );
    assert!(!o.stderr.contains("a file reader panicked at"), "{printed}");
}

#[test]
fn verify_a_folder_without_tables() {
    let c = Case::new("verify_empty_folder");
    std::fs::create_dir(c.path("empty")).unwrap();
    let o = c.cli(
        &["verify", "empty", "--config", "anonymizer.toml"],
        Some(KEY_HEX),
    );
    c.expect(&o, 2);
}

#[test]
fn help_never_shows_the_key() {
    let c = Case::new("help");
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["erase", "--help"],
        &["verify", "--help"],
    ] {
        let o = c.cli(args, Some(KEY_HEX));
        assert_eq!(o.code, Some(0), "{args:?}");
        let printed = format!("{}{}", o.stdout, o.stderr).to_lowercase();
        assert!(!printed.contains(KEY_HEX), "{args:?} shows the key");
        assert!(
            !printed.contains(&KEY_HEX[..16]),
            "{args:?} shows part of the key"
        );
    }
}

#[test]
fn a_role_column_of_an_impossible_type() {
    // amount as true/false: neither a number nor text that could hold one.
    let c = Case::new("role_of_impossible_type");
    c.map_column("transactions", "amount", |a| {
        let a = a.as_primitive::<Decimal128Type>();
        let flags: datafusion::arrow::array::BooleanArray =
            a.iter().map(|v| v.map(|v| v > 1000)).collect();
        Arc::new(flags)
    });
    c.expect(&c.run(&[]), 2);
}

/// Event times exported as text (RFC 3339), dropped from the published table: read as
/// timestamps by the checks and the aggregates.
fn event_times_as_text(c: &Case, bad_row: Option<usize>) {
    c.edit_policy(|t| {
        t.replace(
            "transaction_at      = { rule = \"generalize\", to = \"day\" }",
            "transaction_at      = \"drop\"",
        )
    });
    c.map_column("transactions", "transaction_at", |t| {
        let t = t.as_primitive::<TimestampMicrosecondType>();
        let text: StringArray = (0..t.len())
            .map(|i| {
                if Some(i) == bad_row {
                    return Some("last tuesday".to_string());
                }
                let dt = chrono::DateTime::from_timestamp_micros(t.value(i)).unwrap();
                Some(dt.to_rfc3339())
            })
            .collect();
        Arc::new(text)
    });
}

#[test]
fn event_times_as_text_are_read_as_times() {
    let c = Case::new("event_time_text");
    event_times_as_text(&c, None);
    let o = c.run(&[]);
    c.expect(&o, 0);
    let m = std::fs::read_to_string(c.path("out/current/_manifest.json")).unwrap();
    assert!(m.contains("\"as_of\": \"2025-12-31\""), "{m}");
}

#[test]
fn an_event_time_as_text_that_is_no_time() {
    let c = Case::new("event_time_text_unparsable");
    event_times_as_text(&c, Some(3));
    c.expect(&c.run(&[]), 2);
}

#[test]
fn requests_file_named_by_the_policy_missing() {
    // Not an error (the first `anonymizer erase` creates the file), but said on every run.
    let c = Case::new("policy_requests_missing");
    enable_erasure(&c, "erasure-requets.jsonl");
    let o = c.run(&[]);
    c.expect(&o, 0);
    assert!(
        o.stderr.contains("attention: no erasure requests read"),
        "{}",
        o.stderr
    );
    let run = anonymizer::publish::current_run(&c.path("out")).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("_manifest.json")).unwrap()).unwrap();
    let missing = manifest["erasure"]["requests_file_missing"]
        .as_str()
        .unwrap();
    assert!(missing.ends_with("erasure-requets.jsonl"), "{missing}");
}

// ---------------------------------------------------------------------------------
// Found by a black-box audit (2026-12-03): each was published, printed a value, or
// failed unclearly before
// ---------------------------------------------------------------------------------

/// Column `name` of `batch` as Decimal128(p, s) built from `f(row)`.
fn decimal_column(n: usize, p: u8, s: i8, f: impl Fn(usize) -> Option<i128>) -> ArrayRef {
    Arc::new(
        Decimal128Array::from((0..n).map(f).collect::<Vec<_>>())
            .with_precision_and_scale(p, s)
            .unwrap(),
    )
}

#[test]
fn a_list_column_kept() {
    // A list of emails kept unchanged: the gate cannot look into lists, so `keep` on one
    // is refused before anything is read.
    let c = Case::new("list_column_kept");
    c.rewrite_all("customers", |b| {
        use datafusion::arrow::array::ListBuilder;
        use datafusion::arrow::array::StringBuilder;
        let emails = b
            .column_by_name("email")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let mut l = ListBuilder::new(StringBuilder::new());
        for e in emails.iter() {
            l.values().append_option(e);
            l.append(true);
        }
        with_column(&b, "contacts", Arc::new(l.finish()))
    });
    c.edit_policy(|t| {
        t.replace(
            "[tables.customers.columns]\n",
            "[tables.customers.columns]\ncontacts = \"keep\"\n",
        )
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn a_table_name_with_a_slash() {
    // It would have been written one folder down, where the gate did not look.
    let c = Case::new("table_name_with_a_slash");
    c.edit_policy(|t| {
        t.replace("[tables.customers]", "[tables.\"crm/customers\"]")
            .replace("[tables.customers.", "[tables.\"crm/customers\".")
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn an_id_kept_as_a_decimal() {
    // customer_id copied into a DECIMAL(18, 0) column and kept: the by-value check
    // compares it as the integer it prints as.
    let c = Case::new("id_kept_as_a_decimal");
    c.rewrite_all("transactions", |b| {
        let ids = b
            .column_by_name("customer_id")
            .unwrap()
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .clone();
        let dec = decimal_column(ids.len(), 18, 0, |i| {
            ids.is_valid(i).then(|| i128::from(ids.value(i)))
        });
        with_column(&b, "customer_ref", dec)
    });
    c.edit_policy(|t| {
        t.replace(
            "[tables.transactions.columns]\n",
            "[tables.transactions.columns]\ncustomer_ref = \"keep\"\n",
        )
    });
    c.expect(&c.run(&[]), 1);
}

#[test]
fn amounts_that_are_nan_or_too_large() {
    let c = Case::new("amount_nan");
    c.rewrite(&c.first("transactions"), |b| {
        let a = datafusion::arrow::compute::cast(
            b.column_by_name("amount").unwrap(),
            &DataType::Float64,
        )
        .unwrap();
        let a = a.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        let new: datafusion::arrow::array::Float64Array = (0..a.len())
            .map(|i| Some(if i == 11 { f64::NAN } else { a.value(i) }))
            .collect();
        with_column(&b, "amount", Arc::new(new))
    });
    for f in c.files("transactions").into_iter().skip(1) {
        c.rewrite(&f, |b| {
            let a = datafusion::arrow::compute::cast(
                b.column_by_name("amount").unwrap(),
                &DataType::Float64,
            )
            .unwrap();
            with_column(&b, "amount", a)
        });
    }
    c.expect(&c.run(&[]), 2);

    let c = Case::new("amount_too_large");
    let first = c.first("transactions");
    for f in c.files("transactions") {
        c.rewrite(&f, |b| {
            let a = b
                .column_by_name("amount")
                .unwrap()
                .as_primitive::<Decimal128Type>()
                .clone();
            let new = decimal_column(a.len(), 38, a.scale(), |i| {
                Some(if i == 5 && f == first {
                    7_731_773_177_317_731_773_177_317_731_773
                } else {
                    a.value(i)
                })
            });
            with_column(&b, "amount", new)
        });
    }
    let o = c.run(&[]);
    assert!(
        !o.stderr.contains("7731773"),
        "the amount was printed: {}",
        o.stderr
    );
    c.expect(&o, 2);
}

#[test]
fn no_transaction_is_a_payment() {
    // Types the aggregates do not know ("sale"): every subscription and revenue table
    // would have been empty, published with exit 0.
    let c = Case::new("no_payment_types");
    c.rewrite_all("transactions", |b| {
        map_strings(&b, "transaction_type", |_, v| {
            v.map(|s| {
                if s == "refund" {
                    s.to_string()
                } else {
                    "sale".into()
                }
            })
        })
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn some_transactions_of_another_type_are_reported() {
    let c = Case::new("other_transaction_types");
    c.rewrite_all("transactions", |b| {
        map_strings(&b, "transaction_type", |i, v| {
            if i % 10 == 3 {
                Some("trial".into())
            } else {
                v.map(str::to_string)
            }
        })
    });
    let o = c.cli(
        &[
            "run",
            "--config",
            "anonymizer.toml",
            "--threads",
            "2",
            "--out",
            "out2",
        ],
        Some(KEY_HEX),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        o.stderr.contains("row(s) have a transaction_type other than purchase, renewal, refund or chargeback (or none); the subscription, revenue and mrr figures leave them out"),
        "{}",
        o.stderr
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(c.path("out2/current/_manifest.json")).unwrap())
            .unwrap();
    assert!(
        manifest["rows_other_type"]["transactions"]
            .as_u64()
            .unwrap()
            > 0
    );
    // With JSON logs every stderr line is a JSON object, attention lines included.
    let o = c.cli(
        &[
            "--log-format",
            "json",
            "run",
            "--config",
            "anonymizer.toml",
            "--threads",
            "2",
            "--out",
            "out2",
        ],
        Some(KEY_HEX),
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let attention: Vec<serde_json::Value> = o
        .stderr
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .filter(|v| v["fields"]["message"] == "attention")
        .collect();
    assert!(
        attention.iter().any(|v| v["fields"]["attention"]
            .as_str()
            .unwrap()
            .contains("transaction_type other than")),
        "{}",
        o.stderr
    );
    assert!(attention.iter().all(|v| v["timestamp"].is_string()));
    // Errors and the gate's summary too: a run without its key (exit 2), and `verify`
    // failing on a table of emails (exit 1).
    let json_lines = |stderr: &str| -> Vec<serde_json::Value> {
        stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    };
    let o = c.cli(
        &["--log-format", "json", "run", "--config", "anonymizer.toml"],
        None,
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    let lines = json_lines(&o.stderr);
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR");
    assert_eq!(last["fields"]["exit_code"], 2);
    assert!(
        last["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("ANONYMIZER_KEY")
    );
    let emails = c.first("customers");
    std::fs::create_dir_all(c.path("published/people")).unwrap();
    std::fs::copy(&emails, c.path("published/people/part-00000.parquet")).unwrap();
    let o = c.cli(&["--log-format", "json", "verify", "published"], None);
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    let lines = json_lines(&o.stderr);
    assert!(lines.iter().any(|v| {
        v["fields"]["message"] == "privacy checks"
            && v["fields"]["summary"]
                .as_str()
                .unwrap()
                .contains("FAIL residual_pii_detectors")
    }));
    assert_eq!(lines.last().unwrap()["fields"]["exit_code"], 1);
}

#[test]
fn as_of_before_every_event() {
    let c = Case::new("as_of_before_every_event");
    c.expect(&c.run(&["--as-of", "1969-01-01"]), 2);
}

#[test]
fn csv_without_its_header_row() {
    // The first record's values would have been column names, printed in the error.
    let csv = b"1,2011-12-01 08:26:00,17850,ana@example.com\n2,2011-12-02 08:26:00,17851,x\n";
    let c = csv_case("csv_without_header", csv);
    let o = c.run(&[]);
    assert!(
        !o.stderr.contains("ana@example.com") && !o.stderr.contains("17850"),
        "{}",
        o.stderr
    );
    c.expect(&o, 2);
}

#[test]
fn csv_with_a_repeated_column() {
    let csv = b"InvoiceNo,InvoiceDate,CustomerID,Notes,Notes\n1,2011-12-01 08:26:00,17850,fine,x\n";
    let c = csv_case("csv_repeated_column", csv);
    c.expect(&c.run(&[]), 2);
}

#[test]
fn parquet_with_a_repeated_column() {
    // DataFusion kept one of the two, so the other went neither classified nor read.
    let c = Case::new("parquet_repeated_column");
    c.rewrite(&c.first("customers"), |b| {
        use datafusion::arrow::datatypes::{Field, Schema};
        let schema = b.schema();
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut cols = b.columns().to_vec();
        let i = schema.index_of("email").unwrap();
        fields.push(fields[i].clone());
        cols.push(cols[i].clone());
        RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap()
    });
    c.expect(&c.run(&[]), 2);
}

#[test]
fn verify_refuses_columns_and_folders_it_cannot_read() {
    let c = Case::new("verify_unreadable_column");
    // A published table with a struct column holding emails: a finding, exit 1.
    let dir = c.path("published");
    std::fs::create_dir_all(dir.join("people")).unwrap();
    let customers = read_parquet(&c.first("customers"));
    let emails = customers[0].column_by_name("email").unwrap().clone();
    let s = datafusion::arrow::array::StructArray::from(vec![(
        Arc::new(datafusion::arrow::datatypes::Field::new(
            "e",
            DataType::Utf8,
            true,
        )),
        emails,
    )]);
    let b = RecordBatch::try_from_iter(vec![("contact", Arc::new(s) as ArrayRef)]).unwrap();
    write_parquet(&dir.join("people/part-00000.parquet"), &b);
    c.expect(&c.cli(&["verify", "published"], None), 1);

    // A folder inside a table folder: not left unread, exit 2.
    let c = Case::new("verify_nested_folder");
    let dir = c.path("published");
    std::fs::create_dir_all(dir.join("crm/customers")).unwrap();
    std::fs::create_dir_all(dir.join("countries")).unwrap();
    let b = RecordBatch::try_from_iter(vec![(
        "country",
        Arc::new(StringArray::from(vec!["NL"])) as ArrayRef,
    )])
    .unwrap();
    write_parquet(&dir.join("crm/customers/part-00000.parquet"), &b);
    write_parquet(&dir.join("countries/part-00000.parquet"), &b);
    c.expect(&c.cli(&["verify", "published"], None), 2);
}

#[test]
fn erase_appends_safely_or_not_at_all() {
    let c = Case::new("erase_requests_file");
    // A JSON Lines file whose last line has no newline: the new request goes on its own.
    with_erasure(&c, "requests.jsonl", REQUEST);
    let erase = |args: &[&str]| {
        let mut all = vec![
            "erase",
            "--config",
            "anonymizer.toml",
            "--received",
            "2025-01-03",
        ];
        all.extend_from_slice(args);
        c.cli(&all, None)
    };
    let o = erase(&["--email", "b@example.com", "--request-id", "j2"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let text = std::fs::read_to_string(c.path("requests.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.ends_with('\n'));
    // What the run would reject is not written: a repeated id, an empty one, a quote.
    for (id, why) in [
        ("j2", "duplicate request_id"),
        ("", "missing request_id"),
        ("a\"b", "request_id may only contain"),
        // One the privacy gate would refuse in the published receipts (a phone number).
        ("12345678", "request_id has the shape of a phone number"),
    ] {
        let o = erase(&["--email", "c@example.com", "--request-id", id]);
        assert_eq!(o.code, Some(2), "{id}: {}", o.stderr);
        assert!(
            o.stderr.contains(why) && o.stderr.contains("nothing was written"),
            "{id}: {}",
            o.stderr
        );
        assert!(!o.stderr.contains("c@example.com"), "{}", o.stderr);
    }
    // Nor a date older than any erasure law (a typo for 2024).
    let o = c.cli(
        &[
            "erase",
            "--config",
            "anonymizer.toml",
            "--received",
            "0024-01-03",
            "--email",
            "c@example.com",
        ],
        None,
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(
        o.stderr.contains("received_at is before 2000-01-01")
            && o.stderr.contains("nothing was written"),
        "{}",
        o.stderr
    );
    assert_eq!(
        std::fs::read_to_string(c.path("requests.jsonl")).unwrap(),
        text
    );

    // A CSV file with its columns in another order (and no note): appended in that order.
    let csv = "email,request_id,received_at,jurisdiction,kind,explained\nx@example.com,c1,2025-01-01,GDPR,anonymize,true";
    std::fs::write(c.path("requests.csv"), csv).unwrap();
    c.edit_policy(|t| {
        t.replace(
            "requests = \"requests.jsonl\"",
            "requests = \"requests.csv\"",
        )
    });
    let o = erase(&["--email", "y@example.com", "--request-id", "c2"]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_eq!(
        std::fs::read_to_string(c.path("requests.csv")).unwrap(),
        format!("{csv}\n\"y@example.com\",\"c2\",2025-01-03,GDPR,anonymize,false\n")
    );
    let o = erase(&[
        "--email",
        "z@example.com",
        "--request-id",
        "c3",
        "--note",
        "called",
    ]);
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("has no note column"), "{}", o.stderr);
    // The run reads both requests as valid.
    let o = c.run(&[]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(!o.stderr.contains("invalid"), "{}", o.stderr);
}

#[test]
fn risk_refuses_a_repeated_quasi_identifier_and_suppression_without_optimize() {
    let c = Case::new("risk_arguments");
    let input = c.path("export/customers");
    let input = input.to_str().unwrap();
    // Usage errors (exit 2), each said as such.
    for (args, said) in [
        (&["--qi", "country,country"][..], "--qi names country twice"),
        (
            &["--qi", "country", "--max-suppression", "0.1"],
            "--optimize",
        ),
        (&["--qi", ""], "empty column name"),
        (&["--qi", ","], "empty column name"),
        (&["--qi", "country,"], "empty column name"),
        (
            &["--qi", "country", "--optimize", "--max-suppression", "-0.1"],
            "between 0 and 1",
        ),
    ] {
        let mut all = vec!["risk", "--input", input];
        all.extend_from_slice(args);
        let o = c.cli(&all, None);
        assert_eq!(o.code, Some(2), "{args:?}");
        assert!(o.stderr.contains(said), "{args:?}: {}", o.stderr);
    }
    // A CSV file with its header only: said so, not "the hierarchy is empty".
    std::fs::write(c.path("empty.csv"), "country,city\n").unwrap();
    let o = c.cli(&["risk", "--input", "empty.csv", "--qi", "country"], None);
    assert_eq!(o.code, Some(2));
    assert!(o.stderr.contains("no rows"), "{}", o.stderr);
}

#[test]
fn out_of_range_thread_counts_and_k_are_usage_errors() {
    let c = Case::new("threads_out_of_range");
    let o = c.cli(
        &["run", "--config", "anonymizer.toml", "--threads", "5000"],
        Some(KEY_HEX),
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(
        o.stderr.contains("use 0 (all cores) to 1024"),
        "{}",
        o.stderr
    );
    let o = c.cli(&["verify", "out/current", "--k", "0"], None);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
}

#[test]
fn a_failed_first_run_says_nothing_was_ever_published() {
    let c = Case::new("failed_first_run");
    c.edit_policy(|t| {
        t.replace(
            "email            = { rule = \"pseudonymize\", normalize = \"email\" }",
            "email            = \"keep\"",
        )
    });
    let o = c.cli(
        &["run", "--config", "anonymizer.toml", "--out", "fresh"],
        Some(KEY_HEX),
    );
    assert_eq!(o.code, Some(1), "{}", o.stderr);
    assert!(
        o.stderr.contains("no run has been published to fresh yet"),
        "{}",
        o.stderr
    );
    assert!(
        !o.stderr.contains("still points at the last good run"),
        "{}",
        o.stderr
    );
}

#[test]
fn a_network_that_is_one_per_customer() {
    // Each customer's login network is their own: generalized or not, it singles every
    // row of the customers table out, and the gate says so.
    let c = Case::new("network_one_per_customer");
    c.edit_policy(|t| {
        t.replace(
            "last_login_ip    = \"drop\"",
            "last_login_ip    = { rule = \"generalize\", to = \"network\" }",
        )
    });
    c.expect(&c.run(&[]), 1);
}

/// Pages with a CRC-32 in their header (parquet-mr, Spark, Hive and pyarrow write them)
/// are checked against it wherever a file is read: a byte changed after writing, which
/// would still decode (an uncompressed, plain-encoded label), stops the run with exit 2
/// and names the file, whether the transform reads the column or only the gate's input
/// lookup does (a dropped column). The intact file runs. (`tests/data/crc/make.py`
/// wrote both files.)
#[test]
fn a_page_whose_checksum_does_not_match_stops_the_run() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/crc");
    let dir = tempfile::tempdir().unwrap();
    let run = |file: &str, label: &str| {
        let policy = dir.path().join(format!("{file}-{label}.toml"));
        std::fs::write(
            &policy,
            format!(
                "output = \"out-{file}-{label}\"\n\n[tables.labels]\ninput = \"{}\"\n\n\
                 [tables.labels.columns]\nid = \"pseudonymize\"\nlabel = \"{label}\"\n",
                data.join(file).display()
            ),
        )
        .unwrap();
        let o = cli(
            &["run", "--config", policy.to_str().unwrap()],
            Some(KEY_HEX),
        );
        let out = dir.path().join(format!("out-{file}-{label}"));
        (o, out.join("current").exists())
    };
    let (o, published) = run("good.parquet", "drop");
    assert!(
        o.status.success() && published,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for label in ["keep", "drop"] {
        let (o, published) = run("flipped.parquet", label);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{label}: {err}");
        assert!(!published, "{label}");
        assert!(
            err.contains("flipped.parquet")
                && err.contains("a page's CRC-32 checksum does not match its bytes")
                && !err.contains("lbbel"),
            "{label}: {err}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Damage swept over a file: many breakages, each run, none a panic
// ---------------------------------------------------------------------------------

/// What a swept run may do: fail with a message (2), fail the privacy checks (1), or
/// succeed (0: a flipped value that still decodes is just another value). Never panic in
/// anonymizer's code, never be killed (an abort on a huge allocation), never print the
/// key or any identifying value of the damaged file, and on failure leave the published
/// output as it was. A decoder of the input that panics on a damaged page (parquet-rs's
/// arithmetic, checked in this debug build) is the run's error, which names the damaged
/// file (`file`).
fn expect_no_panic(c: &Case, o: &Outcome, what: &str, values: &[String], file: &str) {
    let printed = format!("{}{}", o.stdout, o.stderr);
    assert!(
        !printed.contains("this is a bug in anonymizer") && !printed.contains("RUST_BACKTRACE"),
        "{what}: panic\n{printed}"
    );
    if printed.contains("panicked") {
        assert!(
            o.code == Some(2)
                && o.stderr.lines().any(|l| l.contains(&format!("{file}: "))
                    && l.contains("the file reader panicked on it (")),
            "{what}: a reader's panic not reported as the file's error\n{printed}"
        );
    }
    assert!(
        matches!(o.code, Some(0..=2)),
        "{what}: exit code {:?}\n{printed}",
        o.code
    );
    assert!(
        !printed.to_lowercase().contains(KEY_HEX),
        "{what}: the key was printed"
    );
    if let Some(v) = values.iter().find(|v| printed.contains(v.as_str())) {
        panic!("{what}: a value of the file was printed ({v:?})\n{printed}");
    }
    if o.code != Some(0) {
        assert_eq!(
            state(&c.path("out")),
            c.before,
            "{what}: the published output changed or a staging folder was left"
        );
        assert!(!o.stderr.trim().is_empty(), "{what}: no message");
    }
}

/// The values of a Parquet file's identifying text columns (more than 100 distinct
/// values: ids, emails, addresses, payment details; not an offer type such as
/// `subscription`, which a summary names as a word), those at least 6 bytes long.
fn text_values(file: &Path) -> Vec<String> {
    let batches = read_parquet(file);
    let mut out = std::collections::BTreeSet::new();
    for (i, field) in batches[0].schema().fields().iter().enumerate() {
        if field.data_type() != &DataType::Utf8 {
            continue;
        }
        let column: std::collections::BTreeSet<String> = batches
            .iter()
            .flat_map(|b| b.column(i).as_string::<i32>().iter().flatten())
            .filter(|v| v.len() >= 6)
            .map(String::from)
            .collect();
        if column.len() > 100 {
            out.extend(column);
        }
    }
    out.into_iter().collect()
}

/// Byte ranges of a Parquet file: each column chunk's pages, and the footer (the
/// thrift-encoded metadata, its 4-byte length, and the magic).
struct ParquetLayout {
    /// (start, end) of each column chunk, dictionary page included.
    chunks: Vec<(usize, usize)>,
    footer: (usize, usize),
}

fn parquet_layout(file: &Path) -> ParquetLayout {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let bytes = std::fs::read(file).unwrap();
    let n = bytes.len();
    let meta_len = u32::from_le_bytes(bytes[n - 8..n - 4].try_into().unwrap()) as usize;
    let r = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
    let mut chunks = Vec::new();
    for g in r.metadata().row_groups() {
        for c in g.columns() {
            let (start, len) = c.byte_range();
            chunks.push((start as usize, (start + len) as usize));
        }
    }
    ParquetLayout {
        chunks,
        footer: (n - 8 - meta_len, n),
    }
}

/// Every kind of damage a Parquet file of the export can come with, swept with a fixed
/// seed: cut short anywhere (in the magic, the pages, the footer), its footer length
/// wrong, bytes of its metadata flipped (so offsets, sizes, counts and types decode to
/// anything), the page headers of its column chunks flipped (sizes and value counts
/// that lie), and runs of page bytes overwritten. Each damaged copy is run through the
/// binary; [`expect_no_panic`] says what must hold. The snapshots above pin the
/// messages of the common cases; this finds the rare paths through the readers.
#[test]
fn damaged_parquet_sweep() {
    damage_sweep("transactions", 20261205);
}

/// [`damaged_parquet_sweep`] on the customers' file, whose names, phones and addresses
/// (dropped by the policy) only the privacy gate reads.
#[test]
fn damaged_customers_parquet_sweep() {
    damage_sweep("customers", 20261206);
}

/// A data page that makes the decoder panic, in the email column the erasure reads
/// before the transform does (the damage sweeps run without requests): the file's error
/// (exit 2, the file named), not a crash, and nothing published.
#[test]
fn a_page_the_decoder_panics_on_in_the_erasure_scan() {
    let c = Case::new("panicking_page_erasure");
    let file = c.first("customers");
    let values = text_values(&file);
    damage_a_page_to_panic(&file, "email");
    with_erasure(&c, "requests.jsonl", REQUEST);
    let o = c.run(&[]);
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    expect_no_panic(&c, &o, "erasure scan", &values, &name);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(
        o.stderr.contains("the file reader panicked on it (")
            && o.stderr.contains("cannot read customer_id, email"),
        "{}",
        o.stderr
    );
}

fn damage_sweep(table: &str, seed: u64) {
    use rand::{Rng, SeedableRng};
    let base = Case::new("damaged_parquet_sweep");
    let file = base.first(table);
    let good = std::fs::read(&file).unwrap();
    let n = good.len();
    let layout = parquet_layout(&file);
    let values = text_values(&file);
    assert!(values.len() > 100, "the fixture's file holds text values");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(sweep_seed(seed));
    let scale = sweep_scale();

    let mut damages: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [
        0,
        3,
        4,
        7,
        100,
        n / 3,
        layout.footer.0,
        layout.footer.0 + 5,
        n - 9,
        n - 8,
        n - 5,
        n - 1,
    ] {
        damages.push((format!("cut to {cut} of {n} bytes"), good[..cut].to_vec()));
    }
    for len in [0u32, 1, (n - 8) as u32, n as u32, u32::MAX] {
        let mut b = good.clone();
        b[n - 8..n - 4].copy_from_slice(&len.to_le_bytes());
        damages.push((format!("footer length {len}"), b));
    }
    let (f0, f1) = (layout.footer.0, layout.footer.1 - 8);
    for i in 0..40 * scale {
        let mut b = good.clone();
        let at = rng.random_range(f0..f1);
        if i % 4 == 3 {
            // A run of 0xFF: thrift varints that do not end, lengths of 2^32 - 1.
            let end = (at + 4).min(f1);
            b[at..end].fill(0xFF);
            damages.push((format!("metadata bytes {at}..{end} set to 0xFF"), b));
        } else {
            let x = rng.random_range(1..=255u8);
            b[at] ^= x;
            damages.push((format!("metadata byte {at} xor {x:#04x}"), b));
        }
    }
    for _ in 0..16 * scale {
        let (s, e) = layout.chunks[rng.random_range(0..layout.chunks.len())];
        let at = s + rng.random_range(0..(e - s).min(24));
        let x = rng.random_range(1..=255u8);
        let mut b = good.clone();
        b[at] ^= x;
        damages.push((
            format!("page header byte {at} (chunk at {s}) xor {x:#04x}"),
            b,
        ));
    }
    for _ in 0..8 * scale {
        let (s, e) = layout.chunks[rng.random_range(0..layout.chunks.len())];
        let at = rng.random_range(s..e);
        let end = (at + 1 + rng.random_range(0..64)).min(e);
        let mut b = good.clone();
        b[at..end].fill(rng.random());
        damages.push((
            format!("page bytes {at}..{end} overwritten (chunk at {s})"),
            b,
        ));
    }

    let rel = file.strip_prefix(base.dir.path()).unwrap().to_path_buf();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let mut codes = BTreeMap::new();
    for (what, bytes) in &damages {
        // A case of its own each: a run that succeeds publishes, and the next must
        // start from the same output.
        let c = Case::new("damaged_parquet_sweep");
        std::fs::write(c.dir.path().join(&rel), bytes).unwrap();
        // With a pending request, so that the erasure's scans (which read the ids and
        // emails before the transform) meet the damage too.
        with_erasure(&c, "requests.jsonl", REQUEST);
        let o = c.run(&[]);
        expect_no_panic(&c, &o, what, &values, &name);
        *codes.entry(o.code).or_insert(0) += 1;
    }
    // Most damage is found; none of it panics. (The counts are printed for whoever
    // changes the sweep.)
    eprintln!(
        "damaged_parquet_sweep of {table}: {} cases, exit codes {codes:?}",
        damages.len()
    );
    assert!(codes.get(&Some(2)).copied().unwrap_or(0) > damages.len() / 2);
}
