//! `anonymizer generate`: a deterministic, realistic synthetic export of a
//! subscription video platform (customers and their transactions).
//!
//! Real exports are full of personal data and cannot be shared, yet the
//! anonymizer needs inputs that look like them for its tests, the demo and
//! the benchmarks: messy e-mails (mixed case, plus-addressing, stray spaces),
//! many phone and address formats, free-text answers that leak e-mails,
//! phone numbers and the customer's own name, card holder names inside payment details, and a plausible
//! subscription life cycle (purchases, renewals, churn, comebacks, refunds,
//! chargebacks, one-off passes, events and rentals).
//!
//! Output: `OUT/customers/part-NNNNN.parquet` and
//! `OUT/transactions/part-NNNNN.parquet`. Customer file `i` holds a
//! contiguous block of customer ids and transaction file `i` holds exactly
//! those customers' transactions, ordered by customer then time.
//!
//! Determinism: every customer is generated together with all of their
//! transactions from a `ChaCha8Rng` seeded by (seed, customer id), and the
//! batches reach the Parquet writers in a fixed order, so the same options
//! give byte-identical files whatever the number of threads.
//!
//! Memory stays bounded: customers are generated in chunks, a few chunks at a
//! time per file, and written straight away.

mod data;
mod model;
mod writer;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{Months, NaiveDate};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;

use model::Ctx;
use writer::ColumnParallelWriter;

/// Customers generated (and written) as one record batch (~20 000 transactions).
const CHUNK_CUSTOMERS: u64 = 1_000;
/// Chunks generated in parallel while the previous block is written (at
/// least this many; more with more threads).
const MIN_CHUNKS_PER_BLOCK: usize = 8;
/// Customers per output file used by [`default_files`].
const CUSTOMERS_PER_FILE: u64 = 250_000;
/// Customer ids are `CUSTOMER_ID_BASE + 1 ..= CUSTOMER_ID_BASE + customers`:
/// nine digits like a real platform's, and never confusable with small
/// numbers (postal-code prefixes, counts) in leak checks.
pub const CUSTOMER_ID_BASE: u64 = 100_000_000;
/// Upper bound on customers (keeps every derived id within range).
pub const MAX_CUSTOMERS: u64 = 1_000_000_000_000;
/// Upper bound on the period length.
pub const MAX_MONTHS: u32 = 600;
/// Part files are numbered with five digits.
pub const MAX_FILES: usize = 100_000;
/// Columns written without dictionary encoding: (nearly) every value is
/// distinct, or repeats only in runs that zstd catches anyway, so building a
/// dictionary would only cost time.
const CUSTOMERS_PLAIN: &[&str] = &[
    "customer_id",
    "email",
    "phone",
    "address_line",
    "registered_at",
    "last_login_ip",
    "custom_answers",
];
const TRANSACTIONS_PLAIN: &[&str] = &[
    "transaction_id",
    "transaction_at",
    "customer_email",
    "subscription_id",
    "ip_address",
    "payment_details",
    "external_payment_id",
];
/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 1_000_000;

/// What to generate and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Output directory; `customers/` and `transactions/` are created in it.
    pub out: PathBuf,
    /// Number of customers (ids `CUSTOMER_ID_BASE + 1..=CUSTOMER_ID_BASE + customers`).
    pub customers: u64,
    /// Seed of the whole data set.
    pub seed: u64,
    /// First day of the simulated period (00:00 UTC).
    pub start: NaiveDate,
    /// Length of the simulated period in months.
    pub months: u32,
    /// Number of part files per table.
    pub files: usize,
}

impl GenerateOptions {
    /// Defaults: seed 42, start 2023-01-01, 36 months, [`default_files`].
    pub fn new(out: PathBuf, customers: u64) -> Self {
        GenerateOptions {
            out,
            customers,
            seed: 42,
            start: NaiveDate::from_ymd_opt(2023, 1, 1).expect("2023-01-01 is a valid date"),
            months: 36,
            files: default_files(customers),
        }
    }
}

