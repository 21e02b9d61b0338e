//! A transactions-only CSV export with other column names works by mapping roles.

use crate::common::*;

const CSV: &str = "\
InvoiceNo,InvoiceDate,CustomerID,Email,Amount,Country,Notes
536365,2011-12-01 08:26:00,17850, Alice.Smith@Example.com ,15.30,United Kingdom,call me on +44 20 7946 0958
536366,2011-12-09 12:50:00,17850,alice.smith@example.com,22.00,United Kingdom,
536367,2011-12-05 10:00:00,13047,bob@example.org,9.99,France,card 4111 1111 1111 1111 please
";

const POLICY: &str = r#"
output = "out"

[tables.sales]
input = "sales.csv"

[tables.sales.roles]
customer_key = "CustomerID"
event_time = "InvoiceDate"
email = "Email"

[tables.sales.columns]
InvoiceNo = "pseudonymize"
InvoiceDate = { rule = "generalize", to = "week" }
CustomerID = "pseudonymize"
Email = "pseudonymize"
Amount = "keep"
Country = "keep"
Notes = "scrub"
"#;

#[test]
fn csv_with_mapped_roles() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("sales.csv"), CSV).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let s = run_to(&policy, &dir.path().join("out"), key()).unwrap();
    assert_eq!(s.manifest.as_of.as_deref(), Some("2011-12-09"));
    assert_eq!(s.manifest.as_of_source, "latest sales.InvoiceDate");
    let t = read_table(&s.run_dir.join("sales"));
    let emails = column_strings(&t, "Email");
    // The email role normalizes: the two spellings of Alice's address share a token.
    assert_eq!(emails[0], emails[1]);
    assert_ne!(emails[0], emails[2]);
    let ids = column_strings(&t, "CustomerID");
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0].as_ref().unwrap().len(), 32);
    let notes = column_strings(&t, "Notes");
    assert_eq!(notes[0].as_deref(), Some("call me on [PHONE]"));
    assert_eq!(notes[2].as_deref(), Some("card [CARD] please"));
    let weeks = column_strings(&t, "InvoiceDate");
    assert!(
        weeks[0].as_deref().unwrap().starts_with("2011-11-28"),
        "{weeks:?}"
    );
    // Mapped roles, plus defaults found by name (case-insensitively).
    let roles: Vec<&str> = s.manifest.tables["sales"]
        .roles
        .keys()
        .map(|r| r.as_str())
        .collect();
    assert_eq!(
        roles,
        ["customer_key", "email", "event_time", "amount", "country"]
    );
}

/// The same export as three small CSV files in a folder is read as one group (one plan,
/// one output file) with the same rows; a ragged row in the group's second file is
/// reported in that file.
#[test]
fn small_csv_files_are_read_in_groups() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("sales");
    std::fs::create_dir(&folder).unwrap();
    let mut lines = CSV.lines();
    let header = lines.next().unwrap();
    for (i, row) in lines.enumerate() {
        std::fs::write(
            folder.join(format!("part-{i}.csv")),
            format!("{header}\n{row}\n"),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("sales.csv"), CSV).unwrap();
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let one = run_to(&policy, &dir.path().join("one"), key()).unwrap();
    let split = dir.path().join("split.toml");
    std::fs::write(&split, POLICY.replace("\"sales.csv\"", "\"sales\"")).unwrap();
    let s = run_to(&split, &dir.path().join("out"), key()).unwrap();
    assert_eq!(s.manifest.inputs.len(), 3);
    assert_eq!(s.manifest.tables["sales"].files.len(), 1);
    let rows = |d: &std::path::Path| {
        let t = read_table(d);
        let mut r: Vec<_> = ["InvoiceNo", "InvoiceDate", "CustomerID", "Email", "Notes"]
            .iter()
            .map(|c| column_strings(&t, c))
            .collect::<Vec<_>>();
        let mut out: Vec<Vec<Option<String>>> = (0..r[0].len())
            .map(|i| r.iter_mut().map(|c| c[i].take()).collect())
            .collect();
        out.sort();
        out
    };
    assert_eq!(
        rows(&s.run_dir.join("sales")),
        rows(&one.run_dir.join("sales"))
    );
    // A ragged row in the second file.
    std::fs::write(
        folder.join("part-1.csv"),
        format!("{header}\n536366,2011-12-09 12:50:00\n"),
    )
    .unwrap();
    let e = run_to(&split, &dir.path().join("out"), key())
        .unwrap_err()
        .to_string();
    assert!(e.contains("part-1.csv"), "{e}");
}

