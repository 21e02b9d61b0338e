//! The privacy gate: checks a folder of published tables before anyone reads it.
//!
//! `anonymizer run` calls [`verify`] on the staged run, after every table is written and
//! before `OUT/current` moves; a failed check stops the run (exit 1) and publishes nothing.
//! `anonymizer verify [DIR]` runs the same checks on any folder of Parquet tables, so a
//! copy edited by hand can be checked too. The checks read the files as written, without
//! the code that wrote them:
//!
//! 1. residual PII, by detectors: every string value of every table is searched for email
//!    addresses, IBANs (checksum), IPv4/IPv6 addresses, Luhn-valid card numbers and phone
//!    numbers (values shaped exactly like a 32-hex token are exempt from the digit
//!    detectors: a token's digits are not a phone number);
//! 2. residual PII, by value: with the policy (`--config`), every distinct output value
//!    (strings and integers, trimmed and lower-cased; tokens in token columns excepted) is
//!    held in memory as a keyed hash under a random per-check key, never as plaintext; then
//!    the input's personal columns (every column the policy does not `keep`, and the
//!    customer_key and email roles; free text that the policy scrubs is left to the
//!    detectors) stream by and every value is looked up. Memory follows the output's
//!    distinct values (16 bytes each), not the size of the input, and is bounded: past
//!    [`BY_VALUE_HELD`] of them the scan spills them to disk ([`Spill`]) and the check
//!    compares in passes, each loading one share of them (the input read once for all
//!    of them where it can: [`compare_input_once`]), and fails closed past
//!    `2^MAX_PASS_BITS` passes;
//! 3. aggregates, re-checked from the published files: no count of people in 1..k-1, and
//!    no withheld value recomputable from the published identities (rebuilt here from the
//!    tables' columns, then solved exactly), nor pinned to one value by them and counts
//!    being >= 0, or >= 1 for the people a row that exists is made of (a
//!    subscriptions_monthly row: its active_start + active_end) (interval propagation),
//!    nor given back by a rate, average or sum
//!    published beside it;
//! 4. record-level tables: no column the policy keeps unchanged, generalizes to a network
//!    or truncates to a prefix whose values are all distinct over 50 rows or more (a direct
//!    identifier that slipped through, or a value still one per person; tokens, scrubbed
//!    text, times and masked values are the policy's declared treatment); held as
//!    fingerprints, and in a table of more than [`UNIQUE_HELD`] rows for a hash sample of
//!    the values (the same in every run): a column with no repeat among them is reported;
//! 5. declared quasi-identifiers (`quasi_identifiers` in the policy): none published with a
//!    time of day (a timestamp left whole, or generalized only to the hour);
//! 6. k-anonymity of those tables (with `[k_anonymity]`): every combination of
//!    quasi-identifier values published is shared by at least k records (suppressed
//!    records, all quasi-identifiers null, excepted), counted from the files;
//! 7. with the key ([`names`]): no scrubbed text still holds a word of its own row's name,
//!    rows paired with the input by their token (`anonymizer run` always has the key;
//!    `anonymizer verify` when it is at hand).
//!
//! Findings name the table, column and how many values; never a value.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;

use crate::analytics::{COUNT_COLUMNS, SUBSCRIPTION_TERMS, TABLE_NAMES};
use crate::error::Error;
use crate::fsutil::{name_of, sorted_children};
use crate::policy::{Policy, Role};
use crate::rules::{Rule, is_string};

pub mod names;

/// One check and what it measured.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    /// What was measured (counts, not values).
    pub figures: BTreeMap<String, u64>,
    /// What failed, where: table, column, how many.
    pub findings: Vec<String>,
}

impl Check {
    fn new(name: &'static str) -> Check {
        Check {
            name,
            passed: true,
            figures: BTreeMap::new(),
            findings: vec![],
        }
    }
}

/// `risk_report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub passed: bool,
    pub dir: PathBuf,
    pub checks: Vec<Check>,
    /// The three risks of the Article 29 Working Party's Opinion 05/2014 and what this
    /// run measured for each.
    pub risks: BTreeMap<&'static str, String>,
}

impl Report {
    /// `TABLE.COLUMN` and how many of its values are texts the scrubber removed whole (the
    /// detectors check's [`REMOVED_WHOLE`] figures).
    pub fn removed_whole(&self) -> Vec<(String, u64)> {
        self.checks
            .iter()
            .flat_map(|c| &c.figures)
            .filter_map(|(k, n)| {
                let column = k.strip_prefix(REMOVED_WHOLE)?.strip_prefix('.')?;
                Some((column.to_string(), *n))
            })
            .collect()
    }

    /// A readable summary (stderr).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "privacy checks of {}: {}\n",
            self.dir.display(),
            if self.passed { "passed" } else { "FAILED" }
        );
        for c in &self.checks {
            s.push_str(&format!(
                "  {} {}\n",
                if c.passed { "pass" } else { "FAIL" },
                c.name
            ));
            for f in &c.findings {
                s.push_str(&format!("       {f}\n"));
            }
        }
        s
    }
}

/// A table folder of the checked directory, read whole (aggregates are small; record
/// tables are streamed column by column where it matters).
struct Table {
    name: String,
    files: Vec<PathBuf>,
}

fn tables_of(dir: &Path) -> Result<Vec<Table>, Error> {
    let dirs = sorted_children(dir, |p| p.is_dir())
        .map_err(|e| Error::Failed(format!("cannot list {}: {e}", dir.display())))?;
    let mut out = Vec::new();
    for d in dirs {
        // Tables are folders of Parquet files one level down; a folder inside one (or a
        // table one level deeper) would not be read, so it stops the check (fail closed).
        // Hidden folders (spills, staging) are the tools' own.
        if !crate::fsutil::is_hidden(&d) {
            let inner = sorted_children(&d, |p| p.is_dir())
                .map_err(|e| Error::Failed(format!("cannot list {}: {e}", d.display())))?;
            if let Some(inner) = inner.first() {
                return Err(Error::Failed(format!(
                    "{} is a folder inside a table folder: the privacy checks read each table's Parquet files \
                     one level down and nothing deeper, so the folder is refused rather than left unread. \
                     Move its files up into a table folder of their own, or remove it",
                    inner.display()
                )));
            }
        }
        let files = sorted_children(&d, |p| p.extension().is_some_and(|x| x == "parquet"))
            .map_err(|e| Error::Failed(format!("cannot list {}: {e}", d.display())))?;
        if !files.is_empty() {
            out.push(Table {
                name: name_of(&d),
                files,
            });
        }
    }
    Ok(out)
}

fn for_each_batch(
    t: &Table,
    f: impl FnMut(&RecordBatch) -> Result<(), Error>,
) -> Result<(), Error> {
    for_each_batch_of(t, None, f)
}

/// Like [`for_each_batch`], reading only the named columns (those present) when given.
fn for_each_batch_of(
    t: &Table,
    columns: Option<&[String]>,
    mut f: impl FnMut(&RecordBatch) -> Result<(), Error>,
) -> Result<(), Error> {
    for p in &t.files {
        read_batches(p, columns, &mut f)?;
    }
    Ok(())
}

/// A file the checks could not read (an output file, or an input file of the by-value
/// check, which may read columns no earlier stage read): what to do, without a value.
fn read_error(p: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::Failed(format!(
        "privacy checks: cannot read {}: {}\n  is it a complete Parquet file? Re-export it (an input file) or rerun (an output file)",
        p.display(),
        crate::error::redact_unquoted_values(&crate::error::redact_quoted(
            &crate::error::explain_parquet(&e.to_string())
        ))
    ))
}

/// The batches of one Parquet file: only the named columns when given.
fn read_batches(
    p: &Path,
    columns: Option<&[String]>,
    f: &mut impl FnMut(&RecordBatch) -> Result<(), Error>,
) -> Result<(), Error> {
    let file = std::fs::File::open(p).map_err(|e| read_error(p, &e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| {
            let b = b.with_batch_size(crate::input::BATCH_ROWS);
            let b = match columns {
                None => b,
                Some(cols) => {
                    let mask = parquet::arrow::ProjectionMask::columns(
                        b.parquet_schema(),
                        cols.iter().map(String::as_str),
                    );
                    b.with_projection(mask)
                }
            };
            b.build()
        })
        .map_err(|e| read_error(p, &e))?;
    for b in reader {
        f(&b.map_err(|e| read_error(p, &e))?)?;
    }
    Ok(())
}

/// The rows of each row group of a Parquet file (row groups are the scans' unit of
/// parallelism).
fn row_group_rows(p: &Path) -> Result<Vec<usize>, Error> {
    let rows = crate::input::parquet_row_groups(p).map_err(|e| read_error(p, &e))?;
    Ok(rows.into_iter().map(|n| n as usize).collect())
}

/// A CIDR network with its host bits generalized away (IPv4 /24 or shorter, IPv6 /64 or
/// shorter): what the `network` rule publishes, not an address.
///
/// Called on nearly every output value, so the prefix is found from the end without a
/// string search: the digits (and at most one `+`, which `u8`'s parser accepts) after a
/// `/`. The same answer as splitting at the first `/` (tested): a prefix holds no `/`.
fn is_network(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = b.len();
    while i > 0 && b[i - 1].is_ascii_digit() {
        i -= 1;
    }
    if i == b.len() {
        return false;
    }
    if i > 0 && b[i - 1] == b'+' {
        i -= 1;
    }
    if i == 0 || b[i - 1] != b'/' {
        return false;
    }
    let (addr, prefix) = (&s[..i - 1], &s[i..]);
    let Ok(prefix) = prefix.parse::<u8>() else {
        return false;
    };
    let v4 = crate::rules::generalize::dotted_quad(addr.as_bytes()).is_some();
    (v4 && prefix <= 24) || (prefix <= 64 && crate::rules::generalize::ipv6(addr).is_some())
}

/// Whether the by-value checks read a column of this type: text, integers (decimals
/// without a fraction among them: an id exported as NUMBER(18,0) prints as one), and
/// dictionaries of either.
fn is_text_like(t: &DataType) -> bool {
    match t {
        DataType::Dictionary(_, v) => is_text_like(v),
        t => is_string(t) || crate::rules::is_integer_like(t),
    }
}

/// Whether the output scan reads a column of this type: those of [`is_text_like`], and
/// any other number (floats and decimals with a fraction), for the uniqueness check only.
/// They are not compared by value: an amount equal to a customer id by chance would fail
/// every run.
fn is_scanned(t: &DataType) -> bool {
    is_text_like(t) || t.is_numeric()
}

/// Text of the values of a string or integer column, as one Utf8 array (None for other
/// types): the scan borrows `&str` from it instead of allocating a string per value.
fn text_array(a: &ArrayRef) -> Option<datafusion::arrow::array::StringArray> {
    if !is_text_like(a.data_type()) {
        return None;
    }
    let s = cast(a, &DataType::Utf8).ok()?;
    Some(s.as_string::<i32>().clone())
}

/// The non-null texts of a column, each with how many rows hold it: a dictionary's
/// distinct values (those no row refers to skipped), else each run of equal consecutive
/// values once (an export sorted by customer repeats the customer's id and email on
/// every transaction). Integers are printed as Arrow prints them, without a cast of the
/// whole column; columns of other types are not read. Every row is counted exactly once,
/// whatever the encoding and order. A dictionary key outside the dictionary (a damaged
/// file) is an error, never a value left unchecked.
fn each_text_counted(a: &ArrayRef, mut f: impl FnMut(&str, u64)) -> Result<(), String> {
    use datafusion::arrow::datatypes::Int32Type;
    if let Some(d) = a.as_dictionary_opt::<Int32Type>()
        && let Some(values) = d.values().as_string_opt::<i32>()
    {
        // The keys used, counted: sorted, not tallied over the whole dictionary, which
        // may be far larger than the batch (a writer's one dictionary for millions of
        // rows; every batch of the row group shares it).
        let mut keys: Vec<i32> = d.keys().iter().flatten().collect();
        keys.sort_unstable();
        for same in keys.chunk_by(|a, b| a == b) {
            let i = usize::try_from(same[0])
                .ok()
                .filter(|i| *i < values.len())
                .ok_or("a dictionary key outside the dictionary")?;
            if values.is_valid(i) {
                f(values.value(i), same.len() as u64);
            }
        }
        return Ok(());
    }
    // Other types are not compared (nor read).
    if is_text_like(a.data_type()) {
        crate::rules::for_each_text_run(a, |v, n| {
            if let Some(v) = v {
                f(v, n as u64);
            }
        })
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Text of the values of a string or integer column (None for nulls and other types).
fn texts(a: &ArrayRef) -> Option<Vec<Option<String>>> {
    let s = text_array(a)?;
    Some(s.iter().map(|v| v.map(str::to_string)).collect())
}

/// Keyed hashes of values under a random per-check key (zeroized on drop), so that the
/// by-value check compares input and output without holding either as plaintext.
///
/// SipHash-1-3 with 128-bit output: a keyed PRF made for hashing short strings, several
/// times faster than keyed BLAKE3 on them (`cargo bench --bench kernels -- fingerprint`).
/// The fingerprints live only in this check's memory and the key is random per check, so
/// a PRF is all that is needed (the published tokens, which must resist offline attacks
/// for years, stay keyed BLAKE3).
pub struct Fingerprinter {
    key: [u64; 2],
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprinter {
    pub fn new() -> Fingerprinter {
        Fingerprinter {
            key: rand::random(),
        }
    }

    /// Trimmed, lower-cased, then hashed; `None` for values shorter than
    /// [`SHORTEST_COMPARED`].
    pub fn hash(&self, v: &str) -> Option<u128> {
        let mut scratch = String::new();
        normalized(v, &mut scratch).map(|n| self.hash_normalized(n.as_bytes()))
    }

    /// The fingerprint of bytes as they are.
    pub fn hash_normalized(&self, bytes: &[u8]) -> u128 {
        use siphasher::sip128::Hasher128;
        use std::hash::Hasher;
        let mut h = siphasher::sip128::SipHasher13::new_with_keys(self.key[0], self.key[1]);
        h.write(bytes);
        h.finish128().as_u128()
    }
}

/// Normalized values shorter than this (in bytes) are too common to mean anything (a
/// country code, a count) and are neither fingerprinted nor compared by value.
const SHORTEST_COMPARED: usize = 4;

/// What a value is fingerprinted as: trimmed and lower-cased like an email token's input
/// (`scratch` holds the copy when one is needed); `None` when shorter than
/// [`SHORTEST_COMPARED`] bytes.
fn normalized<'a>(v: &'a str, scratch: &'a mut String) -> Option<&'a str> {
    let n = crate::rules::pseudonymize::normalized(v, crate::rules::Normalize::Email, scratch);
    (n.len() >= SHORTEST_COMPARED).then_some(n)
}

/// A blocked Bloom filter over a fast 64-bit hash of the output's normalized values:
/// most input values are not among them, and the filter says so without the keyed
/// 128-bit hash and the lookup in a large map (two bits in one 64-bit word per value,
/// 32 bits per value: about 1 % false positives, which the exact lookup then rejects).
struct Prefilter {
    state: ahash::RandomState,
    bits: Vec<u64>,
    mask: u64,
}

impl Prefilter {
    fn new(state: ahash::RandomState, keys: &[u64]) -> Prefilter {
        let mut f = Prefilter::with_words(state, (keys.len().max(1) / 2).next_power_of_two());
        for k in keys {
            f.insert(*k);
        }
        f
    }

    /// An empty filter of `words` 64-bit words (a power of two).
    fn with_words(state: ahash::RandomState, words: usize) -> Prefilter {
        Prefilter {
            state,
            bits: vec![0; words],
            mask: words as u64 - 1,
        }
    }

    fn insert(&mut self, k: u64) {
        let (w, b) = self.slot(k);
        self.bits[w] |= b;
    }

    fn slot(&self, k: u64) -> (usize, u64) {
        (
            ((k >> 12) & self.mask) as usize,
            (1u64 << (k & 63)) | (1u64 << ((k >> 6) & 63)),
        )
    }

    fn may_contain(&self, k: u64) -> bool {
        let (w, b) = self.slot(k);
        self.bits[w] & b == b
    }
}

/// The (length, first byte) of every ASCII value among the output's normalized values:
/// one bit each, 256 lengths (the last for 255 and longer) by 128 first bytes. An input
/// value in ASCII (what nearly every export holds) normalizes to a value of the same
/// length whose first byte is its own, lower-cased; when no output value has that shape,
/// the value cannot equal one, and is passed over without copying, lower-casing or
/// hashing it. The output holds few distinct values beside tokens and networks (449 at 20M
/// transactions), so nearly every input value is passed over so.
#[derive(Clone)]
struct Shapes(Box<[u64; 512]>);

impl Default for Shapes {
    fn default() -> Self {
        Shapes(Box::new([0; 512]))
    }
}

impl Shapes {
    fn bit(len: usize, first: u8) -> usize {
        len.min(255) * 128 + usize::from(first & 127)
    }

    /// Records a normalized output value (values not in ASCII are not recorded: no ASCII
    /// input normalizes to one).
    fn insert(&mut self, n: &str) {
        if let Some(&first) = n.as_bytes().first()
            && n.is_ascii()
        {
            let b = Shapes::bit(n.len(), first);
            self.0[b / 64] |= 1 << (b % 64);
        }
    }

    /// Whether a trimmed ASCII value may normalize to an output value.
    fn may_contain(&self, trimmed: &[u8]) -> bool {
        let Some(&first) = trimmed.first() else {
            return false;
        };
        let b = Shapes::bit(trimmed.len(), first.to_ascii_lowercase());
        self.0[b / 64] & (1 << (b % 64)) != 0
    }

    fn merge(&mut self, o: &Shapes) {
        for (a, b) in self.0.iter_mut().zip(o.0.iter()) {
            *a |= b;
        }
    }
}

impl Drop for Fingerprinter {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
    }
}

/// A hasher for keys that are already uniformly random (keyed hashes): no rehashing.
#[derive(Default)]
struct Prehashed(u64);

impl std::hash::Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

type HashedSet = HashSet<u128, std::hash::BuildHasherDefault<Prehashed>>;

/// The by-value check holds at most this many fingerprints of output values at once
/// (summed over row groups, each counted once per row group). Past it, the check stops
/// holding them and compares in passes ([`Spill`]); with a column of unique values
/// published unchanged (an id kept by mistake) the run peaked at 3.8 GiB at 20M rows
/// before this bound (1.1 GiB with it).
/// Published columns of the policy's rules hold far fewer (449 distinct values at 20M
/// transactions in the benchmark; free text that stays distinct per customer, one per
/// customer).
const BY_VALUE_HELD: u64 = 1 << 24;

/// The gate's memory bounds: [`UNIQUE_HELD`], and [`BY_VALUE_HELD`] or the policy's
/// `[verify] max_values`, unless a test sets others ([`verify_with_limits`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Values of a kept column the uniqueness check holds (past it, a hash sample).
    pub unique_held: u64,
    /// Output values the by-value check holds at once (past it, it compares in passes).
    pub by_value_held: u64,
    /// Past `by_value_held`, a column's distinct values in one row group are written to
    /// the spill every this many ([`SPILL_EVERY`]).
    pub spill_every: usize,
    /// Input values a pass holds when the passes read the input once
    /// ([`compare_input_once`]; `None`: `by_value_held`).
    pub input_held: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            unique_held: UNIQUE_HELD,
            by_value_held: BY_VALUE_HELD,
            spill_every: SPILL_EVERY,
            input_held: None,
        }
    }
}