/// One file per 250 000 customers (rounded up), between 1 and 64.
pub fn default_files(customers: u64) -> usize {
    customers.div_ceil(CUSTOMERS_PER_FILE).clamp(1, 64) as usize
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerateSummary {
    pub customers: u64,
    pub transactions: u64,
    pub customer_files: Vec<PathBuf>,
    pub transaction_files: Vec<PathBuf>,
}

/// Why [`generate`] failed.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(
        "file system operation failed on {}: {source}; check that the output directory is writable and the disk has free space",
        path.display()
    )]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "writing Parquet file {} failed: {source}; check free disk space and run generate again (partial files are removed)",
        path.display()
    )]
    Parquet { path: PathBuf, source: ParquetError },
    #[error(
        "building a record batch for {} failed: {source}; this is a bug in the generator, please report it with the options used",
        path.display()
    )]
    Arrow { path: PathBuf, source: ArrowError },
    #[error("invalid generate options: {0}")]
    Invalid(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GenerateError + '_ {
    move |source| GenerateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn pq_err(path: &Path) -> impl FnOnce(ParquetError) -> GenerateError + '_ {
    move |source| GenerateError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Schema of `customers/*.parquet`.
pub fn customers_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Int64, false),
        Field::new("email", DataType::Utf8, false),
        Field::new("first_name", DataType::Utf8, false),
        Field::new("last_name", DataType::Utf8, false),
        Field::new("company_name", DataType::Utf8, true),
        Field::new("phone", DataType::Utf8, true),
        Field::new("address_line", DataType::Utf8, false),
        Field::new("city", DataType::Utf8, false),
        Field::new("postal_code", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("locale", DataType::Utf8, false),
        Field::new("birth_date", DataType::Date32, true),
        Field::new("registered_at", utc_micros(), false),
        Field::new("last_login_ip", DataType::Utf8, false),
        Field::new("custom_answers", DataType::Utf8, true),
        Field::new("marketing_opt_in", DataType::Boolean, false),
    ]))
}

/// Schema of `transactions/*.parquet`.
pub fn transactions_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("transaction_id", DataType::Utf8, false),
        Field::new("transaction_at", utc_micros(), false),
        Field::new("customer_id", DataType::Int64, false),
        Field::new("customer_email", DataType::Utf8, false),
        Field::new("offer_id", DataType::Utf8, false),
        Field::new("offer_type", DataType::Utf8, false),
        Field::new("offer_period", DataType::Utf8, true),
        Field::new("subscription_id", DataType::Utf8, true),
        Field::new("transaction_type", DataType::Utf8, false),
        Field::new("amount", DataType::Decimal128(12, 2), false),
        Field::new("currency", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("ip_address", DataType::Utf8, false),
        Field::new("payment_method", DataType::Utf8, false),
        Field::new("payment_details", DataType::Utf8, false),
        Field::new("external_payment_id", DataType::Utf8, false),
    ]))
}

fn writer_properties(unique_columns: &[&str]) -> Result<WriterProperties, ParquetError> {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(format!("anonymizer generate {}", env!("CARGO_PKG_VERSION")));
    // Dictionaries only cost time on columns whose values are all distinct.
    for c in unique_columns {
        b = b.set_column_dictionary_enabled(ColumnPath::from(*c), false);
    }
    Ok(b.build())
}

/// Start and end of the simulated period in UTC microseconds.
fn period_micros(start: NaiveDate, months: u32) -> Option<(i64, i64)> {
    let end = start.checked_add_months(Months::new(months))?;
    let s = start.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros();
    let e = end.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros();
    Some((s, e))
}

