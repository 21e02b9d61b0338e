//! k-anonymity: ARX's own figures on the Adult data (30 measures, 4 optima) through the
//! `risk` code path (CSV read by DataFusion, hierarchy files), the CLI's JSON contract and
//! errors, and enforcement in `run`: published tables k-anonymous, suppression within the
//! limit, the gate refusing a table that is not, an impossible k refused.

use std::path::PathBuf;
use std::sync::Arc;

use anonymizer::kanon::arx_adult;
use anonymizer::risk::{RiskOptions, risk};
use datafusion::arrow::array::StringArray;

use crate::common::*;

/// ARX's Adult folder (see `arx_adult::default_dir`).
fn adult_dir() -> PathBuf {
    let d = arx_adult::default_dir();
    assert!(
        d.join("adult.csv").is_file(),
        "ARX's Adult data not found in {}: set ARX_ADULT_DIR",
        d.display()
    );
    d
}

fn expectations(file: &str) -> Vec<std::collections::HashMap<String, String>> {
    arx_adult::expectations(&adult_dir(), file)
}

/// `risk` options for one expectation row: its quasi-identifiers with ARX's hierarchies,
/// and its k.
fn adult_options(row: &std::collections::HashMap<String, String>) -> RiskOptions {
    let qi: Vec<String> = row["quasi_identifiers"]
        .split('|')
        .map(String::from)
        .collect();
    let dir = adult_dir();
    RiskOptions {
        input: dir.join("adult.csv"),
        delimiter: b';',
        hierarchies: qi
            .iter()
            .map(|c| (c.clone(), arx_adult::hierarchy_path(&dir, c)))
            .collect(),
        qi,
        levels: None,
        k: row["k"].parse().unwrap(),
        max_suppression: 0.0,
        optimize: false,
    }
}

#[test]
fn arx_utility_figures_all_30() {
    let rows = expectations("arx_expected_utility.csv");
    assert_eq!(rows.len(), 30);
    for r in rows {
        let mut o = adult_options(&r);
        o.levels = Some(arx_adult::parse_levels(&r["levels"]));
        let got = risk(&o).unwrap();
        assert_eq!(got.measures.records, 30_162);
        let want: f64 = r["arx_expected"].parse().unwrap();
        let (name, value) = match r["metric"].as_str() {
            "AECS" => ("aecs", got.measures.aecs),
            "DM_monotonic" => (
                "discernibility_monotonic",
                got.measures.discernibility_monotonic,
            ),
            "DM_nonmonotonic" => ("discernibility", got.measures.discernibility),
            m => panic!("unknown metric {m}"),
        };
        assert!(
            (value - want).abs() <= want.abs() * 1e-12,
            "{name} at {}: {value} != ARX's {want}",
            r["levels"]
        );
    }
}

#[test]
fn arx_optima_all_4() {
    let rows = expectations("arx_expected_kanonymity_optimum.csv");
    assert_eq!(rows.len(), 4);
    for r in rows {
        let mut o = adult_options(&r);
        o.max_suppression = r["suppression_limit"].parse().unwrap();
        o.optimize = true;
        let got = risk(&o).unwrap();
        let setting = format!("k = {}, suppression {}", o.k, o.max_suppression);
        assert_eq!(
            got.levels,
            arx_adult::parse_levels(&r["arx_optimal_levels"]),
            "{setting}"
        );
        let want: f64 = r["arx_optimal_info_loss"].parse().unwrap();
        assert!(
            (got.info_loss - want).abs() <= want * 1e-9,
            "{setting}: {} != {want}",
            got.info_loss
        );
        let opt = got.optimum.unwrap();
        assert!(
            opt.records_suppressed as f64 <= o.max_suppression * 30_162.0,
            "{setting}"
        );
        assert!(
            (opt.nodes_checked as u128) < opt.lattice_size,
            "{setting}: the search enumerated the whole lattice"
        );
    }
}

fn adult_cli(extra: &[&str]) -> std::process::Output {
    adult_cli_on(&adult_dir().join("adult.csv"), extra)
}

