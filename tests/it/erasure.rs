//! Erasure requests: validation, matching, effect on the output, receipts, the ledger.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use anonymizer::rules::Normalize;
use anonymizer::rules::pseudonymize::Pseudonymizer;
use anonymizer::run::{RunOptions, RunSummary, run};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Date32Type;

use crate::common::*;

/// One customer of the fixture export.
#[derive(Debug, Clone)]
struct Person {
    id: String,
    email: String,
    first_name: String,
    last_name: String,
}

fn people() -> Vec<Person> {
    let b = read_table(&fixture().join("export/customers"));
    let col = |n| column_strings(&b, n);
    let (id, email, first, last) = (
        col("customer_id"),
        col("email"),
        col("first_name"),
        col("last_name"),
    );
    (0..id.len())
        .map(|i| Person {
            id: id[i].clone().unwrap(),
            email: email[i].clone().unwrap(),
            first_name: first[i].clone().unwrap(),
            last_name: last[i].clone().unwrap(),
        })
        .collect()
}

/// The sample policy (without its [analytics] tail) with an [erasure] section.
fn policy_with_erasure(dir: &Path, requests: Option<&str>) -> PathBuf {
    let sample = anonymizer::policy::SAMPLE_POLICY;
    let at = sample.find("\n[analytics]").unwrap();
    let mut text = sample[..at].to_string();
    text.push_str("\n[erasure]\n");
    if let Some(r) = requests {
        text.push_str(&format!("requests = \"{r}\"\n"));
    }
    text.push_str("ledger = \"state/erasure-ledger.json\"\n");
    text.push_str(&sample[at..]);
    let p = dir.join("anonymizer.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn run_with(
    config: &Path,
    out: &Path,
    requests: Option<&Path>,
) -> Result<RunSummary, anonymizer::Error> {
    run(&RunOptions {
        config: config.to_path_buf(),
        out: Some(out.to_path_buf()),
        key: Some(key()),
        threads: Some(2),
        requests: requests.map(Path::to_path_buf),
        ..Default::default()
    })
}

fn receipts(run_dir: &Path) -> RecordBatch {
    let b = read_table(&run_dir.join("erasure_receipts"));
    datafusion::arrow::compute::concat_batches(&b[0].schema(), &b).unwrap()
}

/// request_id -> column value (as text) of the receipts; the first row of an id (a
/// later duplicate is an invalid row of its own).
fn receipt_col(b: &RecordBatch, col: &str) -> BTreeMap<String, Option<String>> {
    let ids = strings_of(b.column_by_name("request_id").unwrap());
    let vals = strings_of(b.column_by_name(col).unwrap());
    let mut m = BTreeMap::new();
    for (i, v) in ids.into_iter().zip(vals) {
        m.entry(i.unwrap_or_default()).or_insert(v);
    }
    m
}

/// The 50-request batch: (CSV text, expected status per request id, erased people
/// (index, delete?)).
fn batch(people: &[Person]) -> (String, BTreeMap<String, &'static str>, Vec<(usize, bool)>) {
    let mut csv = String::from("request_id,email,received_at,jurisdiction,kind,explained,note\n");
    let mut want = BTreeMap::new();
    let mut erased = Vec::new();
    let mut row = |id: &str, email: &str, received: &str, j: &str, kind: &str, status| {
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        csv.push_str(&format!(
            "{id},{},{received},{j},{kind},true,{}\n",
            q(email),
            q("called support, process explained")
        ));
        want.insert(id.to_string(), status);
    };
    // 24 real customers, with case and whitespace variants; every fourth deletes.
    for i in 0..24 {
        let p = &people[i * 7];
        let email = match i % 3 {
            0 => p.email.clone(),
            1 => format!("  {}  ", p.email.to_uppercase()),
            _ => format!("\t{}", capitalize(&p.email)),
        };
        let delete = i % 4 == 3;
        let j = if i % 2 == 0 { "GDPR" } else { "ccpa" };
        let received = ["2025-01-31", "2024-01-31", "2025-11-20", "2025-12-30"][i % 4];
        row(
            &format!("r{i:02}"),
            &email,
            received,
            j,
            if delete { "delete" } else { "anonymize" },
            "completed",
        );
        erased.push((i * 7, delete));
    }
    // The same person again under another request id: already erased in this batch.
    row(
        "r24",
        &people[0].email.to_uppercase(),
        "2025-12-01",
        "GDPR",
        "anonymize",
        "already_erased",
    );
    // 10 unknown, well-formed emails.
    for i in 0..10 {
        row(
            &format!("u{i}"),
            &format!("nobody{i}@example.org"),
            "2025-12-01",
            "GDPR",
            "anonymize",
            "not_found",
        );
    }
    // Every kind of invalid row.
    let bad: [(&str, &str, &str, &str, &str); 15] = [
        ("b00", "not-an-email", "2025-12-01", "GDPR", "anonymize"),
        ("b01", "two@@example.org", "2025-12-01", "GDPR", "anonymize"),
        (
            "b02",
            "spaces in@example.org",
            "2025-12-01",
            "GDPR",
            "anonymize",
        ),
        ("b03", "", "2025-12-01", "GDPR", "anonymize"),
        ("b04", &people[1].email, "", "GDPR", "anonymize"),
        ("b05", &people[2].email, "yesterday", "GDPR", "anonymize"),
        ("b06", &people[3].email, "2026-01-01", "GDPR", "anonymize"),
        ("b07", &people[4].email, "2099-12-31", "CCPA", "anonymize"),
        ("b08", &people[5].email, "2025-12-01", "LGPD", "anonymize"),
        ("b09", &people[6].email, "2025-12-01", "", "anonymize"),
        ("b10", &people[8].email, "2025-12-01", "GDPR", "forget"),
        ("b11", &people[9].email, "2025-12-01", "GDPR", "erase"),
        ("r03", &people[10].email, "2025-12-01", "GDPR", "anonymize"),
        ("r05", &people[11].email, "2025-12-01", "GDPR", "anonymize"),
        ("b14", "x@localhost", "2025-12-01", "GDPR", "anonymize"),
    ];
    for (id, email, received, j, kind) in bad {
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        csv.push_str(&format!("{id},{},{received},{j},{kind},true,\n", q(email)));
        if !want.contains_key(id) {
            want.insert(id.to_string(), "invalid");
        }
    }
    (csv, want, erased)
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

fn published_token(p: &Person) -> String {
    Pseudonymizer::new(&key(), None).token_i64(p.id.parse().unwrap())
}

fn email_token(p: &Person) -> String {
    Pseudonymizer::new(&key(), None).token_str(&p.email, Normalize::Email)
}

#[test]
fn requests_erase_customers_with_receipts_and_a_ledger() {
    let dir = fixture_copy();
    let people = people();
    let (csv, want, erased) = batch(&people);
    std::fs::write(dir.path().join("requests.csv"), &csv).unwrap();
    let policy = policy_with_erasure(dir.path(), Some("requests.csv"));
    let out = dir.path().join("out");
    let s = run_with(&policy, &out, None).unwrap();
    assert_eq!(s.manifest.as_of.as_deref(), Some("2025-12-31"));

    // One receipt per request, with the expected status.
    let r = receipts(&s.run_dir);
    assert_eq!(r.num_rows(), 50, "{want:?}");
    let status = receipt_col(&r, "status");
    for (id, st) in &want {
        assert_eq!(status[id].as_deref(), Some(*st), "request {id}");
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for st in strings_of(r.column_by_name("status").unwrap())
        .into_iter()
        .flatten()
    {
        *counts
            .entry(if st == "completed" {
                "completed"
            } else {
                "other"
            })
            .or_default() += 1;
    }
    assert_eq!(counts["completed"], 24);
    let reasons = strings_of(r.column_by_name("reason").unwrap());
    let ids = strings_of(r.column_by_name("request_id").unwrap());
    let dup_rows = ids.iter().filter(|i| i.as_deref() == Some("r03")).count();
    assert_eq!(dup_rows, 2);
    assert!(
        reasons
            .iter()
            .flatten()
            .any(|x| x.contains("duplicate request_id"))
    );

    // Due dates: GDPR one month (Jan 31 2024 -> Feb 29), CCPA 45 days.
    let due = receipt_col(&r, "due_at");
    assert_eq!(due["r00"].as_deref(), Some("2025-02-28")); // GDPR, 2025-01-31
    assert_eq!(due["r01"].as_deref(), Some("2024-03-16")); // CCPA, 2024-01-31 + 45
    assert_eq!(due["r02"].as_deref(), Some("2025-12-20")); // GDPR, 2025-11-20
    assert_eq!(due["r07"].as_deref(), Some("2026-02-13")); // CCPA, 2025-12-30 + 45
    assert_eq!(due["r04"].as_deref(), Some("2025-02-28"));
    let overdue = receipt_col(&r, "overdue");
    assert_eq!(overdue["r00"].as_deref(), Some("true"));
    assert_eq!(overdue["r07"].as_deref(), Some("false"));

    // No personal data in the receipts.
    let json = std::fs::read_to_string(s.run_dir.join("erasure_receipts.json")).unwrap();
    for p in &people {
        assert!(!json.to_lowercase().contains(&p.email.to_lowercase()));
    }
    assert!(!json.contains('@'));
    for (_, v) in all_string_cells(&s.run_dir.join("erasure_receipts")) {
        assert!(!v.contains('@'), "{v}");
    }

    // The erased are gone: no token, email or name of theirs anywhere in the output.
    let cells: Vec<String> = all_string_cells(&s.run_dir)
        .into_iter()
        .map(|c| c.1)
        .collect();
    let manifest = std::fs::read_to_string(s.run_dir.join("_manifest.json")).unwrap();
    let all: HashSet<&str> = cells.iter().map(String::as_str).collect();
    for (i, _) in &erased {
        let p = &people[*i];
        for needle in [published_token(p), email_token(p)] {
            assert!(
                !all.contains(needle.as_str()),
                "customer {} still linked",
                p.id
            );
            assert!(!manifest.contains(&needle));
        }
        for c in &cells {
            assert!(
                !c.contains(&p.email) && *c != p.last_name && *c != p.first_name,
                "personal data of an erased customer"
            );
        }
    }

    // The privacy gate checked that none of their tokens was published.
    let check = gate_check(&s.run_dir, "erased_customers_absent");
    assert_eq!(check["passed"], true);
    // Two tokens each: the customer id and the email (the same in both tables).
    assert!(check["figures"]["erased_tokens"].as_u64().unwrap() >= erased.len() as u64 * 2);

    // Anonymized customers' transactions stay, without tokens; deleted ones leave.
    let tx_in = read_table(&fixture().join("export/transactions"));
    let tx_ids = column_strings(&tx_in, "customer_id");
    let n_of = |id: &str| tx_ids.iter().filter(|c| c.as_deref() == Some(id)).count();
    let kept: usize = erased
        .iter()
        .filter(|e| !e.1)
        .map(|e| n_of(&people[e.0].id))
        .sum();
    let removed: usize = erased
        .iter()
        .filter(|e| e.1)
        .map(|e| n_of(&people[e.0].id))
        .sum();
    assert!(kept > 0 && removed > 0);
    let tx_out = read_table(&s.run_dir.join("transactions"));
    let rows: usize = tx_out.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, tx_ids.len() - removed);
    let null_customer = column_strings(&tx_out, "customer_id")
        .iter()
        .filter(|c| c.is_none())
        .count();
    assert_eq!(null_customer, kept);
    for col in ["customer_email", "subscription_id", "transaction_id"] {
        let nulls = column_strings(&tx_out, col)
            .iter()
            .filter(|c| c.is_none())
            .count();
        assert!(nulls >= kept, "{col}");
    }
    // Nor do their networks tie their rows together (a /48 is often one person's), or
    // their scrubbed payment details; kept columns stay (amounts for audit).
    let anonymized: Vec<bool> = column_strings(&tx_out, "customer_id")
        .iter()
        .map(Option::is_none)
        .collect();
    for col in ["ip_address", "amount", "currency"] {
        let values = column_strings(&tx_out, col);
        let nulls = (0..values.len())
            .filter(|&i| anonymized[i] && values[i].is_none())
            .count();
        if col == "ip_address" {
            assert_eq!(nulls, kept, "{col} of anonymized rows");
        } else {
            assert_eq!(nulls, 0, "{col} of anonymized rows");
        }
    }
    // Over the completed requests (r24 reports people[0]'s transactions again).
    let statuses = strings_of(r.column_by_name("status").unwrap());
    let sum = |c: &str| -> i64 {
        let a = r.column_by_name(c).unwrap();
        let a = datafusion::arrow::compute::cast(a, &datafusion::arrow::datatypes::DataType::Int64)
            .unwrap();
        let a = a.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        (0..a.len())
            .filter(|i| statuses[*i].as_deref() == Some("completed"))
            .map(|i| a.value(i))
            .sum()
    };
    assert_eq!(sum("transactions_kept_anonymized") as usize, kept);
    assert_eq!(sum("transactions_removed") as usize, removed);
    let cust_rows: usize = read_table(&s.run_dir.join("customers"))
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(cust_rows, people.len() - erased.len());
    // The manifest's evidence: every row read was checked once (the state is computed
    // once per row, not again for each use), and what happened to them.
    let e = s.manifest.erasure.as_ref().unwrap();
    // A first run carried out every request it completed.
    assert_eq!(e.requests_completed_this_run, e.requests["completed"]);
    let read = |t: &str| s.manifest.tables[t].rows_read.unwrap();
    let rows = |t: &str| e.tables[t].clone();
    assert_eq!(read("transactions"), tx_ids.len() as u64);
    assert_eq!(read("customers"), people.len() as u64);
    assert_eq!(rows("transactions").rows_checked, read("transactions"));
    assert_eq!(
        (
            rows("transactions").rows_anonymized,
            rows("transactions").rows_removed
        ),
        (kept as u64, removed as u64)
    );
    assert_eq!(rows("customers").rows_checked, read("customers"));
    assert_eq!(
        (
            rows("customers").rows_anonymized,
            rows("customers").rows_removed
        ),
        (0, erased.len() as u64)
    );
    assert!(s.report().contains(&format!(
        "transactions: {} rows checked, {kept} anonymized, {removed} removed",
        read("transactions")
    )));

    // Active entitlements are flagged for the billing system: checked against the
    // brute-force oracle (active at the first instant after the as-of date = December's
    // active_end, as the as-of date is Dec 31).
    let active = receipt_col(&r, "active_entitlement");
    let txs = crate::analytics::fixture_rows().0;
    let mut flagged = 0;
    for (n, (i, _)) in erased.iter().enumerate() {
        let id = &people[*i].id;
        let mine: Vec<_> = txs
            .iter()
            .filter(|t| t.customer.as_deref() == Some(id))
            .cloned()
            .collect();
        let o = crate::oracle::compute(
            &mine,
            None,
            chrono::NaiveDate::from_ymd_opt(2025, 12, 31).unwrap(),
            2,
        );
        let want = o.subscriptions_monthly.last().is_some_and(|r| {
            r.month == chrono::NaiveDate::from_ymd_opt(2025, 12, 1).unwrap() && r.active_end == 1
        });
        let got = active[&format!("r{n:02}")].as_deref() == Some("true");
        assert_eq!(got, want, "active entitlement of request r{n:02}");
        flagged += usize::from(got);
    }
    assert!(flagged > 0 && flagged < erased.len(), "{flagged}");

    // Aggregates still count everyone: identical to a run without erasure.
    let plain = run_to(&sample_policy(), &dir.path().join("plain"), key()).unwrap();
    assert_same_aggregates(&s, &plain);

    // Support's list: not found, invalid and overdue, without personal data.
    assert!(
        s.attention
            .iter()
            .any(|l| l.contains("u0") && l.contains("not_found"))
    );
    assert!(
        s.attention
            .iter()
            .any(|l| l.contains("b00") && l.contains("malformed email"))
    );
    assert!(s.attention.iter().all(|l| !l.contains('@')));

    // A second run without the requests erases the same people again.
    let policy2 = policy_with_erasure(dir.path(), None);
    let s2 = run_with(&policy2, &out, None).unwrap();
    assert!(
        s2.run_dir
            .join("erasure_receipts/part-00000.parquet")
            .exists()
    );
    let n: usize = read_table(&s2.run_dir.join("erasure_receipts"))
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(n, 0);
    let cells2: HashSet<String> = all_string_cells(&s2.run_dir)
        .into_iter()
        .map(|c| c.1)
        .collect();
    for (i, _) in &erased {
        assert!(!cells2.contains(&published_token(&people[*i])));
    }
    assert_eq!(
        s2.manifest.tables["transactions"]
            .files
            .iter()
            .map(|f| &f.sha256)
            .collect::<Vec<_>>(),
        s.manifest.tables["transactions"]
            .files
            .iter()
            .map(|f| &f.sha256)
            .collect::<Vec<_>>(),
    );
    // The same requests again: already erased.
    // `anonymizer verify` with the key checks the ledger's customers too: clean here, and
    // a table with an erased customer's token added by hand is refused.
    let cfg2 = policy2.to_str().unwrap();
    let o = cli(&["verify", "--config", cfg2], Some(KEY_HEX));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let copy = dir.path().join("copy");
    copy_dir(&s2.run_dir, &copy);
    let leaked: Vec<String> = erased
        .iter()
        .take(3)
        .map(|(i, _)| published_token(&people[*i]))
        .collect();
    let b = RecordBatch::try_new(
        std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(vec![
            datafusion::arrow::datatypes::Field::new(
                "who",
                datafusion::arrow::datatypes::DataType::Utf8,
                false,
            ),
        ])),
        vec![std::sync::Arc::new(
            datafusion::arrow::array::StringArray::from(leaked),
        )],
    )
    .unwrap();
    write_parquet(&copy.join("leak/part-00000.parquet"), &b);
    let o = cli(
        &["verify", copy.to_str().unwrap(), "--config", cfg2],
        Some(KEY_HEX),
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("table leak, column who: 3 token(s) of erased customers"),
        "{err}"
    );

    // Two weeks later (the as-of date moved on; the requests still in the file).
    let s3 = run(&RunOptions {
        config: policy2.clone(),
        out: Some(out.clone()),
        key: Some(key()),
        threads: Some(2),
        requests: Some(dir.path().join("requests.csv")),
        as_of: Some(chrono::NaiveDate::from_ymd_opt(2026, 1, 14).unwrap()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(s3.manifest.as_of.as_deref(), Some("2026-01-14"));
    // Each request read again has the receipt of the run that honoured it: completed at
    // that run's as-of date, not this run's; another request for someone erased is
    // already_erased.
    let r3 = receipts(&s3.run_dir);
    let first = &r;
    let completed: Vec<&String> = want
        .iter()
        .filter(|(_, st)| **st == "completed")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(completed.len(), 24);
    let st3 = receipt_col(&r3, "status");
    for col in [
        "status",
        "completed_at",
        "overdue",
        "reason",
        "customers_matched",
    ] {
        let (now, then) = (receipt_col(&r3, col), receipt_col(first, col));
        for id in &completed {
            assert_eq!(now[*id], then[*id], "{col} of request {id} read again");
        }
    }
    assert_eq!(
        receipt_col(&r3, "completed_at")["r00"].as_deref(),
        Some("2025-12-31")
    );
    assert_eq!(st3["r24"].as_deref(), Some("already_erased"));
    assert_eq!(st3["u0"].as_deref(), Some("not_found"));
    // b06, received 2026-01-01 (after the first run's as-of date, so invalid then and
    // kept in the file), is honoured now: its one entry is the only new one (each run
    // that still reads a request must not append it again).
    assert_eq!(st3["b06"].as_deref(), Some("completed"));
    let e3 = s3.manifest.erasure.as_ref().unwrap();
    assert_eq!(e3.new_entries, 1);
    // Of the completed receipts, only b06's request was carried out by this run: the
    // 24 read again were honoured two weeks earlier.
    assert_eq!(
        (e3.requests["completed"], e3.requests_completed_this_run),
        (25, 1)
    );
    assert_eq!(
        e3.ledger_entries,
        s.manifest.erasure.as_ref().unwrap().ledger_entries + 1
    );
    // The ledger holds keyed hashes only.
    let ledger = std::fs::read_to_string(dir.path().join("state/erasure-ledger.json")).unwrap();
    for (i, _) in &erased {
        let p = &people[*i];
        assert!(!ledger.contains(&p.email) && !ledger.contains(&format!("\"{}\"", p.id)));
        assert!(!ledger.contains(&published_token(p)));
    }
}

#[test]
fn an_unreadable_ledger_refuses_the_run() {
    let dir = fixture_copy();
    let policy = policy_with_erasure(dir.path(), None);
    let out = dir.path().join("out");
    let first = run_with(&policy, &out, None).unwrap();
    let ledger = dir.path().join("state/erasure-ledger.json");
    std::fs::create_dir_all(ledger.parent().unwrap()).unwrap();
    let (cfg, out_s) = (policy.to_str().unwrap(), out.to_str().unwrap());
    let rerun = || cli(&["run", "--config", cfg, "--out", out_s], Some(KEY_HEX));
    // Entries whose hashes are not tokens, or whose kind is misspelt, would match nobody
    // (or only anonymize): the erased would reappear, so they are damage too.
    let key_id = anonymizer::key::Key::from_hex(KEY_HEX, anonymizer::key::KeySource::Provided)
        .unwrap()
        .id();
    let token = "0123456789abcdef0123456789abcdef";
    let entry = |email: &str, customer: &str, kind: &str| {
        format!(
            r#"{{"version": 1, "key_id": "{key_id}", "entries": [{{"email": "{email}", "customer": {customer}, "request_id": "r7", "kind": "{kind}", "erased_as_of": "2025-12-31"}}]}}"#
        )
    };
    let bad_entries = [
        (
            entry("0123456789ABCDEF0123456789ABCDEF", "null", "delete"),
            "email hash",
        ),
        (entry(token, "\"c42\"", "anonymize"), "customer hash"),
        (entry(token, &format!("\"{token}\""), "Delete"), "kind"),
    ];
    let bad = ["{\"version\": 1, \"key_id\":", "not json at all"]
        .map(|b| (b.to_string(), ""))
        .into_iter()
        .chain(bad_entries);
    for (bad, what) in bad {
        std::fs::write(&ledger, bad).unwrap();
        let o = rerun();
        assert_eq!(o.status.code(), Some(2));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("erasure ledger") && err.contains("damaged") && err.contains(what),
            "{err}"
        );
        if !what.is_empty() {
            assert!(err.contains("entry 1 (request r7)"), "{err}");
        }
        assert_eq!(
            anonymizer::publish::current_run(&out).unwrap().file_name(),
            first.run_dir.file_name()
        );
    }
    std::fs::remove_file(&ledger).unwrap();
    std::fs::create_dir(&ledger).unwrap();
    let o = rerun();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read the erasure ledger"));
    // The same shapes, well formed, are accepted (what a run writes).
    std::fs::remove_dir(&ledger).unwrap();
    std::fs::write(&ledger, entry(token, &format!("\"{token}\""), "delete")).unwrap();
    let o = rerun();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn erase_command_appends_a_request_the_next_run_honours() {
    let dir = fixture_copy();
    let people = people();
    let policy = policy_with_erasure(dir.path(), Some("pending.jsonl"));
    let cfg = policy.to_str().unwrap();
    let email = format!(" {} ", people[42].email.to_uppercase());
    let o = cli(
        &[
            "erase",
            "--config",
            cfg,
            "--email",
            &email,
            "--received",
            "2025-12-15",
            "--jurisdiction",
            "ccpa",
            "--explained",
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("the first run whose as-of date is 2025-12-15 or later honours it"),
        "{said}"
    );
    assert!(!said.to_lowercase().contains(email.trim()), "{said}");
    let o = cli(
        &[
            "erase",
            "--config",
            cfg,
            "--email",
            "not an email",
            "--received",
            "2025-12-15",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("not an email"));
    // Two runs before the request's (and a folder of the user's own) in OUT/runs: the
    // run honouring it removes the older runs, which hold the customer's rows.
    let mut before = std::fs::read_to_string(&policy).unwrap();
    before = before.replacen(
        "requests = \"pending.jsonl\"",
        "requests = \"none.jsonl\"",
        1,
    );
    let early = dir.path().join("early.toml");
    std::fs::write(&early, before).unwrap();
    for _ in 0..2 {
        let o = cli(&["run", "--config", early.to_str().unwrap()], Some(KEY_HEX));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    std::fs::create_dir_all(dir.path().join("out/runs/my-backup")).unwrap();
    let runs = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir.path().join("out/runs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(runs().len(), 3, "{:?}", runs());
    let o = cli(&["run", "--config", cfg], Some(KEY_HEX));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("out/current");
    let current = std::fs::read_link(&out).unwrap();
    let current = current.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(runs(), vec![current.clone(), "my-backup".to_string()]);
    let r = receipts(&out);
    assert_eq!(r.num_rows(), 1);
    assert_eq!(
        strings_of(r.column_by_name("status").unwrap())[0].as_deref(),
        Some("completed")
    );
    assert_eq!(
        strings_of(r.column_by_name("jurisdiction").unwrap())[0].as_deref(),
        Some("CCPA")
    );
    let due = r
        .column_by_name("due_at")
        .unwrap()
        .as_primitive::<Date32Type>()
        .value(0);
    assert_eq!(
        due,
        anonymizer::rules::generalize::date_to_days(
            chrono::NaiveDate::from_ymd_opt(2026, 1, 29).unwrap()
        )
    );
    let cells: HashSet<String> = all_string_cells(&out).into_iter().map(|c| c.1).collect();
    assert!(!cells.contains(&published_token(&people[42])));
    // The gate's list of each aggregate's and the receipts' columns is what a run writes.
    for (name, cols) in anonymizer::verify::PUBLISHED_COLUMNS {
        let b = read_table(&out.join(name));
        let names: Vec<String> = b[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, cols, "{name}");
    }
    // The requests (plaintext emails) and the ledger are the owner's alone.
    #[cfg(unix)]
    for f in ["pending.jsonl", "state/erasure-ledger.json"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    // Found by an audit (2026-12-03): a lost ledger (a path edited, a restore without it)
    // was an empty one, and the next run published everyone erased before. Now the run
    // and verify stop, naming the published run's entries, unless --new-ledger.
    let ledger = dir.path().join("state/erasure-ledger.json");
    let saved = dir.path().join("ledger.bak");
    std::fs::write(dir.path().join("pending.jsonl"), "").unwrap();
    // Found by the fourth audit (2026-12-04): an older copy of the ledger (a backup from
    // before the last run), with fewer entries than the published run was made with, was
    // taken as it was. Now the run and verify stop the same way.
    let full = std::fs::read(&ledger).unwrap();
    let mut older: serde_json::Value = serde_json::from_slice(&full).unwrap();
    older["entries"] = serde_json::json!([]);
    std::fs::write(&ledger, serde_json::to_vec(&older).unwrap()).unwrap();
    for args in [
        &["run", "--config", cfg][..],
        &["verify", "--config", cfg][..],
    ] {
        let o = cli(args, Some(KEY_HEX));
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {e}");
        assert!(
            e.contains("holds 0 entries, but the published run")
                && e.contains("was made with 1")
                && e.contains("--new-ledger"),
            "{e}"
        );
    }
    std::fs::write(&ledger, &full).unwrap();
    std::fs::rename(&ledger, &saved).unwrap();
    let o = cli(&["run", "--config", cfg], Some(KEY_HEX));
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("is missing, but the published run")
            && e.contains("was made with 1 ledger entries")
            && e.contains("--new-ledger"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_link(&out)
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy(),
        current
    );
    let o = cli(&["verify", "--config", cfg], Some(KEY_HEX));
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = cli(&["run", "--config", cfg, "--new-ledger"], Some(KEY_HEX));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cells: HashSet<String> = all_string_cells(&out).into_iter().map(|c| c.1).collect();
    assert!(cells.contains(&published_token(&people[42])));
    std::fs::rename(&saved, &ledger).unwrap();
}

#[test]
fn erase_reads_anonymizer_toml_in_the_current_folder_by_default() {
    let dir = fixture_copy();
    policy_with_erasure(dir.path(), Some("pending.jsonl"));
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_anonymizer"))
        .args([
            "erase",
            "--email",
            "someone@example.org",
            "--received",
            "2025-12-01",
        ])
        .current_dir(dir.path())
        .env_remove("ANONYMIZER_KEY")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pending = std::fs::read_to_string(dir.path().join("pending.jsonl")).unwrap();
    assert_eq!(pending.lines().count(), 1);
}

/// Key hygiene across the whole pipeline: an erasure request, runs with human and JSON
/// logs, `verify` and `query`; then every byte they wrote (stdout, stderr, every file of
/// the output folder, the ledger) is searched for the key (hex in either case, and its 32
/// raw bytes), and every text file and every decoded Parquet string cell for the input's
/// email addresses.
#[test]
fn no_byte_written_holds_the_key_or_an_email() {
    let dir = fixture_copy();
    let people = people();
    let policy = policy_with_erasure(dir.path(), Some("pending.jsonl"));
    let cfg = policy.to_str().unwrap();
    let mut printed: Vec<Vec<u8>> = Vec::new();
    let mut ok = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        printed.push(o.stdout);
        printed.push(o.stderr);
    };
    ok(cli(
        &[
            "erase",
            "--config",
            cfg,
            "--email",
            &people[3].email,
            "--received",
            "2025-12-01",
        ],
        None,
    ));
    ok(cli(&["run", "--config", cfg], Some(KEY_HEX)));
    ok(cli(
        &["run", "--config", cfg, "--log-format", "json"],
        Some(KEY_HEX),
    ));
    ok(cli(&["verify", "--config", cfg], Some(KEY_HEX)));
    ok(cli(
        &[
            "query",
            "--config",
            cfg,
            "--sql",
            "SELECT * FROM customers LIMIT 50",
        ],
        None,
    ));

    let raw_key = hex::decode(KEY_HEX).unwrap();
    let hex_lower = KEY_HEX.to_lowercase();
    let hex_upper = KEY_HEX.to_uppercase();
    let emails: Vec<String> = people.iter().map(|p| p.email.to_lowercase()).collect();
    let has = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let check_bytes = |what: &str, bytes: &[u8], text: bool| {
        assert!(!has(bytes, &raw_key), "{what}: the raw key");
        assert!(!has(bytes, hex_lower.as_bytes()), "{what}: the key in hex");
        assert!(!has(bytes, hex_upper.as_bytes()), "{what}: the key in hex");
        if text {
            let lower = String::from_utf8_lossy(bytes).to_lowercase();
            for e in &emails {
                assert!(!lower.contains(e.as_str()), "{what}: an input email");
            }
        }
    };
    for (i, b) in printed.iter().enumerate() {
        check_bytes(&format!("output stream {i}"), b, true);
    }
    let mut files = 0;
    for root in [dir.path().join("out"), dir.path().join("state")] {
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                let bytes = std::fs::read(&p).unwrap();
                let parquet = p.extension().is_some_and(|x| x == "parquet");
                check_bytes(&p.display().to_string(), &bytes, !parquet);
                files += 1;
            }
        }
    }
    assert!(files > 10, "{files} files");
    let cells = all_string_cells(&dir.path().join("out/current"));
    for (_, v) in &cells {
        let v = v.to_lowercase();
        assert!(!v.contains(&hex_lower), "a published cell holds the key");
        assert!(
            !emails.iter().any(|e| v.contains(e.as_str())),
            "a published cell holds an input email"
        );
    }
}

/// The erasure's scans of the export (requests' emails matched to customers, the matched
/// customers' transactions counted, the tokens the gate must not find) read every file
/// in chunks on every core: the same export rewritten as one file per table of many
/// small row groups (one chunk each) erases the same customers with the same receipts.
#[test]
fn erasure_does_not_depend_on_how_the_export_is_cut() {
    let people = people();
    let (csv, _, erased) = batch(&people);
    let erase = |dir: &Path| {
        std::fs::write(dir.join("requests.csv"), &csv).unwrap();
        let policy = policy_with_erasure(dir, Some("requests.csv"));
        let s = run_with(&policy, &dir.join("out"), None).unwrap();
        let rows = |t: &str| s.manifest.tables[t].rows_written;
        (
            receipts(&s.run_dir),
            rows("customers"),
            rows("transactions"),
            gate_check(&s.run_dir, "erased_customers_absent")["figures"].clone(),
        )
    };
    let whole = fixture_copy();
    let cut = fixture_copy();
    for table in ["customers", "transactions"] {
        let dir = cut.path().join("export").join(table);
        let batches = read_table(&dir);
        let all =
            datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::create_dir_all(&dir).unwrap();
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some((all.num_rows() / 40).max(1)))
            .build();
        let f = std::fs::File::create(dir.join("all.parquet")).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, all.schema(), Some(props)).unwrap();
        w.write(&all).unwrap();
        let meta = w.close().unwrap();
        assert!(meta.num_row_groups() >= 40, "{table}");
    }
    let (a, b) = (erase(whole.path()), erase(cut.path()));
    assert_eq!(a.0, b.0, "receipts");
    assert_eq!((a.1, a.2), (b.1, b.2), "rows written");
    assert_eq!(a.3, b.3, "the gate's figures");
    assert!(a.3["erased_tokens"].as_u64().unwrap() >= erased.len() as u64 * 2);
}

/// Ids exported as DECIMAL(38,0) (a warehouse's NUMBER(38,0)) are the same customers as
/// the same ids exported as int64: the same tokens, the same erasure matches, the same
/// aggregates, byte for byte.
#[test]
fn ids_exported_as_decimals_publish_what_integers_do() {
    use datafusion::arrow::array::{Decimal128Array, Int64Array};
    let people = people();
    let (csv, _, erased) = batch(&people);
    let erase = |dir: &Path| {
        std::fs::write(dir.join("requests.csv"), &csv).unwrap();
        let policy = policy_with_erasure(dir, Some("requests.csv"));
        run_with(&policy, &dir.join("out"), None).unwrap()
    };
    let ints = fixture_copy();
    let decimals = fixture_copy();
    // Both exports rewritten the same way, one with the ids as decimals.
    for (dir, decimal) in [(ints.path(), false), (decimals.path(), true)] {
        for table in ["customers", "transactions"] {
            for (_, f) in parquet_files(&dir.join("export").join(table)) {
                let batches = read_parquet(&f);
                let mut all =
                    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches)
                        .unwrap();
                if decimal {
                    let ids = all.column_by_name("customer_id").unwrap();
                    let ids = ids.as_any().downcast_ref::<Int64Array>().unwrap();
                    let d: Decimal128Array = ids.iter().map(|v| v.map(i128::from)).collect();
                    let d = d.with_precision_and_scale(38, 0).unwrap();
                    all = with_column(&all, "customer_id", std::sync::Arc::new(d));
                }
                write_parquet(&f, &all);
            }
        }
    }
    let (a, b) = (erase(ints.path()), erase(decimals.path()));
    let (fa, fb) = (parquet_files(&a.run_dir), parquet_files(&b.run_dir));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    for (rel, p) in &fa {
        assert_eq!(
            std::fs::read(p).unwrap(),
            std::fs::read(&fb[rel]).unwrap(),
            "{rel} differs between int64 and DECIMAL(38,0) ids"
        );
    }
    assert!(erased.iter().any(|e| e.1), "some requests delete");
    let t = &b.manifest.tables["transactions"];
    assert!(
        t.rows_written < t.rows_read.unwrap(),
        "some transactions deleted"
    );
}

/// A delete request for a customer an earlier run anonymized upgrades the ledger entry
/// once: that run deletes the customer's transactions, and later runs that still read
/// the request add nothing to the ledger.
#[test]
fn a_delete_request_upgrades_an_anonymized_customer_once() {
    let dir = fixture_copy();
    let people = people();
    let p = &people[5];
    let tx_ids = column_strings(
        &read_table(&fixture().join("export/transactions")),
        "customer_id",
    );
    let theirs = tx_ids
        .iter()
        .filter(|c| c.as_deref() == Some(p.id.as_str()))
        .count() as u64;
    assert!(theirs > 0);
    let requests = dir.path().join("requests.csv");
    let header = "request_id,email,received_at,jurisdiction,kind,explained,note\n";
    let policy = policy_with_erasure(dir.path(), Some("requests.csv"));
    let out = dir.path().join("out");
    let mut runs = Vec::new();
    let (mut completed_now, mut reports) = (Vec::new(), Vec::new());
    let mut receipt_figures = Vec::new();
    for csv in [
        format!("{header}a1,{},2025-12-01,GDPR,anonymize,true,\n", p.email),
        format!(
            "{header}a1,{},2025-12-01,GDPR,anonymize,true,\nd1,{},2025-12-02,GDPR,delete,true,\n",
            p.email, p.email
        ),
        format!(
            "{header}a1,{},2025-12-01,GDPR,anonymize,true,\nd1,{},2025-12-02,GDPR,delete,true,\n",
            p.email, p.email
        ),
    ] {
        std::fs::write(&requests, csv).unwrap();
        let s = run_with(&policy, &out, None).unwrap();
        let e = s.manifest.erasure.clone().unwrap();
        let rows = s.manifest.tables["transactions"].rows_written;
        let r = receipts(&s.run_dir);
        let status = receipt_col(&r, "status");
        let kept = receipt_col(&r, "transactions_kept_anonymized");
        let removed = receipt_col(&r, "transactions_removed");
        receipt_figures.push((kept, removed));
        runs.push((e.new_entries, e.ledger_entries, rows, status));
        completed_now.push(e.requests_completed_this_run);
        reports.push(s.report());
    }
    assert!(
        reports[1].contains("requests: 2 completed (1 by this run)"),
        "{}",
        reports[1]
    );
    // The requests each run carried out: the anonymize, then the delete that upgrades
    // it (the anonymize read again), then nothing new.
    assert_eq!(completed_now, [1, 1, 0]);
    // The receipts say what happened to the transactions: kept anonymized until the
    // delete, removed from then on, on the anonymize request's receipt too.
    let n = |m: &BTreeMap<String, Option<String>>, id: &str| -> u64 {
        m[id].as_deref().unwrap().parse().unwrap()
    };
    assert_eq!(
        (
            n(&receipt_figures[0].0, "a1"),
            n(&receipt_figures[0].1, "a1")
        ),
        (theirs, 0)
    );
    for (kept, removed) in &receipt_figures[1..] {
        for id in ["a1", "d1"] {
            assert_eq!((n(kept, id), n(removed, id)), (0, theirs), "{id}");
        }
    }
    let total = tx_ids.len() as u64;
    // Run 1: anonymized (rows kept, tokens nulled), one ledger entry.
    assert_eq!((runs[0].0, runs[0].1, runs[0].2), (1, 1, total));
    assert_eq!(runs[0].3["a1"].as_deref(), Some("completed"));
    // Run 2: the delete upgrades it: one more entry, their transactions gone; the run
    // carried the delete out, so its receipt says completed.
    assert_eq!((runs[1].0, runs[1].1, runs[1].2), (1, 2, total - theirs));
    assert_eq!(runs[1].3["a1"].as_deref(), Some("completed"));
    assert_eq!(runs[1].3["d1"].as_deref(), Some("completed"));
    // Run 3: the same requests add nothing and delete the same rows; their receipts stay.
    assert_eq!((runs[2].0, runs[2].1, runs[2].2), (0, 2, total - theirs));
    assert_eq!(runs[2].3, runs[1].3);
}

/// A run that stored the ledger and was stopped before publishing (killed, a full disk)
/// published no receipts; the next run, reading the same requests, gives them the
/// receipts that run would have published (`completed`), adds nothing to the ledger, and
/// erases the customers.
#[test]
fn requests_of_a_run_stopped_after_the_ledger_complete_on_the_next() {
    let dir = fixture_copy();
    let people = people();
    let requests = dir.path().join("requests.csv");
    std::fs::write(
        &requests,
        format!(
            "request_id,email,received_at,jurisdiction,kind,explained,note\n\
             k1,{},2025-12-01,GDPR,anonymize,true,\nk2,{},2025-12-02,CCPA,delete,true,\n",
            people[3].email, people[4].email
        ),
    )
    .unwrap();
    let policy = policy_with_erasure(dir.path(), Some("requests.csv"));
    let out = dir.path().join("out");
    let err = run(&RunOptions {
        config: policy.clone(),
        out: Some(out.clone()),
        key: Some(key()),
        threads: Some(2),
        fail_point: Some(anonymizer::run::FailPoint::AfterLedger),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(!out.join("current").exists());
    let ledger = std::fs::read_to_string(dir.path().join("state/erasure-ledger.json")).unwrap();
    assert!(ledger.contains("\"k1\"") && ledger.contains("\"k2\""));
    let s = run_with(&policy, &out, None).unwrap();
    let r = receipts(&s.run_dir);
    let status = receipt_col(&r, "status");
    assert_eq!(status["k1"].as_deref(), Some("completed"));
    assert_eq!(status["k2"].as_deref(), Some("completed"));
    assert_eq!(
        receipt_col(&r, "completed_at")["k1"].as_deref(),
        Some("2025-12-31")
    );
    let e = s.manifest.erasure.as_ref().unwrap();
    assert_eq!((e.new_entries, e.ledger_entries), (0, 2));
    // Carried out by the stopped run, whose date the receipts carry.
    assert_eq!(
        (e.requests["completed"], e.requests_completed_this_run),
        (2, 0)
    );
    let published = column_strings(&read_table(&s.run_dir.join("customers")), "customer_id");
    for p in &people[3..5] {
        assert!(!published.contains(&Some(published_token(p))));
    }
}

/// Found by an audit (2026-12-03): a request whose email only rows without a customer id
/// hold (a guest checkout) was `not_found`, and those rows stayed published. Now the
/// request completes with an entry for the email alone, which erases them, also on later
/// runs.
#[test]
fn rows_with_the_email_but_no_customer_id_are_erased() {
    guest_rows_are_erased("Guest.Buyer@example.com", "guest.buyer@example.com");
}

/// An internationalized domain and its punycode are one domain: a request in either
/// spelling erases rows in the other, and the email tokens of both are one token.
#[test]
fn a_unicode_domain_matches_its_punycode_both_ways() {
    guest_rows_are_erased("Guest.Buyer@XN--BCHER-KVA.de", "guest.buyer@b\u{fc}cher.de");
    guest_rows_are_erased(
        "gUEST.buyer@Bu\u{308}cher.DE",
        "guest.buyer@xn--bcher-kva.de",
    );
}

/// Three transactions of a guest (email `export_email`, no customer id) are added to the
/// fixture, and a request for `request_email` is honoured: the guest's email token is in
/// no run's output, this one's nor the next's without the request.
fn guest_rows_are_erased(export_email: &str, request_email: &str) {
    use datafusion::arrow::array::{ArrayRef, StringArray};
    let dir = fixture_copy();
    let tx = read_table(&dir.path().join("export/transactions"));
    let first = tx[0].slice(0, 3);
    let cid = first.column_by_name("customer_id").unwrap();
    let guest = with_column(
        &with_column(
            &first,
            "customer_email",
            std::sync::Arc::new(StringArray::from(vec![export_email; 3])) as ArrayRef,
        ),
        "customer_id",
        datafusion::arrow::array::new_null_array(cid.data_type(), 3),
    );
    // Same column order and types as the export's files (nullable or not).
    let guest = RecordBatch::try_new(
        std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(
            guest
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect::<Vec<_>>(),
        )),
        first
            .schema()
            .fields()
            .iter()
            .map(|f| guest.column_by_name(f.name()).unwrap().clone())
            .collect(),
    )
    .unwrap();
    write_parquet(
        &dir.path().join("export/transactions/zz-guest.parquet"),
        &guest,
    );
    std::fs::write(
        dir.path().join("requests.csv"),
        format!(
            "request_id,email,received_at,jurisdiction,kind,explained,note\n\
             g1,{request_email},2025-12-01,GDPR,anonymize,true,\n"
        ),
    )
    .unwrap();
    let policy = policy_with_erasure(dir.path(), Some("requests.csv"));
    let guest_token = Pseudonymizer::new(&key(), None).token_str(export_email, Normalize::Email);
    assert_eq!(
        guest_token,
        Pseudonymizer::new(&key(), None).token_str(request_email, Normalize::Email)
    );
    let published_emails = |run_dir: &Path| {
        column_strings(&read_table(&run_dir.join("transactions")), "customer_email")
    };
    let s = run_with(&policy, &dir.path().join("out"), None).unwrap();
    let r = receipts(&s.run_dir);
    assert_eq!(
        receipt_col(&r, "status")["g1"].as_deref(),
        Some("completed")
    );
    assert_eq!(
        receipt_col(&r, "customers_matched")["g1"].as_deref(),
        Some("0")
    );
    assert!(!published_emails(&s.run_dir).contains(&Some(guest_token.clone())));
    assert_eq!(s.manifest.erasure.as_ref().unwrap().new_entries, 1);
    // The next run, without the request, still erases them (the ledger's email entry).
    std::fs::remove_file(dir.path().join("requests.csv")).unwrap();
    let s = run_with(&policy, &dir.path().join("out"), None).unwrap();
    assert!(!published_emails(&s.run_dir).contains(&Some(guest_token)));
    let e = s.manifest.erasure.as_ref().unwrap();
    assert_eq!((e.ledger_entries, e.new_entries), (1, 0));
}

/// `erase --prune` removes the requests the ledger honours (by the keyed hash of their
/// email, a delete request only by a delete entry) and keeps every other byte; a later
/// run still erases the pruned customers (the ledger does).
#[test]
fn erase_prune_removes_honoured_requests_and_nothing_else() {
    let dir = fixture_copy();
    let people = people();
    let policy = policy_with_erasure(dir.path(), Some("requests.csv"));
    let cfg = policy.to_str().unwrap();
    let requests = dir.path().join("requests.csv");
    let header = "request_id,email,received_at,jurisdiction,kind,explained,note\n";
    let row = |id: &str, email: &str, kind: &str, note: &str| {
        format!("{id},{email},2025-12-01,GDPR,{kind},true,{note}\n")
    };
    let (p0, p1, p2) = (&people[0], &people[1], &people[2]);
    let a1 = row(
        "a1",
        &p0.email,
        "anonymize",
        "\"called twice,\nsee ticket\"",
    );
    let n1 = row("n1", "nobody-at-all@example.com", "anonymize", "");
    let bad = row("bad", "not-an-email", "anonymize", "");
    let a2 = row("a2", &p1.email.to_uppercase(), "anonymize", "");
    std::fs::write(&requests, format!("{header}{a1}\n{n1}{bad}{a2}")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&requests, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = dir.path().join("out");
    let first = run_with(&policy, &out, None).unwrap();
    assert_eq!(first.manifest.erasure.as_ref().unwrap().ledger_entries, 2);
    // Not honoured yet: a delete for an anonymized customer, and a new request.
    let d1 = row("d1", &p0.email, "delete", "");
    let a3 = row("a3", &p2.email, "anonymize", "");
    let before = format!("{header}{a1}\n{n1}{bad}{a2}{d1}{a3}");
    std::fs::write(&requests, &before).unwrap();

    let prune = || cli(&["erase", "--config", cfg, "--prune"], Some(KEY_HEX));
    let o = prune();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains("2 honoured request(s) removed")
            && stdout.contains("3 pending or unmatched and 1 invalid kept"),
        "{stdout}"
    );
    assert!(!stdout.contains('@'), "{stdout}");
    // a1 (with its quoted line break and the blank line after it) and a2 are gone.
    assert_eq!(
        std::fs::read_to_string(&requests).unwrap(),
        format!("{header}{n1}{bad}{d1}{a3}")
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&requests).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The next run still erases p0 and p1 (the ledger), and honours d1 and a3.
    let second = run_with(&policy, &out, None).unwrap();
    let customers = all_string_cells(&second.run_dir);
    for p in [p0, p1, p2] {
        let token = published_token(p);
        assert!(!customers.iter().any(|(_, v)| *v == token), "{}", p.id);
    }
    let status = receipt_col(&receipts(&second.run_dir), "status");
    assert_eq!(
        status.keys().cloned().collect::<Vec<_>>(),
        ["a3", "bad", "d1", "n1"]
    );
    // Now d1 and a3 are honoured too; n1 (no customer) and the invalid row stay.
    let o = prune();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(&requests).unwrap(),
        format!("{header}{n1}{bad}")
    );
    // Nothing to prune: the file is left alone.
    let o = prune();
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 honoured request(s) removed"));

    // Without the key, or with --email, nothing happens.
    let o = cli(&["erase", "--config", cfg, "--prune"], None);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = cli(
        &[
            "erase",
            "--config",
            cfg,
            "--prune",
            "--email",
            "x@example.com",
        ],
        Some(KEY_HEX),
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(&requests).unwrap(),
        format!("{header}{n1}{bad}")
    );
}