fn validate(opts: &GenerateOptions) -> Result<(i64, i64), GenerateError> {
    let invalid = |m: String| Err(GenerateError::Invalid(m));
    if opts.customers == 0 {
        return invalid("customers must be at least 1 (got 0)".into());
    }
    if opts.customers > MAX_CUSTOMERS {
        return invalid(format!(
            "customers must be at most {MAX_CUSTOMERS} (got {})",
            opts.customers
        ));
    }
    if opts.months == 0 || opts.months > MAX_MONTHS {
        return invalid(format!(
            "months must be between 1 and {MAX_MONTHS} (got {})",
            opts.months
        ));
    }
    if opts.files == 0 {
        return invalid("files must be at least 1 (got 0)".into());
    }
    if opts.files as u64 > opts.customers || opts.files > MAX_FILES {
        return invalid(format!(
            "files must be between 1 and the number of customers (at most {MAX_FILES}); got files={} for customers={}",
            opts.files, opts.customers
        ));
    }
    if opts.out.as_os_str().is_empty() {
        return invalid("the output directory path is empty; pass a directory".into());
    }
    // The run refuses event times outside the input checks' range; an export it would
    // refuse is not written.
    let (earliest, latest) = crate::checks::event_range();
    let end = opts
        .start
        .checked_add_months(chrono::Months::new(opts.months));
    if opts.start < earliest || end.is_none_or(|e| e > latest) {
        return invalid(format!(
            "the period starting {} and lasting {} months leaves the dates `anonymizer run` accepts \
             ({earliest} to {}); pick a start date and months inside them",
            opts.start,
            opts.months,
            latest.pred_opt().expect("a date")
        ));
    }
    match period_micros(opts.start, opts.months) {
        Some(p) => Ok(p),
        None => invalid(format!(
            "the period starting {} and lasting {} months is out of the supported date range; pick a start date between year 1900 and 9000",
            opts.start, opts.months
        )),
    }
}

/// One customers file plus its transactions file, for customer numbers
/// `first..=last` (1-based).
struct FileJob {
    first: u64,
    last: u64,
    customers_path: PathBuf,
    transactions_path: PathBuf,
}

fn part_name(i: usize) -> String {
    format!("part-{i:05}.parquet")
}

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Generates the data set described by `opts`.
pub fn generate(opts: &GenerateOptions) -> Result<GenerateSummary, GenerateError> {
    let (start_us, end_us) = validate(opts)?;
    let customers_dir = opts.out.join("customers");
    let transactions_dir = opts.out.join("transactions");
    for dir in [&customers_dir, &transactions_dir] {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }

    let ctx = Ctx::new(opts.seed, start_us, end_us, opts.months);
    let customers_props = writer_properties(CUSTOMERS_PLAIN).map_err(pq_err(&customers_dir))?;
    let transactions_props =
        writer_properties(TRANSACTIONS_PLAIN).map_err(pq_err(&transactions_dir))?;

    let n = u128::from(opts.customers);
    let f = opts.files as u128;
    let jobs: Vec<FileJob> = (0..opts.files)
        .map(|i| FileJob {
            first: (n * i as u128 / f) as u64 + 1,
            last: (n * (i as u128 + 1) / f) as u64,
            customers_path: customers_dir.join(part_name(i)),
            transactions_path: transactions_dir.join(part_name(i)),
        })
        .collect();

    // With many files, each thread works through whole files (one chunk in
    // memory per thread, no nested parallelism). With few files, that would
    // leave threads idle, so the chunks of a file are generated in parallel
    // while the previous block's columns are encoded in parallel; at most
    // `files` files are then in flight, each holding two blocks. Either way
    // every column writer receives the same values in the same order, so the
    // bytes written are the same.
    let parallel = opts.files < 2 * rayon::current_num_threads();
    let results: Vec<Result<(u64, u64), GenerateError>> = jobs
        .par_iter()
        .map(|job| write_file_pair(&ctx, job, &customers_props, &transactions_props, parallel))
        .collect();
    let mut customers = 0;
    let mut transactions = 0;
    for r in results {
        let (c, t) = r?;
        customers += c;
        transactions += t;
    }

    let customer_files: Vec<PathBuf> = jobs.iter().map(|j| j.customers_path.clone()).collect();
    let transaction_files: Vec<PathBuf> =
        jobs.iter().map(|j| j.transactions_path.clone()).collect();
    remove_stale(&customers_dir, &customer_files)?;
    remove_stale(&transactions_dir, &transaction_files)?;
    tracing::debug!(
        customers,
        transactions,
        files = opts.files,
        out = %opts.out.display(),
        "synthetic export generated"
    );
    Ok(GenerateSummary {
        customers,
        transactions,
        customer_files,
        transaction_files,
    })
}