/// `risk` on `input` (the Adult data, whole or in parts: `;`-separated CSV).
fn adult_cli_on(input: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<String> = vec![
        "risk".into(),
        "--input".into(),
        input.display().to_string(),
        "--delimiter".into(),
        ";".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli(&args, None)
}

#[test]
fn risk_cli_prints_the_contracted_json_keys() {
    let dir = adult_dir();
    let age = format!("age={}", dir.join("adult_hierarchy_age.csv").display());
    let o = adult_cli(&[
        "--qi",
        "age,sex",
        "--hierarchy",
        &age,
        "--levels",
        "1,0",
        "--k",
        "5",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "classes",
        "smallest_class",
        "records_below_k",
        "sample_uniques",
        "aecs",
        "discernibility_monotonic",
        "discernibility",
        "prosecutor_risk_max",
        "prosecutor_risk_avg",
    ] {
        assert!(v[key].is_number(), "{key}: {v}");
    }
    // Ages in 5-year bands (level 1) times two sexes: a handful of classes.
    assert_eq!(v["records"], 30_162);
    let classes = v["classes"].as_u64().unwrap();
    assert!((20..=40).contains(&classes), "{classes}");
    assert_eq!(
        v["prosecutor_risk_max"].as_f64().unwrap(),
        1.0 / v["smallest_class"].as_f64().unwrap()
    );
    // The table format has the same figures.
    let o = adult_cli(&["--qi", "age,sex", "--hierarchy", &age, "--levels", "1,0"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("classes") && l.ends_with(&format!(" {classes}"))),
        "{text}"
    );
}

#[test]
fn risk_cli_explains_bad_input() {
    let dir = adult_dir();
    let err = |o: std::process::Output| {
        assert_eq!(o.status.code(), Some(2));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = err(adult_cli(&["--qi", "agge"]));
    assert!(e.contains("no column 'agge' (did you mean 'age'?)"), "{e}");
    // A hierarchy that misses a value of the data: the column and row are named.
    let short = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(short.path(), "Male;*\n").unwrap();
    let sex = format!("sex={}", short.path().display());
    let e = err(adult_cli(&["--qi", "sex", "--hierarchy", &sex]));
    assert!(e.contains("sex") && e.contains("row"), "{e}");
    let age = format!("age={}", dir.join("adult_hierarchy_age.csv").display());
    let e = err(adult_cli(&[
        "--qi",
        "age",
        "--hierarchy",
        &age,
        "--levels",
        "9",
    ]));
    assert!(e.contains("age has levels 0..4"), "{e}");
    let e = err(adult_cli(&["--qi", "age,sex", "--levels", "0"]));
    assert!(e.contains("one per --qi column"), "{e}");
    let ragged = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ragged.path(), "Male;*\nFemale\n").unwrap();
    let sex = format!("sex={}", ragged.path().display());
    let e = err(adult_cli(&["--qi", "sex", "--hierarchy", &sex]));
    assert!(e.contains("ARX's format") && e.contains("line 2"), "{e}");
}

/// Classes of the published quasi-identifiers (all-null rows, suppressed, left out).
fn published_classes(run: &std::path::Path, qi: &[&str]) -> (Vec<u64>, u64) {
    let batches = read_table(&run.join("customers"));
    let cols: Vec<Vec<Option<String>>> = qi.iter().map(|q| column_strings(&batches, q)).collect();
    let mut classes: std::collections::HashMap<Vec<Option<String>>, u64> = Default::default();
    let mut suppressed = 0;
    for r in 0..cols[0].len() {
        let key: Vec<Option<String>> = cols.iter().map(|c| c[r].clone()).collect();
        if key.iter().all(Option::is_none) {
            suppressed += 1;
        } else {
            *classes.entry(key).or_default() += 1;
        }
    }
    (classes.into_values().collect(), suppressed)
}

const QI: [&str; 4] = ["country", "birth_date", "registered_at", "postal_code"];

#[test]
fn published_record_tables_are_k_anonymous_within_the_suppression_limit() {
    let (dir, _) = published_fixture();
    let run = anonymizer::publish::current_run(&dir.path().join("out")).unwrap();
    let (classes, suppressed) = published_classes(&run, &QI);
    assert!(!classes.is_empty());
    assert!(classes.iter().all(|n| *n >= 10), "{classes:?}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("_manifest.json")).unwrap()).unwrap();
    let ka = &manifest["tables"]["customers"]["k_anonymity"];
    assert_eq!(ka["k"], 10);
    assert_eq!(ka["records"], CUSTOMERS);
    assert_eq!(ka["records_suppressed"], suppressed);
    assert!(suppressed as f64 <= 0.05 * CUSTOMERS as f64, "{suppressed}");
    assert_eq!(ka["classes"], classes.len());
    assert_eq!(ka["level_names"].as_array().unwrap().len(), QI.len());
    let check = gate_check(&run, "k_anonymity");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("risk_report.json")).unwrap()).unwrap();
    assert_eq!(check["passed"], true);
    assert_eq!(check["figures"]["customers.records_suppressed"], suppressed);
    assert_eq!(
        check["figures"]["customers.smallest_class"],
        *classes.iter().min().unwrap()
    );
    assert!(
        report["risks"]["singling_out"]
            .as_str()
            .unwrap()
            .contains("table customers: smallest group"),
        "{report}"
    );
    // `risk` over the published folder (its own read, through DataFusion) counts the
    // same classes; the suppressed rows (every quasi-identifier null, i.e. `*`) are one
    // more class there, since `risk` does not know they were suppressed.
    let o = cli(
        &[
            "risk",
            "--input",
            run.join("customers").to_str().unwrap(),
            "--qi",
            &QI.join(","),
            "--k",
            "10",
            "--format",
            "json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let measured: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(measured["records"], CUSTOMERS);
    assert_eq!(
        measured["classes"],
        classes.len() + usize::from(suppressed > 0)
    );
    // Transactions declare no quasi-identifiers: untouched.
    assert!(manifest["tables"]["transactions"]["k_anonymity"].is_null());
    // The rewritten files keep the table's Parquet settings: no min/max for tokens.
    assert!(!column_statistics(&run.join("customers"), "customer_id"));
    assert!(column_statistics(&run.join("customers"), "country"));
}

#[test]
fn the_gate_refuses_a_record_table_that_is_not_k_anonymous() {
    let (dir, cfg) = published_fixture();
    let copy = dir.path().join("copy");
    copy_dir(
        &anonymizer::publish::current_run(&dir.path().join("out")).unwrap(),
        &copy,
    );
    // Give one customer a country of their own.
    let files = parquet_files(&copy.join("customers"));
    let (_, path) = files.iter().next().unwrap();
    let b = read_parquet(path);
    let b = datafusion::arrow::compute::concat_batches(&b[0].schema(), &b).unwrap();
    let mut countries = strings_of(b.column_by_name("country").unwrap());
    countries[0] = Some("Atlantis".into());
    let b = with_column(&b, "country", Arc::new(StringArray::from(countries)));
    write_parquet(path, &b);
    let o = cli(&["verify", copy.to_str().unwrap(), "--config", &cfg], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("table customers: 1 record(s) in 1 combination(s) of quasi-identifiers (country, birth_date, registered_at, postal_code) shared by fewer than k = 10 records"),
        "{err}"
    );
    assert!(!err.contains("Atlantis"), "{err}");
}

#[test]
fn an_impossible_k_is_refused_and_nothing_published() {
    let (dir, o) = run_with_policy_change(
        "k = 10\nmax_suppression = 0.05",
        "k = 1000\nmax_suppression = 0.0",
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("table customers: no generalization of its quasi-identifiers"),
        "{err}"
    );
    assert!(err.contains("nothing was published"), "{err}");
    assert!(!dir.path().join("out/current").exists());
}

#[test]
fn quasi_identifiers_need_a_k_anonymity_section() {
    let (dir, o) = run_with_policy_change("[k_anonymity]\nk = 10\nmax_suppression = 0.05", "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("no [k_anonymity] section"), "{err}");
    assert!(!dir.path().join("out/current").exists());
    let (_, o) = run_with_policy_change("max_suppression = 0.05", "max_suppression = 5");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("'max_suppression' must be a fraction"),
        "{err}"
    );
}

/// `risk --input` takes a folder or a glob as well as a file: a published table is a
/// folder of part files, and its classes span them. The adult data cut into three CSV
/// files measures exactly as the one file does.
#[test]
fn risk_cli_measures_a_folder_or_glob_of_files_as_one_table() {
    let dir = adult_dir();
    let text = std::fs::read_to_string(dir.join("adult.csv")).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let parts = tempfile::tempdir().unwrap();
    // Uneven cuts, so that no file is a third and a class is split across files.
    for (i, chunk) in [&rows[..7_001], &rows[7_001..19_000], &rows[19_000..]]
        .into_iter()
        .enumerate()
    {
        let mut body = format!("{header}\n");
        for r in chunk {
            body.push_str(r);
            body.push('\n');
        }
        std::fs::write(parts.path().join(format!("part-{i}.csv")), body).unwrap();
    }
    // Hidden files are skipped, as in a policy's input folder.
    std::fs::write(parts.path().join(".notes.csv"), "junk\n").unwrap();
    let age = format!("age={}", dir.join("adult_hierarchy_age.csv").display());
    let measure = |input: &std::path::Path| {
        let o = adult_cli_on(
            input,
            &[
                "--qi",
                "age,sex,race",
                "--hierarchy",
                &age,
                "--levels",
                "1,0,0",
                "--k",
                "5",
                "--format",
                "json",
            ],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v.as_object_mut().unwrap().remove("input");
        v
    };
    let whole = measure(&dir.join("adult.csv"));
    assert_eq!(whole["records"], 30_162);
    assert_eq!(measure(parts.path()), whole);
    assert_eq!(measure(&parts.path().join("part-*.csv")), whole);
    // One file alone is a different table: the test can tell.
    assert_ne!(measure(&parts.path().join("part-1.csv")), whole);

    let err = |input: &std::path::Path| {
        let o = adult_cli_on(input, &["--qi", "age"]);
        assert_eq!(o.status.code(), Some(2));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let empty = tempfile::tempdir().unwrap();
    let e = err(empty.path());
    assert!(e.contains("no *.parquet or *.csv file there"), "{e}");
    let e = err(&empty.path().join("missing.parquet"));
    assert!(e.contains("no such file"), "{e}");
    std::fs::write(parts.path().join("part-9.parquet"), b"").unwrap();
    let e = err(parts.path());
    assert!(e.contains("mixes Parquet and CSV files"), "{e}");
}

/// Found by an audit (2026-12-03): quasi-identifiers on the transactions table passed
/// with groups of 10 rows of one customer; a table of events may not declare them.
#[test]
fn quasi_identifiers_on_a_table_of_events_are_refused() {
    let (_dir, o) = run_with_policy_change(
        "input = \"export/transactions\"",
        "input = \"export/transactions\"\nquasi_identifiers = [\"country\"]",
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("table transactions: quasi_identifiers on a table of events"),
        "{err}"
    );
}

/// Found by the fourth audit (2026-12-04): times that differ below a second were one
/// value to `risk` (and to the run's k-anonymity and the gate), so 20 logins unique to
/// the millisecond were one class of 20.
#[test]
fn risk_tells_apart_times_that_differ_below_a_second() {
    use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMillisecondArray};
    let dir = tempfile::tempdir().unwrap();
    let at = 1_736_035_200_000i64; // 2025-01-05T00:00:00Z, in milliseconds
    let b = RecordBatch::try_from_iter(vec![
        (
            "country",
            std::sync::Arc::new(StringArray::from(vec!["DE"; 20])) as ArrayRef,
        ),
        (
            "login_at",
            std::sync::Arc::new(
                TimestampMillisecondArray::from_iter_values((0..20).map(|i| at + i))
                    .with_timezone("UTC"),
            ) as ArrayRef,
        ),
    ])
    .unwrap();
    let file = dir.path().join("logins.parquet");
    crate::common::write_parquet(&file, &b);
    let o = cli(
        &[
            "risk",
            "--input",
            file.to_str().unwrap(),
            "--qi",
            "country,login_at",
            "--k",
            "5",
            "--format",
            "json",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["sample_uniques"], 20, "{v}");
    assert_eq!(v["smallest_class"], 1, "{v}");
}
