//! `anonymizer query` over the published output.

use crate::common::*;

/// `anonymizer query --config CFG --sql SQL` with `extra` arguments after them.
fn query_sql(cfg: &str, sql: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["query", "--config", cfg, "--sql", sql];
    args.extend_from_slice(extra);
    cli(&args, None)
}

/// `--format parquet --output FILE`: the query succeeds, and FILE's batches.
fn query_to_parquet(
    cfg: &str,
    sql: &str,
    file: &std::path::Path,
) -> Vec<datafusion::arrow::record_batch::RecordBatch> {
    let o = query_sql(
        cfg,
        sql,
        &["--format", "parquet", "--output", file.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    read_parquet(file)
}

#[test]
fn ad_hoc_sql_in_every_format() {
    let (dir, cfg) = published_fixture();
    let rows: usize = read_table(&fixture().join("export/transactions"))
        .iter()
        .map(|b| b.num_rows())
        .sum();
    let sql = "SELECT count(*) AS n FROM transactions";
    let o = cli(
        &["query", "--config", &cfg, "--sql", sql, "--format", "csv"],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), format!("n\n{rows}\n"));
    let o = cli(
        &[
            "query",
            "--out",
            dir.path().join("out").to_str().unwrap(),
            "--sql",
            sql,
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("[{{\"n\":{rows}}}]")
    );
    // A null (a withheld cell) is written as a key with null, not left out.
    let o = cli(
        &[
            "query",
            "--config",
            &cfg,
            "--sql",
            "SELECT 1 AS a, CAST(NULL AS BIGINT) AS withheld",
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "[{\"a\":1,\"withheld\":null}]"
    );
    let o = cli(&["query", "--config", &cfg, "--sql", sql], None);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("| {rows} |")));
    let file = dir.path().join("n.parquet");
    assert_eq!(
        column_strings(&query_to_parquet(&cfg, sql, &file), "n"),
        vec![Some(rows.to_string())]
    );
    // Never into the published output, where it would be read as an unchecked table.
    let inside = dir.path().join("out/current/customers/zz.parquet");
    let o = cli(
        &[
            "query",
            "--config",
            &cfg,
            "--sql",
            "SELECT * FROM customers LIMIT 5",
            "--format",
            "parquet",
            "--output",
            inside.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is inside the output folder"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!inside.exists());
    // Found by the fourth audit (2026-12-04): nor into another output's published run
    // (here the policy's, while --out names a second output), nor through `current`
    // into a folder no run published (a link to the raw export).
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("runs")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("export"), other.join("current")).unwrap();
    let query = |args: &[&str]| {
        let mut all = vec!["query", "--sql", "SELECT 1 AS a"];
        all.extend_from_slice(args);
        cli(&all, None)
    };
    let into_policy_run = dir.path().join("out/current/x.csv");
    let o = query(&[
        "--out",
        other.to_str().unwrap(),
        "--output",
        into_policy_run.to_str().unwrap(),
    ]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() == Some(2) && e.contains("is inside the output folder"),
        "{e}"
    );
    assert!(!into_policy_run.exists());
    let o = cli(
        &[
            "query",
            "--out",
            other.to_str().unwrap(),
            "--sql",
            "SELECT * FROM customers",
        ],
        None,
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() == Some(2) && e.contains("is not a run anonymizer published"),
        "{e}"
    );
    assert!(o.stdout.is_empty());
    // `--output -` is standard output, Parquet included.
    let o = query(&["--config", &cfg, "--format", "csv", "--output", "-"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "a\n1\n");
    assert!(!std::path::Path::new("-").exists());
    let o = query(&["--config", &cfg, "--format", "parquet", "--output", "-"]);
    assert!(o.status.success() && o.stdout.starts_with(b"PAR1"));
    // No rows: still the header.
    let o = cli(
        &[
            "query",
            "--config",
            &cfg,
            "--sql",
            "SELECT country, count(*) AS n FROM customers WHERE 1 = 0 GROUP BY country",
            "--format",
            "csv",
        ],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "country,n\n");
    // A misspelt function is named, with the suggestion (identifiers, not values).
    let o = cli(
        &[
            "query",
            "--config",
            &cfg,
            "--sql",
            "SELECT lowr(country) FROM customers",
        ],
        None,
    );
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("Invalid function 'lowr'. Did you mean 'lower'?"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Execution errors list the published tables too.
    let o = cli(
        &[
            "query",
            "--config",
            &cfg,
            "--sql",
            "SELECT CAST('x' AS INT)",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("published tables: "),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn only_published_tables_are_visible() {
    let (dir, cfg) = published_fixture();
    let raw = dir.path().join("export/customers");
    let ddl = format!(
        "CREATE EXTERNAL TABLE raw STORED AS PARQUET LOCATION '{}'",
        raw.display()
    );
    let o = cli(&["query", "--config", &cfg, "--sql", &ddl], None);
    assert_eq!(o.status.code(), Some(2));
    let file_sql = format!("SELECT * FROM '{}/part-00000.parquet'", raw.display());
    let o = cli(&["query", "--config", &cfg, "--sql", &file_sql], None);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("published tables: cohort_retention, customers, mrr_monthly, revenue_monthly, subscriptions_monthly, transactions"),
        "{err}"
    );
    assert!(
        !err.contains(&raw.display().to_string()),
        "the error quotes the path: {err}"
    );
}

#[test]
fn saved_queries_are_listed_and_run() {
    let (dir, cfg) = published_fixture();
    let q = dir.path().join("my-queries");
    std::fs::create_dir_all(&q).unwrap();
    // Transactions' countries: the customers table's country is a quasi-identifier that
    // k-anonymity generalizes away on an export this small.
    std::fs::write(q.join("countries.sql"), "-- Customers per country.\n-- customers: distinct customer tokens\nSELECT country, count(DISTINCT customer_id) AS customers FROM transactions GROUP BY country ORDER BY country\n").unwrap();
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("keep_runs = 5", "keep_runs = 5\nqueries = \"my-queries\"");
    std::fs::write(&cfg, text).unwrap();
    let o = cli(&["query", "--config", &cfg, "--list"], None);
    let list = String::from_utf8_lossy(&o.stdout);
    assert!(
        list.contains("countries") && list.contains("Customers per country."),
        "{list}"
    );
    let o = cli(
        &["query", "countries", "--config", &cfg, "--format", "csv"],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("country,customers\n") && out.lines().count() > 10,
        "{out}"
    );
    let o = cli(&["query", "countrys", "--config", &cfg], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean 'countries'"));
    // SQL given where the name goes says to use --sql.
    let o = cli(
        &["query", "--config", &cfg, "SELECT count(*) FROM customers"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("Give ad-hoc SQL with --sql") && !err.contains("count(*)"),
        "{err}"
    );
}

/// Found by an audit (2026-12-03): query errors printed published values (a regex
/// compiled from a column printed a customer's token; an out-of-range cast and other
/// execution errors printed amounts), and `--output` through a symbolic link wrote over a
/// published file. Identifiers stay visible: a misspelt table gets "did you mean".
#[test]
fn query_errors_print_no_published_value_and_output_never_writes_through_a_link() {
    let (dir, cfg) = published_fixture();
    let current = dir.path().join("out/current");
    let mut published: Vec<String> = Vec::new();
    for (table, column) in [("customers", "customer_id"), ("transactions", "offer_id")] {
        let b = read_table(&current.join(table));
        published.extend(column_strings(&b, column).into_iter().flatten());
    }
    let err_of = |sql: &str| {
        let o = cli(&["query", "--config", &cfg, "--sql", sql], None);
        assert_eq!(o.status.code(), Some(2), "{sql}");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    for (sql, says) in [
        (
            "SELECT regexp_like('a', customer_id || '(') FROM customers",
            "regex parse error: … error: unclosed group",
        ),
        (
            "SELECT regexp_replace('a', offer_id || '[', 'x') FROM transactions",
            "regex parse error: … error: unclosed character class",
        ),
        (
            "SELECT CAST(amount * 100 AS TINYINT) FROM transactions",
            "value of … is out of range Int8",
        ),
        (
            "SELECT substr(customer_id, 1, -CAST(amount AS INT) - 1) FROM transactions",
            "negative count not allowed: …",
        ),
        (
            "SELECT decode(offer_id, 'base64') FROM transactions",
            "Invalid symbol …, offset …",
        ),
        (
            "SELECT CAST(customer_id AS INT) FROM customers",
            "Cannot cast string … to value of Int32 type",
        ),
    ] {
        let e = err_of(sql);
        assert!(e.contains(says), "{sql}: {e}");
        for v in &published {
            assert!(!e.contains(v.as_str()), "{sql}: a published value in {e}");
        }
    }
    // Numbers the analyst typed stay.
    let e = err_of("SELECT substr(customer_id, 1, -5) FROM customers");
    assert!(e.contains("negative count not allowed: -5"), "{e}");
    // So does a string the analyst cast.
    let e = err_of("SELECT CAST('no number' AS INT)");
    assert!(
        e.contains("Cannot cast string 'no number' to value of Int32 type"),
        "{e}"
    );
    let e = err_of("SELECT * FROM custommers");
    assert!(
        e.contains("table 'datafusion.public.custommers' not found (did you mean 'customers'?)"),
        "{e}"
    );
    let e = err_of("SELECT \"Country\" FROM customers");
    assert!(
        e.contains("No field named \"Country\". Did you mean 'customers.country'?")
            && !e.contains("enable_ident_normalization"),
        "{e}"
    );

    // --out at a run rather than OUT says so.
    let o = cli(
        &["query", "growth", "--out", current.to_str().unwrap()],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is a published run, not an output folder"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A link named as --output is replaced by the result, not written through.
    let target = parquet_files(&current.join("customers"))
        .into_values()
        .next()
        .unwrap();
    let before = std::fs::read(&target).unwrap();
    let link = dir.path().join("result.parquet");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let o = cli(
        &[
            "query",
            "--config",
            &cfg,
            "--sql",
            "SELECT 1 AS x",
            "--format",
            "parquet",
            "--output",
            link.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&target).unwrap(), before);
    assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(
        column_strings(&read_parquet(&link), "x"),
        vec![Some("1".into())]
    );
}

/// The table format shows at most --max-rows rows (default 1000) and says how many there
/// were; csv streams every row; a reader that goes away early ends the query quietly.
#[test]
fn a_long_result_is_capped_in_a_table_and_streamed_otherwise() {
    let (_dir, cfg) = published_fixture();
    let rows: usize = read_table(&fixture().join("export/transactions"))
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert!(rows > 1000, "{rows}");
    let sql = "SELECT transaction_at, amount FROM transactions";
    let o = cli(&["query", "--config", &cfg, "--sql", sql], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    // Borders, the head, 1000 rows, the last border, and the note.
    assert_eq!(table.lines().count(), 3 + 1000 + 1 + 1, "{}", &table[..200]);
    assert!(
        table.ends_with(&format!(
            "({rows} rows, the first 1000 shown: --max-rows 0 shows them all; --format csv, json or parquet streams them)\n"
        )),
        "{}",
        &table[table.len() - 300..]
    );
    let o = cli(
        &["query", "--config", &cfg, "--sql", sql, "--max-rows", "3"],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().count(),
        3 + 3 + 1 + 1
    );
    let o = cli(
        &["query", "--config", &cfg, "--sql", sql, "--max-rows", "0"],
        None,
    );
    let all = String::from_utf8_lossy(&o.stdout);
    assert_eq!(all.lines().count(), 3 + rows + 1);
    assert!(!all.contains("rows, the first"));
    // A short result has no note.
    let o = cli(
        &[
            "query",
            "--config",
            &cfg,
            "--sql",
            "SELECT 1 AS one",
            "--max-rows",
            "1",
        ],
        None,
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("rows, the first"));
    let o = cli(
        &["query", "--config", &cfg, "--sql", sql, "--format", "csv"],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 1 + rows);

    // `| head -1`: the reader closes the pipe after one line; the query stops quietly.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_anonymizer"))
        .args([
            "query",
            "--config",
            &cfg,
            "--sql",
            "SELECT t1.amount FROM transactions t1, (SELECT 1 FROM transactions LIMIT 50) t2",
            "--format",
            "csv",
        ])
        .env_remove("ANONYMIZER_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::BufRead;
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(first, "amount\n");
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Arrow writes a date no calendar can show as the cell `ERROR: Cast error: ...` in a
/// table and in JSON (CSV stops with the value in its message), and the query exited 0
/// with it. Now every text format stops, naming the column and the result's row; Parquet
/// holds the number and is written.
#[test]
fn a_time_no_calendar_can_show_stops_the_render_naming_its_column_and_row() {
    let (dir, cfg) = published_fixture();
    let sql = "SELECT x, to_timestamp_seconds(x) AS t FROM (VALUES (1), (9223372036854775807)) AS v(x) ORDER BY x";
    for format in ["table", "csv", "json"] {
        let o = query_sql(&cfg, sql, &["--format", format]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{format}: {err}");
        assert!(
            err.contains(
                "column `t`, row 2 of the result holds a date or time that no calendar can show"
            ) && err.contains("cast it to BIGINT")
                && !err.contains("ERROR"),
            "{format}: {err}"
        );
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("ERROR"),
            "{format}"
        );
    }
    // The first row alone is shown; the table's limit keeps the second out of sight.
    let o = query_sql(&cfg, sql, &["--max-rows", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("1970-01-01T00:00:01"));
    assert_eq!(
        query_to_parquet(&cfg, sql, &dir.path().join("t.parquet"))
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>(),
        2
    );
}

/// JSON has no NaN: arrow-json writes it as null (the README says so).
#[test]
fn json_writes_a_float_nan_as_null() {
    let (_dir, cfg) = published_fixture();
    let o = query_sql(
        &cfg,
        "SELECT CAST('NaN' AS DOUBLE) AS n, 1.5 AS x",
        &["--format", "json"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "[{\"n\":null,\"x\":1.5}]"
    );
}

#[test]
fn list_with_a_query_to_run_is_refused() {
    let (_dir, cfg) = published_fixture();
    for extra in [&["--sql", "SELECT 1"][..], &["growth"][..]] {
        let mut args = vec!["query", "--config", &cfg, "--list"];
        args.extend_from_slice(extra);
        let o = cli(&args, None);
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("cannot be used with"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let opts = anonymizer::query::QueryOptions {
        name: None,
        sql: Some("SELECT 1".into()),
        list: true,
        format: anonymizer::query::QueryFormat::Csv,
        output: None,
        config: Some(cfg.clone().into()),
        out: None,
        max_rows: None,
    };
    let err = anonymizer::query::execute(&opts).unwrap_err().to_string();
    assert!(err.contains("without --list"), "{err}");
}

#[test]
fn the_list_comes_as_csv_or_json_for_scripts() {
    let (_dir, cfg) = published_fixture();
    let o = cli(
        &["query", "--config", &cfg, "--list", "--format", "json"],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let builtin: Vec<&str> = anonymizer::query::BUILTIN.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, builtin);
    for r in &rows {
        // ./queries (the tests run in the checkout) or built in.
        let source = r["source"].as_str().unwrap();
        let file = format!("{}.sql", r["name"].as_str().unwrap());
        assert!(source == "built-in" || source.ends_with(&file), "{r}");
        assert!(!r["summary"].as_str().unwrap().is_empty(), "{r}");
    }
    let o = cli(
        &["query", "--config", &cfg, "--list", "--format", "csv"],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = String::from_utf8_lossy(&o.stdout);
    assert!(csv.starts_with("name,summary,source\n"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + builtin.len(), "{csv}");
    // Parquet, and a file to write, are refused, never ignored.
    let o = cli(
        &["query", "--config", &cfg, "--list", "--format", "parquet"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not parquet"));
    let o = cli(
        &["query", "--config", &cfg, "--list", "--output", "list.txt"],
        None,
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("leave out --output"));
}
