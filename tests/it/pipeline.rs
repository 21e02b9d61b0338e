//! The nightly run end to end on a generated export.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anonymizer::publish::{OutputDir, current_run};
use anonymizer::run::{FailPoint, RunOptions, RunSummary, run};
use datafusion::arrow::array::RecordBatch;
use sha2::{Digest, Sha256};

use crate::common::*;

/// Personal values of the input, from the columns that carry them.
fn personal_values() -> (HashSet<String>, HashSet<String>) {
    let export = fixture().join("export");
    let customers = read_table(&export.join("customers"));
    let transactions = read_table(&export.join("transactions"));
    // Values that must not appear in any output cell, not even as part of one.
    let mut contained = HashSet::new();
    // Values that must not be an output cell (short ones, e.g. first names, ids).
    let mut exact = HashSet::new();
    let mut add = |v: Option<String>| {
        if let Some(v) = v {
            let t = v.trim().to_string();
            if t.len() >= 6 {
                contained.insert(t.clone());
                contained.insert(t.to_lowercase());
            }
            exact.insert(t.to_lowercase());
            exact.insert(t);
        }
    };
    for c in [
        "email",
        "first_name",
        "last_name",
        "phone",
        "address_line",
        "last_login_ip",
        "customer_id",
    ] {
        column_strings(&customers, c).into_iter().for_each(&mut add);
    }
    for c in [
        "customer_email",
        "ip_address",
        "payment_details",
        "external_payment_id",
        "transaction_id",
        "subscription_id",
    ] {
        column_strings(&transactions, c)
            .into_iter()
            .for_each(&mut add);
    }
    // Free-text answers that embed an identifier must not survive verbatim.
    for a in column_strings(&customers, "custom_answers")
        .into_iter()
        .flatten()
    {
        if a.contains('@') || a.chars().filter(|c| c.is_ascii_digit()).count() >= 7 {
            contained.insert(a);
        }
    }
    (contained, exact)
}

#[test]
fn no_personal_data_survives() {
    let out = tempfile::tempdir().unwrap();
    let s = run_to(&sample_policy(), out.path(), key()).unwrap();
    let (contained, exact) = personal_values();
    assert!(
        contained.len() > 1000,
        "the fixture has personal data to find"
    );
    let cells = all_string_cells(&s.run_dir);
    assert!(cells.len() > 1000);
    // Substring scan of every cell against every personal value at once.
    let ac = aho_corasick::AhoCorasick::new(contained.iter()).unwrap();
    let mut leaks = Vec::new();
    for (col, v) in &cells {
        let lower = v.to_lowercase();
        if exact.contains(v) || exact.contains(&lower) || ac.is_match(v) || ac.is_match(&lower) {
            leaks.push(col.clone());
        }
    }
    assert!(
        leaks.is_empty(),
        "personal data in output columns: {:?}",
        leaks.iter().collect::<HashSet<_>>()
    );
    let manifest = std::fs::read_to_string(s.run_dir.join("_manifest.json")).unwrap();
    assert!(!ac.is_match(&manifest), "personal data in the manifest");
    assert!(!manifest.contains(KEY_HEX), "the key is in the manifest");
    assert!(manifest.contains(&key().id()));
}

#[test]
fn outputs_are_deterministic_and_keyed() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let c = tempfile::tempdir().unwrap();
    let ra = run_to(&sample_policy(), a.path(), key()).unwrap();
    // Single-threaded vs parallel: the same bytes.
    let rb = run(&RunOptions {
        config: sample_policy(),
        out: Some(b.path().to_path_buf()),
        key: Some(key()),
        threads: Some(1),
        ..Default::default()
    })
    .unwrap();
    let fa = parquet_files(&ra.run_dir);
    let fb = parquet_files(&rb.run_dir);
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    assert!(fa.len() >= 4);
    for (rel, p) in &fa {
        assert_eq!(
            std::fs::read(p).unwrap(),
            std::fs::read(&fb[rel]).unwrap(),
            "{rel} differs between runs"
        );
    }
    assert_eq!(ra.manifest.as_of, rb.manifest.as_of);

    let rc = run_to(&sample_policy(), c.path(), other_key()).unwrap();
    let ta = column_strings(&read_table(&ra.run_dir.join("customers")), "customer_id");
    let tc = column_strings(&read_table(&rc.run_dir.join("customers")), "customer_id");
    assert_eq!(ta.len(), tc.len());
    assert!(
        ta.iter().zip(&tc).all(|(x, y)| x != y),
        "a different key must give different tokens"
    );
    assert_ne!(ra.manifest.key_id, rc.manifest.key_id);
}