/// A policy for a `sales` table at `input` with the retail roles, the usual rules for
/// InvoiceNo, InvoiceDate and CustomerID, and `columns` (TOML lines) for the rest.
fn sales_policy(dir: &std::path::Path, input: &str, columns: &str) -> std::path::PathBuf {
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        format!(
            r#"
output = "out"

[tables.sales]
input = "{input}"

[tables.sales.roles]
customer_key = "CustomerID"
event_time = "InvoiceDate"

[tables.sales.columns]
InvoiceNo = "pseudonymize"
InvoiceDate = {{ rule = "generalize", to = "week" }}
CustomerID = "pseudonymize"
{columns}
"#
        ),
    )
    .unwrap();
    policy
}

/// Found by an audit (2026-12-03): CSV columns read as text where a text rule reads
/// them, or where the sample holds no value. Inference had merged ids `042` and `42`
/// into one token, read postal code `02112` as 2112 (which `prefix` then refused), and
/// typed an empty phone column as Null (which `mask` refused).
#[test]
fn csv_columns_a_text_rule_reads_are_read_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "\
InvoiceNo,InvoiceDate,CustomerID,PostalCode,Phone
1,2011-12-01 08:26:00,042,02112,
2,2011-12-02 08:26:00,42,10001,
3,2011-12-03 08:26:00,42,94105,
";
    std::fs::write(dir.path().join("sales.csv"), csv).unwrap();
    let policy = sales_policy(
        dir.path(),
        "sales.csv",
        "PostalCode = { rule = \"generalize\", to = \"prefix\", length = 2 }\n\
         Phone = { rule = \"mask\", keep_last = 2 }",
    );
    let s = run_to(&policy, &dir.path().join("out"), key()).unwrap();
    let t = read_table(&s.run_dir.join("sales"));
    let ids = column_strings(&t, "CustomerID");
    assert_ne!(ids[0], ids[1], "042 and 42 are two customers");
    assert_eq!(ids[1], ids[2]);
    // Text "42" gets the token the integer 42 gets (a Parquet export's id).
    let p = anonymizer::rules::pseudonymize::Pseudonymizer::new(&key(), None);
    assert_eq!(ids[1].as_deref(), Some(p.token_i64(42).as_str()));
    let postal = column_strings(&t, "PostalCode");
    assert_eq!(postal[0].as_deref(), Some("02"));
}

/// Found by an audit (2026-12-03): a quoted value holding a line break (valid CSV) was
/// refused as "unequal lengths"; and a column of numbers in one file and text in another
/// was typed by the first file alone.
#[test]
fn csv_quoted_line_breaks_and_types_that_differ_between_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sales")).unwrap();
    std::fs::write(
        dir.path().join("sales/a.csv"),
        "InvoiceNo,InvoiceDate,CustomerID,Notes,Quantity\n\
         1,2011-12-01 08:26:00,17850,\"call me\non +44 20 7946 0958\",3\n\
         2,2011-12-02 08:26:00,17851,fine,4\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sales/b.csv"),
        "InvoiceNo,InvoiceDate,CustomerID,Notes,Quantity\n\
         3,2011-12-03 08:26:00,17852,fine,three\n",
    )
    .unwrap();
    let policy = sales_policy(
        dir.path(),
        "sales",
        "Notes = \"scrub\"\nQuantity = \"keep\"",
    );
    let s = run_to(&policy, &dir.path().join("out"), key()).unwrap();
    assert_eq!(s.manifest.tables["sales"].rows_read, Some(3));
    let t = read_table(&s.run_dir.join("sales"));
    let notes = column_strings(&t, "Notes");
    assert!(
        notes.contains(&Some("call me\non [PHONE]".to_string())),
        "{notes:?}"
    );
    let quantity = column_strings(&t, "Quantity");
    assert!(
        quantity.contains(&Some("three".to_string())),
        "{quantity:?}"
    );
}