/// At most this many passes (past them the check fails closed): with the default bound,
/// about a billion distinct output values.
const MAX_PASS_BITS: u32 = 6;

/// Past the by-value bound a column's distinct values in one row group are held in a set
/// of at most this many, then written to the spill and the set starts again (a row
/// group the run writes holds at most as many rows; one of more distinct values, in a
/// file written elsewhere, may then spill a value twice, which only costs room).
const SPILL_EVERY: usize = 1 << 20;

/// The spill's buckets: output values are spilled by the top `MAX_PASS_BITS` bits of
/// their fingerprint, so that any split into `2^bits` shares (`bits <= MAX_PASS_BITS`)
/// is a run of whole buckets.
const BUCKETS: usize = 1 << MAX_PASS_BITS;

/// The bucket of fingerprint `h`.
fn bucket(h: u128) -> usize {
    (h >> (128 - MAX_PASS_BITS)) as usize
}

/// The buckets of share `index` of `2^bits`: those whose fingerprints' top `bits` bits
/// are `index`.
fn share_buckets(bits: u32, index: usize) -> std::ops::Range<usize> {
    let per = BUCKETS >> bits;
    index * per..(index + 1) * per
}

/// One record of the spill: fingerprint, fast hash, column (little-endian).
const SPILL_RECORD: usize = 16 + 8 + 4;

/// Records gathered per bucket before they are appended to its file.
const SPILL_BUFFER: usize = SPILL_RECORD << 11;

/// Output values past the by-value check's bound, on disk. Once the first scan has
/// fingerprinted more values than the check may hold, each row group's values (with
/// their fast hashes and their column) go to one file per bucket ([`bucket`]) instead
/// of being dropped, and at its end the values it held go too; then every pass of the
/// comparison loads one share of the buckets instead of reading the whole output again.
/// 28 bytes a value (counted once per column and row group), in a temporary folder
/// removed at the end of the check.
struct Spill<'a> {
    /// Where the folder is made (the run's staging folder, or the system's temporary
    /// folder for `anonymizer verify`).
    under: &'a Path,
    files: std::sync::OnceLock<Result<SpillFiles, String>>,
    /// (table, column) of each column id, and its records written per bucket.
    columns: std::sync::Mutex<Vec<SpilledColumn>>,
}

type SpilledColumn = ((String, String), [u64; BUCKETS]);

struct SpillFiles {
    dir: crate::fsutil::SpillFolder,
    writers: Vec<std::sync::Mutex<std::io::BufWriter<std::fs::File>>>,
}

impl<'a> Spill<'a> {
    fn new(under: &'a Path) -> Spill<'a> {
        Spill {
            under,
            files: std::sync::OnceLock::new(),
            columns: std::sync::Mutex::default(),
        }
    }

    fn error(&self, what: &str, e: &dyn std::fmt::Display) -> Error {
        let hint = if what == "read" {
            "its files changed while the check ran (a folder cleaned under it?): run it again"
        } else {
            "it takes 28 bytes per distinct output value past `[verify] max_values`: free \
             space there or raise max_values"
        };
        Error::Failed(format!(
            "verify: cannot {what} the by-value check's spill in {}: {e}\n  {hint}",
            self.under.display()
        ))
    }

    fn files(&self) -> Result<&SpillFiles, Error> {
        self.files
            .get_or_init(|| {
                let dir = crate::fsutil::SpillFolder::new(self.under, crate::fsutil::VERIFY_SPILL)
                    .map_err(|e| e.to_string())?;
                tracing::debug!(
                    dir = %dir.path().display(),
                    "verify: output values past the by-value bound spill to disk"
                );
                let writers = (0..BUCKETS)
                    .map(|b| {
                        let f = std::fs::File::create(dir.path().join(format!("bucket-{b:02}")))?;
                        Ok(std::sync::Mutex::new(std::io::BufWriter::with_capacity(
                            1 << 17,
                            f,
                        )))
                    })
                    .collect::<std::io::Result<_>>()
                    .map_err(|e| e.to_string())?;
                Ok(SpillFiles { dir, writers })
            })
            .as_ref()
            .map_err(|e| self.error("make", e))
    }

    /// The id of column `column` of table `table`.
    fn column(&self, table: &str, column: &str) -> u32 {
        let mut cols = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        match cols
            .iter()
            .position(|((t, c), _)| t == table && c == column)
        {
            Some(i) => i as u32,
            None => {
                cols.push(((table.to_string(), column.to_string()), [0; BUCKETS]));
                (cols.len() - 1) as u32
            }
        }
    }

    /// Writes the values `held` of one column (through a buffer of at most
    /// [`SPILL_BUFFER`] bytes per bucket).
    fn write(&self, table: &str, column: &str, held: &Held) -> Result<(), Error> {
        if held.fps.is_empty() {
            return Ok(());
        }
        let id = self.column(table, column);
        let files = self.files()?;
        let mut by_bucket: Vec<Vec<u8>> = vec![Vec::new(); BUCKETS];
        for (h, q) in held.fps.iter().zip(&held.quick) {
            let i = bucket(*h);
            let b = &mut by_bucket[i];
            b.extend_from_slice(&h.to_le_bytes());
            b.extend_from_slice(&q.to_le_bytes());
            b.extend_from_slice(&id.to_le_bytes());
            if b.len() >= SPILL_BUFFER {
                self.append(files, id, i, b)?;
            }
        }
        for (i, b) in by_bucket.iter_mut().enumerate() {
            self.append(files, id, i, b)?;
        }
        Ok(())
    }

    /// Appends `records` of column `id` to bucket `i`'s file and empties them.
    fn append(
        &self,
        files: &SpillFiles,
        id: u32,
        i: usize,
        records: &mut Vec<u8>,
    ) -> Result<(), Error> {
        use std::io::Write;
        if records.is_empty() {
            return Ok(());
        }
        files.writers[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(records)
            .map_err(|e| self.error("write", &e))?;
        self.columns.lock().unwrap_or_else(|e| e.into_inner())[id as usize].1[i] +=
            (records.len() / SPILL_RECORD) as u64;
        records.clear();
        Ok(())
    }

    /// Records written per bucket, once every writer is flushed.
    fn finish(&self) -> Result<[u64; BUCKETS], Error> {
        use std::io::Write;
        if let Some(Ok(files)) = self.files.get() {
            for w in &files.writers {
                w.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .flush()
                    .map_err(|e| self.error("write", &e))?;
            }
        }
        let cols = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        Ok(std::array::from_fn(|i| {
            cols.iter().map(|(_, n)| n[i]).sum()
        }))
    }

    /// Every record of `buckets`, read back in order: `f(fingerprint, fast hash,
    /// column)`. Returns how many.
    fn each_record(
        &self,
        buckets: std::ops::Range<usize>,
        mut f: impl FnMut(u128, u64, u32) -> Result<(), Error>,
    ) -> Result<usize, Error> {
        use std::io::Read;
        let files = self.files()?;
        let mut rec = [0u8; SPILL_RECORD];
        let mut n = 0;
        for b in buckets {
            let path = files.dir.path().join(format!("bucket-{b:02}"));
            let mut r = std::io::BufReader::with_capacity(
                1 << 17,
                std::fs::File::open(&path).map_err(|e| self.error("read", &e))?,
            );
            loop {
                match r.read_exact(&mut rec) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                    Err(e) => return Err(self.error("read", &e)),
                }
                f(
                    u128::from_le_bytes(rec[..16].try_into().expect("16 bytes")),
                    u64::from_le_bytes(rec[16..24].try_into().expect("8 bytes")),
                    u32::from_le_bytes(rec[24..].try_into().expect("4 bytes")),
                )?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// The values of share `index` of `2^bits`, read back (`shapes`: every output
    /// value's, from the first scan).
    fn share(&self, bits: u32, index: usize, shapes: &Shapes) -> Result<HeldValues, Error> {
        let buckets = share_buckets(bits, index);
        let (columns, sizes): (Vec<(String, String)>, Vec<usize>) = self
            .columns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(c, n)| (c.clone(), n[buckets.clone()].iter().sum::<u64>() as usize))
            .unzip();
        // Each list at its final size at once (no regrowing: a share is up to the bound).
        let mut fingerprints: Vec<Vec<u128>> =
            sizes.iter().map(|n| Vec::with_capacity(*n)).collect();
        let mut quick_keys = Vec::with_capacity(sizes.iter().sum());
        let read = self.each_record(buckets, |h, q, c| {
            fingerprints
                .get_mut(c as usize)
                .ok_or_else(|| self.error("read", &"a record of an unknown column"))?
                .push(h);
            quick_keys.push(q);
            Ok(())
        })?;
        if read != sizes.iter().sum::<usize>() {
            return Err(self.error("read", &"a file shorter or longer than written"));
        }
        Ok(HeldValues {
            columns,
            outputs: OutputValues::new(fingerprints),
            quick_keys,
            shapes: shapes.clone(),
        })
    }
}

/// How many bits of the fingerprint space to split the spilled values by: the fewest
/// whose every share holds at most `bound` records. `None` when not even
/// `2^MAX_PASS_BITS` shares do.
fn split(counts: &[u64; BUCKETS], bound: u64) -> Option<u32> {
    (1..=MAX_PASS_BITS).find(|&bits| fits(counts, bits, bound))
}

/// Whether `counted` values are more than every split of the fingerprint space could
/// hold under `bound` a share: the check then fails without comparing (nor spilling).
fn past_every_split(counted: u64, bound: u64) -> bool {
    u128::from(counted) > u128::from(bound) << MAX_PASS_BITS
}

/// Whether every share of `2^bits` holds at most `bound` of the records `counts`.
fn fits(counts: &[u64; BUCKETS], bits: u32, bound: u64) -> bool {
    (0..1usize << bits).all(|i| counts[share_buckets(bits, i)].iter().sum::<u64>() <= bound)
}

/// The fingerprints of each output column's values (the column's index in the list),
/// sorted and without repeats: 16 bytes a value, where a hash map of column lists took
/// about 100. Looked up only for input values that pass the prefilters, column by column.
#[derive(Default)]
struct OutputValues {
    columns: Vec<Vec<u128>>,
    distinct: usize,
}

impl OutputValues {
    /// From each column's fingerprints, in any order and with repeats.
    fn new(mut columns: Vec<Vec<u128>>) -> OutputValues {
        for c in &mut columns {
            c.sort_unstable();
            c.dedup();
            // Not for a few repeats: a copy of the list for a few bytes.
            if c.capacity() - c.len() > c.len() / 8 {
                c.shrink_to_fit();
            }
        }
        // Distinct over all columns (a value in two columns counts once): a merge of the
        // sorted columns, without a copy of them.
        let mut heads: std::collections::BinaryHeap<std::cmp::Reverse<(u128, usize, usize)>> =
            columns
                .iter()
                .enumerate()
                .filter_map(|(c, v)| v.first().map(|h| std::cmp::Reverse((*h, c, 0))))
                .collect();
        let (mut distinct, mut last) = (0, None);
        while let Some(std::cmp::Reverse((h, c, i))) = heads.pop() {
            if last != Some(h) {
                distinct += 1;
                last = Some(h);
            }
            if let Some(next) = columns[c].get(i + 1) {
                heads.push(std::cmp::Reverse((*next, c, i + 1)));
            }
        }
        OutputValues { columns, distinct }
    }

    /// The output columns holding the value of fingerprint `h`.
    fn columns(&self, h: u128) -> impl Iterator<Item = u32> + '_ {
        self.columns
            .iter()
            .enumerate()
            .filter(move |(_, v)| v.binary_search(&h).is_ok())
            .map(|(c, _)| c as u32)
    }

    /// Distinct fingerprints held.
    fn len(&self) -> usize {
        self.distinct
    }
}

/// The input's personal columns of one table: every column the policy does not keep
/// (free text it scrubs is left to the detectors), and the customer_key and email roles.
fn personal_columns(table: &crate::policy::TablePolicy) -> Vec<&str> {
    let mut cols: Vec<&str> = table
        .columns
        .iter()
        .filter(|c| !matches!(c.rule, Rule::Keep | Rule::Scrub { .. }))
        .map(|c| c.name.as_str())
        .collect();
    for r in [Role::CustomerKey, Role::Email] {
        if let Some(c) = table.role(r)
            && !cols.contains(&c)
        {
            cols.push(c);
        }
    }
    cols
}

/// Looks the input's personal values up among the output's fingerprints.
struct Probe<'a> {
    fp: &'a Fingerprinter,
    outputs: &'a OutputValues,
    /// Instead of looking values up in `outputs`: the fingerprints of the input values
    /// that pass the filters go here, for every pass to look up ([`compare_input_once`]).
    collect: Option<&'a Spill<'a>>,
    shapes: &'a Shapes,
    filter: &'a Prefilter,
    footers: &'a Footers,
}

/// What a probe found: how many input values were looked up, and (output column,
/// fingerprint) for each that equals an output value (repeats possible).
#[derive(Default)]
struct ProbeHits {
    hashed: u64,
    found: Vec<(u32, u128)>,
}

impl ProbeHits {
    fn merge(&mut self, mut o: ProbeHits) {
        self.hashed += o.hashed;
        self.found.append(&mut o.found);
    }
}

impl Probe<'_> {
    /// In collect mode, writes what `hits` collected to the spill (each fingerprint
    /// once) and empties it.
    fn settle(&self, hits: &mut ProbeHits) -> Result<(), Error> {
        let Some(spill) = self.collect else {
            return Ok(());
        };
        let mut fps: Vec<u128> = hits.found.drain(..).map(|(_, h)| h).collect();
        fps.sort_unstable();
        fps.dedup();
        let quick = vec![0; fps.len()];
        spill.write("", "", &Held { fps, quick })
    }

    /// Every value of one column; each distinct dictionary value and each run of equal
    /// values is normalized and looked up once, and counted for every row that holds it.
    fn column(&self, a: &ArrayRef, out: &mut ProbeHits) -> Result<(), String> {
        let mut scratch = String::new();
        each_text_counted(a, |v, times| {
            let t = crate::rules::trimmed(v);
            let ascii = t.is_ascii();
            if ascii {
                // Normalized, it keeps its length.
                if t.len() < SHORTEST_COMPARED {
                    return;
                }
                out.hashed += times;
                if !self.shapes.may_contain(t.as_bytes()) {
                    return;
                }
            }
            let Some(v) = normalized(v, &mut scratch) else {
                return;
            };
            if !ascii {
                out.hashed += times;
            }
            if !self
                .filter
                .may_contain(self.filter.state.hash_one(v.as_bytes()))
            {
                return;
            }
            let h = self.fp.hash_normalized(v.as_bytes());
            if self.collect.is_some() {
                out.found.push((0, h));
            } else {
                out.found.extend(self.outputs.columns(h).map(|c| (c, h)));
            }
        })
    }

    /// One piece of a Parquet input file: `rows` of row group `row_group`, only `columns`.
    fn parquet_piece(
        &self,
        path: &Path,
        row_group: usize,
        rows: std::ops::Range<usize>,
        columns: &[&str],
    ) -> Result<ProbeHits, Error> {
        let mut out = ProbeHits::default();
        let piece = Piece {
            row_group,
            rows: Some(rows),
            columns: Some(columns),
            numbers: &[],
        };
        read_row_group_dictionaries(path, self.footers, &piece, &mut |b| {
            for (f, a) in b.schema().fields().iter().zip(b.columns()) {
                self.column(a, &mut out)
                    .map_err(|e| read_error(path, &format!("column {}: {e}", f.name())))?;
            }
            Ok(())
        })?;
        Ok(out)
    }
}

/// Rows per piece of an input row group in the by-value check: big enough that a
/// piece's footer and dictionary pages are read rarely, small enough that a file of one
/// large row group is looked up on every core.
const PROBE_ROWS: usize = 1 << 18;

/// Streams the personal columns of the policy's input and looks every value up among the
/// output's fingerprints. Memory is the output's distinct (non-token) values, not the
/// input's: the input streams by. Parquet inputs are read with parquet-rs, in pieces of
/// row groups on every core, one personal column per piece (dictionary-encoded columns
/// as dictionaries); CSV inputs
/// through DataFusion. A row group is cut into as many ranges as
/// [`crate::input::ParquetLayout::pieces`] finds worth it. Returns how many input
/// values were hashed and, per output column, the distinct output values that equal a
/// personal input value.
async fn probe_input(
    policy: &Policy,
    probe: &Probe<'_>,
) -> Result<(u64, BTreeMap<u32, HashedSet>), Error> {
    use rayon::prelude::*;
    let ctx = crate::run::session();
    let mut total = ProbeHits::default();
    // (file, row group, rows, columns): the Parquet pieces.
    let mut pieces: Vec<(&Path, usize, std::ops::Range<usize>, &[&str])> = Vec::new();
    let personal: Vec<Vec<&str>> = policy.tables.iter().map(personal_columns).collect();
    for (table, cols) in policy.tables.iter().zip(&personal) {
        if cols.is_empty() {
            continue;
        }
        for file in &table.files {
            if table.format == crate::policy::Format::Parquet {
                let layout = crate::input::parquet_layout(file, crate::input::Cut::EveryRowGroup)
                    .map_err(|e| read_error(file, &e))?;
                for (g, &n) in layout.row_groups.iter().enumerate() {
                    let n = n as usize;
                    let cut = layout.pieces(g, PROBE_ROWS, usize::MAX);
                    let per = n.div_ceil(cut).max(1);
                    // One column per piece: a reading task holds one column's decoded
                    // page at a time. Some writers put a whole column chunk in one page
                    // (DuckDB: tens of MB per text column of a 1M-row row group), and
                    // every personal column at once took about 250 MB per core.
                    pieces.extend((0..n).step_by(per).flat_map(|s| {
                        (0..cols.len())
                            .map(move |c| (file.as_path(), g, s..(s + per).min(n), &cols[c..c + 1]))
                    }));
                }
            }
        }
        // CSV: each of the transform's units (a group of small files) as one scan; when
        // a group fails, its files one by one, so that the error names the file.
        if table.format == crate::policy::Format::Csv {
            for unit in crate::run::units(table).iter() {
                let files: Vec<PathBuf> = unit.files.iter().map(|f| f.0.clone()).collect();
                let hits = crate::input::first_failing_file(&files, |f| {
                    probe_csv(&ctx, table, f, cols, probe)
                })
                .await?;
                total.merge(hits);
            }
        }
    }
    let found: Vec<Result<ProbeHits, Error>> = pieces
        .into_par_iter()
        .map(|(file, g, rows, cols)| {
            // A damaged page can make the Parquet decoder panic rather than fail: an
            // error naming the file instead.
            let mut hits =
                crate::error::contained(|| probe.parquet_piece(file, g, rows, cols))
                    .map_err(|panic| read_error(file, &crate::error::reader_panicked(&panic)))??;
            probe.settle(&mut hits)?;
            Ok(hits)
        })
        .collect();
    for r in found {
        total.merge(r?);
    }
    let mut hits: BTreeMap<u32, HashedSet> = BTreeMap::new();
    for (c, h) in total.found {
        hits.entry(c).or_default().insert(h);
    }
    Ok((total.hashed, hits))
}