#[test]
fn joins_survive_pseudonymization() {
    let out = tempfile::tempdir().unwrap();
    let s = run_to(&sample_policy(), out.path(), key()).unwrap();
    let cust = read_table(&s.run_dir.join("customers"));
    let tx = read_table(&s.run_dir.join("transactions"));
    let ids = column_strings(&cust, "customer_id");
    let emails = column_strings(&cust, "email");
    let by_id: BTreeMap<_, _> = ids.iter().zip(&emails).collect();
    let tx_ids = column_strings(&tx, "customer_id");
    let tx_emails = column_strings(&tx, "customer_email");
    assert!(tx_ids.len() > CUSTOMERS as usize * 5);
    for (id, email) in tx_ids.iter().zip(&tx_emails) {
        let id = id
            .as_ref()
            .expect("generated transactions all have a customer");
        assert_eq!(id.len(), 32);
        // Every transaction's customer exists in the export, so it must join...
        let cust_email = by_id
            .get(&Some(id.clone()))
            .expect("transaction token joins to a customer");
        // ...and the email token (after trim + lowercase) matches the customer's.
        assert_eq!(*cust_email, email);
    }
}

#[test]
fn manifest_records_inputs_rows_and_stages() {
    let out = tempfile::tempdir().unwrap();
    let s = run_to(&sample_policy(), out.path(), key()).unwrap();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.run_dir.join("_manifest.json")).unwrap()).unwrap();
    for k in [
        "run_id",
        "as_of",
        "started_at",
        "finished_at",
        "tool_version",
        "policy_digest",
        "key_id",
        "inputs",
        "tables",
        "stages_ms",
    ] {
        assert!(m.get(k).is_some(), "manifest lacks {k}");
    }
    let inputs = m["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 4);
    for i in inputs {
        let p = i["path"].as_str().unwrap();
        let bytes = std::fs::read(p).unwrap();
        assert_eq!(i["bytes"].as_u64().unwrap(), bytes.len() as u64);
        assert_eq!(
            i["sha256"].as_str().unwrap(),
            hex::encode(Sha256::digest(&bytes))
        );
    }
    let input_rows: usize = read_table(&fixture().join("export/transactions"))
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(
        m["tables"]["transactions"]["rows_read"].as_u64().unwrap(),
        input_rows as u64
    );
    assert_eq!(
        m["tables"]["transactions"]["rows_written"]
            .as_u64()
            .unwrap(),
        input_rows as u64
    );
    for f in m["tables"]["customers"]["files"].as_array().unwrap() {
        let bytes = std::fs::read(s.run_dir.join(f["path"].as_str().unwrap())).unwrap();
        assert_eq!(
            f["sha256"].as_str().unwrap(),
            hex::encode(Sha256::digest(&bytes))
        );
    }
    for stage in ["validate", "transform", "hash_inputs", "publish"] {
        assert!(
            m["stages_ms"].get(stage).is_some(),
            "no time for stage {stage}"
        );
    }
    // as-of defaults to the latest transaction date.
    assert_eq!(m["as_of_source"], "latest transactions.transaction_at");
    // The output is what the policy promised: dropped columns are gone, Parquet is zstd.
    let cust = read_table(&s.run_dir.join("customers"));
    let schema = cust[0].schema();
    for gone in ["first_name", "last_name", "address_line", "city"] {
        assert!(
            schema.field_with_name(gone).is_err(),
            "{gone} was not dropped"
        );
    }
    let file = parquet_files(&s.run_dir.join("customers"))
        .into_values()
        .next()
        .unwrap();
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(file).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    let rg = reader.metadata().row_group(0);
    for c in rg.columns() {
        assert!(matches!(
            c.compression(),
            parquet::basic::Compression::ZSTD(_)
        ));
        // Token columns, generalized networks and scrubbed text have no min/max (they
        // would prune nothing); the others keep theirs.
        let name = c.column_path().string();
        let none = ["customer_id", "email", "last_login_ip", "custom_answers"];
        assert_eq!(
            c.statistics().is_none(),
            none.contains(&name.as_str()),
            "statistics of {name}"
        );
        if name == "country" {
            assert!(c.dictionary_page_offset().is_some(), "dictionary of {name}");
        }
    }
    assert!(
        rg.columns()
            .iter()
            .any(|c| c.column_path().string() == "country")
    );
}