fn open_writer(
    path: &Path,
    schema: SchemaRef,
    props: &WriterProperties,
    parallel: bool,
) -> Result<ColumnParallelWriter, GenerateError> {
    let file = File::create(path).map_err(io_err(path))?;
    ColumnParallelWriter::try_new(file, schema, props.clone(), ROW_GROUP_ROWS, parallel)
        .map_err(pq_err(path))
}

/// The two Parquet writers of one file pair (writing to temporary paths).
struct PairWriter<'a> {
    job: &'a FileJob,
    customers: ColumnParallelWriter,
    transactions: ColumnParallelWriter,
    customer_rows: u64,
    transaction_rows: u64,
}

impl<'a> PairWriter<'a> {
    fn open(
        job: &'a FileJob,
        customers_props: &WriterProperties,
        transactions_props: &WriterProperties,
        parallel: bool,
    ) -> Result<Self, GenerateError> {
        Ok(PairWriter {
            job,
            customers: open_writer(
                &tmp_path(&job.customers_path),
                customers_schema(),
                customers_props,
                parallel,
            )?,
            transactions: open_writer(
                &tmp_path(&job.transactions_path),
                transactions_schema(),
                transactions_props,
                parallel,
            )?,
            customer_rows: 0,
            transaction_rows: 0,
        })
    }

    fn write(&mut self, batches: &[(RecordBatch, RecordBatch)]) -> Result<(), GenerateError> {
        for (c, t) in batches {
            self.customers
                .write(c)
                .map_err(pq_err(&self.job.customers_path))?;
            self.transactions
                .write(t)
                .map_err(pq_err(&self.job.transactions_path))?;
            self.customer_rows += c.num_rows() as u64;
            self.transaction_rows += t.num_rows() as u64;
        }
        Ok(())
    }

    /// Finishes both files and renames them into place.
    fn finish(self) -> Result<(u64, u64), GenerateError> {
        for (w, path) in [
            (self.customers, &self.job.customers_path),
            (self.transactions, &self.job.transactions_path),
        ] {
            w.finish().map_err(pq_err(path))?;
        }
        for path in [&self.job.customers_path, &self.job.transactions_path] {
            fs::rename(tmp_path(path), path).map_err(io_err(path))?;
        }
        Ok((self.customer_rows, self.transaction_rows))
    }
}

/// Writes one customers/transactions file pair through temporary files that
/// are renamed into place at the end (and removed on failure).
fn write_file_pair(
    ctx: &Ctx,
    job: &FileJob,
    customers_props: &WriterProperties,
    transactions_props: &WriterProperties,
    parallel: bool,
) -> Result<(u64, u64), GenerateError> {
    let chunks: Vec<(u64, u64)> = (job.first..=job.last)
        .step_by(CHUNK_CUSTOMERS as usize)
        .map(|a| (a, (a + CHUNK_CUSTOMERS - 1).min(job.last)))
        .collect();
    let result =
        PairWriter::open(job, customers_props, transactions_props, parallel).and_then(|w| {
            if parallel {
                write_pipelined(ctx, job, &chunks, w)
            } else {
                write_sequential(ctx, job, &chunks, w)
            }
        });
    match &result {
        Ok((c, t)) => tracing::debug!(
            customers = c,
            transactions = t,
            file = %job.transactions_path.display(),
            "part written"
        ),
        Err(_) => {
            let _ = fs::remove_file(tmp_path(&job.customers_path));
            let _ = fs::remove_file(tmp_path(&job.transactions_path));
        }
    }
    result
}