/// Found by an audit (2026-12-03): Arrow's CSV parse errors name the column by its index
/// from 0 and the row after the header ("Error parsing column 3 at line 2"), with "is it a
/// complete file?" under them. The message now names the row, its line counting the
/// header, the column and its type, and how to fix it; still without the value. Both of
/// Arrow's forms: a timestamp (read by the input checks) and an integer that only the
/// transform reads, far past the rows inference samples.
#[test]
fn a_csv_value_that_does_not_parse_is_named_by_row_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("InvoiceNo,InvoiceDate,CustomerID,Quantity\n");
    for i in 0..3000 {
        let q = if i == 2500 {
            "7x9".to_string()
        } else {
            (i % 7).to_string()
        };
        csv.push_str(&format!("{i},2011-12-01 08:26:00,{},{q}\n", 17850 + i % 50));
    }
    std::fs::write(dir.path().join("sales.csv"), &csv).unwrap();
    let policy = sales_policy(dir.path(), "sales.csv", "Quantity = \"keep\"");
    let e = run_to(&policy, &dir.path().join("out"), key())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("row 2501 (line 2502 counting the header")
            && e.contains("column 'Quantity'")
            && e.contains("Int64")
            && e.contains("correct the value in the export")
            && !e.contains("7x9"),
        "{e}"
    );
    let csv = csv.replacen("2011-12-01 08:26:00", "2011-13-01 08:26:00", 1);
    std::fs::write(dir.path().join("sales.csv"), &csv).unwrap();
    let e = run_to(&policy, &dir.path().join("out"), key())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("row 1 (line 2 counting the header")
            && e.contains("column 'InvoiceDate'")
            && !e.contains("2011-13-01")
            && !e.contains("complete file"),
        "{e}"
    );
    assert!(!dir.path().join("out/current").exists());
}

/// `scrub` with `names` in a CSV table: the row's name leaves its note, the other row's
/// note keeps a word that is only someone else's name; a name column whose sample is all
/// digits is read as text, so the policy is still valid.
#[test]
fn csv_notes_lose_the_rows_name() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "\
InvoiceNo,InvoiceDate,CustomerID,Name,Nick,Notes
1,2011-12-01 08:26:00,17850,Alice Smith,007,\"Thanks, Alice Smith (alice.smith@example.com)\"
2,2011-12-09 12:50:00,13047,Bob Jones,42,Smith referred me; bob here
";
    std::fs::write(dir.path().join("people.csv"), csv).unwrap();
    let policy = sales_policy(
        dir.path(),
        "people.csv",
        "Name = \"drop\"\nNick = \"drop\"\nNotes = { rule = \"scrub\", names = [\"Name\", \"Nick\"] }",
    );
    let s = run_to(&policy, &dir.path().join("out"), key()).unwrap();
    let notes = column_strings(&read_table(&s.run_dir.join("sales")), "Notes");
    assert_eq!(notes[0].as_deref(), Some("Thanks, [NAME] ([EMAIL])"));
    assert_eq!(notes[1].as_deref(), Some("Smith referred me; [NAME] here"));
}