fn current_of(out: &Path) -> std::path::PathBuf {
    current_run(out).expect("a current run")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn injected_failures_leave_the_previous_run_published() {
    let out = tempfile::tempdir().unwrap();
    let first = run_to(&sample_policy(), out.path(), key()).unwrap();
    assert_eq!(current_of(out.path()), first.run_dir);
    let before = entries(&out.path().join("runs"));
    for fp in [
        FailPoint::WhileWriting("transactions".into()),
        FailPoint::BeforePublish,
    ] {
        let err = run(&RunOptions {
            config: sample_policy(),
            out: Some(out.path().to_path_buf()),
            key: Some(key()),
            fail_point: Some(fp.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(err.exit_code(), anonymizer::ExitCode::Error, "{fp:?}");
        assert!(err.to_string().contains("injected failure"), "{err}");
        assert_eq!(
            current_of(out.path()),
            first.run_dir,
            "{fp:?} moved current"
        );
        assert_eq!(
            entries(&out.path().join("runs")),
            before,
            "{fp:?} left files behind"
        );
    }
    // A run killed between making its new link and renaming it over `current` leaves
    // `.current-<pid>`: the next run removes it, succeeds and moves current.
    #[cfg(unix)]
    std::os::unix::fs::symlink("runs/gone", out.path().join(".current-4242")).unwrap();
    let next = run_to(&sample_policy(), out.path(), key()).unwrap();
    assert_eq!(current_of(out.path()), next.run_dir);
    assert!(std::fs::symlink_metadata(out.path().join(".current-4242")).is_err());
}

#[test]
fn a_second_run_on_the_same_output_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let held = OutputDir::lock(out.path()).unwrap();
    let err = run_to(&sample_policy(), out.path(), key()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("another run is writing"), "{msg}");
    assert_eq!(err.exit_code(), anonymizer::ExitCode::Error);
    drop(held);
    run_to(&sample_policy(), out.path(), key()).unwrap();
}

#[test]
fn old_runs_are_pruned_but_current_kept() {
    let dir = fixture_copy();
    let policy = dir.path().join("anonymizer.toml");
    let text = std::fs::read_to_string(&policy)
        .unwrap()
        .replace("keep_runs = 5", "keep_runs = 2");
    std::fs::write(&policy, text).unwrap();
    let out = dir.path().join("out");
    let mut last = None;
    for _ in 0..3 {
        last = Some(run_to(&policy, &out, key()).unwrap());
    }
    let runs = entries(&out.join("runs"));
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(current_of(&out), last.unwrap().run_dir);
}

/// Every cell of a table's output as text, one sorted row per output row.
fn sorted_rows(dir: &Path) -> Vec<Vec<Option<String>>> {
    let batches: Vec<RecordBatch> = parquet_files(dir)
        .values()
        .flat_map(|f| read_parquet(f))
        .collect();
    let mut rows = Vec::new();
    for b in &batches {
        let cols: Vec<Vec<Option<String>>> = (0..b.num_columns())
            .map(|i| {
                let a = datafusion::arrow::compute::cast(
                    b.column(i),
                    &datafusion::arrow::datatypes::DataType::Utf8,
                )
                .unwrap();
                let a = a
                    .as_any()
                    .downcast_ref::<datafusion::arrow::array::StringArray>()
                    .unwrap();
                a.iter().map(|v| v.map(str::to_string)).collect()
            })
            .collect();
        for r in 0..b.num_rows() {
            rows.push(cols.iter().map(|c| c[r].clone()).collect());
        }
    }
    rows.sort();
    rows
}

/// An export of many small files (thousands, when a warehouse unloads in parallel; 40 per
/// table here) is read in groups of consecutive files, each group one plan and one output
/// file: the same rows and the same aggregates as the same export in two files, every
/// input file still recorded, and the same bytes on 1 and 2 threads.
#[test]
fn many_small_files_are_read_in_groups() {
    use anonymizer::generate::{GenerateOptions, generate};
    let dir = tempfile::tempdir().unwrap();
    let mut o = GenerateOptions::new(dir.path().join("export"), CUSTOMERS);
    o.seed = 7;
    o.files = 40;
    generate(&o).unwrap();
    let policy = dir.path().join("anonymizer.toml");
    std::fs::write(&policy, anonymizer::policy::SAMPLE_POLICY).unwrap();
    let many = run_to(&policy, &dir.path().join("out"), key()).unwrap();
    let few = run_to(&sample_policy(), &dir.path().join("few"), key()).unwrap();
    assert_eq!(many.manifest.inputs.len(), 80);
    for t in ["customers", "transactions"] {
        let (m, f) = (&many.manifest.tables[t], &few.manifest.tables[t]);
        assert!(m.files.len() < 40, "{t}: {} files", m.files.len());
        assert_eq!(m.rows_read, f.rows_read, "{t}");
        assert_eq!(m.rows_written, f.rows_written, "{t}");
        assert_eq!(
            sorted_rows(&many.run_dir.join(t)),
            sorted_rows(&few.run_dir.join(t)),
            "{t}"
        );
    }
    assert_same_aggregates(&many, &few);
    let one = run(&RunOptions {
        config: policy.clone(),
        out: Some(dir.path().join("one")),
        key: Some(key()),
        threads: Some(1),
        ..Default::default()
    })
    .unwrap();
    for (t, r) in &many.manifest.tables {
        let digests = |r: &anonymizer::manifest::TableReport| {
            r.files.iter().map(|f| f.sha256.clone()).collect::<Vec<_>>()
        };
        assert_eq!(digests(r), digests(&one.manifest.tables[t]), "{t}");
    }
}

/// `--threads` (else the policy's `threads`, 0 = every core) sizes every stage's
/// threads, the shared pool of the gate's and the erasure's scans included, not only the
/// transform's files.
#[test]
fn threads_cap_every_stage() {
    let dir = fixture_copy();
    let policy = dir.path().join("anonymizer.toml");
    let cfg = policy.to_str().unwrap();
    let started = |flags: &[&str]| -> String {
        let mut args = vec!["run", "--config", cfg];
        args.extend_from_slice(flags);
        let o = cli(&args, Some(KEY_HEX));
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{stderr}");
        stderr
            .lines()
            .find(|l| l.contains("run started"))
            .unwrap_or_else(|| panic!("no `run started` line in {stderr}"))
            .to_string()
    };
    let fields = |line: &str| {
        let field = |name: &str| -> usize {
            let at = line
                .find(&format!(" {name}="))
                .unwrap_or_else(|| panic!("{line}"));
            line[at + name.len() + 2..]
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        (field("threads"), field("shared_pool"))
    };
    // 3: neither this machine's nor CI's core count.
    assert_eq!(fields(&started(&["--threads", "1"])), (1, 1));
    assert_eq!(fields(&started(&["--threads", "3"])), (3, 3));
    // The policy's `threads` when the command line gives none; the flag's 0 is every core.
    let text = std::fs::read_to_string(&policy).unwrap();
    std::fs::write(&policy, format!("threads = 1\n{text}")).unwrap();
    assert_eq!(fields(&started(&[])), (1, 1));
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(fields(&started(&["--threads", "0"])), (cores, cores));

    // `verify --threads` too (its line is at debug level).
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_anonymizer"))
        .args(["verify", "--config", cfg, "--threads", "3"])
        .env("ANONYMIZER_KEY", KEY_HEX)
        .env("ANONYMIZER_LOG", "anonymizer=debug")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("verify started"))
        .unwrap_or_else(|| panic!("no `verify started` line in {stderr}"));
    assert_eq!(fields(line), (3, 3));
}

#[test]
fn cli_fails_closed_on_an_unclassified_column() {
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use std::sync::Arc;
    let dir = fixture_copy();
    let policy = dir.path().join("anonymizer.toml");
    let cfg = policy.to_str().unwrap();
    let ok = cli(&["run", "--config", cfg], Some(KEY_HEX));
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let out = dir.path().join("out");
    let published = current_of(&out);
    let runs_before = entries(&out.join("runs"));

    // Add a column the policy does not know to one customers file.
    let file = dir.path().join("export/customers/part-00000.parquet");
    let batches = read_parquet(&file);
    let schema = batches[0].schema();
    let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(datafusion::arrow::datatypes::Field::new(
        "shoe_size",
        datafusion::arrow::datatypes::DataType::Int64,
        true,
    )));
    let new_schema = Arc::new(datafusion::arrow::datatypes::Schema::new(fields));
    let mut w = parquet::arrow::ArrowWriter::try_new(
        std::fs::File::create(&file).unwrap(),
        new_schema.clone(),
        None,
    )
    .unwrap();
    for b in batches {
        let mut cols = b.columns().to_vec();
        cols.push(Arc::new(Int64Array::from(vec![42; b.num_rows()])));
        w.write(&RecordBatch::try_new(new_schema.clone(), cols).unwrap())
            .unwrap();
    }
    w.close().unwrap();
    // Every file of a table must agree, so change the other file too.
    let file1 = dir.path().join("export/customers/part-00001.parquet");
    std::fs::remove_file(&file1).unwrap();

    let bad = cli(&["run", "--config", cfg], Some(KEY_HEX));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("shoe_size") && stderr.contains("customers"),
        "{stderr}"
    );
    assert!(stderr.contains("no rule"), "{stderr}");
    assert_eq!(current_of(&out), published);
    assert_eq!(entries(&out.join("runs")), runs_before);
}

#[test]
fn demo_runs_end_to_end_and_explains_how_to_rerun() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let o = cli(
        &["demo", "--dir", d.to_str().unwrap(), "--customers", "200"],
        None,
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("Run it again") && stdout.contains("anonymizer run --config"),
        "{stdout}"
    );
    assert!(stdout.contains("transactions"), "{stdout}");
    let key = std::fs::read_to_string(d.join("demo.key")).unwrap();
    assert!(!stdout.contains(key.trim()), "the demo printed its key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("demo.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let first = current_of(&d.join("out"));
    // The printed rerun command works as printed (the key comes from the key file).
    let again = cli(
        &[
            "run",
            "--config",
            d.join("anonymizer.toml").to_str().unwrap(),
        ],
        None,
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let second = current_of(&d.join("out"));
    assert_ne!(first, second);
    let a = parquet_files(&first);
    let b = parquet_files(&second);
    for (rel, p) in &a {
        assert_eq!(
            std::fs::read(p).unwrap(),
            std::fs::read(&b[rel]).unwrap(),
            "rerun changed {rel}"
        );
    }
    // The demo again in the same folder keeps its key (the same tokens as before) and
    // a policy edited since (here a comment: nothing else changes).
    let policy = d.join("anonymizer.toml");
    let edited = std::fs::read_to_string(&policy).unwrap() + "\n# edited by the user\n";
    std::fs::write(&policy, &edited).unwrap();
    let o = cli(
        &["demo", "--dir", d.to_str().unwrap(), "--customers", "200"],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(d.join("demo.key")).unwrap(), key);
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), edited);
    let third = parquet_files(&current_of(&d.join("out")));
    for (rel, p) in &a {
        assert_eq!(
            std::fs::read(p).unwrap(),
            std::fs::read(&third[rel]).unwrap(),
            "the demo again changed {rel}"
        );
    }
}