fn arrow_err(job: &FileJob) -> impl FnOnce(ArrowError) -> GenerateError + '_ {
    move |source| GenerateError::Arrow {
        path: job.transactions_path.clone(),
        source,
    }
}

/// Generates and writes chunk after chunk on the current thread.
fn write_sequential(
    ctx: &Ctx,
    job: &FileJob,
    chunks: &[(u64, u64)],
    mut w: PairWriter<'_>,
) -> Result<(u64, u64), GenerateError> {
    for &(a, b) in chunks {
        let pair = model::generate_chunk(ctx, a, b).map_err(arrow_err(job))?;
        w.write(std::slice::from_ref(&pair))?;
    }
    w.finish()
}

/// Generates the next block of chunks in parallel while the previous block is
/// encoded (column by column, also in parallel) and written. At most two
/// blocks are in memory.
fn write_pipelined(
    ctx: &Ctx,
    job: &FileJob,
    chunks: &[(u64, u64)],
    mut w: PairWriter<'_>,
) -> Result<(u64, u64), GenerateError> {
    let block_len = (2 * rayon::current_num_threads()).max(MIN_CHUNKS_PER_BLOCK);
    let mut pending: Vec<(RecordBatch, RecordBatch)> = Vec::new();
    for block in chunks.chunks(block_len) {
        let (written, generated) = rayon::join(
            || w.write(&pending),
            || {
                block
                    .par_iter()
                    .map(|&(a, b)| model::generate_chunk(ctx, a, b))
                    .collect::<Result<Vec<_>, ArrowError>>()
            },
        );
        written?;
        pending = generated.map_err(arrow_err(job))?;
    }
    w.write(&pending)?;
    w.finish()
}