/// Found by the fourth audit (2026-12-04): arrow infers whole-second times
/// (`2025-01-05T10:00:00Z`) as seconds, which Parquet has no unit for: the kept column was
/// published as a bare INT64 that DuckDB read as a number; and a file with fractions beside
/// one without made the column text, which the policy's time rule then refused. CSV times
/// are read in microseconds.
#[test]
fn csv_times_are_published_as_parquet_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sales")).unwrap();
    std::fs::write(
        dir.path().join("sales/a.csv"),
        "InvoiceNo,InvoiceDate,CustomerID,SeenAt\n\
         1,2025-01-05T10:00:00Z,17850,2025-01-05T10:00:00Z\n\
         2,2025-01-06T10:00:00Z,17851,2025-01-06T11:00:00Z\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("sales/b.csv"),
        "InvoiceNo,InvoiceDate,CustomerID,SeenAt\n\
         3,2025-01-07T10:00:00.250Z,17852,2025-01-07T12:00:00.500Z\n",
    )
    .unwrap();
    let policy = sales_policy(dir.path(), "sales", "SeenAt = \"keep\"");
    let s = run_to(&policy, &dir.path().join("out"), key()).unwrap();
    assert_eq!(s.manifest.tables["sales"].rows_read, Some(3));
    for f in parquet_files(&s.run_dir.join("sales")).into_values() {
        let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&f).unwrap(),
        )
        .unwrap();
        let col = b
            .parquet_schema()
            .columns()
            .iter()
            .find(|c| c.name() == "SeenAt")
            .unwrap()
            .clone();
        assert!(
            matches!(
                col.logical_type_ref(),
                Some(parquet::basic::LogicalType::Timestamp { .. })
            ),
            "{:?}",
            col.logical_type_ref()
        );
    }
    let t = read_table(&s.run_dir.join("sales"));
    let seen = t[0].column_by_name("SeenAt").unwrap();
    assert!(
        matches!(
            seen.data_type(),
            datafusion::arrow::datatypes::DataType::Timestamp(
                datafusion::arrow::datatypes::TimeUnit::Microsecond,
                _
            )
        ),
        "{:?}",
        seen.data_type()
    );
}

/// A CSV export of `rows` sales whose notes hold quoted line breaks (LF and CRLF), doubled
/// quotes, commas, and a quote inside an unquoted value; CRLF line ends on some rows.
pub(crate) fn sales_csv(rows: usize) -> String {
    let mut csv = String::from("InvoiceNo,InvoiceDate,CustomerID,Notes,Quantity\n");
    for i in 0..rows {
        let notes = match i % 7 {
            0 => "\"call me\non +44 20 7946 0958\"".to_string(),
            1 => "\"said \"\"fine\"\", thanks\r\nbye\"".to_string(),
            2 => "12\" screen".to_string(),
            3 => String::new(),
            _ => format!("note {i}"),
        };
        let end = if i % 5 == 0 { "\r\n" } else { "\n" };
        csv.push_str(&format!(
            "{i},2011-12-{:02} 08:26:00,{},{notes},{}{end}",
            1 + i % 28,
            17850 + i % 50,
            i % 7
        ));
    }
    csv
}

/// Two policies for `sales.csv` in `dir` (Notes scrubbed, Quantity kept, `extra` TOML
/// after `output`): the file read whole (`policy.toml`), and in pieces of 4 KiB
/// (`pieces.toml`).
pub(crate) fn whole_and_pieced(
    dir: &std::path::Path,
    extra: &str,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let whole = sales_policy(dir, "sales.csv", "Notes = \"scrub\"\nQuantity = \"keep\"");
    let text = std::fs::read_to_string(&whole).unwrap().replacen(
        "output = \"out\"\n",
        &format!("output = \"out\"\n{extra}"),
        1,
    );
    std::fs::write(&whole, &text).unwrap();
    let pieced = dir.join("pieces.toml");
    std::fs::write(
        &pieced,
        text.replace(
            "input = \"sales.csv\"",
            "input = \"sales.csv\"\ncsv_piece_bytes = 4096",
        ),
    )
    .unwrap();
    (whole, pieced)
}

/// The aggregate tables of a run of the sales policies (every table but `sales`), each
/// with its file's SHA-256.
fn aggregates(r: &anonymizer::run::RunSummary) -> Vec<(String, String)> {
    r.manifest
        .tables
        .iter()
        .filter(|(t, _)| t.as_str() != "sales")
        .map(|(t, m)| (t.clone(), m.files[0].sha256.clone()))
        .collect()
}