/// Replaces the export's transactions by one file of `batches` in row groups of
/// `row_group_rows`.
fn rewrite_transactions(tx_dir: &Path, batches: &[RecordBatch], row_group_rows: usize) {
    for f in parquet_files(tx_dir).values() {
        std::fs::remove_file(f).unwrap();
    }
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group_rows))
        .build();
    let file = std::fs::File::create(tx_dir.join("all.parquet")).unwrap();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), Some(props)).unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
}

/// Runs `policy` on 1 and on 2 threads; checks that both publish the same transactions
/// files, byte for byte, and every input row once, in input order. Returns the files.
fn same_on_1_and_2_threads(
    dir: &Path,
    policy: &Path,
    batches: &[RecordBatch],
) -> (Vec<RunSummary>, BTreeMap<String, PathBuf>) {
    let runs: Vec<_> = [1, 2]
        .into_iter()
        .map(|threads| {
            run(&RunOptions {
                config: policy.to_path_buf(),
                out: Some(dir.join(format!("out{threads}"))),
                key: Some(key()),
                threads: Some(threads),
                ..Default::default()
            })
            .unwrap()
        })
        .collect();
    let a = parquet_files(&runs[0].run_dir.join("transactions"));
    let b = parquet_files(&runs[1].run_dir.join("transactions"));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (rel, p) in &a {
        assert_eq!(
            std::fs::read(p).unwrap(),
            std::fs::read(&b[rel]).unwrap(),
            "{rel}"
        );
    }
    let p = anonymizer::rules::pseudonymize::Pseudonymizer::new(&key(), None);
    let expected: Vec<_> = column_strings(batches, "transaction_id")
        .iter()
        .map(|v| {
            v.as_ref()
                .map(|v| p.token_str(v, anonymizer::rules::Normalize::Trim))
        })
        .collect();
    let out_ids = column_strings(
        &read_table(&runs[0].run_dir.join("transactions")),
        "transaction_id",
    );
    assert_eq!(out_ids, expected);
    (runs, a)
}