/// The personal columns `cols` of CSV `files` of `table` (one file, or a group read as
/// one scan), looked up on every core batch by batch.
async fn probe_csv(
    ctx: &datafusion::prelude::SessionContext,
    table: &crate::policy::TablePolicy,
    files: &[PathBuf],
    cols: &[&str],
    probe: &Probe<'_>,
) -> Result<ProbeHits, Error> {
    use futures::StreamExt;
    use rayon::prelude::*;
    let file = files[0].as_path();
    let fail = |e: &datafusion::error::DataFusionError| {
        Error::Failed(format!(
            "verify: cannot read {}: {}",
            file.display(),
            crate::error::df_message(e)
        ))
    };
    let df = table.open_files(ctx, files).await?;
    let mut stream = df
        .select_columns(cols)
        .map_err(|e| fail(&e))?
        .execute_stream()
        .await
        .map_err(|e| fail(&e))?;
    let mut total = ProbeHits::default();
    while let Some(b) = stream.next().await {
        let b = match b {
            Ok(b) => b,
            // A file read in pieces: the error of the same read of the whole file.
            Err(e) => match files {
                [f] if table.reads_in_pieces(f) => {
                    let whole = table
                        .open_in_order(ctx, f)
                        .await?
                        .select_columns(cols)
                        .map_err(|e| fail(&e))?;
                    let e = crate::input::first_error(whole).await.map_or(e, |(_, e)| e);
                    return Err(fail(&e));
                }
                _ => return Err(fail(&e)),
            },
        };
        let found: Vec<Result<ProbeHits, Error>> = b
            .columns()
            .par_iter()
            .zip(b.schema().fields().par_iter())
            .map(|(a, f)| {
                let mut out = ProbeHits::default();
                probe
                    .column(a, &mut out)
                    .map(|()| out)
                    .map_err(|e| read_error(file, &format!("column {}: {e}", f.name())))
            })
            .collect();
        for r in found {
            total.merge(r?);
        }
        probe.settle(&mut total)?;
    }
    Ok(total)
}

/// (table, column) of the policy's columns whose rule satisfies `f`.
/// What a column's published values must look like under its rule, where the rule's
/// output has a shape: a read-back value without it was not written by that rule (a
/// copy edited by hand, a name pasted into a token column), and none of the other checks
/// would see a name or a street there.
#[derive(Debug, Clone, PartialEq)]
enum Treatment {
    /// `pseudonymize`: a token, 32 lower-case hexadecimal characters.
    Token,
    /// `redact`: the policy's constant.
    Constant(String),
    /// `mask`: `****` and at most this many characters after it.
    Masked(usize),
}

impl Treatment {
    fn of(rule: &Rule) -> Option<Treatment> {
        match rule {
            Rule::Pseudonymize { .. } => Some(Treatment::Token),
            Rule::Redact { value } => Some(Treatment::Constant(value.clone())),
            Rule::Mask { keep_last } => Some(Treatment::Masked(*keep_last as usize)),
            _ => None,
        }
    }

    fn fits(&self, v: &str) -> bool {
        match self {
            Treatment::Token => crate::rules::pseudonymize::is_token(v),
            Treatment::Constant(c) => v == c,
            Treatment::Masked(n) => v
                .strip_prefix(crate::rules::mask::MASK)
                .is_some_and(|rest| rest.chars().count() <= *n),
        }
    }

    /// What a value that does not fit is not, for a finding.
    fn expected(&self) -> String {
        match self {
            Treatment::Token => "tokens (32 hexadecimal characters)".into(),
            Treatment::Constant(_) => "the policy's redact value".into(),
            Treatment::Masked(n) => format!(
                "masked ({} and at most {n} characters)",
                crate::rules::mask::MASK
            ),
        }
    }
}

/// The prefix of the detectors check's figures `removed_whole.TABLE.COLUMN`: how many values
/// of a scrubbed column are texts the scrubber removed whole
/// ([`crate::rules::scrub::REMOVED`]).
pub const REMOVED_WHOLE: &str = "removed_whole";

/// Each record-level column whose rule's output has a shape ([`Treatment`]).
fn treatments(policy: Option<&Policy>) -> HashMap<(String, String), Treatment> {
    policy
        .into_iter()
        .flat_map(|p| &p.tables)
        .flat_map(|t| {
            t.columns.iter().filter_map(|c| {
                Treatment::of(&c.rule).map(|x| ((t.name.clone(), c.name.clone()), x))
            })
        })
        .collect()
}

fn columns_where(policy: Option<&Policy>, f: impl Fn(&Rule) -> bool) -> HashSet<(String, String)> {
    policy
        .into_iter()
        .flat_map(|p| &p.tables)
        .flat_map(|t| t.columns.iter().map(move |c| (t, c)))
        .filter(|(_, c)| f(&c.rule))
        .map(|(t, c)| (t.name.clone(), c.name.clone()))
        .collect()
}

/// A plain decimal number, as an amount exported as text is written: an optional minus,
/// digits, and an optional fraction after one dot (`15000.00`, `-3`, `0.5`), trimmed.
fn is_plain_decimal(v: &str) -> bool {
    let v = v.trim();
    let v = v.strip_prefix('-').unwrap_or(v);
    let (whole, fraction) = v.split_once('.').unwrap_or((v, ""));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && (fraction.len() <= 10)
        && !(v.contains('.') && fraction.is_empty())
}

fn is_aggregate(table: &str) -> bool {
    TABLE_NAMES.contains(&table) || table == "erasure_receipts"
}

/// What every file scan needs.
#[derive(Clone, Copy)]
struct ScanContext<'a> {
    /// Set when the by-value check runs (a policy is at hand): output values are
    /// fingerprinted for it.
    fp: Option<&'a Fingerprinter>,
    /// The fast hash of the output values' prefilter.
    quick: &'a ahash::RandomState,
    erased: Option<&'a crate::erasure::TokenSet>,
    kept: &'a HashSet<(String, String)>,
    /// Columns whose rule's output has a shape that every value must have. Those the
    /// policy pseudonymizes ([`Treatment::Token`]): their token-shaped values are only
    /// looked up among erased customers' tokens (a keyed token is not an input value).
    treatments: &'a HashMap<(String, String), Treatment>,
    /// Columns mapped to the amount role: a text amount that is a plain decimal number
    /// (`15000.00`) is money, not a phone number, whatever its digit count.
    amounts: &'a HashSet<(String, String)>,
    /// Columns the policy scrubs: their values that are [`crate::rules::scrub::REMOVED`]
    /// (texts that did not settle, removed whole) are counted for the report.
    scrubbed: &'a HashSet<(String, String)>,
    footers: &'a Footers,
    /// Per table (by name): which values of its kept columns the uniqueness check holds.
    unique_sample: &'a HashMap<String, UniqueSample>,
    /// Output values fingerprinted for the by-value check so far, over every row group (a
    /// value counts once per column and row group); past `by_value_held`
    /// ([`BY_VALUE_HELD`]) they go to the spill instead of staying in memory.
    fingerprinted: &'a std::sync::atomic::AtomicU64,
    by_value_held: u64,
    spill_every: usize,
    spill: &'a Spill<'a>,
}

/// Distinct values of a kept column, as fingerprints; `set` becomes `None` at the first
/// repeat. Past [`UNIQUE_HELD`] rows in the table only a sample of the values is held
/// ([`UniqueSample`]).
#[derive(Default)]
struct Distinct {
    set: Option<HashedSet>,
    rows: u64,
}

impl Distinct {
    /// Counts `times` rows of `v`; a repeat (a run, or a sampled value seen before) ends
    /// the column's uniqueness.
    fn see(&mut self, v: &str, times: u64, sample: UniqueSample, fp: Option<&Fingerprinter>) {
        self.rows += times;
        if let (Some(set), Some(fp)) = (&mut self.set, fp)
            && (times > 1 || (sample.holds(v) && !set.insert(fp.hash_normalized(v.as_bytes()))))
        {
            self.set = None;
        }
    }
}

/// The uniqueness check holds the fingerprints of at most about this many values of a
/// column (16 bytes each): in a larger table, the values of a hash sample of this
/// expected size. Without the bound, a kept column of unique values (an id kept by
/// mistake) held every value, as text: 5 GiB at 20M transactions.
const UNIQUE_HELD: u64 = 1 << 22;

/// Which values the uniqueness check holds: those whose hash under a fixed key (the same
/// in every run, so that the verdict is too) falls under `below`. A value is in the sample
/// or not wherever it occurs, so a repeat of a sampled value is always seen.
#[derive(Clone, Copy)]
struct UniqueSample {
    below: u64,
}

impl UniqueSample {
    /// A sample of expected size `held` of `rows` values (all of them when there are
    /// no more).
    fn of(rows: u64, held: u64) -> UniqueSample {
        let below = if rows <= held {
            u64::MAX
        } else {
            ((u128::from(held) << 64) / u128::from(rows)) as u64
        };
        UniqueSample { below }
    }

    /// The sample of `table` in `samples` (every table checked has one; any other
    /// holds everything).
    fn of_table(samples: &HashMap<String, UniqueSample>, table: &str) -> UniqueSample {
        samples
            .get(table)
            .copied()
            .unwrap_or(UniqueSample::of(0, 0))
    }

    fn everything(self) -> bool {
        self.below == u64::MAX
    }

    fn holds(self, v: &str) -> bool {
        use std::hash::Hasher;
        if self.everything() {
            return true;
        }
        // A fixed, public key: the hash only decides what is sampled, it is not kept.
        let mut h = siphasher::sip::SipHasher13::new_with_keys(
            0x616e_6f6e_796d_697a,
            0x6572_2d75_6e69_7175,
        );
        h.write(v.as_bytes());
        h.finish() <= self.below
    }
}

/// What one file's scan found.
#[derive(Default)]
struct FileScan {
    scanned: u64,
    found: BTreeMap<(String, &'static str), u64>,
    erased_hits: BTreeMap<String, u64>,
    /// Per scrubbed column: its values that are texts removed whole.
    removed_whole: BTreeMap<String, u64>,
    distinct: BTreeMap<String, Distinct>,
    /// Each column's distinct values held for the by-value check (tokens in token
    /// columns excepted; none once they go to the spill).
    values: BTreeMap<String, Held>,
    /// The shapes of every value fingerprinted, for the input probe's first filter.
    shapes: Shapes,
    /// Columns of a type the checks cannot look into (lists, structs, maps, bytes), with
    /// their type.
    unreadable: BTreeMap<String, String>,
    /// Per column with a [`Treatment`]: values without its shape.
    off_treatment: BTreeMap<String, u64>,
    /// Kept text columns of a record-level table: rows, rows like a personal name, rows
    /// like a street address ([`crate::personal_text`]).
    personal: BTreeMap<String, PersonalRows>,
}

/// What the personal-text check counted in one kept text column.
#[derive(Default, Clone, Copy)]
struct PersonalRows {
    rows: u64,
    names: u64,
    addresses: u64,
}

impl PersonalRows {
    fn add(&mut self, kind: Option<crate::personal_text::Kind>, times: u64) {
        use crate::personal_text::Kind;
        self.rows += times;
        match kind {
            Some(Kind::Name) => self.names += times,
            Some(Kind::Address) => self.addresses += times,
            None => {}
        }
    }
}

/// Output values held for the by-value check: fingerprints, and beside each its fast
/// hash for the input probe's prefilter.
#[derive(Default)]
struct Held {
    fps: Vec<u128>,
    quick: Vec<u64>,
}

impl Held {
    fn extend(&mut self, o: Held) {
        self.fps.extend(o.fps);
        self.quick.extend(o.quick);
    }
}

/// One column's distinct values in one row group: fingerprint -> fast hash.
type HeldMap = HashMap<u128, u64, std::hash::BuildHasherDefault<Prehashed>>;

impl From<HeldMap> for Held {
    fn from(m: HeldMap) -> Held {
        let (fps, quick) = m.into_iter().unzip();
        Held { fps, quick }
    }
}

impl FileScan {
    fn merge(&mut self, o: FileScan) {
        self.scanned += o.scanned;
        self.unreadable.extend(o.unreadable);
        for (k, v) in o.personal {
            let mine = self.personal.entry(k).or_default();
            mine.rows += v.rows;
            mine.names += v.names;
            mine.addresses += v.addresses;
        }
        for (k, v) in o.found {
            *self.found.entry(k).or_default() += v;
        }
        for (k, v) in o.erased_hits {
            *self.erased_hits.entry(k).or_default() += v;
        }
        for (k, v) in o.removed_whole {
            *self.removed_whole.entry(k).or_default() += v;
        }
        for (k, v) in o.off_treatment {
            *self.off_treatment.entry(k).or_default() += v;
        }
        for (k, v) in o.values {
            self.values.entry(k).or_default().extend(v);
        }
        self.shapes.merge(&o.shapes);
        for (k, d) in o.distinct {
            match self.distinct.get_mut(&k) {
                None => {
                    self.distinct.insert(k, d);
                }
                Some(mine) => {
                    mine.rows += d.rows;
                    mine.set = match (mine.set.take(), d.set) {
                        (Some(mut a), Some(b)) => {
                            let before = a.len() + b.len();
                            a.extend(b);
                            (a.len() == before).then_some(a)
                        }
                        _ => None,
                    };
                }
            }
        }
    }
}

/// The verdicts of one column's values in one row group, most of which repeat a few
/// values (countries, offers, days). A column whose values rarely repeat (free text
/// distinct per row) gains nothing from it and pays a copy and an insert per value, so
/// past [`Memo::TRIAL`] lookups with fewer than one in ten found it stops memoizing.
#[derive(Default)]
struct Memo {
    map: HashMap<String, Verdict, ahash::RandomState>,
    lookups: u64,
    hits: u64,
    off: bool,
}

impl Memo {
    const TRIAL: u64 = 50_000;
    /// At most this many verdicts held (then they start again).
    const HELD: usize = 100_000;

    fn get(&mut self, v: &str) -> Option<&Verdict> {
        if self.off {
            return None;
        }
        self.lookups += 1;
        let x = self.map.get(v);
        self.hits += u64::from(x.is_some());
        x
    }

    fn insert(&mut self, v: &str, x: Verdict) {
        if self.off {
            return;
        }
        if self.lookups >= Self::TRIAL && self.hits * 10 < self.lookups {
            self.off = true;
            self.map = HashMap::default();
            return;
        }
        if self.map.len() > Self::HELD {
            self.map.clear();
        }
        self.map.insert(v.to_string(), x);
    }
}

/// What one distinct value of a column gives (memoized: most columns repeat values).
#[derive(Clone, Default)]
struct Verdict {
    kinds: Vec<&'static str>,
    erased: bool,
    /// In kept text of a record-level table: a personal name or a street address.
    personal: Option<crate::personal_text::Kind>,
}

/// What of a Parquet file to read: one row group, all its rows or a range of them, all
/// text and integer columns or only the named ones of them (those present).
struct Piece<'a> {
    row_group: usize,
    rows: Option<std::ops::Range<usize>>,
    columns: Option<&'a [&'a str]>,
    /// Columns of other numbers (floats, decimals with a fraction) read too: the output
    /// scan's kept ones, for the uniqueness check.
    numbers: &'a [&'a str],
}

/// One file's footer, read by the first piece that needs it.
type Footer =
    std::sync::OnceLock<Result<parquet::arrow::arrow_reader::ArrowReaderMetadata, String>>;

/// Footers read once per file and shared by every piece of it: a file of thousands of row
/// groups has a footer of thousands of entries, and reading it again for each row group
/// made the scans quadratic (79 s of input lookup for one 10M-row file of 4,865 row
/// groups, 0.6 s now).
#[derive(Default)]
struct Footers {
    files: std::sync::Mutex<HashMap<PathBuf, std::sync::Arc<Footer>>>,
    /// Footers read (tests).
    reads: std::sync::atomic::AtomicUsize,
}

impl Footers {
    fn get(&self, p: &Path) -> Result<parquet::arrow::arrow_reader::ArrowReaderMetadata, Error> {
        use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
        let cell = self
            .files
            .lock()
            .expect("footers")
            .entry(p.to_path_buf())
            .or_default()
            .clone();
        cell.get_or_init(|| {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let file = std::fs::File::open(p).map_err(|e| e.to_string())?;
            // Metadata whose decoding panics (a damaged file) is this file's error.
            crate::error::contained(|| ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()))
                .map_err(|panic| crate::error::footer_panicked(&panic))?
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| read_error(p, &e))
    }
}