/// The rows of a published table in file order, every column as text.
fn rows_in_order(dir: &std::path::Path) -> Vec<Vec<Option<String>>> {
    let t = read_table(dir);
    let names: Vec<String> = t[0]
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut cols: Vec<_> = names.iter().map(|c| column_strings(&t, c)).collect();
    (0..cols[0].len())
        .map(|i| cols.iter_mut().map(|c| c[i].take()).collect())
        .collect()
}

/// A CSV file larger than `csv_piece_bytes` is read in pieces, each by a partition of its
/// own (into an output file of its own), cut only between records although quoted values
/// hold line breaks: the same rows in the same order as the file read whole, the same
/// manifest figures, and the same bytes on 1 and 2 threads. A value that does not parse
/// far into the file is still named by its row and line in the file, whether the input
/// checks or the transform meets it.
#[test]
fn a_large_csv_file_is_read_in_pieces() {
    let dir = tempfile::tempdir().unwrap();
    let csv = sales_csv(3000);
    std::fs::write(dir.path().join("sales.csv"), &csv).unwrap();
    let (whole, pieced) = whole_and_pieced(dir.path(), "\n[analytics]\nk = 1\n");
    let one = run_to(&whole, &dir.path().join("one"), key()).unwrap();
    let s = run_to(&pieced, &dir.path().join("out"), key()).unwrap();
    // The aggregates (read by the kernel in pieces too): the same bytes.
    assert!(
        !aggregates(&one).is_empty(),
        "{:?}",
        one.manifest.tables.keys()
    );
    assert_eq!(aggregates(&s), aggregates(&one));
    let files = s.manifest.tables["sales"].files.len();
    assert!(
        files > 20 && files <= 64,
        "{files} files from {} bytes",
        csv.len()
    );
    assert_eq!(one.manifest.tables["sales"].files.len(), 1);
    assert_eq!(s.manifest.tables["sales"].rows_read, Some(3000));
    assert_eq!(
        rows_in_order(&s.run_dir.join("sales")),
        rows_in_order(&one.run_dir.join("sales"))
    );
    let notes = column_strings(&read_table(&s.run_dir.join("sales")), "Notes");
    assert_eq!(notes[0].as_deref(), Some("call me\non [PHONE]"));
    assert_eq!(notes[2].as_deref(), Some("12\" screen"));
    assert_eq!(s.manifest.as_of, one.manifest.as_of);
    // The same sales as two large files in a folder, each cut (the aggregates read every
    // file of a table as one scan, its pieces and the other file's): the same rows, in
    // order, and aggregates.
    let folder = dir.path().join("sales");
    std::fs::create_dir(&folder).unwrap();
    let half = csv.find("\n1500,").unwrap() + 1;
    let header = csv.lines().next().unwrap();
    std::fs::write(folder.join("a.csv"), &csv[..half]).unwrap();
    std::fs::write(folder.join("b.csv"), format!("{header}\n{}", &csv[half..])).unwrap();
    let two = dir.path().join("two.toml");
    std::fs::write(
        &two,
        std::fs::read_to_string(&pieced)
            .unwrap()
            .replace("input = \"sales.csv\"", "input = \"sales\""),
    )
    .unwrap();
    let t = run_to(&two, &dir.path().join("two"), key()).unwrap();
    let files = t.manifest.tables["sales"].files.len();
    assert!(files > 20, "{files} files");
    assert_eq!(
        rows_in_order(&t.run_dir.join("sales")),
        rows_in_order(&one.run_dir.join("sales"))
    );
    assert_eq!(aggregates(&t), aggregates(&one));
    // One thread: the same bytes.
    let single = anonymizer::run::run(&anonymizer::run::RunOptions {
        config: pieced.clone(),
        out: Some(dir.path().join("single")),
        key: Some(key()),
        threads: Some(1),
        ..Default::default()
    })
    .unwrap();
    let bytes = |r: &anonymizer::run::RunSummary| -> Vec<(String, Vec<u8>)> {
        parquet_files(&r.run_dir)
            .into_iter()
            .map(|(k, p)| (k, std::fs::read(p).unwrap()))
            .collect()
    };
    assert_eq!(bytes(&single), bytes(&s));

    // Row 2501 is in a late piece: an integer only the transform reads, then a time the
    // input checks read. Row 2500 is a note over two lines ending in CRLF (Arrow prints
    // the row, which the error must not show past its line break) with quantity 1.
    let fails_with = |bad: String, column: &str, value: &str| {
        assert_ne!(bad, csv);
        std::fs::write(dir.path().join("sales.csv"), &bad).unwrap();
        let e = run_to(&pieced, &dir.path().join("out"), key())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("row 2501 (line 2502 counting the header")
                && e.contains(&format!("column '{column}'"))
                && !e.contains(value)
                && !e.contains("bye"),
            "{e}"
        );
    };
    fails_with(
        csv.replacen(",1\r\n2501,", ",7x9\r\n2501,", 1),
        "Quantity",
        "7x9",
    );
    fails_with(
        csv.replacen("2500,2011-12-09 08:26:00", "2500,2011-13-09 08:26:00", 1),
        "InvoiceDate",
        "2011-13-09",
    );
    // A piece of less than 1 KiB is refused with the policy.
    let text = std::fs::read_to_string(&pieced).unwrap();
    std::fs::write(&pieced, text.replace("= 4096", "= 100")).unwrap();
    let e = run_to(&pieced, &dir.path().join("out"), key())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'csv_piece_bytes' is 100, must be between 1024 and"),
        "{e}"
    );
}