#[test]
fn a_file_of_many_row_groups_is_split_into_chunks_deterministically() {
    let dir = fixture_copy();
    // Rewrite the transactions as one file of five row groups, the rows repeated past
    // one batch (DataFusion only splits files of more rows than one batch).
    let tx_dir = dir.path().join("export/transactions");
    let once = read_table(&tx_dir);
    let once_rows: usize = once.iter().map(|b| b.num_rows()).sum();
    let times = anonymizer::input::BATCH_ROWS / once_rows + 2;
    let batches: Vec<_> = std::iter::repeat_n(once.iter(), times)
        .flatten()
        .cloned()
        .collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    rewrite_transactions(&tx_dir, &batches, rows / 5 + 1);
    let policy = dir.path().join("anonymizer.toml");
    let (runs, files) = same_on_1_and_2_threads(dir.path(), &policy, &batches);
    // Five equal byte ranges; each row group goes to the range holding its first page,
    // so a range may hold two row groups and another none (no file).
    assert!(
        files.len() >= 3,
        "the file was not split: {:?}",
        files.keys()
    );
    let t = &runs[0].manifest.tables["transactions"];
    assert_eq!(t.rows_read, Some(rows as u64));
    assert_eq!(t.rows_written, rows as u64);
}

#[test]
fn a_file_of_one_large_row_group_is_split_into_row_ranges_deterministically() {
    let dir = fixture_copy();
    // The transactions 25 times over as one file of one row group (more than the 131,072
    // rows a piece gets).
    let tx_dir = dir.path().join("export/transactions");
    let once = read_table(&tx_dir);
    let batches: Vec<_> = (0..25).flat_map(|_| once.iter().cloned()).collect();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert!(rows > 131_072, "{rows}");
    rewrite_transactions(&tx_dir, &batches, rows + 1);
    // Only the transactions' transform matters here: no aggregates.
    let policy = dir.path().join("anonymizer.toml");
    let text = std::fs::read_to_string(&policy).unwrap();
    let at = text.find("\n[analytics]").unwrap();
    std::fs::write(
        &policy,
        format!("{}\n[analytics]\ntables = []\n", &text[..at]),
    )
    .unwrap();
    let (runs, files) = same_on_1_and_2_threads(dir.path(), &policy, &batches);
    assert_eq!(files.len(), rows.div_ceil(131_072), "{:?}", files.keys());
    assert_eq!(
        runs[0].manifest.tables["transactions"].rows_written,
        rows as u64
    );
}