/// The batches of one piece of a row group, with every string column whose pages in that
/// row group are all dictionary-encoded read as a dictionary array: the scan then looks at
/// each distinct value once, however many rows hold it (most published columns repeat a
/// few values: countries, currencies, offers, days).
fn read_row_group_dictionaries(
    p: &Path,
    footers: &Footers,
    piece: &Piece<'_>,
    f: &mut impl FnMut(&RecordBatch) -> Result<(), Error>,
) -> Result<(), Error> {
    let row_group = piece.row_group;
    use datafusion::arrow::datatypes::{Field, Schema};
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    use parquet::basic::Encoding;
    let file = std::fs::File::open(p).map_err(|e| read_error(p, &e))?;
    let meta = footers.get(p)?;
    let Some(rg) = meta.metadata().row_groups().get(row_group) else {
        return Err(read_error(p, &format!("no row group {row_group}")));
    };
    let all_dictionary = |name: &str| {
        rg.columns()
            .iter()
            .find(|c| c.column_path().parts() == [name])
            .is_some_and(|c| {
                c.dictionary_page_offset().is_some()
                    && c.page_encoding_stats_mask().is_some_and(|m| {
                        m.is_only(Encoding::PLAIN_DICTIONARY) || m.is_only(Encoding::RLE_DICTIONARY)
                    })
            })
    };
    let mut changed = false;
    let fields: Vec<Field> = meta
        .schema()
        .fields()
        .iter()
        .map(|f| {
            if *f.data_type() == DataType::Utf8 && all_dictionary(f.name()) {
                changed = true;
                f.as_ref().clone().with_data_type(DataType::Dictionary(
                    Box::new(DataType::Int32),
                    Box::new(DataType::Utf8),
                ))
            } else if *f.data_type() == DataType::Utf8 {
                // Views into the decoded pages: no copy of every value into a new buffer.
                changed = true;
                f.as_ref().clone().with_data_type(DataType::Utf8View)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    let meta = if changed {
        let schema = std::sync::Arc::new(Schema::new_with_metadata(
            fields,
            meta.schema().metadata().clone(),
        ));
        ArrowReaderMetadata::try_new(
            meta.metadata().clone(),
            ArrowReaderOptions::new().with_schema(schema),
        )
        .map_err(|e| read_error(p, &e))?
    } else {
        meta
    };
    // Only the columns the checks read: text and integers, and the other numbers the
    // piece names (the output scan's kept ones, for the uniqueness check). A timestamp
    // or date column is not read, so it is not decompressed either.
    let roots: Vec<usize> = meta
        .schema()
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| {
            is_text_like(f.data_type())
                || (is_scanned(f.data_type()) && piece.numbers.contains(&f.name().as_str()))
        })
        .filter(|(_, f)| piece.columns.is_none_or(|c| c.contains(&f.name().as_str())))
        .map(|(i, _)| i)
        .collect();
    if roots.is_empty() {
        return Ok(());
    }
    let mut builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta.clone())
        .with_batch_size(crate::input::BATCH_ROWS)
        .with_row_groups(vec![row_group])
        .with_projection(parquet::arrow::ProjectionMask::roots(
            meta.parquet_schema(),
            roots,
        ));
    if let Some(rows) = &piece.rows {
        use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
        let total = meta.metadata().row_group(row_group).num_rows().max(0) as usize;
        let (start, end) = (rows.start.min(total), rows.end.min(total));
        builder = builder.with_row_selection(RowSelection::from(vec![
            RowSelector::skip(start),
            RowSelector::select(end.saturating_sub(start)),
            RowSelector::skip(total - end.max(start)),
        ]));
    }
    let reader = builder.build().map_err(|e| read_error(p, &e))?;
    for b in reader {
        f(&b.map_err(|e| read_error(p, &e))?)?;
    }
    Ok(())
}

/// Scans one row group of one file.
fn scan_file(
    t: &Table,
    path: &Path,
    row_group: usize,
    cx: &ScanContext<'_>,
) -> Result<FileScan, Error> {
    use std::sync::atomic::Ordering::Relaxed;
    let aggregate = is_aggregate(&t.name);
    let mut out = FileScan::default();
    // Each column's distinct fingerprints for the by-value check, in this piece.
    let mut sets: BTreeMap<String, HeldMap> = BTreeMap::new();
    let mut memo: HashMap<String, Memo> = HashMap::new();
    let mut scratch = String::new();
    // Past the bound values are spilled, until no split could hold them all: beyond,
    // they are only counted.
    let spilling = |n: u64| n > cx.by_value_held && !past_every_split(n, cx.by_value_held);
    let kept_numbers: Vec<&str> = cx
        .kept
        .iter()
        .filter(|(table, _)| *table == t.name)
        .map(|(_, c)| c.as_str())
        .collect();
    let piece = Piece {
        row_group,
        rows: None,
        columns: None,
        numbers: if cx.fp.is_some() { &kept_numbers } else { &[] },
    };
    if row_group == 0 {
        for f in cx.footers.get(path)?.schema().fields() {
            if !crate::rules::is_flat(f.data_type()) {
                out.unreadable
                    .insert(f.name().clone(), f.data_type().to_string());
            }
        }
    }
    read_row_group_dictionaries(path, cx.footers, &piece, &mut |b| {
        for (i, f) in b.schema().fields().iter().enumerate() {
            let string = is_string(f.data_type());
            if !is_scanned(f.data_type()) {
                continue;
            }
            let check = cx.kept.contains(&(t.name.clone(), f.name().clone()));
            let d = out
                .distinct
                .entry(f.name().clone())
                .or_insert_with(|| Distinct {
                    set: (check && cx.fp.is_some()).then(HashedSet::default),
                    rows: 0,
                });
            let sample = UniqueSample::of_table(cx.unique_sample, &t.name);
            if !is_text_like(f.data_type()) {
                // A float or a decimal with a fraction, kept: counted, and held for the
                // uniqueness check; no detector or comparison applies. Once a value
                // repeats (amounts, at once) the values are only counted.
                if d.set.is_none() {
                    let n = (b.column(i).len() - b.column(i).null_count()) as u64;
                    out.scanned += n;
                    d.rows += n;
                    continue;
                }
                crate::rules::for_each_text_run(b.column(i), |v, times| {
                    let Some(v) = v else { return };
                    out.scanned += times as u64;
                    d.see(v, times as u64, sample, cx.fp);
                })
                .map_err(|e| read_error(path, &format!("column {}: {e}", f.name())))?;
                continue;
            }
            let memo = memo.entry(f.name().clone()).or_default();
            // Integers only in record-level tables: aggregates hold counts.
            let mut values = (cx.fp.is_some() && (string || !aggregate))
                .then(|| sets.entry(f.name().clone()).or_default());
            let treatment = cx.treatments.get(&(t.name.clone(), f.name().clone()));
            let token_col = treatment == Some(&Treatment::Token);
            let mut off_treatment = 0u64;
            let amount_col = cx.amounts.contains(&(t.name.clone(), f.name().clone()));
            let scrubbed_col = cx.scrubbed.contains(&(t.name.clone(), f.name().clone()));
            let mut removed_whole = 0u64;
            // Kept text of a record-level table: does it look like names or streets?
            let mut personal = (string && check && !aggregate)
                .then(|| out.personal.entry(f.name().clone()).or_default());
            let mut spill_error = None;
            each_text_counted(b.column(i), |v, times| {
                out.scanned += times;
                d.see(v, times, sample, cx.fp);
                if scrubbed_col && v == crate::rules::scrub::REMOVED {
                    removed_whole += times;
                }
                if token_col && crate::rules::pseudonymize::is_token(v) {
                    if cx.erased.is_some_and(|e| e.contains(v)) {
                        *out.erased_hits.entry(f.name().clone()).or_default() += times;
                    }
                    return;
                }
                if treatment.is_some_and(|x| !x.fits(v)) {
                    off_treatment += times;
                }
                let tally = |x: &Verdict,
                             found: &mut BTreeMap<(String, &'static str), u64>,
                             erased_hits: &mut BTreeMap<String, u64>,
                             personal: &mut Option<&mut PersonalRows>| {
                    for kind in &x.kinds {
                        *found.entry((f.name().clone(), kind)).or_default() += times;
                    }
                    if x.erased {
                        *erased_hits.entry(f.name().clone()).or_default() += times;
                    }
                    if let Some(p) = personal {
                        p.add(x.personal, times);
                    }
                };
                // A network with its host bits gone is the `network` rule's output, not
                // an address: no detector looks at it (nor is it a token), and it is not
                // compared with the input. Decided before the memo, which then holds
                // only values worth remembering (networks were most distinct values).
                if is_network(v) {
                    if let Some(p) = &mut personal {
                        p.add(None, times);
                    }
                    return;
                }
                if let Some(x) = memo.get(v) {
                    tally(x, &mut out.found, &mut out.erased_hits, &mut personal);
                    return;
                }
                let token = crate::rules::pseudonymize::is_token(v);
                let x = Verdict {
                    kinds: if string && !token && !(amount_col && is_plain_decimal(v)) {
                        crate::rules::scrub::detect(v)
                    } else {
                        vec![]
                    },
                    erased: token && cx.erased.is_some_and(|e| e.contains(v)),
                    personal: personal
                        .as_ref()
                        .and_then(|_| crate::personal_text::classify(v)),
                };
                if let (Some(values), Some(fp)) = (&mut values, cx.fp)
                    && let Some(n) = normalized(v, &mut scratch)
                    && let std::collections::hash_map::Entry::Vacant(e) =
                        values.entry(fp.hash_normalized(n.as_bytes()))
                {
                    e.insert(cx.quick.hash_one(n.as_bytes()));
                    out.shapes.insert(n);
                    let counted = cx.fingerprinted.fetch_add(1, Relaxed) + 1;
                    // Past the bound a full set goes to the spill (or, past what any
                    // split could hold, is only counted) and starts again.
                    if values.len() >= cx.spill_every && counted > cx.by_value_held {
                        let full = Held::from(std::mem::take(*values));
                        if spilling(counted)
                            && let Err(e) = cx.spill.write(&t.name, f.name(), &full)
                        {
                            spill_error.get_or_insert(e);
                        }
                    }
                }
                tally(&x, &mut out.found, &mut out.erased_hits, &mut personal);
                memo.insert(v, x);
            })
            .map_err(|e| read_error(path, &format!("column {}: {e}", f.name())))?;
            if let Some(e) = spill_error {
                return Err(e);
            }
            if off_treatment > 0 {
                *out.off_treatment.entry(f.name().clone()).or_default() += off_treatment;
            }
            if removed_whole > 0 {
                *out.removed_whole.entry(f.name().clone()).or_default() += removed_whole;
            }
        }
        Ok(())
    })?;
    let counted = cx.fingerprinted.load(Relaxed);
    for (c, set) in sets {
        let held = Held::from(set);
        if counted <= cx.by_value_held {
            // Kept until the input is looked up, as lists: a third of the sets' memory.
            out.values.insert(c, held);
        } else if spilling(counted) {
            cx.spill.write(&t.name, &c, &held)?;
        }
    }
    Ok(out)
}

/// Scans every (table, file, row group) of `jobs` in parallel (rayon), merged per table.
fn scan_all(
    tables: &[Table],
    jobs: &[(usize, &PathBuf, usize)],
    cx: &ScanContext<'_>,
) -> Result<BTreeMap<usize, FileScan>, Error> {
    use rayon::prelude::*;
    let results: Vec<Result<(usize, FileScan), Error>> = jobs
        .par_iter()
        .map(|(i, f, g)| {
            crate::error::contained(|| scan_file(&tables[*i], f, *g, cx))
                .map_err(|panic| read_error(f, &crate::error::reader_panicked(&panic)))?
                .map(|r| (*i, r))
        })
        .collect();
    let mut per_table: BTreeMap<usize, FileScan> = BTreeMap::new();
    for r in results {
        let (i, scan) = r?;
        per_table.entry(i).or_default().merge(scan);
    }
    Ok(per_table)
}

/// The output values one pass of the by-value check holds, out of its scans.
struct HeldValues {
    /// (table, column) of each list of `outputs`.
    columns: Vec<(String, String)>,
    outputs: OutputValues,
    quick_keys: Vec<u64>,
    shapes: Shapes,
}

/// What the by-value check found, over its passes.
#[derive(Default)]
struct Comparison {
    input_hashed: u64,
    /// Distinct output values fingerprinted (the passes' shares are disjoint).
    fingerprinted: u64,
    passes: u64,
    /// Records the passes loaded from the spill (a value counts once per column and row
    /// group; 0 in one pass).
    spilled: u64,
    /// Per (table, column): how many of its distinct values equal a personal input value.
    hits: BTreeMap<(String, String), u64>,
}

impl HeldValues {
    /// The values the scans held (`shapes`: every output value's).
    fn take(
        tables: &[Table],
        per_table: &mut BTreeMap<usize, FileScan>,
        shapes: Shapes,
    ) -> HeldValues {
        let mut columns = Vec::new();
        let mut fingerprints = Vec::new();
        let mut quick_keys = Vec::new();
        for (i, scan) in per_table.iter_mut() {
            for (col, held) in std::mem::take(&mut scan.values) {
                columns.push((tables[*i].name.clone(), col));
                fingerprints.push(held.fps);
                quick_keys.extend(held.quick);
            }
        }
        HeldValues {
            columns,
            outputs: OutputValues::new(fingerprints),
            quick_keys,
            shapes,
        }
    }

    /// Looks every personal input value up among these output values.
    async fn compare(
        mut self,
        input: &InputLookup<'_>,
        into: &mut Comparison,
    ) -> Result<(), Error> {
        self.quick_keys.sort_unstable();
        self.quick_keys.dedup();
        let filter = Prefilter::new(input.quick.clone(), &self.quick_keys);
        drop(self.quick_keys);
        let probe = Probe {
            fp: input.fp,
            outputs: &self.outputs,
            shapes: &self.shapes,
            filter: &filter,
            footers: input.footers,
            collect: None,
        };
        let (hashed, hits) = probe_input(input.policy, &probe).await?;
        into.input_hashed += hashed;
        into.fingerprinted += self.outputs.len() as u64;
        into.passes += 1;
        for (id, set) in hits {
            *into
                .hits
                .entry(self.columns[id as usize].clone())
                .or_default() += set.len() as u64;
        }
        Ok(())
    }
}

/// What every pass of the by-value check reads the input with: the same fingerprints
/// and fast hash as the output scans, and the input files' footers, read once for all
/// passes.
struct InputLookup<'a> {
    policy: &'a Policy,
    fp: &'a Fingerprinter,
    quick: &'a ahash::RandomState,
    footers: &'a Footers,
}

/// The by-value check when the output has more distinct values than it may hold at
/// once: in as many passes as [`split`] says, each loading one share of the spill.
/// `None` when one share does not fit even at `2^MAX_PASS_BITS` shares.
async fn compare_in_passes(
    spill: &Spill<'_>,
    shapes: &Shapes,
    input: &InputLookup<'_>,
    bound: u64,
    input_held: u64,
) -> Result<Option<Comparison>, Error> {
    let counts = spill.finish()?;
    let Some(bits) = split(&counts, bound) else {
        return Ok(None);
    };
    let spilled = counts.iter().sum::<u64>();
    tracing::info!(
        passes = 1u64 << bits,
        max_values = bound,
        spilled,
        "verify: more distinct output values than the by-value check holds at once: compared with the input in passes"
    );
    if spilled <= INPUT_ONCE_UP_TO * bound
        && let Some(c) =
            compare_input_once(spill, spilled, shapes, input, bound, input_held, bits).await?
    {
        return Ok(Some(c));
    }
    let mut c = Comparison {
        spilled,
        ..Comparison::default()
    };
    for index in 0..1usize << bits {
        spill
            .share(bits, index, shapes)?
            .compare(input, &mut c)
            .await?;
    }
    Ok(Some(c))
}

/// Up to this many spilled values per value of the bound, the passes read the input
/// once in all ([`compare_input_once`]); past it, once each. The single read filters the
/// input through every spilled value's fast hash at once, in a filter of at most 8
/// bytes per value of the bound: past 8 times the bound, fewer than 8 bits per value
/// (over 5 % false positives, each fingerprinted and spilled).
const INPUT_ONCE_UP_TO: u64 = 8;

/// The passes of [`compare_in_passes`] with one read of the input: the input values
/// that pass a filter over every spilled output value's fast hash are fingerprinted and
/// spilled by the same buckets, then each pass loads its share of both and looks the
/// input's up among the output's. `None` (nothing compared) when a share of those input
/// values would hold more than `input_held`: then the input is read once per pass.
async fn compare_input_once(
    spill: &Spill<'_>,
    spilled: u64,
    shapes: &Shapes,
    input: &InputLookup<'_>,
    bound: u64,
    input_held: u64,
    bits: u32,
) -> Result<Option<Comparison>, Error> {
    // 32 bits per value as one pass's filter has, at most 8 bytes per value of the bound.
    let words = (spilled / 2)
        .max(1)
        .next_power_of_two()
        .min(1 << (63 - bound.max(1).leading_zeros()));
    let mut filter = Prefilter::with_words(input.quick.clone(), words as usize);
    spill.each_record(0..BUCKETS, |_, q, _| {
        filter.insert(q);
        Ok(())
    })?;
    let candidates = Spill::new(spill.under);
    let none = OutputValues::default();
    let probe = Probe {
        fp: input.fp,
        outputs: &none,
        shapes,
        filter: &filter,
        footers: input.footers,
        collect: Some(&candidates),
    };
    let (hashed, _) = probe_input(input.policy, &probe).await?;
    drop(filter);
    let found = candidates.finish()?;
    let fits = fits(&found, bits, input_held);
    tracing::info!(
        passes = 1u64 << bits,
        input_candidates = found.iter().sum::<u64>(),
        fits,
        "verify: the input read once for every pass"
    );
    if !fits {
        return Ok(None);
    }
    let mut c = Comparison {
        input_hashed: hashed,
        spilled,
        ..Comparison::default()
    };
    for index in 0..1usize << bits {
        let outputs = spill.share(bits, index, shapes)?;
        let inputs = candidates.share(bits, index, shapes)?;
        for h in inputs.outputs.columns.iter().flatten() {
            for col in outputs.outputs.columns(*h) {
                *c.hits
                    .entry(outputs.columns[col as usize].clone())
                    .or_default() += 1;
            }
        }
        c.fingerprinted += outputs.outputs.len() as u64;
        c.passes += 1;
    }
    Ok(Some(c))
}

/// The start of the by-value check's findings when it cannot compare.
fn too_many_values(bound: u64) -> String {
    format!(
        "more than {bound} distinct output values (text and integers of the record-level tables, tokens and networks excepted)"
    )
}

/// Checks the tables in `dir`; `policy` adds the by-value scan and says which columns are
/// declared tokens; `k` is the smallest count of people allowed in aggregates.
///
/// `erased`: the tokens erased customers would have (from the erasure plan); none may be
/// published. `None` skips that check (no key or no ledger at hand).
///
/// `named`: the input rows whose free text names them ([`names::named_rows`], read with
/// the key); no published text of theirs may still hold the name. `None` skips that
/// check where the policy has a `names` rule (no key at hand).
///
/// `spill_dir`: where the by-value check spills output values past its bound (`None`:
/// the system's temporary folder, `TMPDIR`).
pub async fn verify(
    dir: &Path,
    policy: Option<&Policy>,
    k: u64,
    erased: Option<&crate::erasure::TokenSet>,
    named: Option<&names::NamedRows>,
    spill_dir: Option<&Path>,
) -> Result<Report, Error> {
    let limits = Limits {
        by_value_held: policy
            .and_then(|p| p.verify.max_values)
            .unwrap_or(BY_VALUE_HELD),
        ..Limits::default()
    };
    verify_with_limits(dir, policy, k, erased, named, spill_dir, limits).await
}

/// [`verify`] with other memory bounds (tests: the bounds' behaviour on small data).
#[doc(hidden)]
pub async fn verify_with_limits(
    dir: &Path,
    policy: Option<&Policy>,
    k: u64,
    erased: Option<&crate::erasure::TokenSet>,
    named: Option<&names::NamedRows>,
    spill_dir: Option<&Path>,
    limits: Limits,
) -> Result<Report, Error> {
    let tables = tables_of(dir)?;
    let temp = std::env::temp_dir();
    let spill = Spill::new(spill_dir.unwrap_or(&temp));
    let t0 = std::time::Instant::now();
    let fp = policy.map(|_| Fingerprinter::new());
    // Columns the uniqueness check looks at: those the policy passes through unchanged,
    // where a direct identifier slips through, and generalized networks and prefixes,
    // which can stay one per person (a /48 network per customer singles every row out).
    // Tokens and scrubbed text are the policy's declared treatment; generalized times
    // repeat by construction; masked values are too few to tell (`****12`).
    let kept = columns_where(policy, |r| {
        matches!(
            r,
            Rule::Keep
                | Rule::Generalize(
                    crate::rules::Generalization::Network { .. }
                        | crate::rules::Generalization::Prefix { .. }
                )
        )
    });

    let mut detectors = Check::new("residual_pii_detectors");
    let mut by_value = Check::new("residual_pii_input_values");
    let mut unique = Check::new("record_level_unique_columns");
    let mut personal_text = Check::new("record_level_personal_text");
    let vouched: HashSet<(&str, &str)> = policy
        .iter()
        .flat_map(|p| &p.verify.not_personal)
        .filter_map(|e| e.split_once('.'))
        .collect();
    let mut erased_check = Check::new("erased_customers_absent");
    let mut erased_hits: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut off_treatment: BTreeMap<(String, String), u64> = BTreeMap::new();
    // Every row group of every file, scanned in parallel (rayon), then merged per table.
    // (table, file, row group): the unit of parallelism, so one big file is not one job.
    let mut jobs: Vec<(usize, &PathBuf, usize)> = Vec::new();
    let mut unique_sample = HashMap::new();
    let fingerprinted = std::sync::atomic::AtomicU64::new(0);
    for (i, t) in tables.iter().enumerate() {
        let mut rows = 0u64;
        for f in &t.files {
            let groups = row_group_rows(f)?;
            rows += groups.iter().map(|n| *n as u64).sum::<u64>();
            jobs.extend((0..groups.len()).map(|g| (i, f, g)));
        }
        unique_sample.insert(t.name.clone(), UniqueSample::of(rows, limits.unique_held));
    }
    let treatments = treatments(policy);
    let amounts: HashSet<(String, String)> = policy
        .into_iter()
        .flat_map(|p| &p.tables)
        .filter_map(|t| {
            t.role(crate::policy::Role::Amount)
                .map(|c| (t.name.clone(), c.to_string()))
        })
        .collect();
    // Each output file's footer, read once: by the scans, and by the declared-columns
    // check after them.
    let footers = Footers::default();
    let quick = ahash::RandomState::with_seeds(
        rand::random(),
        rand::random(),
        rand::random(),
        rand::random(),
    );
    let scrubbed = columns_where(policy, |r| matches!(r, Rule::Scrub { .. }));
    let ctx = ScanContext {
        fp: fp.as_ref(),
        quick: &quick,
        erased,
        kept: &kept,
        treatments: &treatments,
        amounts: &amounts,
        scrubbed: &scrubbed,
        footers: &footers,
        unique_sample: &unique_sample,
        fingerprinted: &fingerprinted,
        by_value_held: limits.by_value_held,
        spill_every: limits.spill_every,
        spill: &spill,
    };
    let mut per_table = scan_all(&tables, &jobs, &ctx)?;
    tracing::debug!(
        ms = t0.elapsed().as_millis() as u64,
        "verify: output scanned"
    );
    // The output's distinct values, fingerprinted, for the by-value check: taken out of
    // the scans now (or, past the bound, the rest of them spilled), compared with the
    // input once the uniqueness check is known.
    let counted = fingerprinted.load(std::sync::atomic::Ordering::Relaxed);
    let too_many = counted > limits.by_value_held;
    let hopeless = past_every_split(counted, limits.by_value_held);
    let mut shapes = Shapes::default();
    for scan in per_table.values() {
        shapes.merge(&scan.shapes);
    }
    let first = (!too_many).then(|| HeldValues::take(&tables, &mut per_table, shapes.clone()));
    // Past the bound, what the scans held is spilled only if the passes are to run.
    let unspilled: Vec<(usize, BTreeMap<String, Held>)> = per_table
        .iter_mut()
        .map(|(i, scan)| (*i, std::mem::take(&mut scan.values)))
        .collect();
    let mut scanned = 0u64;
    for (i, scan) in per_table {
        let t = &tables[i];
        let aggregate = is_aggregate(&t.name);
        scanned += scan.scanned;
        for ((col, kind), n) in scan.found {
            *detectors
                .figures
                .entry(format!("matches.{kind}"))
                .or_default() += n;
            detectors.findings.push(format!(
                "table {}, column {col}: {n} value(s) holding {}",
                t.name,
                crate::rules::scrub::kind_phrase(kind)
            ));
        }
        for (col, n) in scan.erased_hits {
            erased_hits.insert((t.name.clone(), col), n);
        }
        // Not a finding: the scrubber's fail-closed outcome, counted for the record.
        for (col, n) in scan.removed_whole {
            detectors
                .figures
                .insert(format!("{REMOVED_WHOLE}.{}.{col}", t.name), n);
        }
        for (col, n) in scan.off_treatment {
            off_treatment.insert((t.name.clone(), col), n);
        }
        for (col, ty) in scan.unreadable {
            *detectors
                .figures
                .entry("unreadable_columns".into())
                .or_default() += 1;
            detectors.findings.push(format!(
                "table {}, column {col}: a column of type {ty}, which the checks cannot look into; \
                 publish only flat columns (text, numbers, booleans, dates, times): drop it, or flatten it in the export",
                t.name
            ));
        }
        if !aggregate {
            check_personal_text(&t.name, &scan.personal, &vouched, &mut personal_text);
            let sample = UniqueSample::of_table(&unique_sample, &t.name);
            for (col, d) in scan.distinct {
                // No repeat seen: every value distinct, or, past `unique_held` rows,
                // every value of the sample (a repeated run anywhere counts as a repeat),
                // when the sample holds 50 values or more: a few values each seen once
                // are no evidence (a column of a few values may have none sampled).
                let Some(set) = d
                    .set
                    .filter(|set| d.rows >= 50 && (sample.everything() || set.len() >= 50))
                else {
                    continue;
                };
                unique.findings.push(if sample.everything() {
                    format!(
                        "table {}, column {col}: all {} values distinct and not a declared token: a direct identifier?",
                        t.name, d.rows
                    )
                } else {
                    format!(
                        "table {}, column {col}: no value repeats among {} of its {} values (a hash sample; the check holds at most about {}) and not a declared token: a direct identifier?",
                        t.name,
                        set.len(),
                        d.rows,
                        limits.unique_held
                    )
                });
            }
        }
    }
    let t0 = std::time::Instant::now();
    let input_footers = Footers::default();
    let compared = match (policy, &fp) {
        (Some(p), Some(fp)) => {
            let input = InputLookup {
                policy: p,
                fp,
                quick: &quick,
                footers: &input_footers,
            };
            match first {
                Some(values) => {
                    let mut c = Comparison::default();
                    values.compare(&input, &mut c).await?;
                    Some(c)
                }
                // A column of unique values published unchanged fails the run anyway:
                // comparing all of its values in passes would only make it fail later.
                None if !unique.findings.is_empty() => {
                    drop(unspilled);
                    by_value.findings.push(format!(
                    "{} to compare with the input, and a column of unique values published unchanged (record_level_unique_columns): not compared. Drop or pseudonymize that column",
                    too_many_values(limits.by_value_held)
                ));
                    None
                }
                None => {
                    let passes = if hopeless {
                        None
                    } else {
                        for (i, values) in unspilled {
                            for (col, held) in values {
                                spill.write(&tables[i].name, &col, &held)?;
                            }
                        }
                        compare_in_passes(
                            &spill,
                            &shapes,
                            &input,
                            limits.by_value_held,
                            limits.input_held.unwrap_or(limits.by_value_held),
                        )
                        .await?
                    };
                    if passes.is_none() {
                        by_value.findings.push(format!(
                        "{} in one of {} shares of them: not compared. Raise `[verify] max_values` (16 bytes each) or drop the column that holds most of them",
                        too_many_values(limits.by_value_held),
                        1u64 << MAX_PASS_BITS
                    ));
                    }
                    passes
                }
            }
        }
        _ => None,
    };
    tracing::debug!(
        ms = t0.elapsed().as_millis() as u64,
        "verify: input values looked up"
    );
    let mut hashed_hits = 0u64;
    for ((t, col), n) in compared.iter().flat_map(|c| &c.hits) {
        hashed_hits += n;
        by_value.findings.push(format!(
            "table {t}, column {col}: {n} distinct value(s) equal to a personal value of the input"
        ));
    }
    detectors.figures.insert("values_scanned".into(), scanned);
    detectors.passed = detectors.findings.is_empty();
    let c = compared.unwrap_or_default();
    by_value
        .figures
        .insert("input_values_hashed".into(), c.input_hashed);
    by_value.figures.insert(
        "output_values_fingerprinted".into(),
        if c.passes == 0 {
            counted
        } else {
            c.fingerprinted
        },
    );
    by_value.figures.insert("passes".into(), c.passes);
    // Output scans after the first: none since the passes load the spill (kept for
    // scripts that read the figure).
    by_value.figures.insert("output_rescans".into(), 0);
    // Only when the passes ran: what a hopeless case spilled before it knew depends on
    // which row groups finished first.
    by_value.figures.insert("values_spilled".into(), c.spilled);
    by_value.figures.insert("matches".into(), hashed_hits);
    by_value.passed = by_value.findings.is_empty();
    if fp.is_none() {
        by_value
            .findings
            .push("skipped: no policy given (--config), so the input is unknown".into());
        unique
            .findings
            .push("skipped: no policy given (--config), so tokens are unknown".into());
        personal_text
            .findings
            .push("skipped: no policy given (--config), so the kept columns are unknown".into());
    }
    unique.passed = unique.findings.iter().all(|f| f.starts_with("skipped"));

    match erased {
        Some(e) => {
            erased_check
                .figures
                .insert("erased_tokens".into(), e.len() as u64);
            for ((t, col), n) in &erased_hits {
                erased_check.findings.push(format!(
                    "table {t}, column {col}: {n} token(s) of erased customers"
                ));
            }
            erased_check.passed = erased_hits.is_empty();
        }
        None => erased_check
            .findings
            .push("skipped: no erasure ledger to check against (the policy's [erasure] ledger, and its key)".into()),
    }
    let names_check = match (policy, named) {
        (_, Some(named)) => names::check(dir, named)?,
        (None, None) => names::skipped(
            "skipped: no policy given (--config), so the scrubbed columns and their names are unknown",
        ),
        (Some(p), None) if names::any(p) => names::skipped(
            "skipped: no key (ANONYMIZER_KEY or the policy's key_file), so rows cannot be paired with the input",
        ),
        // No `names` rule: nothing to pair.
        (Some(_), None) => names::check(dir, &names::NamedRows::default())?,
    };
    let aggregates = check_aggregates(&tables, k)?;
    let as_declared = check_declared(&tables, policy, &footers, &treatments, &off_treatment)?;
    let declared = read_quasi_identifiers(&tables, policy)?;
    let quasi = check_quasi_identifiers(&declared, policy);
    let kanon = check_k_anonymity(&declared, policy);
    drop(declared);
    let kanon_summary: Vec<String> = policy
        .into_iter()
        .flat_map(|p| &p.tables)
        .filter(|t| !t.quasi_identifiers.is_empty())
        .filter_map(|t| {
            let f = |x: &str| kanon.figures.get(&format!("{}.{x}", t.name)).copied();
            Some(format!(
                "table {}: smallest group sharing its quasi-identifiers {} (k = {}), prosecutor risk at most 1/{} and {:.4} on average, {} record(s) suppressed",
                t.name,
                f("smallest_class")?,
                kanon.figures.get("k")?,
                f("smallest_class")?,
                f("classes")? as f64 / f("records")?.max(1) as f64,
                f("records_suppressed")?
            ))
        })
        .collect();
    let risks = BTreeMap::from([
        (
            "singling_out",
            format!(
                "aggregates: smallest published count of people {} (k = {k}), {} value(s) withheld; record-level tables: {} column(s) with all-distinct non-token values{}",
                aggregates
                    .figures
                    .get("smallest_published_count")
                    .map_or("-".to_string(), |v| v.to_string()),
                aggregates
                    .figures
                    .get("withheld_values")
                    .copied()
                    .unwrap_or(0),
                unique.findings.len(),
                kanon_summary
                    .iter()
                    .map(|s| format!("; {s}"))
                    .collect::<String>()
            ),
        ),
        (
            "linkability",
            format!(
                "{} output value(s) equal to a personal input value; {} identifier(s) found by the detectors; {} kept column(s) that look like personal names or street addresses; record-level tables stay linkable through their keyed tokens (pseudonymous, not anonymous)",
                hashed_hits,
                detectors.findings.len(),
                personal_text
                    .findings
                    .iter()
                    .filter(|f| !f.starts_with("skipped"))
                    .count()
            ),
        ),
        (
            "inference",
            format!(
                "{} withheld aggregate value(s) recomputable from published identities",
                aggregates.figures.get("recomputable").copied().unwrap_or(0)
            ),
        ),
    ]);
    let checks = vec![
        detectors,
        by_value,
        aggregates,
        unique,
        personal_text,
        quasi,
        kanon,
        erased_check,
        as_declared,
        names_check,
    ];
    Ok(Report {
        passed: checks.iter().all(|c| c.passed),
        dir: dir.to_path_buf(),
        checks,
        risks,
    })
}

/// The personal-text check of one record-level table's kept text columns: a column whose
/// name says it holds personal names or street addresses, or enough of whose rows look
/// like them ([`crate::personal_text`]), is a finding unless `[verify] not_personal`
/// vouches for it.
fn check_personal_text(
    table: &str,
    columns: &BTreeMap<String, PersonalRows>,
    vouched: &HashSet<(&str, &str)>,
    check: &mut Check,
) {
    use crate::personal_text::{Kind, MIN_ROWS, SHARE, name_says};
    for (col, n) in columns {
        if vouched.contains(&(table, col.as_str())) {
            *check.figures.entry("columns_vouched".into()).or_default() += 1;
            continue;
        }
        *check.figures.entry("columns_checked".into()).or_default() += 1;
        *check.figures.entry("values_like_names".into()).or_default() += n.names;
        *check
            .figures
            .entry("values_like_addresses".into())
            .or_default() += n.addresses;
        let (kind, like) = if n.addresses > n.names {
            (Kind::Address, n.addresses)
        } else {
            (Kind::Name, n.names)
        };
        let by_values = n.rows >= MIN_ROWS && like as f64 >= SHARE * n.rows as f64;
        let values = |what: &str| {
            format!(
                "{like} of its {} values look like {what} ({})",
                n.rows,
                kind.looks()
            )
        };
        let why = match (name_says(col), by_values) {
            (None, false) => continue,
            (None, true) => values(kind.noun()),
            (Some(said), false) => format!("its name says it holds {}", said.noun()),
            (Some(said), true) if said == kind => format!(
                "its name says it holds {}, and {}",
                said.noun(),
                values("them")
            ),
            (Some(said), true) => format!(
                "its name says it holds {}, and {}",
                said.noun(),
                values(kind.noun())
            ),
        };
        check.findings.push(format!(
            "table {table}, column {col}: kept by the policy, and {why}; drop, pseudonymize or mask it \
             (if it holds no personal data, list \"{table}.{col}\" in [verify] not_personal)"
        ));
    }
    check.passed = check.findings.is_empty();
}

/// The columns of the aggregate tables and the erasure receipts, as `run` publishes them
/// (a test compares them with a run's files).
pub const PUBLISHED_COLUMNS: [(&str, &[&str]); 5] = [
    (
        "subscriptions_monthly",
        &[
            "month",
            "country",
            "active_start",
            "new",
            "reactivated",
            "churned",
            "active_end",
            "churn_rate",
            "suppressed",
        ],
    ),
    (
        "cohort_retention",
        &[
            "cohort_month",
            "months_since",
            "customers",
            "retention",
            "suppressed",
        ],
    ),
    (
        "revenue_monthly",
        &[
            "month",
            "country",
            "currency",
            "offer_type",
            "payments",
            "gross",
            "refunds",
            "chargebacks",
            "net",
            "customers",
            "suppressed",
        ],
    ),
    (
        "mrr_monthly",
        &[
            "month",
            "country",
            "currency",
            "subscribers",
            "mrr",
            "arpu",
            "suppressed",
        ],
    ),
    (
        "erasure_receipts",
        &[
            "request_id",
            "status",
            "reason",
            "jurisdiction",
            "kind",
            "customers_matched",
            "transactions_kept_anonymized",
            "transactions_removed",
            "received_at",
            "due_at",
            "days_elapsed",
            "overdue",
            "completed_at",
            "active_entitlement",
            "explained",
            "row",
        ],
    ),
];

/// With a policy: every record-level table is one of the policy's, and every column of
/// it one the policy publishes. A table or column the policy does not know (a copy edited
/// by hand, a file dropped into the folder) holds what nobody declared, so the checks
/// that read the policy (tokens, kept columns, the uniqueness check) cannot vouch for it.
fn check_declared(
    tables: &[Table],
    policy: Option<&Policy>,
    footers: &Footers,
    treatments: &HashMap<(String, String), Treatment>,
    off_treatment: &BTreeMap<(String, String), u64>,
) -> Result<Check, Error> {
    let mut c = Check::new("published_as_declared");
    let Some(policy) = policy else {
        c.findings
            .push("skipped: no policy given (--config), so the declared tables are unknown".into());
        c.passed = true;
        return Ok(c);
    };
    let mut columns = 0u64;
    let names_of = |t: &Table| -> Result<BTreeSet<String>, Error> {
        let mut seen = BTreeSet::new();
        for f in &t.files {
            let meta = footers.get(f)?;
            seen.extend(meta.schema().fields().iter().map(|x| x.name().clone()));
        }
        Ok(seen)
    };
    // The aggregate and receipts tables: only those this policy publishes, and only their
    // own columns (a column of names added to one is not a statistic).
    for t in tables.iter().filter(|t| is_aggregate(&t.name)) {
        let published = if t.name == "erasure_receipts" {
            policy.erasure.ledger.is_some()
        } else {
            policy.analytics.tables.contains(&t.name.as_str())
        };
        if !published {
            c.findings.push(format!(
                "table {}: this policy does not publish it, so nothing says what it holds; remove it",
                t.name
            ));
            continue;
        }
        let own = PUBLISHED_COLUMNS
            .iter()
            .find(|(n, _)| *n == t.name)
            .map_or(&[][..], |(_, cols)| *cols);
        for col in names_of(t)? {
            columns += 1;
            if !own.contains(&col.as_str()) {
                c.findings.push(format!(
                    "table {}, column {col}: not a column of this table, so nothing says what it holds; remove it",
                    t.name
                ));
            }
        }
    }
    for t in tables.iter().filter(|t| !is_aggregate(&t.name)) {
        let Some(tp) = policy.table(&t.name) else {
            c.findings.push(format!(
                "table {}: not a table of the policy, so nothing says what it holds; remove it, or declare it in the policy and rerun",
                t.name
            ));
            continue;
        };
        for col in names_of(t)? {
            columns += 1;
            let key = (t.name.clone(), col.clone());
            match tp.rule_of(&col) {
                Some(Rule::Drop) => c.findings.push(format!(
                    "table {}, column {col}: the policy drops this column, yet it is published",
                    t.name
                )),
                Some(rule) => {
                    let Some(x) = treatments.get(&key) else {
                        continue;
                    };
                    let not_text = t.files.iter().find_map(|f| {
                        let meta = footers.get(f).ok()?;
                        let field = meta.schema().field_with_name(&col).ok()?;
                        (!is_string(field.data_type())).then(|| field.data_type().to_string())
                    });
                    if let Some(ty) = not_text {
                        c.findings.push(format!(
                            "table {}, column {col}: the policy applies {} to it, yet it is published as {ty}, not as {}",
                            t.name,
                            rule.name(),
                            x.expected()
                        ));
                    } else if let Some(n) = off_treatment.get(&key) {
                        *c.figures.entry("values_not_as_declared".into()).or_default() += n;
                        c.findings.push(format!(
                            "table {}, column {col}: the policy applies {} to it, yet {n} value(s) are not {}",
                            t.name,
                            rule.name(),
                            x.expected()
                        ));
                    }
                }
                None => c.findings.push(format!(
                    "table {}, column {col}: not a column of the policy, so nothing says what it holds; remove it, or classify it in the policy and rerun",
                    t.name
                )),
            }
        }
    }
    c.figures.insert("columns_checked".into(), columns);
    c.passed = c.findings.is_empty();
    Ok(c)
}

/// The published quasi-identifier columns of every table that declares some, read once
/// for the two checks below.
struct Declared<'a> {
    table: &'a crate::policy::TablePolicy,
    columns: crate::kanon::read::Columns,
}