/// A large CSV file broken late (a ragged row, text that is not UTF-8, a quote never
/// closed, a value that does not parse) fails the same way read in pieces as read whole:
/// the same error, naming the same file and row, never a panic, nothing published.
#[test]
fn a_large_csv_file_broken_late_fails_in_pieces_as_whole() {
    let dir = tempfile::tempdir().unwrap();
    let csv = sales_csv(3000);
    let (whole, pieced) = whole_and_pieced(dir.path(), "");
    // Rows whose note is on one line (`sales_csv`: i % 7 is 2 to 6).
    let row = |i: usize| {
        assert!(i % 7 >= 2);
        let at = csv.find(&format!("\n{i},")).unwrap() + 1;
        (at, at + csv[at..].find('\n').unwrap() + 1)
    };
    let with_row = |i: usize, new: &[u8]| {
        let (a, b) = row(i);
        [&csv.as_bytes()[..a], new, &csv.as_bytes()[b..]].concat()
    };
    // The input checks read the time, not the quantity: they meet the later bad time
    // (in pieces too: the checks, not a plain read, are done again on the whole file).
    let time_after_quantity =
        String::from_utf8(with_row(2704, b"2704,2011-12-01 08:26:00,17854,x,4.5.6\n"))
            .unwrap()
            .replacen("\n2902,2011-12-", "\n2902,2011-13-", 1)
            .into_bytes();
    let cases: [(&str, Vec<u8>); 5] = [
        ("ragged", with_row(2600, b"2600,2011-12-01 08:26:00\n")),
        ("a bad time after a bad quantity", time_after_quantity),
        (
            "not UTF-8",
            with_row(2705, b"2705,2011-12-01 08:26:00,17855,caf\xe9,3\n"),
        ),
        (
            "quote never closed",
            with_row(2902, b"2902,2011-12-01 08:26:00,17852,\"open,2\n"),
        ),
        (
            "not an integer",
            with_row(2704, b"2704,2011-12-01 08:26:00,17854,x,4.5.6\n"),
        ),
    ];
    for (what, bytes) in cases {
        std::fs::write(dir.path().join("sales.csv"), &bytes).unwrap();
        let error = |policy: &std::path::Path| {
            run_to(policy, &dir.path().join("out"), key())
                .unwrap_err()
                .to_string()
        };
        let (a, b) = (error(&whole), error(&pieced));
        assert_eq!(a, b, "{what}");
        if what.starts_with("a bad time") {
            assert!(a.contains("row 2903") && a.contains("'InvoiceDate'"), "{a}");
        }
        assert!(a.contains("sales.csv"), "{what}: {a}");
        assert!(!dir.path().join("out/current").exists(), "{what}");
    }
}