/// Removes `part-*.parquet` files (and leftover temporaries) that this run did
/// not write, e.g. after regenerating with fewer files.
fn remove_stale(dir: &Path, keep: &[PathBuf]) -> Result<(), GenerateError> {
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let ours = (name.starts_with("part-") && name.ends_with(".parquet"))
            || (name.starts_with(".part-") && name.ends_with(".parquet.tmp"));
        let path = entry.path();
        if ours && !keep.contains(&path) {
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use datafusion::arrow::array::{
        Array, AsArray, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn read(path: &Path) -> Vec<RecordBatch> {
        let file = File::open(path).unwrap();
        ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .map(|b| b.unwrap())
            .collect()
    }

    fn read_all(files: &[PathBuf]) -> Vec<RecordBatch> {
        files.iter().flat_map(|f| read(f)).collect()
    }

    fn strings<'a>(batches: &'a [RecordBatch], col: &str) -> Vec<Option<&'a str>> {
        batches
            .iter()
            .flat_map(|b| {
                let a: &StringArray = b.column_by_name(col).unwrap().as_string::<i32>();
                a.iter()
            })
            .collect()
    }

    fn int64s(batches: &[RecordBatch], col: &str) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                let a: &Int64Array = b.column_by_name(col).unwrap().as_primitive();
                a.values().to_vec()
            })
            .collect()
    }

    fn times(batches: &[RecordBatch], col: &str) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                let a: &TimestampMicrosecondArray = b.column_by_name(col).unwrap().as_primitive();
                a.values().to_vec()
            })
            .collect()
    }

    fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    #[test]
    fn default_files_is_clamped() {
        assert_eq!(default_files(0), 1);
        assert_eq!(default_files(1), 1);
        assert_eq!(default_files(250_000), 1);
        assert_eq!(default_files(250_001), 2);
        assert_eq!(default_files(5_000_000), 20);
        assert_eq!(default_files(1_000_000_000), 64);
    }

    #[test]
    fn options_are_validated() {
        let dir = tempfile::tempdir().unwrap();
        let ok = GenerateOptions::new(dir.path().to_path_buf(), 10);
        for (opts, needle) in [
            (
                GenerateOptions {
                    customers: 0,
                    ..ok.clone()
                },
                "customers",
            ),
            (
                GenerateOptions {
                    months: 0,
                    ..ok.clone()
                },
                "months",
            ),
            (
                GenerateOptions {
                    months: 601,
                    ..ok.clone()
                },
                "months",
            ),
            (
                GenerateOptions {
                    files: 0,
                    ..ok.clone()
                },
                "files",
            ),
            (
                GenerateOptions {
                    files: 11,
                    ..ok.clone()
                },
                "files",
            ),
        ] {
            let err = generate(&opts).unwrap_err();
            assert!(matches!(err, GenerateError::Invalid(_)), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
        // Nothing was created for invalid options.
        assert!(!dir.path().join("customers").exists());
    }

    #[test]
    fn output_is_byte_identical_whatever_the_thread_count() {
        for files in [1, 3] {
            let a = tempfile::tempdir().unwrap();
            let b = tempfile::tempdir().unwrap();
            let mut oa = GenerateOptions::new(a.path().to_path_buf(), 200);
            oa.files = files;
            let ob = GenerateOptions {
                out: b.path().to_path_buf(),
                ..oa.clone()
            };
            let sa = in_pool(1, || generate(&oa)).unwrap();
            let sb = in_pool(4, || generate(&ob)).unwrap();
            assert_eq!(sa.transactions, sb.transactions);
            let pairs = sa
                .customer_files
                .iter()
                .zip(&sb.customer_files)
                .chain(sa.transaction_files.iter().zip(&sb.transaction_files));
            for (x, y) in pairs {
                assert_eq!(fs::read(x).unwrap(), fs::read(y).unwrap(), "{x:?} vs {y:?}");
            }
        }
    }

    #[test]
    fn seed_changes_the_data() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let oa = GenerateOptions::new(a.path().to_path_buf(), 50);
        let ob = GenerateOptions {
            out: b.path().to_path_buf(),
            seed: 7,
            ..oa.clone()
        };
        let sa = generate(&oa).unwrap();
        let sb = generate(&ob).unwrap();
        assert_ne!(
            fs::read(&sa.customer_files[0]).unwrap(),
            fs::read(&sb.customer_files[0]).unwrap()
        );
    }

    #[test]
    fn files_partition_customers_and_stale_parts_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = GenerateOptions::new(dir.path().to_path_buf(), 301);
        opts.files = 4;
        let s = generate(&opts).unwrap();
        assert_eq!(s.customers, 301);
        assert_eq!(s.customer_files.len(), 4);
        let mut total_tx = 0;
        let mut all_ids = Vec::new();
        for (cf, tf) in s.customer_files.iter().zip(&s.transaction_files) {
            let c = read(cf);
            let t = read(tf);
            let ids = int64s(&c, "customer_id");
            let (lo, hi) = (ids[0], *ids.last().unwrap());
            assert_eq!(
                ids,
                (lo..=hi).collect::<Vec<_>>(),
                "contiguous ids in {cf:?}"
            );
            let tx_ids = int64s(&t, "customer_id");
            let at = times(&t, "transaction_at");
            for i in 0..tx_ids.len() {
                assert!((lo..=hi).contains(&tx_ids[i]));
                if i > 0 {
                    assert!(
                        (tx_ids[i - 1], at[i - 1]) <= (tx_ids[i], at[i]),
                        "ordered by customer then time"
                    );
                }
            }
            total_tx += tx_ids.len() as u64;
            all_ids.extend(ids);
        }
        let base = CUSTOMER_ID_BASE as i64;
        assert_eq!(all_ids, (base + 1..=base + 301).collect::<Vec<_>>());
        assert_eq!(total_tx, s.transactions);

        // Regenerating with fewer files removes the extra parts.
        fs::write(dir.path().join("customers/.part-00009.parquet.tmp"), b"x").unwrap();
        opts.files = 2;
        generate(&opts).unwrap();
        for sub in ["customers", "transactions"] {
            let mut names: Vec<String> = fs::read_dir(dir.path().join(sub))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(names, ["part-00000.parquet", "part-00001.parquet"]);
        }
    }

    #[test]
    fn schemas_are_exact() {
        let dir = tempfile::tempdir().unwrap();
        let s = generate(&GenerateOptions::new(dir.path().to_path_buf(), 20)).unwrap();
        let c = read(&s.customer_files[0]);
        let t = read(&s.transaction_files[0]);
        assert_eq!(c[0].schema().fields(), customers_schema().fields());
        assert_eq!(t[0].schema().fields(), transactions_schema().fields());
        let cs = customers_schema();
        let names: Vec<&str> = cs.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "customer_id",
                "email",
                "first_name",
                "last_name",
                "company_name",
                "phone",
                "address_line",
                "city",
                "postal_code",
                "country",
                "locale",
                "birth_date",
                "registered_at",
                "last_login_ip",
                "custom_answers",
                "marketing_opt_in"
            ]
        );
        let ts = transactions_schema();
        let names: Vec<&str> = ts.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "transaction_id",
                "transaction_at",
                "customer_id",
                "customer_email",
                "offer_id",
                "offer_type",
                "offer_period",
                "subscription_id",
                "transaction_type",
                "amount",
                "currency",
                "country",
                "ip_address",
                "payment_method",
                "payment_details",
                "external_payment_id"
            ]
        );
    }

    #[test]
    fn data_looks_realistic() {
        let dir = tempfile::tempdir().unwrap();
        let opts = GenerateOptions::new(dir.path().to_path_buf(), 2_000);
        let s = generate(&opts).unwrap();
        let c = read_all(&s.customer_files);
        let t = read_all(&s.transaction_files);
        let n_tx: usize = t.iter().map(|b| b.num_rows()).sum();
        assert_eq!(n_tx as u64, s.transactions);
        let avg = n_tx as f64 / 2_000.0;
        println!("average transactions per customer: {avg:.2}");
        assert!((12.0..=28.0).contains(&avg), "avg {avg}");

        // Customers.
        let emails: Vec<&str> = strings(&c, "email")
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let norm: HashSet<String> = emails.iter().map(|e| e.trim().to_lowercase()).collect();
        assert_eq!(
            norm.len(),
            emails.len(),
            "emails unique after normalisation"
        );
        assert!(emails.iter().any(|e| e.contains('+')));
        assert!(
            emails
                .iter()
                .any(|e| e.chars().any(|c| c.is_ascii_uppercase()))
        );
        assert!(
            emails
                .iter()
                .any(|e| e.starts_with(' ') || e.ends_with(' '))
        );
        for col in ["first_name", "last_name"] {
            for v in strings(&c, col) {
                assert!(v.unwrap().chars().next().unwrap().is_uppercase(), "{v:?}");
            }
        }
        let answers: Vec<&str> = strings(&c, "custom_answers")
            .into_iter()
            .flatten()
            .collect();
        let (first, last) = (strings(&c, "first_name"), strings(&c, "last_name"));
        let named = strings(&c, "custom_answers")
            .into_iter()
            .enumerate()
            .filter(|(i, a)| {
                a.is_some_and(|a| a.contains(first[*i].unwrap()) || a.contains(last[*i].unwrap()))
            })
            .count();
        assert!((40..120).contains(&named), "answers with the name {named}");
        assert!(answers.iter().any(|a| a.contains('@')));
        assert!(answers.iter().any(|a| a.contains("+44")
            || a.contains("+1 ")
            || a.chars().filter(char::is_ascii_digit).count() >= 8));
        let share = answers.len() as f64 / 2_000.0;
        assert!((0.3..0.5).contains(&share), "answers {share}");
        let companies = strings(&c, "company_name").into_iter().flatten().count();
        assert!((100..300).contains(&companies), "companies {companies}");
        let phones = strings(&c, "phone").into_iter().flatten().count();
        assert!((1_450..1_750).contains(&phones), "phones {phones}");
        let countries: HashSet<&str> = strings(&c, "country").into_iter().flatten().collect();
        assert!(countries.len() >= 10, "{countries:?}");
        let ips = strings(&c, "last_login_ip");
        assert!(ips.iter().any(|i| i.unwrap().contains("::")));
        assert!(ips.iter().any(|i| i.unwrap().matches(':').count() == 7));
        let reg = times(&c, "registered_at");
        let (start, end) = period_micros(opts.start, opts.months).unwrap();
        assert!(reg.iter().all(|r| (start..end).contains(r)));
        let late = reg.iter().filter(|r| **r > (start + end) / 2).count();
        assert!(late > 1_000, "sign-ups grow over time ({late})");

        // Transactions.
        let types = strings(&t, "transaction_type");
        let count = |v: &str| types.iter().filter(|x| **x == Some(v)).count();
        let payments = count("purchase") + count("renewal");
        for ty in ["purchase", "renewal", "refund", "chargeback"] {
            assert!(count(ty) > 0, "no {ty}");
        }
        let refund_share = count("refund") as f64 / payments as f64;
        println!("refunds: {:.2}% of payments", refund_share * 100.0);
        assert!(
            (0.005..=0.04).contains(&refund_share),
            "refunds {refund_share}"
        );
        let offer_types: HashSet<&str> = strings(&t, "offer_type").into_iter().flatten().collect();
        assert_eq!(offer_types.len(), 4, "{offer_types:?}");
        let currencies: HashSet<&str> = strings(&t, "currency").into_iter().flatten().collect();
        assert!(currencies.len() >= 4, "{currencies:?}");
        let methods: HashSet<&str> = strings(&t, "payment_method")
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(methods.len(), 5, "{methods:?}");
        let at = times(&t, "transaction_at");
        assert!(at.iter().all(|a| *a < end));

        // Offer type and period / subscription id agree.
        let ot = strings(&t, "offer_type");
        let op = strings(&t, "offer_period");
        let sid = strings(&t, "subscription_id");
        for i in 0..n_tx {
            let sub = ot[i] == Some("subscription");
            assert_eq!(sub, op[i].is_some());
            assert_eq!(sub, sid[i].is_some());
            if let Some(p) = op[i] {
                assert!(["P1M", "P1Y", "P7D"].contains(&p));
            }
        }

        // Unique ids.
        for col in ["transaction_id", "external_payment_id"] {
            let v = strings(&t, col);
            let set: HashSet<_> = v.iter().collect();
            assert_eq!(set.len(), v.len(), "{col} unique");
        }
        assert!(strings(&t, "transaction_id").iter().all(|x| {
            let x = x.unwrap();
            x.len() == 13 && x.starts_with('T') && x[1..].bytes().all(|b| b.is_ascii_digit())
        }));

        // Amounts positive; emails join after trim + lowercase.
        for b in &t {
            let a: &Decimal128Array = b.column_by_name("amount").unwrap().as_primitive();
            assert_eq!(a.null_count(), 0);
            assert!(a.values().iter().all(|v| *v > 0));
        }
        let by_id: HashMap<i64, String> = int64s(&c, "customer_id")
            .into_iter()
            .zip(emails.iter().map(|e| e.trim().to_lowercase()))
            .collect();
        let tx_emails = strings(&t, "customer_email");
        let tx_cust = int64s(&t, "customer_id");
        let mut verbatim = 0;
        for i in 0..n_tx {
            let e = tx_emails[i].unwrap();
            assert_eq!(e.trim().to_lowercase(), by_id[&tx_cust[i]]);
            if emails[(tx_cust[i] - CUSTOMER_ID_BASE as i64 - 1) as usize] == e {
                verbatim += 1;
            }
        }
        assert!(
            verbatim < n_tx,
            "some transaction emails differ in case/spaces"
        );
        let details = strings(&t, "payment_details");
        assert!(details.iter().any(|d| d.unwrap().contains(" **** ")));
    }
}