fn read_quasi_identifiers<'a>(
    tables: &[Table],
    policy: Option<&'a Policy>,
) -> Result<Vec<Declared<'a>>, Error> {
    let mut out = Vec::new();
    for tp in policy.into_iter().flat_map(|p| &p.tables) {
        if tp.quasi_identifiers.is_empty() {
            continue;
        }
        let Some(t) = tables.iter().find(|t| t.name == tp.name) else {
            continue;
        };
        let mut cols = crate::kanon::read::Columns::new(tp.quasi_identifiers.clone());
        for_each_batch_of(t, Some(&tp.quasi_identifiers), |b| {
            let arrays: Vec<ArrayRef> = tp
                .quasi_identifiers
                .iter()
                .map(|q| b.column_by_name(q).cloned())
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    Error::PrivacyCheckFailed(format!(
                        "table {}: a declared quasi-identifier is missing from the published files",
                        t.name
                    ))
                })?;
            cols.push(&arrays)
                .map_err(|e| Error::Failed(format!("verify: table {}: {e}", t.name)))
        })?;
        out.push(Declared {
            table: tp,
            columns: cols,
        });
    }
    Ok(out)
}

/// Declared quasi-identifiers must be published generalized: no time of day on any of
/// them (the rule `generalize to = "hour"` or `keep` on a timestamp would leave one).
fn check_quasi_identifiers(declared: &[Declared<'_>], policy: Option<&Policy>) -> Check {
    let mut check = Check::new("quasi_identifiers_generalized");
    if policy.is_none() {
        check
            .findings
            .push("skipped: no policy given (--config), so quasi-identifiers are unknown".into());
        return check;
    }
    let mut values = 0u64;
    for d in declared {
        let cols = &d.columns;
        for (c, q) in cols.names.iter().enumerate() {
            let top = cols.dicts[c]
                .iter()
                .position(|v| v == crate::kanon::builtin::TOP);
            values += cols.codes[c]
                .iter()
                .filter(|x| Some(**x as usize) != top)
                .count() as u64;
            let n = cols.times_of_day(c);
            if n > 0 {
                check.findings.push(format!(
                    "table {}, quasi-identifier {q}: {n} value(s) with a time of day; generalize it to a day or coarser",
                    d.table.name
                ));
            }
        }
    }
    check.figures.insert(
        "quasi_identifiers".into(),
        declared.iter().map(|d| d.columns.names.len() as u64).sum(),
    );
    check.figures.insert("values_checked".into(), values);
    check.passed = check.findings.is_empty();
    check
}

/// k-anonymity of every record-level table that declares quasi-identifiers, counted here
/// from the published values (not by the code that generalized them): every combination
/// of quasi-identifier values is shared by at least k records, records whose
/// quasi-identifiers are all null (suppressed) excepted.
fn check_k_anonymity(declared: &[Declared<'_>], policy: Option<&Policy>) -> Check {
    let mut check = Check::new("k_anonymity");
    let Some(ka) = policy.and_then(|p| p.k_anonymity) else {
        check.findings.push(
            "skipped: no policy with [k_anonymity] given (--config), so quasi-identifiers are unknown"
                .into(),
        );
        return check;
    };
    check.figures.insert("k".into(), ka.k);
    for d in declared {
        let (cols, name) = (&d.columns, &d.table.name);
        let top: Vec<Option<u32>> = cols
            .dicts
            .iter()
            .map(|d| {
                d.iter()
                    .position(|v| v == crate::kanon::builtin::TOP)
                    .map(|x| x as u32)
            })
            .collect();
        let mut classes: HashMap<Vec<u32>, u64> = HashMap::new();
        let mut suppressed = 0u64;
        for r in 0..cols.rows() {
            let key: Vec<u32> = cols.codes.iter().map(|c| c[r]).collect();
            if key.iter().zip(&top).all(|(k, t)| Some(*k) == *t) {
                suppressed += 1;
                continue;
            }
            *classes.entry(key).or_default() += 1;
        }
        let records: u64 = classes.values().sum();
        let small: Vec<u64> = classes.values().copied().filter(|n| *n < ka.k).collect();
        let smallest = classes.values().copied().min().unwrap_or(0);
        check.figures.insert(format!("{name}.records"), records);
        check
            .figures
            .insert(format!("{name}.records_suppressed"), suppressed);
        check
            .figures
            .insert(format!("{name}.classes"), classes.len() as u64);
        check
            .figures
            .insert(format!("{name}.smallest_class"), smallest);
        check
            .figures
            .insert(format!("{name}.records_below_k"), small.iter().sum::<u64>());
        check.figures.insert(
            format!("{name}.sample_uniques"),
            classes.values().filter(|n| **n == 1).count() as u64,
        );
        if !small.is_empty() {
            check.findings.push(format!(
                "table {name}: {} record(s) in {} combination(s) of quasi-identifiers ({}) shared by fewer than k = {} records",
                small.iter().sum::<u64>(),
                small.len(),
                cols.names.join(", "),
                ka.k
            ));
        }
    }
    check.passed = check.findings.is_empty();
    check
}

fn concat(t: &Table) -> Result<Option<RecordBatch>, Error> {
    let mut batches = Vec::new();
    for_each_batch(t, |b| {
        batches.push(b.clone());
        Ok(())
    })?;
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    datafusion::arrow::compute::concat_batches(&first.schema(), &batches)
        .map(Some)
        .map_err(|e| Error::Failed(format!("verify: table {}: {e}", t.name)))
}

fn ints(b: &RecordBatch, col: &str) -> Option<Vec<Option<i64>>> {
    let a = cast(b.column_by_name(col)?, &DataType::Int64).ok()?;
    let a = a.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
    Some(
        (0..a.len())
            .map(|i| a.is_valid(i).then(|| a.value(i)))
            .collect(),
    )
}

/// Threshold and recomputability of the aggregate tables, from their files.
fn check_aggregates(tables: &[Table], k: u64) -> Result<Check, Error> {
    let mut c = Check::new("aggregates_small_cells");
    let mut smallest: Option<i64> = None;
    let mut withheld = 0u64;
    let mut recomputable = 0u64;
    for (name, cols) in COUNT_COLUMNS {
        let Some(t) = tables.iter().find(|t| t.name == name) else {
            continue;
        };
        let Some(b) = concat(t)? else { continue };
        for col in cols {
            let Some(v) = ints(&b, col) else {
                c.findings.push(format!("table {name}: no column {col}"));
                continue;
            };
            let small = v
                .iter()
                .flatten()
                .filter(|x| **x >= 1 && (**x as u64) < k)
                .count();
            withheld += v.iter().filter(|x| x.is_none()).count() as u64;
            for x in v.iter().flatten().filter(|x| **x >= k as i64) {
                smallest = Some(smallest.map_or(*x, |s| s.min(*x)));
            }
            if small > 0 {
                c.findings.push(format!(
                    "table {name}, column {col}: {small} published count(s) of 1..{} people",
                    k - 1
                ));
            }
        }
        // Rates, averages and sums made of a count go with it: churn_rate x active_start
        // is the churned count, mrr / arpu the subscribers, payments (where everyone paid
        // once) the customers, retention x cohort size the retained customers.
        let beside: &[(&str, &[&str])] = match name {
            "subscriptions_monthly" => &[("churn_rate", &["active_start", "churned"])],
            "mrr_monthly" => &[("mrr", &["subscribers"]), ("arpu", &["subscribers"])],
            "revenue_monthly" => &[("payments", &["customers"])],
            "cohort_retention" => &[("retention", &["customers"])],
            _ => &[],
        };
        for (derived, counts) in beside {
            let n = published_beside_withheld(&b, derived, counts, name == "cohort_retention");
            if n > 0 {
                c.findings.push(format!(
                    "table {name}, column {derived}: {n} value(s) published beside a withheld {} (together with a published count they give it back)",
                    counts.join(" or ")
                ));
            }
            recomputable += n as u64;
        }
        if name == "revenue_monthly" {
            let n = recomputable_money(&b);
            if n > 0 {
                c.findings.push(format!(
                    "table {name}: {n} withheld value(s) of net = gross - refunds - chargebacks can be recomputed (exactly, or pinned to one value because gross, refunds and chargebacks are >= 0)"
                ));
            }
            recomputable += n as u64;
        }
        if name == "cohort_retention"
            && let Some(revenue) = tables.iter().find(|t| t.name == "revenue_monthly")
            && let Some(revenue) = concat(revenue)?
        {
            let n = recomputable_cohorts(&b, &revenue);
            if n > 0 {
                c.findings.push(format!(
                    "table {name}: {n} withheld count(s) can be recomputed from revenue_monthly's customers (exactly, or pinned to one value because counts are >= 0, and >= 1 in a row that exists)"
                ));
            }
            recomputable += n as u64;
        }
        if name == "subscriptions_monthly" {
            let mrr = match tables.iter().find(|t| t.name == "mrr_monthly") {
                Some(t) => concat(t)?,
                None => None,
            };
            let n = recomputable_subscriptions(&b, mrr.as_ref());
            if n > 0 {
                c.findings.push(format!(
                    "table {name}: {n} withheld value(s) can be recomputed from the published identities (exactly, or pinned to one value because counts are >= 0, and >= 1 in a row that exists)"
                ));
            }
            recomputable += n as u64;
        }
    }
    if let Some(s) = smallest {
        c.figures
            .insert("smallest_published_count".into(), s as u64);
    }
    c.figures.insert("withheld_values".into(), withheld);
    c.figures.insert("recomputable".into(), recomputable);
    c.passed = c.findings.is_empty();
    Ok(c)
}

/// Rows where `derived` is published while one of `counts` is withheld; with `cohort`,
/// also where the cohort's size (its `customers` at `months_since` 0) is withheld.
fn published_beside_withheld(
    b: &RecordBatch,
    derived: &str,
    counts: &[&str],
    cohort: bool,
) -> usize {
    let Some(d) = b.column_by_name(derived) else {
        return 0;
    };
    let counts: Vec<&ArrayRef> = counts.iter().filter_map(|c| b.column_by_name(c)).collect();
    // Cohorts whose size is withheld, by cohort_month.
    let mut size_withheld: HashSet<i32> = HashSet::new();
    let months = b
        .column_by_name("cohort_month")
        .and_then(|a| a.as_primitive_opt::<Date32Type>().cloned());
    if cohort
        && let (Some(m), Some(since), Some(customers)) = (
            &months,
            ints(b, "months_since"),
            b.column_by_name("customers"),
        )
    {
        for (r, s) in since.iter().enumerate() {
            if *s == Some(0) && customers.is_null(r) {
                size_withheld.insert(m.value(r));
            }
        }
    }
    (0..b.num_rows())
        .filter(|&r| {
            d.is_valid(r)
                && (counts.iter().any(|a| a.is_null(r))
                    || months
                        .as_ref()
                        .is_some_and(|m| size_withheld.contains(&m.value(r))))
        })
        .count()
}

/// Withheld subscriptions_monthly counts that follow from the published ones through
/// `active_end = active_start + new + reactivated - churned`, the 'ALL' rows, and a month's
/// active_end being the next month's active_start.
/// With `mrr` (mrr_monthly), a country's subscribers over its currencies are taken to add
/// up to its active_end too.
fn recomputable_subscriptions(b: &RecordBatch, mrr: Option<&RecordBatch>) -> usize {
    use crate::analytics::protect::Problem;
    let Some(v) = SUBSCRIPTION_TERMS
        .iter()
        .map(|t| ints(b, t))
        .collect::<Option<Vec<_>>>()
    else {
        return 0;
    };
    let (Some(m), Some(c)) = (b.column_by_name("month"), b.column_by_name("country")) else {
        return 0;
    };
    let Some(m) = m.as_primitive_opt::<Date32Type>() else {
        return 0;
    };
    let Some(c) = texts(c) else { return 0 };
    let c: Vec<String> = c.into_iter().map(Option::unwrap_or_default).collect();
    let n = b.num_rows();
    let month = |r: usize| i64::from(m.value(r));
    let next_month = |r: usize| {
        crate::rules::generalize::days_to_date(month(r))
            .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
            .map(|d| i64::from(crate::rules::generalize::date_to_days(d)))
    };
    let key = |r: usize| (month(r), c[r].clone());
    let at: HashMap<(i64, String), usize> = (0..n).map(|r| (key(r), r)).collect();
    let cell = |r: usize, t: usize| r * 5 + t;
    let mut cons: Vec<Vec<(usize, i64)>> = Vec::new();
    for (r, ctry) in c.iter().enumerate() {
        cons.push(vec![
            (cell(r, 0), 1),
            (cell(r, 1), 1),
            (cell(r, 2), 1),
            (cell(r, 3), -1),
            (cell(r, 4), -1),
        ]);
        if let Some(nm) = next_month(r)
            && let Some(&nx) = at.get(&(nm, ctry.clone()))
        {
            cons.push(vec![(cell(r, 4), 1), (cell(nx, 0), -1)]);
        }
    }
    // A missing neighbour row publishes zeros: the first month's active_start, and the
    // active_end of a month whose next month has no row (before the table's last month).
    let last = (0..n).map(month).max().unwrap_or(0);
    let prev_month = |r: usize| {
        crate::rules::generalize::days_to_date(month(r))
            .and_then(|d| d.checked_sub_months(chrono::Months::new(1)))
            .map(|d| i64::from(crate::rules::generalize::date_to_days(d)))
    };
    for (r, ctry) in c.iter().enumerate() {
        let ctry = ctry.clone();
        if prev_month(r).is_none_or(|p| !at.contains_key(&(p, ctry.clone()))) {
            cons.push(vec![(cell(r, 0), 1)]);
        }
        if month(r) < last && next_month(r).is_none_or(|p| !at.contains_key(&(p, ctry))) {
            cons.push(vec![(cell(r, 4), 1)]);
        }
    }
    let mut by_month: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for r in 0..n {
        by_month.entry(month(r)).or_default().push(r);
    }
    for rows in by_month.values() {
        if let Some(&all) = rows.iter().find(|r| c[**r] == "ALL") {
            for t in 0..5 {
                let mut k = vec![(cell(all, t), 1)];
                k.extend(
                    rows.iter()
                        .filter(|r| **r != all)
                        .map(|r| (cell(*r, t), -1)),
                );
                cons.push(k);
            }
        }
    }
    let mut suppressed: Vec<bool> = (0..n * 5).map(|i| v[i % 5][i / 5].is_none()).collect();
    let mut values: Vec<i128> = (0..n * 5)
        .map(|i| v[i % 5][i / 5].map_or(0, i128::from))
        .collect();
    let mut lower: Vec<Option<i128>> = vec![Some(0); n * 5];
    // Every identity so far is exact.
    let mut at_most: Vec<bool> = Vec::new();
    if let Some(mb) = mrr
        && let (Some(mm), Some(mc), Some(subs)) = (
            mb.column_by_name("month")
                .and_then(|a| a.as_primitive_opt::<Date32Type>().cloned()),
            mb.column_by_name("country").and_then(texts),
            ints(mb, "subscribers"),
        )
    {
        let mut groups: BTreeMap<(i64, String), Vec<usize>> = BTreeMap::new();
        for (r, ctry) in mc.iter().enumerate() {
            groups
                .entry((i64::from(mm.value(r)), ctry.clone().unwrap_or_default()))
                .or_default()
                .push(r);
        }
        // A country without a row in a month has no subscribers at its end.
        for (r, ctry) in c.iter().enumerate() {
            if ctry != "ALL" && !groups.contains_key(&key(r)) {
                cons.push(vec![(cell(r, 4), 1)]);
            }
        }
        // active_end <= its subscribers over the currencies.
        at_most.resize(cons.len(), false);
        for (key, rows) in groups {
            let mut k: Vec<(usize, i64)> =
                at.get(&key).map(|e| (cell(*e, 4), 1)).into_iter().collect();
            for r in rows {
                k.push((suppressed.len(), -1));
                suppressed.push(subs[r].is_none());
                values.push(subs[r].map_or(0, i128::from));
                // An mrr_monthly row exists because someone subscribed in it.
                lower.push(Some(1));
            }
            cons.push(k);
            at_most.push(true);
        }
    }
    let problem = Problem {
        cells: suppressed.len(),
        constraints: cons,
        values,
        lower,
        at_most,
        // A row exists because someone was active at its month's start or end.
        at_least_one: (0..n).map(|r| vec![cell(r, 0), cell(r, 4)]).collect(),
        ..Problem::default()
    };
    recomputable(&problem, &suppressed)
}

/// Withheld revenue_monthly sums that follow from the published ones through each row's
/// `net = gross - refunds - chargebacks`: exactly (one withheld term is the others' sum),
/// or because gross, refunds and chargebacks are sums of positive amounts (a gross equal
/// to the published net over two withheld terms makes both 0). Sums that are not
/// decimals (a copy edited by hand) get the exact check only.
fn recomputable_money(b: &RecordBatch) -> usize {
    use crate::analytics::protect::{Problem, determined};
    use datafusion::arrow::datatypes::Decimal128Type;
    let Some(terms) = ["gross", "refunds", "chargebacks", "net"]
        .iter()
        .map(|t| b.column_by_name(t))
        .collect::<Option<Vec<_>>>()
    else {
        return 0;
    };
    let n = b.num_rows();
    let cons: Vec<Vec<(usize, i64)>> = (0..n)
        .map(|r| {
            vec![
                (4 * r, 1),
                (4 * r + 1, -1),
                (4 * r + 2, -1),
                (4 * r + 3, -1),
            ]
        })
        .collect();
    let suppressed: Vec<bool> = (0..n * 4).map(|i| terms[i % 4].is_null(i / 4)).collect();
    // The four sums in one decimal type, as unscaled integers.
    let scale = match terms[0].data_type() {
        DataType::Decimal128(_, s) => Some(*s),
        _ => None,
    };
    let decimals = scale.and_then(|s| {
        terms
            .iter()
            .map(|a| cast(a, &DataType::Decimal128(38, s)).ok())
            .collect::<Option<Vec<_>>>()
    });
    let Some(decimals) = decimals else {
        return determined(n * 4, &cons, &suppressed).len();
    };
    let decimals: Vec<_> = decimals
        .iter()
        .map(|a| a.as_primitive::<Decimal128Type>())
        .collect();
    let problem = Problem {
        cells: n * 4,
        constraints: cons,
        // A withheld slot holds whatever the buffer does: `pinned` reads only the
        // published values.
        values: (0..n * 4).map(|i| decimals[i % 4].value(i / 4)).collect(),
        // Gross, refunds and chargebacks are >= 0; net is unbounded.
        lower: (0..n * 4).map(|i| (i % 4 < 3).then_some(0)).collect(),
        ..Problem::default()
    };
    recomputable(&problem, &suppressed)
}

/// Withheld values that follow from the published ones: exactly through the identities
/// (`determined`), or through the bounds (`pinned`: what each value is known to be at
/// least, `p.lower`, 0 for a count and 1 for the count of people a row that exists is
/// made of; the `p.at_most` links and the `p.at_least_one` sets): a published total of 0
/// over withheld counts makes each of them 0, one of 2 over two rows that exist each 1.
/// `suppressed`: the withheld values.
fn recomputable(p: &crate::analytics::protect::Problem, suppressed: &[bool]) -> usize {
    use crate::analytics::protect::{determined, pinned};
    let mut found: BTreeSet<usize> = determined(suppressed.len(), &p.constraints, suppressed)
        .into_iter()
        .collect();
    found.extend(pinned(p, suppressed));
    found.len()
}

/// Withheld customers counts of cohort_retention and revenue_monthly that follow from the
/// published ones: a month's customers over every cohort (cohort_month + months_since)
/// are taken to equal its customers over revenue_monthly's cells (exact when each
/// customer falls in one cell a month).
fn recomputable_cohorts(cohorts: &RecordBatch, revenue: &RecordBatch) -> usize {
    use crate::analytics::protect::Problem;
    let month_index = |d: i32| {
        crate::rules::generalize::days_to_date(i64::from(d))
            .map_or(0, crate::analytics::period::month_of)
    };
    let (Some(cm), Some(since), Some(cc)) = (
        cohorts
            .column_by_name("cohort_month")
            .and_then(|a| a.as_primitive_opt::<Date32Type>().cloned()),
        ints(cohorts, "months_since"),
        ints(cohorts, "customers"),
    ) else {
        return 0;
    };
    let (Some(rm), Some(rc)) = (
        revenue
            .column_by_name("month")
            .and_then(|a| a.as_primitive_opt::<Date32Type>().cloned()),
        ints(revenue, "customers"),
    ) else {
        return 0;
    };
    let (mut suppressed, mut values, mut lower) = (Vec::new(), Vec::new(), Vec::new());
    let mut by_month: BTreeMap<i64, Vec<(usize, i64)>> = BTreeMap::new();
    for r in 0..cohorts.num_rows() {
        let m = month_index(cm.value(r)) + since[r].unwrap_or(0);
        by_month.entry(m).or_default().push((suppressed.len(), 1));
        suppressed.push(cc[r].is_none());
        values.push(cc[r].map_or(0, i128::from));
        // A cohort exists because someone is in it: its size is >= 1.
        lower.push(Some(i128::from(since[r] == Some(0))));
    }
    for (r, customers) in rc.iter().enumerate() {
        by_month
            .entry(month_index(rm.value(r)))
            .or_default()
            .push((suppressed.len(), -1));
        suppressed.push(customers.is_none());
        values.push(customers.map_or(0, i128::from));
        // A revenue_monthly row exists because a customer had a transaction in it.
        lower.push(Some(1));
    }
    // A month on one side only: the other side's rows that do not exist are zeros.
    let constraints: Vec<Vec<(usize, i64)>> = by_month.into_values().collect();
    let problem = Problem {
        cells: suppressed.len(),
        // Distinct customers of a month <= its customers over the revenue cells.
        at_most: vec![true; constraints.len()],
        constraints,
        values,
        lower,
        ..Problem::default()
    };
    recomputable(&problem, &suppressed)
}

/// `anonymizer verify [DIR] [--config FILE] [--k K] [--threads N]`: loads the policy (if
/// any), finds the folder (default: the policy's OUT/current) and runs [`verify`] on a
/// runtime of `threads` workers (the binary sizes the shared pool, which the scans use,
/// to the same).
pub fn run_verify(
    dir: Option<&Path>,
    config: Option<&Path>,
    k: Option<u64>,
    threads: usize,
    spill_dir: Option<&Path>,
) -> Result<Report, Error> {
    if let Some(d) = spill_dir {
        crate::run::check_spill_dir(d)?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the runtime: {e}")))?;
    tracing::debug!(
        threads,
        shared_pool = rayon::current_num_threads(),
        "verify started"
    );
    rt.block_on(async {
        let policy = match config {
            Some(c) => Some(Policy::load(c, &crate::run::session()).await?),
            None => None,
        };
        let spill_dir = crate::run::chosen_spill_dir(spill_dir, policy.as_ref())?;
        // Spill folders of killed runs there, or in the system's temporary folder: only
        // those whose lock no live process holds.
        crate::fsutil::remove_abandoned_spills(
            spill_dir.as_deref().unwrap_or(&std::env::temp_dir()),
        );
        let dir = match (dir, &policy) {
            (Some(d), _) => d.to_path_buf(),
            (None, Some(p)) => crate::publish::current_run(&p.output).ok_or_else(|| {
                Error::Usage(format!(
                    "{} has no published run; give the folder to check",
                    p.output.display()
                ))
            })?,
            (None, None) => {
                return Err(Error::Usage(
                    "give the folder to check, or --config POLICY to check its OUT/current".into(),
                ));
            }
        };
        if !dir.is_dir() {
            return Err(Error::Usage(format!(
                "{} is not a folder (it does not exist, or is a file); give a run folder such as OUT/current",
                dir.display()
            )));
        }
        if !has_tables(&dir) {
            return Err(Error::Usage(format!(
                "{} holds no tables (no subfolder with Parquet files), so there is nothing to verify\n  \
                 give a run folder such as OUT/current",
                dir.display()
            )));
        }
        let k = k
            .or(policy.as_ref().map(|p| p.analytics.k))
            .unwrap_or(crate::policy::raw::DEFAULT_K);
        // The checks that need the key (ANONYMIZER_KEY or key_file): erased customers
        // (with a ledger) and the scrubber's names (with a `names` rule).
        let needs_key = policy
            .as_ref()
            .filter(|p| p.erasure.ledger.is_some() || names::any(p));
        let key = match needs_key.map(|p| crate::key::Key::load(p.key_file.as_deref())) {
            Some(Ok((key, _))) => Some(key),
            Some(Err(e)) => {
                tracing::warn!(
                    error = %crate::error::blank_hex_runs(&e.to_string()),
                    "no key: the erased-customers check and the check of scrubbed names are skipped"
                );
                None
            }
            None => None,
        };
        let keyed = policy.as_ref().zip(key.as_ref());
        let erased = match keyed.and_then(|(p, key)| p.erasure.ledger.as_ref().map(|l| (p, l, key)))
        {
            Some((p, ledger, key)) => {
                crate::erasure::check_ledger_present(ledger, Some(&dir), false)?;
                let plan = crate::erasure::Plan::from_ledger(ledger, key)?;
                Some(plan.published_tokens(&crate::run::session(), p, key).await?)
            }
            None => None,
        };
        let named = match keyed {
            Some((p, key)) => Some(names::named_rows(&crate::run::session(), p, key).await?),
            None => None,
        };
        verify(
            &dir,
            policy.as_ref(),
            k,
            erased.as_ref(),
            named.as_ref(),
            spill_dir.as_deref(),
        )
        .await
    })
}

/// Whether `dir` has a subfolder holding at least one Parquet file.
fn has_tables(dir: &Path) -> bool {
    let parquet = |d: &Path| {
        std::fs::read_dir(d).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        })
    };
    std::fs::read_dir(dir).is_ok_and(|rd| {
        rd.flatten()
            .any(|e| e.path().is_dir() && parquet(&e.path()))
    })
}

#[cfg(test)]
mod tests {
    /// A month's cohort counts are at most its revenue customers (one customer may pay
    /// in several cells), and a cohort that exists has someone in it. February: revenue
    /// customers 10 + 10 published; of its cohort counts, January's 19 published and
    /// December's and February's own (the new cohort's size) withheld, so those two add
    /// up to at most 1 (exactly 1 if taken as exact: neither is determined). Counts
    /// being >= 0 leave each at 0 or 1; the size being >= 1 pins it to 1 and December's
    /// to 0.
    #[test]
    fn a_withheld_cohort_size_pinned_to_one_is_recomputable() {
        use super::recomputable_cohorts;
        use datafusion::arrow::array::{Date32Array, Int32Array, Int64Array, RecordBatch};
        use std::sync::Arc;
        // 2024-12-01, 2025-01-01 and 2025-02-01 as days since 1970-01-01.
        let (dec, jan, feb) = (20058, 20089, 20120);
        let cohorts = |size: Option<i64>| {
            RecordBatch::try_from_iter([
                (
                    "cohort_month",
                    Arc::new(Date32Array::from(vec![dec, dec, dec, jan, jan, feb])) as _,
                ),
                (
                    "months_since",
                    Arc::new(Int32Array::from(vec![0, 1, 2, 0, 1, 0])) as _,
                ),
                (
                    "customers",
                    Arc::new(Int64Array::from(vec![
                        Some(30),
                        Some(10),
                        None,
                        Some(25),
                        Some(19),
                        size,
                    ])) as _,
                ),
            ])
            .unwrap()
        };
        let revenue = |feb_second: i64| {
            RecordBatch::try_from_iter([
                (
                    "month",
                    Arc::new(Date32Array::from(vec![dec, jan, feb, feb])) as _,
                ),
                (
                    "customers",
                    Arc::new(Int64Array::from(vec![30, 35, 10, feb_second])) as _,
                ),
            ])
            .unwrap()
        };
        assert_eq!(recomputable_cohorts(&cohorts(None), &revenue(10)), 2);
        // With room for the two to add up to 2, neither is pinned.
        assert_eq!(recomputable_cohorts(&cohorts(None), &revenue(11)), 0);
    }

    /// Two countries new in a month, one subscriber each, every count of theirs withheld;
    /// the ALL row publishes new = active_end = 2. Each row exists because someone was
    /// active at its start or end, and its start is 0 (no row the month before): each
    /// active_end is >= 1, so each is 1, and each new with it.
    #[test]
    fn withheld_counts_of_two_new_rows_summing_to_two_are_recomputable() {
        use super::recomputable_subscriptions;
        use datafusion::arrow::array::{Date32Array, Int64Array, RecordBatch, StringArray};
        use std::sync::Arc;
        let jan = 20089; // 2025-01-01
        let count = |all: i64| Arc::new(Int64Array::from(vec![Some(all), None, None])) as _;
        let zeros = || Arc::new(Int64Array::from(vec![0, 0, 0])) as _;
        let table = |all_end: i64| {
            RecordBatch::try_from_iter([
                ("month", Arc::new(Date32Array::from(vec![jan; 3])) as _),
                (
                    "country",
                    Arc::new(StringArray::from(vec!["ALL", "AA", "BB"])) as _,
                ),
                ("active_start", zeros()),
                ("new", count(all_end)),
                ("reactivated", zeros()),
                ("churned", zeros()),
                ("active_end", count(all_end)),
            ])
            .unwrap()
        };
        assert_eq!(recomputable_subscriptions(&table(2), None), 4);
        // Three: one of them may have had two.
        assert_eq!(recomputable_subscriptions(&table(3), None), 0);
    }

    /// Row 0: gross 100.00 published and net 100.00 published over withheld refunds and
    /// chargebacks: both are >= 0 and add up to 0, so both are 0. Row 1: only net
    /// withheld, the others' sum. Row 2: two withheld terms with room (gross 100.00, net
    /// 60.00): neither is known. Row 3: published whole.
    #[test]
    fn withheld_revenue_sums_pinned_by_their_signs_are_recomputable() {
        use super::recomputable_money;
        use datafusion::arrow::array::{Decimal128Array, RecordBatch};
        use std::sync::Arc;
        let money = |v: [Option<i128>; 4]| {
            Arc::new(
                Decimal128Array::from(v.to_vec())
                    .with_precision_and_scale(38, 2)
                    .unwrap(),
            ) as _
        };
        let b = RecordBatch::try_from_iter([
            (
                "gross",
                money([Some(10000), Some(10000), Some(10000), Some(500)]),
            ),
            ("refunds", money([None, Some(1000), None, Some(0)])),
            ("chargebacks", money([None, Some(0), None, Some(0)])),
            ("net", money([Some(10000), None, Some(6000), Some(500)])),
        ])
        .unwrap();
        assert_eq!(recomputable_money(&b), 3);
    }

    #[test]
    fn personal_text_needs_a_share_of_enough_rows_or_a_telling_name() {
        use super::{Check, PersonalRows, check_personal_text};
        use std::collections::{BTreeMap, HashSet};
        let rows = |rows, names, addresses| PersonalRows {
            rows,
            names,
            addresses,
        };
        let columns = BTreeMap::from([
            ("nick".to_string(), rows(100, 30, 0)),    // 30 %: reported
            ("city".to_string(), rows(100, 29, 0)),    // 29 %: not
            ("site".to_string(), rows(49, 0, 49)),     // too few rows to tell
            ("store".to_string(), rows(200, 0, 150)),  // vouched for: passed over
            ("surname".to_string(), rows(10, 0, 0)),   // its name says it
            ("country".to_string(), rows(1000, 0, 0)), // nothing
        ]);
        let vouched = HashSet::from([("customers", "store")]);
        let mut check = Check::new("record_level_personal_text");
        check_personal_text("customers", &columns, &vouched, &mut check);
        assert!(!check.passed);
        assert_eq!(check.findings.len(), 2, "{:?}", check.findings);
        assert!(check.findings[0].starts_with(
            "table customers, column nick: kept by the policy, and 30 of its 100 values look like personal names (common given names or surnames)"
        ));
        assert!(check.findings[1].starts_with(
            "table customers, column surname: kept by the policy, and its name says it holds personal names"
        ));
        assert_eq!(check.figures["columns_vouched"], 1);
        assert_eq!(check.figures["columns_checked"], 5);
        assert_eq!(check.figures["values_like_addresses"], 49);
        let mut clean = Check::new("record_level_personal_text");
        check_personal_text("customers", &BTreeMap::new(), &vouched, &mut clean);
        assert!(clean.passed);
    }

    #[test]
    fn plain_decimals_are_told_from_phone_numbers() {
        for yes in ["15000.00", "-3", "0.5", " 1234567.5 ", "42"] {
            assert!(super::is_plain_decimal(yes), "{yes}");
        }
        for no in [
            "",
            "-",
            "1.",
            ".5",
            "1.2.3",
            "06 12 34 56 78",
            "+33612345678x",
            "1,50",
        ] {
            assert!(!super::is_plain_decimal(no), "{no}");
        }
    }

    use super::*;

    /// The fourth audit's case (2026-12-04) as published: ALL's `reactivated` is 0, and
    /// each country's `new` and `reactivated` are withheld. No identity gives any of them
    /// exactly, but counts are >= 0: both `reactivated` are 0, and each row then gives its
    /// `new`. The gate counts all four.
    #[test]
    fn the_gate_counts_withheld_counts_pinned_by_a_total_of_zero() {
        use std::sync::Arc;

        use datafusion::arrow::array::{Date32Array, Int64Array, StringArray};
        let day = crate::rules::generalize::date_to_days(
            chrono::NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(),
        );
        let table = |new: [Option<i64>; 3], react: [Option<i64>; 3]| {
            let col = |v: Vec<Option<i64>>| Arc::new(Int64Array::from(v)) as ArrayRef;
            RecordBatch::try_from_iter(vec![
                (
                    "month",
                    Arc::new(Date32Array::from(vec![day; 3])) as ArrayRef,
                ),
                (
                    "country",
                    Arc::new(StringArray::from(vec!["X", "Y", "ALL"])) as ArrayRef,
                ),
                ("active_start", col(vec![Some(20), Some(30), Some(50)])),
                ("new", col(new.to_vec())),
                ("reactivated", col(react.to_vec())),
                ("churned", col(vec![Some(12), Some(4), Some(16)])),
                ("active_end", col(vec![Some(11), Some(38), Some(49)])),
            ])
            .unwrap()
        };
        let pinned = table([None, None, Some(15)], [None, None, Some(0)]);
        assert_eq!(recomputable_subscriptions(&pinned, None), 4);
        // Withholding ALL's reactivated alone is not enough: ALL's row gives it back (0).
        let row_gives_it = table([None, None, Some(15)], [None, None, None]);
        assert_eq!(recomputable_subscriptions(&row_gives_it, None), 5);
        // With ALL's new withheld too, nothing is pinned, nor determined.
        let free = table([None, None, None], [None, None, None]);
        assert_eq!(recomputable_subscriptions(&free, None), 0);
    }

    #[test]
    fn the_unique_sample_is_everything_up_to_the_bound_then_a_fixed_share() {
        assert!(UniqueSample::of(0, 0).everything());
        assert!(UniqueSample::of(1000, 1000).everything());
        let quarter = UniqueSample::of(4000, 1000);
        assert!(!quarter.everything());
        let values: Vec<String> = (0..100_000).map(|i| format!("T{i:012}")).collect();
        let held = values.iter().filter(|v| quarter.holds(v)).count();
        assert!((23_000..27_000).contains(&held), "{held}");
        // The same values in every run: a fixed key (a random one fails this).
        let again = values
            .iter()
            .filter(|v| UniqueSample::of(4000, 1000).holds(v))
            .count();
        assert_eq!(held, again);
    }

    #[test]
    fn the_memo_stops_where_values_do_not_repeat() {
        let verdict = || Verdict {
            kinds: vec!["phone"],
            erased: false,
            personal: None,
        };
        // Distinct values: off after its trial, holding nothing.
        let mut m = Memo::default();
        for i in 0..Memo::TRIAL + 10 {
            let v = format!("note {i}");
            assert!(m.get(&v).is_none());
            m.insert(&v, verdict());
        }
        assert!(m.off && m.map.is_empty());
        assert!(m.get("note 1").is_none());
        // A few values repeated: on, and each found with its verdict.
        let mut m = Memo::default();
        for i in 0..Memo::TRIAL * 2 {
            let v = format!("country {}", i % 50);
            match m.get(&v) {
                Some(x) => assert_eq!(x.kinds, ["phone"]),
                None => m.insert(&v, verdict()),
            }
        }
        assert!(!m.off);
        assert_eq!(m.map.len(), 50);
        assert_eq!(m.hits, Memo::TRIAL * 2 - 50);
    }

    #[test]
    fn each_fingerprint_falls_in_one_share_of_each_split() {
        let hs: Vec<u128> = (0..1000u128)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
            .chain([0, u128::MAX])
            .collect();
        for bits in 1..=MAX_PASS_BITS {
            // The shares of a split cover the buckets, in order, without overlap.
            let covered: Vec<usize> = (0..1usize << bits)
                .flat_map(|i| share_buckets(bits, i))
                .collect();
            assert_eq!(covered, (0..BUCKETS).collect::<Vec<_>>(), "{bits}");
            let mut per_share = vec![0usize; 1 << bits];
            for h in &hs {
                let shares: Vec<usize> = (0..1usize << bits)
                    .filter(|&i| share_buckets(bits, i).contains(&bucket(*h)))
                    .collect();
                assert_eq!(shares.len(), 1, "{h:x}, {bits} bits");
                // The share is the fingerprint's top bits.
                assert_eq!(shares[0] as u128, h >> (128 - bits), "{h:x}, {bits} bits");
                per_share[shares[0]] += 1;
            }
            // Spread over every share (not all in one).
            assert!(per_share.iter().all(|&n| n > 0), "{bits}: {per_share:?}");
        }
    }

    #[test]
    fn the_split_is_the_fewest_shares_that_each_fit() {
        let even = [10u64; BUCKETS];
        // 640 records: 320 a share in 2, 10 a share in 64.
        assert_eq!(split(&even, 320), Some(1));
        assert_eq!(split(&even, 319), Some(2));
        assert_eq!(split(&even, 10), Some(MAX_PASS_BITS));
        assert_eq!(split(&even, 9), None);
        // One heavy bucket decides: it must fit alone.
        let mut heavy = even;
        heavy[40] = 100;
        assert_eq!(split(&heavy, 110), Some(MAX_PASS_BITS - 1));
        assert_eq!(split(&heavy, 100), Some(MAX_PASS_BITS));
        assert_eq!(split(&heavy, 99), None);
        // Every split it picks has every share within the bound.
        for bound in [100, 170, 400, 1_000] {
            let bits = split(&heavy, bound).unwrap();
            for i in 0..1usize << bits {
                assert!(heavy[share_buckets(bits, i)].iter().sum::<u64>() <= bound);
            }
        }
    }

    #[test]
    fn spilled_values_come_back_in_their_share_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path());
        let fps: Vec<u128> = (0..500u128)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835))
            .collect();
        let quick = |h: u128| (h as u64) ^ 0x5555;
        let held = |fps: &[u128]| Held {
            fps: fps.to_vec(),
            quick: fps.iter().map(|h| quick(*h)).collect(),
        };
        spill.write("a", "x", &held(&fps[..300])).unwrap();
        spill.write("b", "x", &held(&fps[200..])).unwrap();
        // A value spilled twice (two row groups) comes back once per column.
        spill.write("a", "x", &held(&fps[..10])).unwrap();
        spill.write("a", "y", &held(&[])).unwrap();
        let counts = spill.finish().unwrap();
        assert_eq!(counts.iter().sum::<u64>(), 610);
        let bits = 2;
        let mut seen = 0;
        for index in 0..1usize << bits {
            let share = spill.share(bits, index, &Shapes::default()).unwrap();
            assert_eq!(
                share.columns,
                [("a".to_string(), "x".to_string()), ("b".into(), "x".into())]
            );
            let mut keys = share.quick_keys.clone();
            keys.sort_unstable();
            keys.dedup();
            let mut expected: Vec<u64> = fps
                .iter()
                .filter(|h| (*h >> (128 - bits)) as usize == index)
                .map(|h| quick(*h))
                .collect();
            expected.sort_unstable();
            assert_eq!(keys, expected, "share {index}");
            for (i, h) in fps.iter().enumerate() {
                let cols: Vec<u32> = share.outputs.columns(*h).collect();
                let want: Vec<u32> = if (*h >> (128 - bits)) as usize != index {
                    vec![]
                } else {
                    [(i < 300).then_some(0), (i >= 200).then_some(1)]
                        .into_iter()
                        .flatten()
                        .collect()
                };
                assert_eq!(cols, want, "value {i}, share {index}");
            }
            seen += share.outputs.len();
        }
        assert_eq!(seen, 500);
        // A file cut short (a disk full, a folder cleaned under the run) is an error.
        let files = spill.files().unwrap();
        let f = files.dir.path().join("bucket-00");
        let len = std::fs::metadata(&f).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&f)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let e = spill.share(bits, 0, &Shapes::default()).err().unwrap();
        assert!(
            e.to_string()
                .contains("a file shorter or longer than written")
                && e.to_string().contains("run it again"),
            "{e}"
        );
        // A folder that cannot be made: an error that says where and what to do.
        let nowhere = dir.path().join("missing/deeper");
        let e = Spill::new(&nowhere)
            .write("a", "x", &held(&fps[..1]))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("cannot make the by-value check's spill in")
                && e.contains("missing/deeper")
                && e.contains("free space there or raise max_values"),
            "{e}"
        );
        // The folder goes with the spill.
        let made: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(made.len(), 1);
        drop(spill);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn output_values_find_every_column_of_a_value_and_count_it_once() {
        let o = OutputValues::new(vec![vec![5, 1, 5, 9], vec![], vec![9, 2], vec![7]]);
        assert_eq!(o.len(), 5);
        assert_eq!(o.columns(9).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(o.columns(5).collect::<Vec<_>>(), vec![0]);
        assert_eq!(o.columns(3).count(), 0);
        assert_eq!(OutputValues::new(vec![]).len(), 0);
    }

    #[test]
    fn the_prefilter_never_misses_an_output_value() {
        let state = ahash::RandomState::with_seeds(1, 2, 3, 4);
        let outputs: Vec<String> = (0..5000).map(|i| format!("value-{i}")).collect();
        let keys: Vec<u64> = outputs
            .iter()
            .map(|v| state.hash_one(v.as_bytes()))
            .collect();
        let f = Prefilter::new(state.clone(), &keys);
        for v in &outputs {
            assert!(f.may_contain(f.state.hash_one(v.as_bytes())), "{v}");
        }
        let false_positives = (0..100_000)
            .filter(|i| f.may_contain(f.state.hash_one(format!("other-{i}").as_bytes())))
            .count();
        assert!(false_positives < 3_000, "{false_positives}");
    }

    #[test]
    fn dictionary_values_are_counted_by_key_and_a_bad_key_is_an_error() {
        use datafusion::arrow::array::{DictionaryArray, Int32Array, StringArray};
        use datafusion::arrow::datatypes::Int32Type;
        use std::sync::Arc;
        let values = Arc::new(StringArray::from(vec![
            Some("a"),
            Some("b"),
            None,
            Some("c"),
        ]));
        let keys = Int32Array::from(vec![Some(1), Some(0), Some(1), None, Some(2), Some(1)]);
        let a: ArrayRef =
            Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values.clone()).unwrap());
        let mut seen = Vec::new();
        each_text_counted(&a, |v, n| seen.push((v.to_string(), n))).unwrap();
        // "c" is referred to by no row; the null value and the null key are skipped.
        assert_eq!(seen, [("a".to_string(), 1), ("b".to_string(), 3)]);
        for bad in [4, -1] {
            let keys = Int32Array::from(vec![0, bad]);
            // SAFETY: not safe to use as an Arrow array; each_text_counted only reads the
            // keys and refuses those outside the dictionary, which is what is tested.
            let a: ArrayRef = Arc::new(unsafe {
                DictionaryArray::<Int32Type>::new_unchecked(keys, values.clone())
            });
            assert!(each_text_counted(&a, |_, _| {}).is_err(), "{bad}");
        }
    }

    /// Per value, how many rows hold it, as each_text_counted reports it.
    fn counted(a: &ArrayRef) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        each_text_counted(a, |v, n| *out.entry(v.to_string()).or_default() += n).unwrap();
        out
    }

    #[test]
    fn networks_are_told_from_addresses() {
        for yes in [
            "203.0.113.0/24",
            "10.0.0.0/8",
            "2001:db8:1:2::/64",
            "10.0.0.0/+024",
        ] {
            assert!(is_network(yes), "{yes}");
        }
        for no in [
            "203.0.113.7",
            "203.0.113.0/25",
            "2001:db8::/65",
            "10.0.0.0/",
            "10.0.0.0/+",
            "/24",
            "a/24",
            "10.0.0.0//24",
            "10.0.0.0/2/4",
            "",
        ] {
            assert!(!is_network(no), "{no}");
        }
    }

    proptest::proptest! {
        /// `is_network` finds the prefix from the end; splitting at the first `/` (its
        /// definition before) gives the same answer on any text of address characters.
        #[test]
        fn a_network_is_found_from_the_end_as_from_the_start(
            s in "[0-9a-f:.+/]{0,24}|(([0-9]{1,3}\\.){3}[0-9]{1,3}|[0-9a-f:]{2,20})/\\+?0{0,3}[0-9]{1,3}",
        ) {
            let by_first_slash = |s: &str| {
                let Some((addr, prefix)) = s.split_once('/') else {
                    return false;
                };
                let Ok(prefix) = prefix.parse::<u8>() else {
                    return false;
                };
                let v4 = crate::rules::generalize::dotted_quad(addr.as_bytes()).is_some();
                (v4 && prefix <= 24)
                    || (prefix <= 64 && crate::rules::generalize::ipv6(addr).is_some())
            };
            proptest::prop_assert_eq!(is_network(&s), by_first_slash(&s), "{}", s);
        }

        /// Whatever the type and encoding, every non-null row is counted once under its
        /// text as Arrow's cast prints it: runs, dictionaries and integers without a cast.
        #[test]
        fn every_row_is_counted_once_under_its_text(
            values in proptest::collection::vec(proptest::option::of(-3i64..3), 0..60),
            big in proptest::bool::ANY,
        ) {
            use datafusion::arrow::array::{DictionaryArray, Int64Array, StringArray};
            use datafusion::arrow::datatypes::{Int8Type, Int32Type};
            use std::sync::Arc;
            // Few distinct values, so runs and repeats are common; `big` moves them past
            // i64::MAX (u64) or into the negatives.
            let ints = Int64Array::from(values.clone());
            let strings: StringArray = values
                .iter()
                .map(|v| v.map(|v| format!("v{v}")))
                .collect();
            let mut arrays: Vec<ArrayRef> = vec![
                Arc::new(ints.clone()),
                cast(&(Arc::new(ints.clone()) as ArrayRef), &DataType::Int32).unwrap(),
                Arc::new(strings.clone()),
                cast(&(Arc::new(strings.clone()) as ArrayRef), &DataType::Utf8View).unwrap(),
                cast(&(Arc::new(strings.clone()) as ArrayRef), &DataType::LargeUtf8).unwrap(),
                Arc::new(strings.iter().collect::<DictionaryArray<Int32Type>>()),
                Arc::new(strings.iter().collect::<DictionaryArray<Int8Type>>()),
                cast(
                    &(Arc::new(ints.clone()) as ArrayRef),
                    &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Int64)),
                )
                .unwrap(),
            ];
            let unsigned: datafusion::arrow::array::UInt64Array = values
                .iter()
                .map(|v| v.map(|v| if big { u64::MAX - v.unsigned_abs() } else { v.unsigned_abs() }))
                .collect();
            arrays.push(Arc::new(unsigned));
            for a in arrays {
                let text = cast(&a, &DataType::Utf8).unwrap();
                let mut want = BTreeMap::new();
                for v in text.as_string::<i32>().iter().flatten() {
                    *want.entry(v.to_string()).or_default() += 1u64;
                }
                proptest::prop_assert_eq!(counted(&a), want, "{}", a.data_type());
            }
        }
    }

    /// Every row group of a file of many is read with the footer read once (it was read
    /// again for each row group: quadratic in the row groups).
    #[test]
    fn a_footer_is_read_once_for_all_row_groups() {
        use datafusion::arrow::array::StringArray;
        use datafusion::arrow::datatypes::{Field, Schema};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let schema = Arc::new(Schema::new(vec![Field::new("name", DataType::Utf8, false)]));
        let props = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(10))
            .build();
        let f = std::fs::File::create(&p).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, schema.clone(), Some(props)).unwrap();
        let b = RecordBatch::try_new(
            schema,
            vec![Arc::new(StringArray::from_iter_values(
                (0..500).map(|i| format!("v{i}")),
            ))],
        )
        .unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
        let groups = row_group_rows(&p).unwrap().len();
        assert_eq!(groups, 50);
        let footers = Footers::default();
        let mut rows = 0;
        for g in 0..groups {
            let piece = Piece {
                row_group: g,
                rows: None,
                columns: None,
                numbers: &[],
            };
            read_row_group_dictionaries(&p, &footers, &piece, &mut |b| {
                rows += b.num_rows();
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(rows, 500);
        assert_eq!(footers.reads.load(std::sync::atomic::Ordering::Relaxed), 1);
        // A footer that cannot be read is an error naming the file, every time.
        let bad = dir.path().join("bad.parquet");
        std::fs::write(&bad, b"not parquet").unwrap();
        let piece = Piece {
            row_group: 0,
            rows: None,
            columns: None,
            numbers: &[],
        };
        for _ in 0..2 {
            let e = read_row_group_dictionaries(&bad, &footers, &piece, &mut |_| Ok(()))
                .unwrap_err()
                .to_string();
            assert!(e.contains("bad.parquet"), "{e}");
        }
    }

    #[test]
    fn pieces_of_a_row_group_read_its_rows_once_in_order() {
        use datafusion::arrow::array::{Int64Array, StringArray};
        use datafusion::arrow::datatypes::{Field, Schema};
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let n = 1000;
        let b = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("name", DataType::Utf8, false),
                Field::new("other", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("n{}", i / 10)),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("o{i}")),
                )),
            ],
        )
        .unwrap();
        let f = std::fs::File::create(&p).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, b.schema(), None).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
        assert_eq!(row_group_rows(&p).unwrap(), [1000]);
        // A file without page locations (as DuckDB writes) has the same layout.
        let unindexed = dir.path().join("u.parquet");
        let props = parquet::file::properties::WriterProperties::builder()
            .set_statistics_enabled(parquet::file::properties::EnabledStatistics::Chunk)
            .set_offset_index_disabled(true)
            .build();
        let f = std::fs::File::create(&unindexed).unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(f, b.schema(), Some(props)).unwrap();
        w.write(&b).unwrap();
        w.close().unwrap();
        let layout =
            crate::input::parquet_layout(&unindexed, crate::input::Cut::EveryRowGroup).unwrap();
        assert_eq!(layout.row_groups, [1000]);
        let mut ids = Vec::new();
        let mut names: BTreeMap<String, u64> = BTreeMap::new();
        for rows in [0..1, 1..333, 333..999, 999..1000, 1000..1000] {
            let piece = Piece {
                row_group: 0,
                rows: Some(rows),
                columns: Some(&["name", "id"]),
                numbers: &[],
            };
            read_row_group_dictionaries(&p, &Footers::default(), &piece, &mut |b| {
                // Only the named columns, in the file's order; names as a dictionary.
                assert_eq!(b.num_columns(), 2);
                assert!(matches!(b.column(1).data_type(), DataType::Dictionary(..)));
                let a = b
                    .column(0)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
                ids.extend(a.values().iter().copied());
                for (v, n) in counted(b.column(1)) {
                    *names.entry(v).or_default() += n;
                }
                Ok(())
            })
            .unwrap();
        }
        assert_eq!(ids, (0..n).collect::<Vec<_>>());
        assert_eq!(names.len(), 100);
        assert!(names.values().all(|n| *n == 10));
    }

    #[test]
    fn shapes_pass_every_value_that_may_normalize_to_an_output_value() {
        let mut s = Shapes::default();
        let mut scratch = String::new();
        for v in [
            "T388717439114",
            " Jane@Example.com",
            "école",
            &"x".repeat(300),
        ] {
            s.insert(normalized(v, &mut scratch).unwrap());
        }
        for v in [
            "t388717439114",
            "T000000000000",
            "JANE@EXAMPLE.COM",
            "j123@example.com",
        ] {
            assert!(s.may_contain(v.as_bytes()), "{v}");
        }
        assert!(s.may_contain("X".repeat(256).as_bytes()));
        for v in [
            "T38871743911",
            "u388717439114",
            "",
            "jane@example.co",
            "ecole",
        ] {
            assert!(!s.may_contain(v.as_bytes()), "{v}");
        }
    }

    #[test]
    fn values_are_normalized_before_fingerprinting() {
        let mut a = String::new();
        let mut b = String::new();
        assert_eq!(
            normalized("  Jane.Doe@Example.COM ", &mut a),
            normalized("jane.doe@example.com", &mut b)
        );
        assert_eq!(normalized("ÉCOLE", &mut a), Some("école"));
        assert_eq!(normalized(" NL ", &mut a), None);
        let fp = Fingerprinter::new();
        assert_eq!(
            fp.hash("Jane.Doe@Example.com"),
            fp.hash("jane.doe@example.com ")
        );
    }
}