/// A CSV file read in pieces behaves as read whole, whatever the damage: random edits
/// (a quote, a line break, a CR, a delimiter or a byte that is not UTF-8 put anywhere,
/// a byte taken out, the file cut short) of a file cut into about 30 pieces, with a
/// fixed seed. Each edited file is run both ways: both fail with the same message (the
/// same file, row and column, no value), or both publish the same rows in the same
/// order and the same aggregates. Never a panic.
#[test]
fn a_damaged_csv_file_reads_the_same_in_pieces_as_whole() {
    use rand::{Rng, SeedableRng};
    let dir = tempfile::tempdir().unwrap();
    let csv = sales_csv(900).into_bytes();
    let (whole, pieced) = whole_and_pieced(dir.path(), "\n[analytics]\nk = 1\n");
    let text = std::fs::read_to_string(&pieced).unwrap();
    std::fs::write(&pieced, text.replace("= 4096", "= 1024")).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(sweep_seed(1205));
    let (mut failed, mut published) = (0, 0);
    for case in 0..48 * sweep_scale() {
        let mut bytes = csv.clone();
        // Past the header: a damaged header is the policy's error, not the pieces'.
        let at = rng.random_range(60..bytes.len());
        const PUT: [(u8, &str); 5] = [
            (b'"', "a quote"),
            (b'\n', "a line break"),
            (b'\r', "a CR"),
            (b',', "a delimiter"),
            (0xFF, "a byte that is not UTF-8"),
        ];
        let what = match case % 8 {
            k @ 0..=4 => {
                bytes.insert(at, PUT[k].0);
                format!("{} put in", PUT[k].1)
            }
            5 => {
                bytes.remove(at);
                "a byte taken out".to_string()
            }
            6 => {
                bytes.truncate(at);
                "cut short".to_string()
            }
            _ => {
                bytes[at] = b'"';
                "a byte made a quote".to_string()
            }
        };
        let what = format!("case {case}: {what} at byte {at}");
        std::fs::write(dir.path().join("sales.csv"), &bytes).unwrap();
        let a = run_to(&whole, &dir.path().join(format!("w{case}")), key());
        let b = run_to(&pieced, &dir.path().join(format!("p{case}")), key());
        match (a, b) {
            (Err(a), Err(b)) => {
                // A policy's error names its file.
                let (a, b) = (
                    a.to_string(),
                    b.to_string().replace("pieces.toml", "policy.toml"),
                );
                assert_eq!(a, b, "{what}");
                assert!(
                    // The file's error, or the policy's (a time column that a damaged
                    // row made text).
                    (a.contains("sales.csv") || a.starts_with("policy ")) && !a.contains("panic"),
                    "{what}: {a}"
                );
                failed += 1;
            }
            (Ok(a), Ok(b)) => {
                assert_eq!(aggregates(&a), aggregates(&b), "{what}");
                assert_eq!(
                    rows_in_order(&a.run_dir.join("sales")),
                    rows_in_order(&b.run_dir.join("sales")),
                    "{what}"
                );
                assert!(b.manifest.tables["sales"].files.len() > 1, "{what}");
                published += 1;
            }
            (a, b) => panic!(
                "{what}: whole {:?}, in pieces {:?}",
                a.map(|_| "published").map_err(|e| e.to_string()),
                b.map(|_| "published").map_err(|e| e.to_string())
            ),
        }
    }
    // The sweep exercises both outcomes.
    assert!(
        failed >= 8 && published >= 8,
        "{failed} failed, {published} published"
    );
}