#[test]
fn bench_copy_writes_the_published_columns_unchanged() {
    let out = tempfile::tempdir().unwrap();
    let o = cli(
        &[
            "bench-copy",
            "--config",
            sample_policy().to_str().unwrap(),
            "--out",
            out.path().to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let customers = read_table(&out.path().join("customers"));
    let rows: usize = customers.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows as u64, CUSTOMERS);
    let schema = customers[0].schema();
    assert!(
        schema.field_with_name("first_name").is_err(),
        "dropped columns are not copied"
    );
    // Unchanged: the raw email, which `run` pseudonymizes.
    let emails = column_strings(&customers, "email");
    assert!(emails.iter().flatten().all(|e| e.contains('@')));
}

/// Found by an audit (2026-12-03): a folder above the export named like a glob
/// (`brack[1]`, `q?x`) matched no file, and a policy reached through `..` failed once
/// small files were read in groups (the object store refuses `..` segments).
#[test]
fn odd_folder_names_and_dot_dot_paths_are_read_as_they_are() {
    use anonymizer::generate::{GenerateOptions, generate};
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("exports [1] q?x *");
    let mut o = GenerateOptions::new(base.join("export"), 60);
    o.seed = 7;
    o.files = 6;
    generate(&o).unwrap();
    std::fs::write(
        base.join("anonymizer.toml"),
        anonymizer::policy::SAMPLE_POLICY,
    )
    .unwrap();
    let sub = base.join("jobs");
    std::fs::create_dir_all(&sub).unwrap();
    let cli_in = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_anonymizer"))
            .args(args)
            .current_dir(&sub)
            .env("ANONYMIZER_KEY", KEY_HEX)
            .env_remove("ANONYMIZER_LOG")
            .output()
            .unwrap()
    };
    let o = cli_in(&["run", "--config", "../anonymizer.toml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(base.join("out/current/_manifest.json")).unwrap())
            .unwrap();
    assert_eq!(s["tables"]["customers"]["rows_read"], 60);
    let o = cli_in(&[
        "query",
        "--config",
        "../anonymizer.toml",
        "--sql",
        "select count(*) as n from customers",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("60"));
    let o = cli_in(&["verify", "--config", "../anonymizer.toml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A glob input: only the input is a pattern, not the policy's folder.
    let globbed = anonymizer::policy::SAMPLE_POLICY.replacen(
        "input = \"export/transactions\"",
        "input = \"export/transactions/part-*.parquet\"",
        1,
    );
    assert_ne!(globbed, anonymizer::policy::SAMPLE_POLICY);
    std::fs::write(base.join("globbed.toml"), globbed).unwrap();
    let o = cli_in(&["run", "--config", "../globbed.toml"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// OUT/runs that is not a folder is named in the error (not OUT), before any work.
#[test]
fn a_runs_entry_that_is_a_file_is_named() {
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("runs"), b"").unwrap();
    let err = run_to(&sample_policy(), out.path(), key()).unwrap_err();
    assert_eq!(err.exit_code(), anonymizer::ExitCode::Error);
    let runs = out.path().join("runs");
    assert!(
        err.to_string()
            .contains(&format!("{}: cannot create", runs.display())),
        "{err}"
    );
}

/// A removal of older runs owed after an erasure (it failed, so the marker was left)
/// is done by the next run, which then clears the marker.
#[test]
fn an_owed_removal_of_older_runs_is_retried() {
    let out = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        run_to(&sample_policy(), out.path(), key()).unwrap();
    }
    let runs = || std::fs::read_dir(out.path().join("runs")).unwrap().count();
    assert_eq!(runs(), 2);
    let marker = out.path().join(anonymizer::publish::ERASED_RUNS_PENDING);
    std::fs::write(&marker, b"").unwrap();
    let s = run_to(&sample_policy(), out.path(), key()).unwrap();
    assert_eq!(runs(), 1);
    assert_eq!(current_of(out.path()), s.run_dir);
    assert!(!marker.exists());
    // Without an owed removal, keep_runs applies again.
    run_to(&sample_policy(), out.path(), key()).unwrap();
    assert_eq!(runs(), 2);
}

/// Found by audits (2026-12-03): files of one table that differ only in Arrow's hints
/// were refused or failed: a text column one writer hinted as a dictionary (a pandas
/// `category`) and another did not ("Dictionary(Int32, Utf8) here but Utf8View in the
/// first file"), and a column one file declares required holding nulls in another file
/// read in the same group ("declared as non-nullable but contains null values"). Both
/// now read as the table: text, nullable.
#[test]
fn files_that_differ_only_in_arrow_hints_read_as_one_table() {
    use datafusion::arrow::datatypes::DataType;
    let dir = fixture_copy();
    let files = parquet_files(&dir.path().join("export/transactions"));
    assert!(files.len() > 1);
    let last = files.values().last().unwrap();
    let b = datafusion::arrow::compute::concat_batches(
        &read_parquet(last)[0].schema(),
        &read_parquet(last),
    )
    .unwrap();
    let dictionary = datafusion::arrow::compute::cast(
        b.column_by_name("country").unwrap(),
        &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
    )
    .unwrap();
    let mut b = with_column(&b, "country", dictionary);
    // And the first row's optional-looking payment method null in a file whose
    // schema says every column may be null, where the others say it may not.
    let pm = b.column_by_name("payment_method").unwrap().clone();
    let mut v: Vec<Option<String>> = strings_of(&pm);
    v[0] = None;
    b = with_column(
        &b,
        "payment_method",
        std::sync::Arc::new(datafusion::arrow::array::StringArray::from(v)),
    );
    let order: Vec<_> = read_parquet(files.values().next().unwrap())[0]
        .schema()
        .fields()
        .iter()
        .map(|f| b.column_by_name(f.name()).unwrap().clone())
        .collect();
    let schema = datafusion::arrow::datatypes::Schema::new(
        read_parquet(files.values().next().unwrap())[0]
            .schema()
            .fields()
            .iter()
            .zip(&order)
            .map(|(f, c)| {
                f.as_ref()
                    .clone()
                    .with_data_type(c.data_type().clone())
                    .with_nullable(true)
            })
            .collect::<Vec<_>>(),
    );
    let b = RecordBatch::try_new(std::sync::Arc::new(schema), order).unwrap();
    std::fs::remove_file(last).unwrap();
    write_parquet(last, &b);
    let cfg = dir.path().join("anonymizer.toml");
    let s = run_to(&cfg, &dir.path().join("out"), key()).unwrap();
    let mut countries: Vec<Option<String>> =
        column_strings(&read_table(&s.run_dir.join("transactions")), "country");
    let mut want: Vec<Option<String>> = column_strings(
        &read_table(&fixture().join("export/transactions")),
        "country",
    );
    countries.sort();
    want.sort();
    assert_eq!(countries, want);
}

/// Found by an audit (2026-12-03): an amount exported as text (which the README accepts)
/// of 15000.00 or more failed the gate as a phone number (seven digits around a dot).
/// In the amount role's column a plain decimal number is money; elsewhere it is still
/// looked at.
#[test]
fn a_text_amount_of_seven_digits_is_not_a_phone_number() {
    use datafusion::arrow::datatypes::DataType;
    let dir = fixture_copy();
    for (i, file) in parquet_files(&dir.path().join("export/transactions"))
        .values()
        .enumerate()
    {
        let parts = read_parquet(file);
        let b = datafusion::arrow::compute::concat_batches(&parts[0].schema(), &parts).unwrap();
        let text =
            datafusion::arrow::compute::cast(b.column_by_name("amount").unwrap(), &DataType::Utf8)
                .unwrap();
        let mut v = strings_of(&text);
        if i == 0 {
            v[0] = Some("15000.00".into());
            v[1] = Some("1234567.5".into());
        }
        let b = with_column(
            &b,
            "amount",
            std::sync::Arc::new(datafusion::arrow::array::StringArray::from(v)),
        );
        std::fs::remove_file(file).unwrap();
        write_parquet(file, &b);
    }
    let cfg = dir.path().join("anonymizer.toml");
    let s = run_to(&cfg, &dir.path().join("out"), key()).unwrap();
    let amounts = column_strings(&read_table(&s.run_dir.join("transactions")), "amount");
    assert!(
        amounts.contains(&Some("15000.00".into())),
        "{:?}",
        &amounts[..3]
    );
}

/// Found by an audit (2026-12-03): a Date64 event time was published as a bare INT64
/// Parquet column, which readers other than Arrow's (DuckDB, Spark) see as milliseconds.
/// It is written as a Parquet DATE.
#[test]
fn a_date64_column_is_published_as_a_parquet_date() {
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    let dir = fixture_copy();
    for file in parquet_files(&dir.path().join("export/transactions")).values() {
        let parts = read_parquet(file);
        let b = datafusion::arrow::compute::concat_batches(&parts[0].schema(), &parts).unwrap();
        let t = b.column_by_name("transaction_at").unwrap();
        let t =
            datafusion::arrow::compute::cast(t, &DataType::Timestamp(TimeUnit::Millisecond, None))
                .unwrap();
        let d = datafusion::arrow::compute::cast(&t, &DataType::Date64).unwrap();
        let b = with_column(&b, "transaction_at", d);
        std::fs::remove_file(file).unwrap();
        write_parquet(file, &b);
    }
    let cfg = dir.path().join("anonymizer.toml");
    let s = run_to(&cfg, &dir.path().join("out"), key()).unwrap();
    let file = parquet_files(&s.run_dir.join("transactions"))
        .into_values()
        .next()
        .unwrap();
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(file).unwrap())
            .unwrap();
    use parquet::file::reader::FileReader;
    let schema = reader.metadata().file_metadata().schema_descr_ptr();
    let column = schema
        .columns()
        .iter()
        .find(|c| c.name() == "transaction_at")
        .unwrap()
        .clone();
    assert_eq!(column.physical_type(), parquet::basic::Type::INT32);
    assert_eq!(
        column.logical_type_ref(),
        Some(&parquet::basic::LogicalType::Date)
    );
}

/// The sample policy scrubs each customer's own name out of their answers
/// (`names = ["first_name", "last_name"]`): checked row by row against the input,
/// joined by the customer's token, with words split and compared independently of the
/// kernel.
#[test]
fn answers_lose_the_customers_own_name() {
    use anonymizer::rules::{Udfs, apply};
    use datafusion::common::ScalarValue;
    use std::collections::HashMap;

    let out = tempfile::tempdir().unwrap();
    let s = run_to(&sample_policy(), out.path(), key()).unwrap();
    let input = read_table(&fixture().join("export/customers"));
    let ids: Vec<datafusion::arrow::array::ArrayRef> = input
        .iter()
        .map(|b| b.column_by_name("customer_id").unwrap().clone())
        .collect();
    let ids =
        datafusion::arrow::compute::concat(&ids.iter().map(|a| a.as_ref()).collect::<Vec<_>>())
            .unwrap();
    let tokens = strings_of(
        &apply(
            &Udfs::new(&key()).pseudonymize,
            ids,
            vec![ScalarValue::from("none"), ScalarValue::Utf8(None)],
        )
        .unwrap(),
    );
    let published = read_table(&s.run_dir.join("customers"));
    let answer_of: HashMap<String, Option<String>> = column_strings(&published, "customer_id")
        .into_iter()
        .map(Option::unwrap)
        .zip(column_strings(&published, "custom_answers"))
        .collect();
    let words = |t: &str| -> HashSet<String> {
        t.split(|c: char| !c.is_alphabetic())
            .filter(|w| w.chars().count() >= 3)
            .map(str::to_lowercase)
            .collect()
    };
    let (first, last) = (
        column_strings(&input, "first_name"),
        column_strings(&input, "last_name"),
    );
    let mut named = 0;
    for (i, answer) in column_strings(&input, "custom_answers").iter().enumerate() {
        let Some(answer) = answer else { continue };
        let name: HashSet<String> = [&first[i], &last[i]]
            .into_iter()
            .flatten()
            .flat_map(|n| words(n))
            .filter(|w| !["van", "den", "der", "von"].contains(&w.as_str()))
            .collect();
        // Named in prose: a word between spaces and punctuation (the name in an email's
        // local part is the email's, which scrub replaces whole).
        let prose: HashSet<String> = answer
            .split_whitespace()
            .map(|w| {
                w.trim_matches(|c: char| ",.:;!?".contains(c))
                    .to_lowercase()
            })
            .collect();
        if prose.is_disjoint(&name) {
            continue;
        }
        named += 1;
        let got = answer_of[tokens[i].as_ref().unwrap()]
            .as_deref()
            .expect("a scrubbed answer stays");
        assert!(got.contains("[NAME]"), "row {i}: no [NAME] placeholder");
        assert!(
            words(got).is_disjoint(&name),
            "row {i}: a word of the customer's name survived scrubbing"
        );
    }
    assert!(named >= 10, "the fixture has answers with names ({named})");
}
