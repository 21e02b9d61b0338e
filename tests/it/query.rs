//! `anonymizer query` over the published output.

use crate::common::*;

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
    let o = cli(
        &[
            "query",
            "--config",
            &cfg,
            "--sql",
            sql,
            "--format",
            "parquet",
            "--output",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        column_strings(&read_parquet(&file), "n"),
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
}
