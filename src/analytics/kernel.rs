//! The aggregate tables computed by one read of the transactions, in bounded memory.
//!
//! The saved SQL in `queries/analytics/` defines every aggregate, and DataFusion can run
//! it (`[analytics] engine = "sql"`). But four of the five queries count distinct
//! customers, and the SQL plans answer that with hash joins and group-bys over whole
//! columns of customer tokens: at 20M transactions they held 7 GiB, and the shared
//! coverage CTE was computed twice. Every one of those counts is local to one customer,
//! though: which months they were active in, which cells they paid in, which month
//! boundaries their paid coverage crosses. So this kernel
//!
//! 1. reads the transactions once (the same events view the SQL reads, through
//!    DataFusion, except that ids, the text roles and the offer period arrive as
//!    exported: the kernel trims, cases and interns each distinct text once and parses
//!    the offer period once per run of equal values (`period::periods`, the SQL UDFs'
//!    reader), exactly as the view's expressions would per row, and adds the period and
//!    prices the month itself), keeps a fixed-size record per transaction, and routes it
//!    to one of P parts by a keyed hash of the customer; when the records would not fit
//!    in `[analytics] memory_mb`, the parts are spilled to files next to the staging
//!    folder; each customers row with a country becomes a record of the same kind, in
//!    the same part as the customer's transactions; refunds and chargebacks (the cuts of
//!    the coverage intervals) are also kept apart, as a sorted list of (subscription,
//!    time) indexed by subscription, because a cut need not name the same customer;
//! 2. takes the parts in parallel, one at a time per thread: groups each part's records by
//!    customer and adds what each customer contributes to every table's cells, folding
//!    the customer's records one by one in bounded memory ([`Fold`]); a spilled part
//!    too large for its share of memory (one customer with a large share of the
//!    transactions) is sorted on disk in runs and merged instead of read whole;
//! 3. merges the cells (exact integer and decimal sums, so neither the parts nor the
//!    threads change a result) and builds the same tables, same columns, types and row
//!    order, the SQL gives. A test compares the two engines on generated exports.
//!
//! Rare key values ([`super::OTHER`]) cost no extra read: pass 1 counts, per
//! revenue_monthly key (the transactions' country, currency and offer type together),
//! the distinct customers with a transaction in the published months, up to k
//! ([`Rarity`]); a value's customers are the union of its keys'. Pass 2 keys the cells
//! by the recoded values and combinations ([`Rarity::key_map`]). A customer's country is
//! known only in pass 2 (their customers rows meet their transactions in their part), so
//! its customers are counted there and the rare countries' cells merged into `other`'s
//! afterwards: exact, since each customer has one country. mrr_monthly's rare (country,
//! currency) pairs are counted there too and merged into (country, `other`)'s; a
//! customer with coverage in several currencies at one month's end is kept apart until
//! then, so that the merge counts them once ([`Acc::recode_mrr_pairs`]).
//!
//! The customer's hash is a 128-bit keyed SipHash under a key drawn per run: it only
//! groups, it is never written anywhere.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Float64Type, Int64Type, Schema, TimestampMicrosecondType,
};
use datafusion::dataframe::DataFrame;
use rayon::prelude::*;
use siphasher::sip128::{Hasher128, SipHasher13};

use super::period::{Period, month_date, month_index, month_start_micros};
use super::{Case, normalized_text};
use crate::error::{Error, df_message};
use crate::rules::generalize::date_to_days;
use crate::rules::pseudonymize::Pseudonymizer;

mod spill;

/// What the kernel is asked to compute.
pub struct Job<'a> {
    /// The transactions table's name (for errors).
    pub table: &'a str,
    /// The events view with raw (trimmed) customer and subscription ids, see
    /// [`super::events_frame`].
    pub events: DataFrame,
    /// Customer id and country, one row per customer record, and the customers table's
    /// name (`None`: no customers table).
    pub customers: Option<(DataFrame, String)>,
    /// The aggregate tables to compute.
    pub tables: &'a [&'static str],
    /// The first instant after the as-of date (microseconds).
    pub end: i64,
    /// The month index of the last complete month.
    pub last_month: i64,
    /// `[analytics] k`: a value of a key column (country, currency, offer type) that
    /// fewer than k customers have is published as [`super::OTHER`] (none at k = 1).
    pub k: u64,
    /// The decimal type of `amount` in the events view.
    pub amount_type: DataType,
    /// The estimated number of transactions (sizes the parts).
    pub rows_estimate: u64,
    /// The cut into row ranges of the transactions when they are one Parquet file of one
    /// large row group, so that it is read on every core.
    pub single_row_group: Option<crate::run::RowGroupSplit>,
    /// Memory the records may take, in bytes.
    pub memory_bytes: u64,
    /// `[analytics] max_key_values`: the most distinct values the key columns may hold
    /// together (interned, `unknown` and `other` included) before the run stops.
    pub max_key_values: usize,
    /// The key columns as errors name them ([`super::key_column`]): the transactions'
    /// offer type, currency and country, and the customers' country.
    pub key_columns: [String; 4],
    pub threads: usize,
    /// Where parts are spilled when they do not fit in memory.
    pub spill_dir: &'a Path,
    /// Tokens (analytics key) of customers whose coverage at `end` is asked about.
    pub active_check: &'a [String],
    pub pseudonymizer: Option<Pseudonymizer>,
}

/// What the kernel returns: the raw (unsuppressed) tables in `job.tables` order, and the
/// tokens of the asked-about customers with coverage at the end.
pub struct Output {
    pub tables: Vec<(&'static str, RecordBatch)>,
    pub active: HashSet<String>,
    /// How many parts were spilled to disk (0: all in memory).
    pub spilled_parts: usize,
    /// How many spilled parts held too many records for memory and were sorted on disk.
    pub sorted_parts: usize,
    /// (payments of a subscription offer, those of them without an offer period).
    pub subscription_payments: (u64, u64),
    /// How many rare values of each key column were published as [`super::OTHER`].
    pub recoded: super::Recoded,
}

const NO_MONTH: i32 = i32::MIN;
/// Not an interned name (a text role that is null).
const NO_NAME: u32 = u32::MAX;
const F_SUB: u8 = 1;
const F_E0: u8 = 2;
const F_AMOUNT: u8 = 4;
const F_UNITS: u8 = 8;
const F_SUBSCRIPTION: u8 = 16;
const K_OTHER: u8 = 0;
const K_PAY: u8 = 1;
const K_REFUND: u8 = 2;
const K_CHARGEBACK: u8 = 3;
/// Not a transaction: a row of the customers table, with the customer's country.
const K_CUSTOMER: u8 = 4;

/// One transaction, as the aggregates need it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Rec {
    cust: u128,
    sub: u128,
    amount: i128,
    t: i64,
    e0: i64,
    units: i64,
    month: i32,
    currency: u32,
    country: u32,
    offer: u32,
    kind: u8,
    flags: u8,
}

/// Bytes of one record in memory (what `[analytics] memory_mb` counts).
const REC_BYTES: usize = std::mem::size_of::<Rec>();

impl Rec {
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// Text values (countries, currencies, offer types) as small integers.
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
    /// Per name, the column that brought it first (an index of `columns`; `u8::MAX`: none,
    /// the names the kernel interns itself), so that the bound's error names the column
    /// with the most.
    from: Vec<u8>,
    /// The key columns as errors name them, in the order first read.
    columns: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        self.id_from(s, u8::MAX)
    }

    fn id_from(&mut self, s: &str, column: u8) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        self.from.push(column);
        self.ids.insert(s.to_string(), i);
        i
    }

    /// The index of the key column `what` in `columns`.
    fn column(&mut self, what: &str) -> u8 {
        match self.columns.iter().position(|c| c == what) {
            Some(i) => i as u8,
            None => {
                self.columns.push(what.to_string());
                (self.columns.len() - 1) as u8
            }
        }
    }

    /// The column that brought the most names.
    fn largest_column(&self) -> Option<&str> {
        let mut counts = vec![0usize; self.columns.len()];
        for &c in &self.from {
            if let Some(n) = counts.get_mut(c as usize) {
                *n += 1;
            }
        }
        let (i, _) = counts
            .iter()
            .enumerate()
            .max_by_key(|&(i, n)| (*n, std::cmp::Reverse(i)))?;
        Some(self.columns[i].as_str())
    }
}

/// The transactions' text roles that key aggregate cells, as indexes of a
/// revenue_monthly key and of [`Context::recode`].
const ROLE_COUNTRY: usize = 0;
const ROLE_CURRENCY: usize = 1;
const ROLE_OFFER: usize = 2;

/// The distinct customers of a value or key, counted up to k.
#[derive(Default, Clone)]
struct Tally {
    customers: HashSet<u128, ahash::RandomState>,
    /// k customers or more (`customers` is then emptied: no more are counted).
    full: bool,
}

impl Tally {
    /// Counts `cust`, up to `k`.
    fn add(&mut self, cust: u128, k: usize) {
        if self.full {
            return;
        }
        self.customers.insert(cust);
        if self.customers.len() >= k {
            self.full = true;
            self.customers = HashSet::default();
        }
    }

    /// Counts another tally's customers, up to `k`: the exact count of the union (up to
    /// k), since a full tally makes the union full and otherwise both sets are whole.
    fn absorb(&mut self, o: &Tally, k: usize) {
        if o.full {
            self.full = true;
            self.customers = HashSet::default();
            return;
        }
        for c in &o.customers {
            self.add(*c, k);
        }
    }

    /// Seen with 1..k-1 customers.
    fn rare(&self) -> bool {
        !self.full && !self.customers.is_empty()
    }
}

/// A revenue_monthly key without its month: (country, currency, offer type) ids.
type Key3 = (u32, u32, u32);

/// Per revenue_monthly key as exported (the transactions' country, currency and offer
/// type): the distinct customers with a transaction in the published months, counted up
/// to k, so that rare values and combinations are found in the same read that routes
/// the records, in memory of at most k hashes per key. A value's customers are the union
/// of its keys' ([`Tally::absorb`]), so they need no tally of their own. Each reading
/// task counts its own; the counts are merged when the tasks end.
struct Rarity {
    k: usize,
    keys: HashMap<Key3, Tally, ahash::RandomState>,
    /// The last key and customer noted (a customer's records often repeat both).
    last: Option<(Key3, u128)>,
}

impl Rarity {
    fn new(k: u64) -> Rarity {
        Rarity {
            k: usize::try_from(k).unwrap_or(usize::MAX),
            keys: HashMap::default(),
            last: None,
        }
    }

    /// `cust` has a transaction keyed `key`.
    #[inline]
    fn note_key(&mut self, key: Key3, cust: u128) {
        if self.k <= 1 || self.last == Some((key, cust)) {
            return;
        }
        self.last = Some((key, cust));
        self.keys.entry(key).or_default().add(cust, self.k);
    }

    /// Adds another task's counts.
    fn merge(&mut self, o: Rarity) {
        for (key, t) in &o.keys {
            self.keys.entry(*key).or_default().absorb(t, self.k);
        }
    }

    /// Interned id -> the id it is published as, for `role` (`ROLE_*`, `names` ids; a
    /// value seen with 1..k-1 customers -> `other`; `unknown` and `other` themselves
    /// stay), and how many values were recoded.
    fn recode(&self, role: usize, names: usize, unknown: u32, other: u32) -> (Vec<u32>, u64) {
        let mut values: HashMap<u32, Tally, ahash::RandomState> = HashMap::default();
        for (key, t) in &self.keys {
            let id = [key.0, key.1, key.2][role];
            values.entry(id).or_default().absorb(t, self.k);
        }
        let mut map: Vec<u32> = (0..names as u32).collect();
        let mut n = 0;
        for (id, t) in values {
            if t.rare() && id != unknown && id != other {
                map[id as usize] = other;
                n += 1;
            }
        }
        (map, n)
    }

    /// revenue_monthly's keys as exported -> as published: each value recoded by its
    /// column's map (`maps`, from [`Rarity::recode`]), and then a combination of
    /// published values that fewer than k customers have (German customers paying in
    /// dollars for rentals) -> (`other`, `other`, `other`). The customers of a
    /// combination are those of the exported keys that map to it: exact, since a
    /// key with k customers makes its combination's k too, and otherwise the sets are
    /// whole. Returns the map and how many combinations were recoded.
    fn key_map(
        &self,
        maps: &[Vec<u32>; 3],
        other: u32,
    ) -> (HashMap<Key3, Key3, ahash::RandomState>, u64) {
        let by_value = |k: &Key3| {
            (
                maps[ROLE_COUNTRY][k.0 as usize],
                maps[ROLE_CURRENCY][k.1 as usize],
                maps[ROLE_OFFER][k.2 as usize],
            )
        };
        let mut combined: HashMap<Key3, Tally, ahash::RandomState> = HashMap::default();
        for (key, t) in &self.keys {
            combined.entry(by_value(key)).or_default().absorb(t, self.k);
        }
        let all_other = (other, other, other);
        let rare = |key: &Key3| *key != all_other && combined.get(key).is_some_and(Tally::rare);
        let n = combined.keys().filter(|k| rare(k)).count() as u64;
        let map = self
            .keys
            .keys()
            .map(|key| {
                let to = by_value(key);
                (*key, if rare(&to) { all_other } else { to })
            })
            .collect();
        (map, n)
    }
}

/// A per-task cache in front of the shared interner: the exported text of a text role
/// (per [`Case`]) -> the interned id of its normalized form (`None`: null after
/// normalization), so each distinct exported value is normalized and interned once.
struct Names<'a> {
    shared: &'a Mutex<Interner>,
    local: [Cache; 3],
    /// `[analytics] max_key_values`: the interner may hold no more.
    limit: usize,
}

/// Exported text -> interned id, for one [`Case`]. Values of a Utf8View column (what
/// DataFusion reads Parquet strings as) of at most 12 bytes are keyed by their view
/// alone, which holds their length and bytes: no copy and no byte comparison per row.
#[derive(Default)]
struct Cache {
    inline: HashMap<u128, Option<u32>, ahash::RandomState>,
    text: HashMap<String, Option<u32>, ahash::RandomState>,
}

impl Names<'_> {
    fn new(shared: &Mutex<Interner>, limit: usize) -> Names<'_> {
        Names {
            shared,
            local: Default::default(),
            limit,
        }
    }

    /// Ids of a text role's column (`what`: the column, for the error), normalized as the views'
    /// `text()` with `case`; nulls (and values that normalize to null) become `null`.
    /// Fails when the interner then holds more than the limit's distinct values: the key
    /// columns hold a few hundred, and a column given a key role by mistake (ids, free
    /// text) would grow the interner, these caches and the aggregates' cells without
    /// bound; the error names the column that brought the most of them (not
    /// necessarily `what`). A cache that has grown past four times the limit (spellings
    /// that normalize alike) is emptied.
    fn column(
        &mut self,
        a: &ArrayRef,
        case: Case,
        null: u32,
        what: &str,
    ) -> Result<Vec<u32>, String> {
        let from = self.shared.lock().expect("interner").column(what);
        let out = self.ids(a, case, null, from)?;
        let interner = self.shared.lock().expect("interner");
        if interner.names.len() > self.limit {
            let most = interner.largest_column().unwrap_or(what);
            return Err(super::too_many_key_values(self.limit, most));
        }
        drop(interner);
        let cache = &mut self.local[case as usize];
        if cache.inline.len() + cache.text.len() > self.limit.saturating_mul(4) {
            *cache = Cache::default();
        }
        Ok(out)
    }

    /// `from`: the column's index in the interner ([`Interner::column`]).
    fn ids(&mut self, a: &ArrayRef, case: Case, null: u32, from: u8) -> Result<Vec<u32>, String> {
        let shared = self.shared;
        let cache = &mut self.local[case as usize];
        let intern = |s: &str| {
            normalized_text(s, case).map(|n| shared.lock().expect("interner").id_from(&n, from))
        };
        let mut out = Vec::with_capacity(a.len());
        if let Some(v) = a.as_string_view_opt() {
            let mut last: Option<(u128, Option<u32>)> = None;
            for (i, view) in v.views().iter().enumerate() {
                if v.is_null(i) {
                    out.push(null);
                    continue;
                }
                let id = match last {
                    Some((l, id)) if l == *view => id,
                    _ if *view as u32 > 12 => {
                        let s = v.value(i);
                        match cache.text.get(s) {
                            Some(id) => *id,
                            None => *cache.text.entry(s.to_string()).or_insert(intern(s)),
                        }
                    }
                    _ => *cache
                        .inline
                        .entry(*view)
                        .or_insert_with(|| intern(v.value(i))),
                };
                last = Some((*view, id));
                out.push(id.unwrap_or(null));
            }
            return Ok(out);
        }
        each_text(a, |v, n| {
            let id = match v {
                None => null,
                Some(s) => match cache.text.get(s) {
                    Some(id) => *id,
                    None => *cache.text.entry(s.to_string()).or_insert(intern(s)),
                }
                .unwrap_or(null),
            };
            out.extend(std::iter::repeat_n(id, n));
        })?;
        Ok(out)
    }
}

/// The text of a column, once per run of equal values with the run's length
/// ([`crate::rules::for_each_text_run`]: integers printed, other types cast to text as
/// the views' `text()` does).
fn each_text(a: &ArrayRef, f: impl FnMut(Option<&str>, usize)) -> Result<(), String> {
    crate::rules::for_each_text_run(a, f).map_err(|e| e.to_string())
}

fn hash128(key: &[u64; 2], s: &str) -> u128 {
    let mut h = SipHasher13::new_with_keys(key[0], key[1]);
    std::hash::Hasher::write(&mut h, s.as_bytes());
    h.finish128().as_u128()
}

/// Pass 2's working memory, one records buffer and one fold per thread of its pool, so
/// that a buffer's memory is touched once, not mapped and zeroed again for every part.
/// (Not rayon's `map_init`, which makes a new one for every piece of work it splits off:
/// the page faults of those fresh buffers were 3 % of the run's CPU at 20M.)
struct Scratch(Vec<Mutex<(Vec<Rec>, Fold)>>);

impl Scratch {
    fn new(threads: usize) -> Scratch {
        Scratch(
            (0..threads.max(1))
                .map(|_| Mutex::new((Vec::new(), Fold::default())))
                .collect(),
        )
    }

    /// `f` with the calling thread's buffer and fold; with fresh ones should they be
    /// taken (were rayon ever to run another part on this thread inside `f`), never a
    /// wait.
    fn with<T>(&self, f: impl FnOnce(&mut Vec<Rec>, &mut Fold) -> T) -> T {
        let slot = rayon::current_thread_index().unwrap_or(0) % self.0.len();
        let mut own = self.0[slot].try_lock().ok();
        let mut spare = None;
        let (recs, fold) = match own.as_deref_mut() {
            Some(own) => own,
            None => spare.insert((Vec::new(), Fold::default())),
        };
        f(recs, fold)
    }
}

/// Where the records of the parts go while the transactions are read.
enum Parts {
    Memory(Vec<Mutex<Vec<Rec>>>),
    Files(Vec<Mutex<BufWriter<File>>>, crate::fsutil::SpillFolder),
}

impl Parts {
    fn len(&self) -> usize {
        match self {
            Parts::Memory(v) => v.len(),
            Parts::Files(v, _) => v.len(),
        }
    }

    fn flush(&self, part: usize, recs: &mut Vec<Rec>) -> std::io::Result<()> {
        match self {
            Parts::Memory(v) => v[part].lock().expect("part").append(recs),
            Parts::Files(v, _) => {
                // About 23 bytes a record for an export sorted by customer, 45 in time order.
                let mut bytes = Vec::with_capacity(recs.len() * 48);
                spill::encode_block(recs, &mut bytes);
                recs.clear();
                v[part].lock().expect("part").write_all(&bytes)?;
            }
        }
        Ok(())
    }
}

/// What every reading task shares.
struct Shared {
    table: String,
    names: Mutex<Interner>,
    parts: Parts,
    /// (subscription, time) of every refund and chargeback.
    cuts: Mutex<Vec<(u128, i64)>>,
    /// The tokens asked about, and the hashes of the customers found with them.
    asking: HashSet<String>,
    asked: Mutex<HashMap<u128, String>>,
    pseudonymizer: Option<Pseudonymizer>,
    key: [u64; 2],
    unknown: u32,
    subscription: u32,
    last_month: i64,
    /// `[analytics] k`, and the rare-value counts of the tasks that have ended.
    k: u64,
    max_key_values: usize,
    key_columns: [String; 4],
    rarity: Mutex<Rarity>,
    /// Payments (purchases and renewals) of a subscription offer, and those of them
    /// without an offer period (no coverage: subscriptions_monthly and mrr_monthly
    /// leave them out).
    subscription_payments: AtomicU64,
    without_period: AtomicU64,
}

fn err(table: &str, message: String) -> Error {
    Error::Analytics {
        table: table.to_string(),
        message,
    }
}

/// Computes the aggregate tables `job.tables`.
pub async fn compute(job: &Job<'_>) -> Result<Output, Error> {
    let threads = job.threads.max(1);
    let total = job.rows_estimate.max(1) * REC_BYTES as u64;
    // Each thread holds one part at a time in the second pass (plus its sort).
    let per_part = (job.memory_bytes / (threads as u64 + 1)).max((RUN_BLOCK * REC_BYTES) as u64);
    let needed = total.div_ceil(per_part) as usize;
    let parts = if total <= job.memory_bytes {
        Parts::Memory((0..threads * 4).map(|_| Mutex::new(Vec::new())).collect())
    } else {
        let dir = crate::fsutil::SpillFolder::new(job.spill_dir, crate::fsutil::AGGREGATE_SPILL)
            .map_err(|e| {
                err(
                    job.table,
                    format!(
                        "cannot make a spill folder in {}: {e}",
                        job.spill_dir.display()
                    ),
                )
            })?;
        tracing::debug!(
            dir = %dir.path().display(),
            "aggregates: the records spill to disk"
        );
        let mut files = Vec::new();
        for i in 0..needed.max(threads) {
            let f = File::create(dir.path().join(format!("part-{i:05}"))).map_err(|e| {
                err(
                    job.table,
                    format!("cannot write a spill file in {}: {e}", dir.path().display()),
                )
            })?;
            files.push(Mutex::new(BufWriter::with_capacity(1 << 18, f)));
        }
        Parts::Files(files, dir)
    };
    let mut names = Interner::default();
    let unknown = names.id("unknown");
    let subscription = names.id("subscription");
    let other = names.id(super::OTHER);
    let shared = Arc::new(Shared {
        table: job.table.to_string(),
        names: Mutex::new(names),
        parts,
        cuts: Mutex::new(Vec::new()),
        asking: job.active_check.iter().cloned().collect(),
        asked: Mutex::new(HashMap::new()),
        pseudonymizer: job.pseudonymizer.clone(),
        key: rand::random(),
        unknown,
        subscription,
        last_month: job.last_month,
        k: job.k,
        max_key_values: job.max_key_values,
        key_columns: job.key_columns.clone(),
        rarity: Mutex::new(Rarity::new(job.k)),
        subscription_payments: AtomicU64::new(0),
        without_period: AtomicU64::new(0),
    });

    // Pass 1: read, route to parts (one task per stream, in parallel).
    let t0 = std::time::Instant::now();
    let streams = events_streams(job)
        .await
        .map_err(|e| err(job.table, df_message(&e)))?;
    let mut tasks: Vec<_> = streams
        .into_iter()
        .map(|stream| tokio::spawn(read_stream(shared.clone(), stream, Source::Events)))
        .collect();
    // The customers' countries go to the same parts as their transactions.
    if let Some((df, name)) = &job.customers {
        let streams = df
            .clone()
            .execute_stream_partitioned()
            .await
            .map_err(|e| err(name, df_message(&e)))?;
        tasks.extend(streams.into_iter().map(|stream| {
            tokio::spawn(read_stream(
                shared.clone(),
                stream,
                Source::Customers(name.clone()),
            ))
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| err(job.table, format!("a reading task failed: {e}")))??;
    }

    tracing::debug!(
        ms = t0.elapsed().as_millis() as u64,
        "aggregates: transactions read and routed to parts"
    );
    let Ok(shared) = Arc::try_unwrap(shared) else {
        return Err(err(job.table, "a reading task is still running".into()));
    };
    let Shared {
        names,
        parts,
        cuts,
        asked,
        unknown,
        subscription_payments,
        without_period,
        rarity,
        ..
    } = shared;
    let subscription_payments = (
        subscription_payments.into_inner(),
        without_period.into_inner(),
    );
    let names = names.into_inner().expect("interner");
    let mut cuts = cuts.into_inner().expect("cuts");
    cuts.sort_unstable();
    let mut cut_index: HashMap<u128, (usize, usize), ahash::RandomState> = HashMap::default();
    for (i, (sub, _)) in cuts.iter().enumerate() {
        cut_index.entry(*sub).or_insert((i, 0)).1 += 1;
    }
    let asked = asked.into_inner().expect("asked");
    // The transactions' rare values, published as `other`.
    let rarity = rarity.into_inner().expect("rarity");
    let n = names.names.len();
    let (country_map, countries) = rarity.recode(ROLE_COUNTRY, n, unknown, other);
    let (currency_map, currencies) = rarity.recode(ROLE_CURRENCY, n, unknown, other);
    let (offer_map, offers) = rarity.recode(ROLE_OFFER, n, unknown, other);
    let maps = [country_map, currency_map, offer_map];
    let (revenue_keys, combinations) = rarity.key_map(&maps, other);
    drop(rarity);
    let cx = Context {
        last_month: job.last_month,
        end: job.end,
        names: &names,
        cuts: &cuts,
        cut_index: &cut_index,
        unknown,
        asked: &asked,
        recode: maps,
        revenue_keys: &revenue_keys,
    };

    // Pass 2: per part, per customer.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| err(job.table, format!("cannot start threads: {e}")))?;
    let spilled_parts = match &parts {
        Parts::Files(v, _) => v.len(),
        Parts::Memory(_) => 0,
    };
    // Each part alone, grouped by customer; the parts' cells are merged.
    let mut sorted_parts = 0;
    let scratch = Scratch::new(threads);
    let acc = match parts {
        Parts::Memory(v) => pool.install(|| {
            v.into_par_iter()
                .map(|m| {
                    let mut acc = Acc::default();
                    scratch.with(|_, fold| {
                        cx.part(&mut m.into_inner().expect("part"), fold, &mut acc)
                    });
                    acc
                })
                .reduce(Acc::default, Acc::merge)
        }),
        Parts::Files(files, dir) => {
            let mut paths = Vec::new();
            for (i, f) in files.into_iter().enumerate() {
                let mut w = f.into_inner().expect("part");
                w.flush().map_err(|e| err(job.table, spill_error(&e)))?;
                paths.push(dir.path().join(format!("part-{i:05}")));
            }
            if tracing::enabled!(tracing::Level::DEBUG) {
                let bytes: u64 = paths
                    .iter()
                    .filter_map(|p| std::fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum();
                tracing::debug!(
                    parts = paths.len(),
                    bytes,
                    ms = t0.elapsed().as_millis() as u64,
                    "aggregates: records spilled"
                );
            }
            // Each thread reads the parts into its own buffer (`scratch`). A part may
            // hold half as many records again as planned (the customer hash spreads
            // them unevenly) before it is sorted on disk instead: with one part per
            // thread in memory, that keeps pass 2 within `memory_mb`.
            let limit = (per_part * 3 / 2 / REC_BYTES as u64).max(RUN_BLOCK as u64) as usize;
            let sorted = std::sync::atomic::AtomicUsize::new(0);
            let r = pool.install(|| {
                paths
                    .par_iter()
                    .map(|p| {
                        let mut acc = Acc::default();
                        let t = std::time::Instant::now();
                        if scratch
                            .with(|recs, fold| cx.part_file(p, limit, recs, fold, &mut acc))?
                        {
                            sorted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        tracing::trace!(
                            part = %p.display(),
                            ms = t.elapsed().as_millis() as u64,
                            at_ms = t0.elapsed().as_millis() as u64,
                            "aggregates: part folded"
                        );
                        Ok(acc)
                    })
                    .try_reduce(Acc::default, |a, b| Ok(a.merge(b)))
            });
            drop(dir);
            sorted_parts = sorted.into_inner();
            r.map_err(|m| err(job.table, m))?
        }
    };

    let mut acc = acc;
    let rare_countries = acc.recode_customer_countries(job.k, unknown, other);
    let currency_pairs = acc.recode_mrr_pairs(job.k, other);
    // After the merges of rare values' cells, which add sums too.
    if acc.overflow {
        return Err(err(
            job.table,
            "a sum of amounts does not fit in 128 bits; check the amount column for absurd values"
                .into(),
        ));
    }
    let recoded = super::Recoded {
        country: countries,
        currency: currencies,
        offer_type: offers,
        customer_country: rare_countries.len() as u64,
        combinations,
        currency_pairs,
    };
    if recoded != super::Recoded::default() {
        tracing::debug!(?recoded, "aggregates: rare key values published as 'other'");
    }
    let mut tables = Vec::new();
    for name in job.tables {
        let batch = match *name {
            "subscriptions_monthly" => acc.subscriptions(&names),
            "cohort_retention" => acc.cohorts(job.last_month),
            "revenue_monthly" => acc.revenue(&names, &job.amount_type),
            "mrr_monthly" => acc.mrr(&names),
            other => return Err(err(other, "not an aggregate table".into())),
        }
        .map_err(|m| err(name, m))?;
        tables.push((*name, batch));
    }
    let active = acc
        .active
        .iter()
        .filter_map(|c| asked.get(c).cloned())
        .collect();
    Ok(Output {
        tables,
        active,
        spilled_parts,
        sorted_parts,
        subscription_payments,
        recoded,
    })
}

/// The events view's output partitions, each a stream; a lone large row group is cut
/// into row ranges (as the transform cuts it) so that it is not read on one core.
async fn events_streams(
    job: &Job<'_>,
) -> datafusion::error::Result<Vec<datafusion::physical_plan::SendableRecordBatchStream>> {
    let task_ctx = Arc::new(job.events.task_ctx());
    let plan = job.events.clone().create_physical_plan().await?;
    let plan = crate::run::split_row_group(plan, job.single_row_group)?;
    use datafusion::physical_plan::ExecutionPlanProperties;
    let n = plan.output_partitioning().partition_count();
    tracing::debug!(partitions = n, "aggregates: events view planned");
    (0..n).map(|p| plan.execute(p, task_ctx.clone())).collect()
}

/// Which table a reading task reads (the customers table by its name).
#[derive(Clone)]
enum Source {
    Events,
    Customers(String),
}

async fn read_stream(
    sh: Arc<Shared>,
    mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    source: Source,
) -> Result<(), Error> {
    let table = match &source {
        Source::Events => sh.table.clone(),
        Source::Customers(name) => name.clone(),
    };
    let mut names = Names::new(&sh.names, sh.max_key_values);
    let mut local: Vec<Vec<Rec>> = vec![Vec::new(); sh.parts.len()];
    let mut cuts: Vec<(u128, i64)> = Vec::new();
    let mut rarity = Rarity::new(sh.k);
    loop {
        // A damaged page can make a decoder panic rather than fail: the table's error.
        let batch = match crate::error::next_contained(&mut stream).await {
            Ok(None) => break,
            Ok(Some(b)) => b.map_err(|e| df_message(&e)),
            Err(p) => Err(p.damaged()),
        }
        .map_err(|m| err(&table, format!("failed reading the {table} table: {m}")))?;
        match source {
            Source::Events => {
                read_batch(&sh, &batch, &mut names, &mut local, &mut cuts, &mut rarity)
            }
            Source::Customers(_) => read_customers(&sh, &batch, &mut names, &mut local),
        }
        .map_err(|m| err(&table, m))?;
    }
    for (p, recs) in local.iter_mut().enumerate() {
        sh.parts
            .flush(p, recs)
            .map_err(|e| err(&table, spill_error(&e)))?;
    }
    sh.cuts.lock().expect("cuts").append(&mut cuts);
    sh.rarity.lock().expect("rarity").merge(rarity);
    Ok(())
}

/// An id column's values as the tokens see them, trimmed (`str::trim`, by
/// [`crate::rules::trimmed`]) -> `f(text, run
/// length)` per run of equal values; `None` for nulls.
fn ids(a: &ArrayRef, mut f: impl FnMut(Option<&str>, usize)) -> Result<(), String> {
    each_text(a, |v, n| f(v.map(crate::rules::trimmed), n))
}

fn read_batch(
    sh: &Shared,
    b: &RecordBatch,
    names: &mut Names,
    local: &mut [Vec<Rec>],
    cuts: &mut Vec<(u128, i64)>,
    rarity: &mut Rarity,
) -> Result<(), String> {
    let n = b.num_rows();
    if n == 0 {
        return Ok(());
    }
    let col = |name: &str| -> Result<&ArrayRef, String> {
        b.column_by_name(name)
            .ok_or_else(|| format!("the events view has no column {name}"))
    };
    let key = &sh.key;
    let mut cust: Vec<Option<u128>> = Vec::with_capacity(n);
    let mut tok = [0u8; crate::rules::pseudonymize::TOKEN_LEN];
    let mut found: Vec<(u128, String)> = Vec::new();
    ids(col("customer")?, |v, run| {
        let h = v.map(|s| {
            let h = hash128(key, s);
            if let (false, Some(p)) = (sh.asking.is_empty(), &sh.pseudonymizer) {
                p.token_into(s.as_bytes(), &mut tok);
                let t = std::str::from_utf8(&tok).expect("hex");
                if sh.asking.contains(t) {
                    found.push((h, t.to_string()));
                }
            }
            h
        });
        cust.extend(std::iter::repeat_n(h, run));
    })?;
    if !found.is_empty() {
        sh.asked.lock().expect("asked").extend(found);
    }
    let mut sub: Vec<Option<u128>> = Vec::with_capacity(n);
    ids(col("subscription")?, |v, run| {
        sub.extend(std::iter::repeat_n(v.map(|s| hash128(key, s)), run))
    })?;
    let time = col("event_time")?.as_primitive::<TimestampMicrosecondType>();
    // As exported: each run and distinct text parsed once, as the SQL's UDFs parse it.
    let periods = super::period::periods(col("offer_period")?).map_err(|e| df_message(&e))?;
    let amount = col("amount")?.as_primitive::<Decimal128Type>();
    let units = monthly_units(amount, &periods)?;
    let kinds = kinds(col("event_type")?)?;
    let [offer, currency, country] = [
        ("offer_type", Case::Lower),
        ("currency", Case::Upper),
        ("country", Case::AsIs),
    ]
    .into_iter()
    .zip(&sh.key_columns)
    .map(|((role, case), what)| names.column(col(role)?, case, sh.unknown, what))
    .collect::<Result<Vec<_>, String>>()?
    .try_into()
    .expect("three key columns");
    let (mut paid, mut unperiodic) = (0u64, 0u64);
    for i in 0..n {
        let Some(c) = cust[i] else { continue };
        if time.is_null(i) {
            continue;
        }
        let t = time.value(i);
        let kind = kinds[i];
        let mut flags = 0;
        let s = sub[i].unwrap_or(0);
        if sub[i].is_some() {
            flags |= F_SUB;
            if kind == K_REFUND || kind == K_CHARGEBACK {
                cuts.push((s, t));
            }
        }
        // The view's period_end: the event time plus the offer period.
        let e0 = periods[i].and_then(|p| p.add_to(t));
        if e0.is_some() {
            flags |= F_E0;
        }
        if amount.is_valid(i) {
            flags |= F_AMOUNT;
        }
        if units.is_valid(i) {
            flags |= F_UNITS;
        }
        // A null offer type is interned as "unknown", never as "subscription".
        if offer[i] == sh.subscription {
            flags |= F_SUBSCRIPTION;
            if kind == K_PAY {
                paid += 1;
                unperiodic += u64::from(e0.is_none());
            }
        }
        let r = Rec {
            cust: c,
            sub: s,
            amount: if amount.is_valid(i) {
                amount.value(i)
            } else {
                0
            },
            t,
            e0: e0.unwrap_or(0),
            units: if units.is_valid(i) { units.value(i) } else { 0 },
            month: month_index(t).map_or(NO_MONTH, |m| m as i32),
            currency: currency[i],
            country: country[i],
            offer: offer[i],
            kind,
            flags,
        };
        // The cells of the published months are what a rare value would single out.
        if r.month != NO_MONTH && i64::from(r.month) <= sh.last_month {
            rarity.note_key((r.country, r.currency, r.offer), c);
        }
        route(sh, local, r)?;
    }
    sh.subscription_payments.fetch_add(paid, Ordering::Relaxed);
    sh.without_period.fetch_add(unperiodic, Ordering::Relaxed);
    Ok(())
}

/// coverage.sql's `monthly_units` of each row, computed as the SQL computes it:
/// `CAST(round(anon_monthly_amount(CAST(amount AS DOUBLE), offer_period) * 10000.0) AS
/// BIGINT)`, with the same Arrow casts (an overflow is an error, as DataFusion's cast) and
/// the same floating-point operations in the same order; null where the amount or the
/// period is.
fn monthly_units(
    amount: &Decimal128Array,
    periods: &[Option<Period>],
) -> Result<Int64Array, String> {
    use datafusion::arrow::compute::{CastOptions, cast_with_options};
    let strict = CastOptions {
        safe: false,
        ..Default::default()
    };
    let floats =
        cast_with_options(amount, &DataType::Float64, &strict).map_err(|e| e.to_string())?;
    let floats = floats.as_primitive::<Float64Type>();
    let monthly: Float64Array = periods
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let p = p.filter(|_| floats.is_valid(i))?;
            let (num, den) = p.monthly_factor();
            Some((floats.value(i) * num as f64 / den as f64 * 10000.0).round())
        })
        .collect();
    let units =
        cast_with_options(&monthly, &DataType::Int64, &strict).map_err(|e| e.to_string())?;
    Ok(units.as_primitive::<Int64Type>().clone())
}

/// What a failed spill write says: where the parts go and what to do.
fn spill_error(e: &std::io::Error) -> String {
    format!(
        "cannot spill: {e}\n  past [analytics] memory_mb the aggregates write temporary parts inside the \
         run's staging folder; free space on the output folder's disk, or raise memory_mb"
    )
}

/// Adds a record to its part's buffer, flushing the buffer when full (smaller buffers
/// when spilling: there are many parts then).
fn route(sh: &Shared, local: &mut [Vec<Rec>], r: Rec) -> Result<(), String> {
    let p = (r.cust as u64 % local.len() as u64) as usize;
    local[p].push(r);
    let full = match sh.parts {
        Parts::Memory(_) => 8192,
        Parts::Files(..) => 1024,
    };
    if local[p].len() >= full {
        sh.parts
            .flush(p, &mut local[p])
            .map_err(|e| spill_error(&e))?;
    }
    Ok(())
}

/// The kind of each transaction, from its exported type normalized as the views do
/// (each distinct exported value once).
fn kinds(a: &ArrayRef) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(a.len());
    let mut seen: HashMap<String, u8, ahash::RandomState> = HashMap::default();
    each_text(a, |v, n| {
        let Some(v) = v else {
            out.extend(std::iter::repeat_n(K_OTHER, n));
            return;
        };
        let kind = match seen.get(v) {
            Some(k) => *k,
            None => {
                let [refund, chargeback] = super::REVERSAL_TYPES;
                let k = match normalized_text(v, Case::Lower).as_deref() {
                    Some(t) if super::PAYMENT_TYPES.contains(&t) => K_PAY,
                    Some(t) if t == refund => K_REFUND,
                    Some(t) if t == chargeback => K_CHARGEBACK,
                    _ => K_OTHER,
                };
                seen.insert(v.to_string(), k);
                k
            }
        };
        out.extend(std::iter::repeat_n(kind, n));
    })?;
    Ok(out)
}

/// One record per customers row with a country (`K_CUSTOMER`), to the customer's part.
fn read_customers(
    sh: &Shared,
    b: &RecordBatch,
    names: &mut Names,
    local: &mut [Vec<Rec>],
) -> Result<(), String> {
    // A customer without a country (null, or only white space) is no record.
    let country = names.column(b.column(1), Case::AsIs, NO_NAME, &sh.key_columns[3])?;
    let mut i = 0;
    let mut out = Ok(());
    ids(b.column(0), |v, run| {
        let cust = v.map(|s| hash128(&sh.key, s));
        for _ in 0..run {
            if let Some(cust) = cust
                && country[i] != NO_NAME
                && out.is_ok()
            {
                out = route(
                    sh,
                    local,
                    Rec {
                        cust,
                        country: country[i],
                        kind: K_CUSTOMER,
                        month: NO_MONTH,
                        ..Rec::default()
                    },
                );
            }
            i += 1;
        }
    })?;
    out
}

/// What pass 2 reads.
struct Context<'a> {
    last_month: i64,
    end: i64,
    names: &'a Interner,
    /// (subscription, time) of every refund and chargeback, sorted.
    cuts: &'a [(u128, i64)],
    /// Subscription -> where its cuts are in `cuts` (start, count).
    cut_index: &'a HashMap<u128, (usize, usize), ahash::RandomState>,
    unknown: u32,
    asked: &'a HashMap<u128, String>,
    /// Per transactions' text role (`ROLE_*`): interned id -> the id its cells are
    /// keyed by (a rare value's is `other`).
    recode: [Vec<u32>; 3],
    /// revenue_monthly's (country, currency, offer type) as exported -> as published
    /// ([`Rarity::key_map`]).
    revenue_keys: &'a HashMap<Key3, Key3, ahash::RandomState>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Revenue {
    payments: i64,
    gross: Option<i128>,
    refunds: Option<i128>,
    chargebacks: Option<i128>,
    customers: i64,
    payers: i64,
    refunded: i64,
    charged_back: i64,
    contributors: i64,
}

impl Revenue {
    /// Adds another part's (or one customer's) sums and counts.
    fn add(&mut self, o: &Revenue, overflow: &mut bool) {
        self.payments += o.payments;
        add_opt(&mut self.gross, o.gross, overflow);
        add_opt(&mut self.refunds, o.refunds, overflow);
        add_opt(&mut self.chargebacks, o.chargebacks, overflow);
        self.customers += o.customers;
        self.payers += o.payers;
        self.refunded += o.refunded;
        self.charged_back += o.charged_back;
        self.contributors += o.contributors;
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Mrr {
    subscribers: i64,
    units: Option<i128>,
}

/// An mrr_monthly cell of customers with coverage in several currencies at one
/// boundary: how many, and the units per currency (in the key's order).
struct MultiMrr {
    subscribers: i64,
    units: Vec<Option<i128>>,
}

/// The cells of every table, from some of the customers.
#[derive(Default)]
struct Acc {
    /// (month, country, currency, offer type)
    revenue: Cells<(i32, u32, u32, u32), Revenue>,
    /// (cohort month, months since) -> customers
    cohorts: Cells<(i32, i32), i64>,
    /// (month, customer country) -> active_start, new, reactivated, churned, active_end
    subs: Cells<(i64, u32), [i64; 5]>,
    /// (month boundary, customer country, currency), of the customers with one currency
    /// at that boundary.
    mrr: Cells<(i64, u32, u32), Mrr>,
    /// (month boundary, customer country, currencies), of the customers with coverage in
    /// two currencies or more at that boundary (few): merged into `mrr` once the rare
    /// (country, currency) pairs are known, without counting anyone twice.
    mrr_multi: Cells<(i64, u32, Vec<u32>), MultiMrr>,
    /// (customer country, currency) -> customers with a transaction in that currency in
    /// the published months (mrr_monthly's rare pairs).
    pairs: Cells<(u32, u32), i64>,
    /// Customer country -> customers with a transaction in the published months.
    countries: Cells<u32, i64>,
    active: Vec<u128>,
    /// A sum did not fit in 128 bits.
    overflow: bool,
}

/// SQL's SUM: nulls are skipped, and the sum of nothing but nulls is null. Overflow of
/// 128 bits is recorded in `overflow` (the caller fails the run) instead of wrapping.
fn add_opt(acc: &mut Option<i128>, v: Option<i128>, overflow: &mut bool) {
    if let Some(v) = v {
        *acc = Some(match *acc {
            Some(a) => a.checked_add(v).unwrap_or_else(|| {
                *overflow = true;
                0
            }),
            None => v,
        });
    }
}

impl Acc {
    /// Publishes the customers' countries that fewer than `k` customers have (counting
    /// those with a transaction in the published months) as `other`: their
    /// subscriptions_monthly and mrr_monthly cells are merged into `other`'s. Exact,
    /// since each customer has one country (the smallest of their customers rows), so
    /// no customer is in two of the merged cells. Returns the countries recoded.
    fn recode_customer_countries(&mut self, k: u64, unknown: u32, other: u32) -> HashSet<u32> {
        let rare: HashSet<u32> = self
            .countries
            .iter()
            .filter(|&(&c, &n)| c != unknown && c != other && (n as u64) < k)
            .map(|(&c, _)| c)
            .collect();
        if rare.is_empty() {
            return rare;
        }
        let to = |c: u32| if rare.contains(&c) { other } else { c };
        let mut subs: Cells<(i64, u32), [i64; 5]> = Cells::default();
        for ((m, c), v) in std::mem::take(&mut self.subs) {
            let e = subs.entry((m, to(c))).or_default();
            for i in 0..5 {
                e[i] += v[i];
            }
        }
        self.subs = subs;
        let mut mrr: Cells<(i64, u32, u32), Mrr> = Cells::default();
        for ((b, c, cu), v) in std::mem::take(&mut self.mrr) {
            let e = mrr.entry((b, to(c), cu)).or_default();
            e.subscribers += v.subscribers;
            add_opt(&mut e.units, v.units, &mut self.overflow);
        }
        self.mrr = mrr;
        for ((b, c, cu), v) in std::mem::take(&mut self.mrr_multi) {
            self.add_multi((b, to(c), cu), v);
        }
        for ((c, cu), n) in std::mem::take(&mut self.pairs) {
            *self.pairs.entry((to(c), cu)).or_default() += n;
        }
        rare
    }

    fn add_multi(&mut self, key: (i64, u32, Vec<u32>), v: MultiMrr) {
        match self.mrr_multi.entry(key) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(v);
            }
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let cell = e.get_mut();
                cell.subscribers += v.subscribers;
                for (u, w) in cell.units.iter_mut().zip(v.units) {
                    add_opt(u, w, &mut self.overflow);
                }
            }
        }
    }

    /// mrr_monthly's (country, currency) pairs of values each common but together had by
    /// fewer than `k` customers (German customers paying in US dollars; counting those
    /// with a transaction in the currency in the published months) publish their currency
    /// as `other`: the pair's cells are merged into (country, `other`)'s, so that a row's
    /// key is no one's, and a country's currencies still add up to its
    /// subscriptions_monthly.active_end. Then the cells of the customers with several
    /// currencies at one boundary are added, each customer once per currency as
    /// published. Call after [`Acc::recode_customer_countries`]. Returns how many pairs
    /// were recoded.
    fn recode_mrr_pairs(&mut self, k: u64, other: u32) -> u64 {
        let pairs = std::mem::take(&mut self.pairs);
        // A pair of a cell without such customers (coverage from a payment made after
        // the published months, at the first instant of the next) is rare too.
        let is_rare = |c: u32, cu: u32| {
            k > 1 && cu != other && pairs.get(&(c, cu)).map_or(0, |n| *n as u64) < k
        };
        let rare: HashSet<(u32, u32)> = self
            .mrr
            .keys()
            .map(|&(_, c, cu)| (c, cu))
            .chain(
                self.mrr_multi
                    .keys()
                    .flat_map(|(_, c, cus)| cus.iter().map(|&cu| (*c, cu))),
            )
            .filter(|&(c, cu)| is_rare(c, cu))
            .collect();
        let to = |c: u32, cu: u32| if rare.contains(&(c, cu)) { other } else { cu };
        if !rare.is_empty() {
            let mut mrr: Cells<(i64, u32, u32), Mrr> = Cells::default();
            for ((b, c, cu), v) in std::mem::take(&mut self.mrr) {
                let e = mrr.entry((b, c, to(c, cu))).or_default();
                e.subscribers += v.subscribers;
                add_opt(&mut e.units, v.units, &mut self.overflow);
            }
            self.mrr = mrr;
        }
        let mut published: Vec<(u32, Option<i128>)> = Vec::new();
        for ((b, c, cus), v) in std::mem::take(&mut self.mrr_multi) {
            published.clear();
            published.extend(cus.iter().map(|&cu| to(c, cu)).zip(v.units));
            published.sort_unstable_by_key(|e| e.0);
            for run in published.chunk_by(|x, y| x.0 == y.0) {
                let e = self.mrr.entry((b, c, run[0].0)).or_default();
                e.subscribers += v.subscribers;
                for (_, u) in run {
                    add_opt(&mut e.units, *u, &mut self.overflow);
                }
            }
        }
        rare.len() as u64
    }

    fn merge(mut self, o: Acc) -> Acc {
        for (k, v) in o.revenue {
            self.revenue
                .entry(k)
                .or_default()
                .add(&v, &mut self.overflow);
        }
        for (k, v) in o.cohorts {
            *self.cohorts.entry(k).or_default() += v;
        }
        for (k, v) in o.subs {
            let e = self.subs.entry(k).or_default();
            for i in 0..5 {
                e[i] += v[i];
            }
        }
        for (k, v) in o.mrr {
            let e = self.mrr.entry(k).or_default();
            e.subscribers += v.subscribers;
            add_opt(&mut e.units, v.units, &mut self.overflow);
        }
        for (k, v) in o.mrr_multi {
            self.add_multi(k, v);
        }
        for (k, v) in o.pairs {
            *self.pairs.entry(k).or_default() += v;
        }
        for (k, v) in o.countries {
            *self.countries.entry(k).or_default() += v;
        }
        self.active.extend(o.active);
        self.overflow |= o.overflow;
        self
    }
}

/// Aggregate cells, updated several times per customer: a fast hash of small integer
/// keys (the tables are sorted when built, so the iteration order never shows).
type Cells<K, V> = HashMap<K, V, ahash::RandomState>;

/// What the tables use of a paid coverage interval `[s, e)`: the month boundaries it
/// crosses, its currency and its monthly units.
struct Interval {
    b: Option<(i64, i64)>,
    currency: u32,
    units: Option<i64>,
}

impl Context<'_> {
    /// One part's records, customer by customer. When they arrived in runs of one
    /// customer's records (an export sorted by customer gives one run per customer and
    /// reading task, plus one for the customers row), the runs are sorted, not the
    /// records, which moves a run's length times less memory; a customer's runs are
    /// folded one after the other, never copied together. Otherwise (runs of fewer than
    /// 4 records on average: an export in another order) the records are sorted.
    fn part(&self, recs: &mut [Rec], fold: &mut Fold, acc: &mut Acc) {
        // (customer, start, length); the start makes the order total, so deterministic.
        // At most a quarter as many runs as records (8 bytes per record) are listed.
        let most = recs.len() / 4;
        let mut runs: Vec<(u128, usize, usize)> = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            match runs.last_mut() {
                Some(last) if last.0 == r.cust => last.2 += 1,
                _ => {
                    if runs.len() > most {
                        break;
                    }
                    runs.push((r.cust, i, 1));
                }
            }
        }
        if runs.len() > most {
            drop(runs);
            recs.sort_unstable_by_key(|r| r.cust);
            for g in recs.chunk_by(|a, b| a.cust == b.cust) {
                fold.add_all(self, g);
                fold.finish(self, acc);
            }
            return;
        }
        runs.sort_unstable();
        for (j, &(cust, s, n)) in runs.iter().enumerate() {
            // The runs are visited out of order: ask for a later run's first records
            // now, so that they are in the cache by the time it is folded.
            if let Some(&(_, ahead, _)) = runs.get(j + PREFETCH_RUNS) {
                prefetch(&recs[ahead..]);
            }
            fold.add_all(self, &recs[s..s + n]);
            if runs.get(j + 1).is_none_or(|next| next.0 != cust) {
                fold.finish(self, acc);
            }
        }
    }

    /// A spilled part's records, customer by customer, in at most `limit` records of
    /// memory (`recs`, reused between parts). A part that holds more (one customer with
    /// a large share of the transactions: a guest or reseller id) is sorted on disk:
    /// `limit` records at a time are sorted by customer and written back as a sorted
    /// run, and the runs are merged, each customer's records folded as they come.
    /// Returns whether the part was sorted on disk.
    fn part_file(
        &self,
        path: &Path,
        limit: usize,
        recs: &mut Vec<Rec>,
        fold: &mut Fold,
        acc: &mut Acc,
    ) -> Result<bool, String> {
        let name = path.display().to_string();
        let open = |p: &Path| {
            File::open(p)
                .map(|f| {
                    spill::Blocks::new(
                        BufReader::with_capacity(1 << 16, f),
                        p.display().to_string(),
                    )
                })
                .map_err(|e| format!("cannot read back {}: {e}", p.display()))
        };
        let mut blocks = open(path)?;
        recs.clear();
        let mut runs = Vec::new();
        let write_run = |recs: &mut Vec<Rec>, runs: &mut Vec<std::path::PathBuf>| {
            recs.sort_unstable_by_key(|r| r.cust);
            let run = path.with_extension(format!("run-{}", runs.len()));
            let mut w =
                BufWriter::with_capacity(1 << 18, File::create(&run).map_err(|e| spill_error(&e))?);
            let mut bytes = Vec::new();
            for block in recs.chunks(RUN_BLOCK) {
                bytes.clear();
                spill::encode_block(block, &mut bytes);
                w.write_all(&bytes).map_err(|e| spill_error(&e))?;
            }
            w.flush().map_err(|e| spill_error(&e))?;
            recs.clear();
            runs.push(run);
            Ok::<_, String>(())
        };
        while blocks.next_into(recs)? {
            if recs.len() > limit {
                write_run(recs, &mut runs)?;
            }
        }
        if runs.is_empty() {
            self.part(recs, fold, acc);
            return Ok(false);
        }
        if !recs.is_empty() {
            write_run(recs, &mut runs)?;
        }
        drop(blocks);
        // The merge: one block of each run in memory; the run with the smallest
        // customer next, all of that customer's records it holds.
        struct Run {
            blocks: spill::Blocks<BufReader<File>>,
            buf: Vec<Rec>,
            pos: usize,
        }
        impl Run {
            fn head(&mut self) -> Result<Option<&Rec>, String> {
                while self.pos == self.buf.len() {
                    self.buf.clear();
                    self.pos = 0;
                    if !self.blocks.next_into(&mut self.buf)? {
                        return Ok(None);
                    }
                }
                Ok(Some(&self.buf[self.pos]))
            }
        }
        let mut sources = Vec::new();
        let mut heap = std::collections::BinaryHeap::new();
        for (i, p) in runs.iter().enumerate() {
            let mut run = Run {
                blocks: open(p)?,
                buf: Vec::with_capacity(RUN_BLOCK),
                pos: 0,
            };
            if let Some(r) = run.head()? {
                heap.push(std::cmp::Reverse((r.cust, i)));
            }
            sources.push(run);
        }
        let mut current = None;
        while let Some(std::cmp::Reverse((cust, i))) = heap.pop() {
            if current.is_some_and(|c| c != cust) {
                fold.finish(self, acc);
            }
            current = Some(cust);
            let run = &mut sources[i];
            loop {
                match run.head()? {
                    Some(r) if r.cust == cust => {
                        fold.add(self, r);
                        run.pos += 1;
                    }
                    Some(r) => {
                        heap.push(std::cmp::Reverse((r.cust, i)));
                        break;
                    }
                    None => break,
                }
            }
        }
        if current.is_some() {
            fold.finish(self, acc);
        }
        drop(sources);
        for run in &runs {
            std::fs::remove_file(run)
                .map_err(|e| format!("cannot remove a sorted run of {name}: {e}"))?;
        }
        Ok(true)
    }
}

/// How many runs ahead [`Context::part`] asks for a run's records.
const PREFETCH_RUNS: usize = 8;

/// Asks the CPU to load the first records of `recs` into the cache (a hint, no effect
/// on results; nothing on other architectures).
#[inline(always)]
fn prefetch(recs: &[Rec]) {
    #[cfg(target_arch = "x86_64")]
    for r in recs.iter().take(4) {
        // SAFETY: prefetching is a hint that never faults; `r` is a valid reference.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (r as *const Rec).cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = recs;
}

/// Past this many pending months or coverage intervals, a customer's fold compacts them.
const COMPACT_AT: usize = 1 << 16;

/// Records per block of a sorted run: what the merge holds of each run.
const RUN_BLOCK: usize = 4096;

/// What one customer contributes to the cells, built record by record ([`Fold::add`],
/// then [`Fold::finish`] into the cells). The result does not depend on the records'
/// order, and the memory stays bounded however many records one customer has: past
/// [`COMPACT_AT`] pending entries the months are deduplicated and the coverage
/// intervals reduced to what the tables use of them (the month boundaries covered, and
/// the units per boundary and currency). One per thread, reused from customer to
/// customer.
struct Fold {
    cust: u128,
    /// The smallest (by name) country of the customer's customers rows.
    country: Option<u32>,
    /// Months with a transaction (cohort_retention), with repeats until compacted.
    months: Vec<i32>,
    /// revenue_monthly: the cells the customer has a transaction in. Their keys are kept
    /// apart from their sums so that a search strides 16 bytes, with a
    /// 256-bit filter of them (one bit per key, by a cheap mix of its fields): a
    /// customer's records mostly open a new cell (the next month), and the filter says
    /// so without searching.
    cell_keys: Vec<(i32, u32, u32, u32)>,
    cells: Vec<Revenue>,
    cell_bits: [u64; 4],
    /// Paid coverage intervals not yet compacted.
    intervals: Vec<Interval>,
    /// Any coverage interval at all; the earliest start; coverage at the end.
    covered: bool,
    first_start: i64,
    active: bool,
    /// Month boundaries covered by compacted intervals, as disjoint ranges.
    ranges: Vec<(i64, i64)>,
    /// (month boundary, currency, units summed) of compacted intervals, one per pair.
    ends: Vec<(i64, u32, Option<i128>)>,
    merged: Vec<(i64, i64)>,
    /// (month boundary, currency, units) of the intervals when none were compacted.
    pending: Vec<(i64, u32, Option<i64>)>,
    /// The currencies (as exported) of the customer's transactions in the published
    /// months, with repeats until compacted.
    currencies: Vec<u32>,
    /// The cuts of the subscription last looked up (a customer's records name few).
    sub_cuts: Option<(u128, (usize, usize))>,
    /// The revenue key last looked up, as exported and as published.
    last_key: Option<(Key3, Key3)>,
    overflow: bool,
    compact_at: usize,
}

impl Default for Fold {
    fn default() -> Self {
        Fold {
            cust: 0,
            country: None,
            months: Vec::new(),
            cell_keys: Vec::new(),
            cells: Vec::new(),
            cell_bits: [0; 4],
            intervals: Vec::new(),
            covered: false,
            first_start: i64::MAX,
            active: false,
            ranges: Vec::new(),
            ends: Vec::new(),
            merged: Vec::new(),
            pending: Vec::new(),
            currencies: Vec::new(),
            sub_cuts: None,
            last_key: None,
            overflow: false,
            compact_at: COMPACT_AT,
        }
    }
}

impl Fold {
    /// Adds some of the customer's records.
    fn add_all(&mut self, cx: &Context, recs: &[Rec]) {
        for r in recs {
            self.add(cx, r);
        }
    }

    /// Adds one of the customer's records (a transaction, or a customers row, which only
    /// gives the country).
    #[inline(always)]
    fn add(&mut self, cx: &Context, r: &Rec) {
        self.cust = r.cust;
        if r.kind == K_CUSTOMER {
            let smaller = |c: u32| cx.names.names[r.country as usize] < cx.names.names[c as usize];
            if self.country.is_none_or(smaller) {
                self.country = Some(r.country);
            }
            return;
        }
        // cohort_retention: the distinct months with a transaction.
        if r.month != NO_MONTH {
            self.months.push(r.month);
            if self.months.len() >= self.compact_at {
                self.months.sort_unstable();
                self.months.dedup();
            }
        }

        // revenue_monthly: one contribution per cell the customer has a transaction in.
        if r.month != NO_MONTH && i64::from(r.month) <= cx.last_month {
            let exported = (r.country, r.currency, r.offer);
            let (country, currency, offer) = match self.last_key {
                Some((e, p)) if e == exported => p,
                _ => {
                    let p = cx.revenue_keys.get(&exported).copied().unwrap_or((
                        cx.recode[ROLE_COUNTRY][r.country as usize],
                        cx.recode[ROLE_CURRENCY][r.currency as usize],
                        cx.recode[ROLE_OFFER][r.offer as usize],
                    ));
                    self.last_key = Some((exported, p));
                    p
                }
            };
            if self.currencies.last() != Some(&r.currency) {
                self.currencies.push(r.currency);
                if self.currencies.len() >= self.compact_at {
                    self.currencies.sort_unstable();
                    self.currencies.dedup();
                }
            }
            let key = (r.month, country, currency, offer);
            let bit = (r.month as u32)
                .wrapping_mul(0x9e37_79b9)
                .wrapping_add(country.wrapping_mul(0x85eb_ca6b))
                .wrapping_add(currency.wrapping_mul(0xc2b2_ae35))
                .wrapping_add(offer.wrapping_mul(0x27d4_eb2f))
                >> 24;
            let (word, mask) = ((bit >> 6) as usize, 1u64 << (bit & 63));
            let found = if self.cell_bits[word] & mask == 0 {
                self.cell_bits[word] |= mask;
                None
            } else {
                self.cell_keys.iter().position(|k| *k == key)
            };
            let i = found.unwrap_or_else(|| {
                self.cell_keys.push(key);
                self.cells.push(Revenue::default());
                self.cells.len() - 1
            });
            let c = &mut self.cells[i];
            let amount = r.has(F_AMOUNT).then_some(r.amount);
            let (pay, refund, chargeback) = match r.kind {
                K_PAY => (amount, Some(0), Some(0)),
                K_REFUND => (Some(0), amount, Some(0)),
                K_CHARGEBACK => (Some(0), Some(0), amount),
                _ => (Some(0), Some(0), Some(0)),
            };
            add_opt(&mut c.gross, pay, &mut self.overflow);
            add_opt(&mut c.refunds, refund, &mut self.overflow);
            add_opt(&mut c.chargebacks, chargeback, &mut self.overflow);
            if r.kind == K_PAY {
                c.payments += 1;
                c.payers = 1;
            }
            if r.kind == K_REFUND {
                c.refunded = 1;
            }
            if r.kind == K_CHARGEBACK {
                c.charged_back = 1;
            }
            if r.kind != K_OTHER {
                c.contributors = 1;
            }
        }

        // Coverage (coverage.sql): a payment's interval, cut short by the first refund or
        // chargeback of its subscription after its start.
        if r.kind != K_PAY || !r.has(F_SUBSCRIPTION) || !r.has(F_E0) {
            return;
        }
        let (s, e0) = (r.t, r.e0);
        let cut = if r.has(F_SUB) {
            // One hash lookup, where a binary search of all the cuts missed the cache at
            // every step.
            let (from, n) = match self.sub_cuts {
                Some((sub, at)) if sub == r.sub => at,
                _ => {
                    let at = cx.cut_index.get(&r.sub).copied().unwrap_or((0, 0));
                    self.sub_cuts = Some((r.sub, at));
                    at
                }
            };
            let cuts = &cx.cuts[from..from + n];
            // The first cut of the subscription at or after the start.
            let i = cuts.partition_point(|c| c.1 < s);
            cuts.get(i).filter(|(_, at)| *at < e0).map(|c| c.1)
        } else {
            None
        };
        let e = cut.unwrap_or(e0);
        if e <= s {
            return;
        }
        self.covered = true;
        self.first_start = self.first_start.min(s);
        if s <= cx.end && e > cx.end {
            self.active = true;
        }
        let b_from = month_index(s).and_then(|m| {
            let start = month_start_micros(m)?;
            Some(m + i64::from(s != start))
        });
        let b_to = month_index(e - 1).map(|m| m.min(cx.last_month + 1));
        self.intervals.push(Interval {
            b: b_from.zip(b_to),
            currency: cx.recode[ROLE_CURRENCY][r.currency as usize],
            units: r.has(F_UNITS).then_some(r.units),
        });
        if self.intervals.len() >= self.compact_at {
            self.compact();
        }
    }

    /// Reduces the pending intervals to what the tables use of them: the boundaries
    /// covered (merged with those before) and the units per (boundary, currency).
    fn compact(&mut self) {
        self.compact_ranges();
        self.compact_ends();
    }

    /// Merges the pending intervals' boundaries into `ranges` (the intervals stay).
    fn compact_ranges(&mut self) {
        self.ranges.extend(
            self.intervals
                .iter()
                .filter_map(|i| i.b)
                .filter(|(f, t)| f <= t),
        );
        self.ranges.sort_unstable();
        self.merged.clear();
        for &(lo, hi) in &self.ranges {
            match self.merged.last_mut() {
                Some(last) if lo <= last.1 + 1 => last.1 = last.1.max(hi),
                _ => self.merged.push((lo, hi)),
            }
        }
        std::mem::swap(&mut self.ranges, &mut self.merged);
    }

    /// Moves the pending intervals into `ends`, one sum per (boundary, currency).
    fn compact_ends(&mut self) {
        for i in self.intervals.drain(..) {
            if let Some((f, t)) = i.b {
                for b in f..=t {
                    self.ends.push((b, i.currency, i.units.map(i128::from)));
                }
            }
        }
        self.ends.sort_unstable_by_key(|(b, c, _)| (*b, *c));
        let mut out = 0;
        for j in 0..self.ends.len() {
            let (b, c, u) = self.ends[j];
            if out > 0 && (self.ends[out - 1].0, self.ends[out - 1].1) == (b, c) {
                add_opt(&mut self.ends[out - 1].2, u, &mut self.overflow);
            } else {
                self.ends[out] = (b, c, u);
                out += 1;
            }
        }
        self.ends.truncate(out);
    }

    /// Adds the customer's contribution to the cells and makes the fold ready for the
    /// next customer.
    fn finish(&mut self, cx: &Context, acc: &mut Acc) {
        let country = self.country.take().unwrap_or(cx.unknown);
        self.months.sort_unstable();
        self.months.dedup();
        // The customers' countries' customers, for rare countries (those with a
        // transaction in the published months).
        if self
            .months
            .first()
            .is_some_and(|&m| i64::from(m) <= cx.last_month)
        {
            *acc.countries.entry(country).or_default() += 1;
        }
        // mrr_monthly's (country, currency) pairs: the currencies as published.
        for c in &mut self.currencies {
            *c = cx.recode[ROLE_CURRENCY][*c as usize];
        }
        self.currencies.sort_unstable();
        self.currencies.dedup();
        for &c in &self.currencies {
            *acc.pairs.entry((country, c)).or_default() += 1;
        }
        self.currencies.clear();
        if let Some(&c) = self.months.first() {
            for &m in &self.months {
                *acc.cohorts.entry((c, m - c)).or_default() += 1;
            }
        }
        self.months.clear();
        self.cell_bits = [0; 4];
        for (key, c) in self.cell_keys.drain(..).zip(self.cells.drain(..)) {
            // One customer in the cell: the flags become counts of people.
            let one = Revenue { customers: 1, ..c };
            acc.revenue
                .entry(key)
                .or_default()
                .add(&one, &mut acc.overflow);
        }
        acc.overflow |= std::mem::take(&mut self.overflow);
        if !std::mem::take(&mut self.covered) {
            return;
        }
        if std::mem::take(&mut self.active) && cx.asked.contains_key(&self.cust) {
            acc.active.push(self.cust);
        }
        let first_month = month_index(std::mem::replace(&mut self.first_start, i64::MAX));
        self.compact_ranges();
        for &(lo, hi) in &self.ranges {
            // Boundaries lo..=hi: month m starts inside at m = lo..=hi, ends inside at
            // m = lo-1..=hi-1.
            for m in (lo - 1)..=hi.min(cx.last_month) {
                let at_start = m >= lo;
                let at_end = m < hi;
                let cell = acc.subs.entry((m, country)).or_default();
                let new = !at_start && at_end && first_month.is_some_and(|f| f >= m);
                let back = !at_start && at_end && first_month.is_some_and(|f| f < m);
                cell[0] += i64::from(at_start);
                cell[1] += i64::from(new);
                cell[2] += i64::from(back);
                cell[3] += i64::from(at_start && !at_end);
                cell[4] += i64::from(at_end);
            }
        }
        self.ranges.clear();
        // mrr_monthly: per month boundary and currency, one (boundary, currency, units)
        // per pair in `ends`, sorted.
        if self.ends.is_empty() {
            self.pending.clear();
            for i in self.intervals.drain(..) {
                if let Some((f, t)) = i.b {
                    for b in f..=t {
                        self.pending.push((b, i.currency, i.units));
                    }
                }
            }
            self.pending.sort_unstable_by_key(|(b, c, _)| (*b, *c));
            for run in self.pending.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
                let mut units = None;
                for (_, _, u) in run {
                    add_opt(&mut units, u.map(i128::from), &mut self.overflow);
                }
                self.ends.push((run[0].0, run[0].1, units));
            }
        } else {
            // Compacted before: all of it in the compacted form.
            self.compact_ends();
        }
        acc.overflow |= std::mem::take(&mut self.overflow);
        for run in self.ends.chunk_by(|a, b| a.0 == b.0) {
            if let [(b, c, units)] = run {
                let cell = acc.mrr.entry((*b, country, *c)).or_default();
                cell.subscribers += 1;
                add_opt(&mut cell.units, *units, &mut acc.overflow);
                continue;
            }
            // Coverage in two currencies or more at one boundary: kept apart until the
            // rare pairs are known ([`Acc::recode_mrr_pairs`]).
            let key = (
                run[0].0,
                country,
                run.iter().map(|e| e.1).collect::<Vec<u32>>(),
            );
            let cell = acc.mrr_multi.entry(key).or_insert_with(|| MultiMrr {
                subscribers: 0,
                units: vec![None; run.len()],
            });
            cell.subscribers += 1;
            for (u, e) in cell.units.iter_mut().zip(run) {
                add_opt(u, e.2, &mut acc.overflow);
            }
        }
        self.ends.clear();
    }
}

fn date_of(m: i64) -> Result<i32, String> {
    month_date(m)
        .map(date_to_days)
        .ok_or_else(|| format!("month index {m} is out of range"))
}

fn batch(fields: Vec<(&str, DataType)>, columns: Vec<ArrayRef>) -> Result<RecordBatch, String> {
    let schema = Schema::new(
        fields
            .into_iter()
            .map(|(n, t)| Field::new(n, t, true))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns).map_err(|e| e.to_string())
}

/// A revenue_monthly cell: (month, country, currency, offer type) and its sums.
type RevenueRow<'a> = ((i32, &'a str, &'a str, &'a str), &'a Revenue);

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

impl Acc {
    fn subscriptions(&self, names: &Interner) -> Result<RecordBatch, String> {
        let mut rows: Vec<(i64, bool, &str, [i64; 5])> = self
            .subs
            .iter()
            .map(|((m, c), v)| (*m, true, names.names[*c as usize].as_str(), *v))
            .collect();
        let mut all: HashMap<i64, [i64; 5]> = HashMap::new();
        for (m, _, _, v) in &rows {
            let e = all.entry(*m).or_default();
            for i in 0..5 {
                e[i] += v[i];
            }
        }
        rows.extend(all.into_iter().map(|(m, v)| (m, false, "ALL", v)));
        rows.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
        let month = rows
            .iter()
            .map(|r| date_of(r.0))
            .collect::<Result<Vec<i32>, String>>()
            .map(Date32Array::from)?;
        let int = |i: usize| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.3[i])))
        };
        let rate: Float64Array = rows
            .iter()
            .map(|r| (r.3[0] != 0).then(|| r.3[3] as f64 / r.3[0] as f64))
            .collect();
        batch(
            vec![
                ("month", DataType::Date32),
                ("country", DataType::Utf8),
                ("active_start", DataType::Int64),
                ("new", DataType::Int64),
                ("reactivated", DataType::Int64),
                ("churned", DataType::Int64),
                ("active_end", DataType::Int64),
                ("churn_rate", DataType::Float64),
            ],
            vec![
                Arc::new(month),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
                int(0),
                int(1),
                int(2),
                int(3),
                int(4),
                Arc::new(rate),
            ],
        )
    }

    fn cohorts(&self, last_month: i64) -> Result<RecordBatch, String> {
        let mut sizes: Vec<(i32, i64)> = self
            .cohorts
            .iter()
            .filter(|((c, since), _)| *since == 0 && i64::from(*c) <= last_month)
            .map(|((c, _), n)| (*c, *n))
            .collect();
        sizes.sort_unstable();
        let (mut month, mut since, mut customers, mut retention) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (c, size) in sizes {
            for s in 0..=(last_month - i64::from(c)) {
                let s = i32::try_from(s).map_err(|_| "too many months".to_string())?;
                let n = self.cohorts.get(&(c, s)).copied().unwrap_or(0);
                month.push(date_of(i64::from(c))?);
                since.push(s);
                customers.push(n);
                retention.push(n as f64 / size as f64);
            }
        }
        batch(
            vec![
                ("cohort_month", DataType::Date32),
                ("months_since", DataType::Int32),
                ("customers", DataType::Int64),
                ("retention", DataType::Float64),
            ],
            vec![
                Arc::new(Date32Array::from(month)),
                Arc::new(Int32Array::from(since)),
                Arc::new(Int64Array::from(customers)),
                Arc::new(Float64Array::from(retention)),
            ],
        )
    }

    fn revenue(&self, names: &Interner, amount_type: &DataType) -> Result<RecordBatch, String> {
        let name = |i: u32| names.names[i as usize].as_str();
        let mut rows: Vec<RevenueRow> = self
            .revenue
            .iter()
            .map(|((m, co, cu, o), v)| ((*m, name(*co), name(*cu), name(*o)), v))
            .collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let (p, s) = match amount_type {
            DataType::Decimal128(p, s) => (*p, *s),
            other => return Err(format!("amount has type {other}, expected a decimal")),
        };
        let dec = |f: &dyn Fn(&Revenue) -> Option<i128>| -> Result<ArrayRef, String> {
            let a: Decimal128Array = rows.iter().map(|(_, v)| f(v)).collect();
            Ok(Arc::new(
                a.with_precision_and_scale(p, s)
                    .map_err(|e| e.to_string())?,
            ))
        };
        let int = |f: &dyn Fn(&Revenue) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, v)| f(v))))
        };
        let text = |i: usize| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(rows.iter().map(
                |(k, _)| match i {
                    1 => k.1,
                    2 => k.2,
                    _ => k.3,
                },
            )))
        };
        let month = rows
            .iter()
            .map(|(k, _)| date_of(i64::from(k.0)))
            .collect::<Result<Vec<i32>, String>>()
            .map(Date32Array::from)?;
        let net = |v: &Revenue| -> Option<i128> {
            v.gross?
                .checked_sub(v.refunds?)?
                .checked_sub(v.chargebacks?)
        };
        batch(
            vec![
                ("month", DataType::Date32),
                ("country", DataType::Utf8),
                ("currency", DataType::Utf8),
                ("offer_type", DataType::Utf8),
                ("payments", DataType::Int64),
                ("gross", amount_type.clone()),
                ("refunds", amount_type.clone()),
                ("chargebacks", amount_type.clone()),
                ("net", amount_type.clone()),
                ("customers", DataType::Int64),
                ("_payers", DataType::Int64),
                ("_refunded", DataType::Int64),
                ("_charged_back", DataType::Int64),
                ("_net_contributors", DataType::Int64),
            ],
            vec![
                Arc::new(month),
                text(1),
                text(2),
                text(3),
                int(&|v| v.payments),
                dec(&|v| v.gross)?,
                dec(&|v| v.refunds)?,
                dec(&|v| v.chargebacks)?,
                dec(&net)?,
                int(&|v| v.customers),
                int(&|v| v.payers),
                int(&|v| v.refunded),
                int(&|v| v.charged_back),
                int(&|v| v.contributors),
            ],
        )
    }

    fn mrr(&self, names: &Interner) -> Result<RecordBatch, String> {
        let name = |i: u32| names.names[i as usize].as_str();
        let mut rows: Vec<((i64, &str, &str), &Mrr)> = self
            .mrr
            .iter()
            .map(|((b, co, cu), v)| ((*b - 1, name(*co), name(*cu)), v))
            .collect();
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let month = rows
            .iter()
            .map(|(k, _)| date_of(k.0))
            .collect::<Result<Vec<i32>, String>>()
            .map(Date32Array::from)?;
        let mrr: Float64Array = rows
            .iter()
            .map(|(_, v)| v.units.map(|u| round2(u as f64 / 10000.0)))
            .collect();
        let arpu: Float64Array = rows
            .iter()
            .map(|(_, v)| {
                v.units
                    .map(|u| round2(u as f64 / 10000.0 / v.subscribers as f64))
            })
            .collect();
        batch(
            vec![
                ("month", DataType::Date32),
                ("country", DataType::Utf8),
                ("currency", DataType::Utf8),
                ("subscribers", DataType::Int64),
                ("mrr", DataType::Float64),
                ("arpu", DataType::Float64),
            ],
            vec![
                Arc::new(month),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|(k, _)| k.1))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|(k, _)| k.2))),
                Arc::new(Int64Array::from_iter_values(
                    rows.iter().map(|(_, v)| v.subscribers),
                )),
                Arc::new(mrr),
                Arc::new(arpu),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pass 2's per-thread buffer is kept between calls, and a nested call on the same
    /// thread gets a fresh one instead of waiting on its own (a deadlock).
    #[test]
    fn a_taken_scratch_buffer_gives_a_fresh_one_not_a_wait() {
        let scratch = Scratch::new(2);
        let rec = Rec {
            cust: 7,
            ..Rec::default()
        };
        scratch.with(|recs, _| {
            recs.push(rec);
            scratch.with(|inner, _| {
                assert!(inner.is_empty(), "the nested call got the taken buffer");
                inner.push(rec);
                inner.push(rec);
            });
            assert_eq!(recs.len(), 1);
        });
        scratch.with(|recs, _| assert_eq!(recs, &vec![rec]));
        // Every thread of a pool has a buffer of its own.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        pool.broadcast(|_| scratch.with(|recs, _| recs.push(rec)));
        let lens: Vec<usize> = scratch
            .0
            .iter()
            .map(|m| m.lock().unwrap().0.len())
            .collect();
        assert_eq!(lens, vec![2, 1]);
    }

    proptest::proptest! {
        /// Whatever the column type, each value gets the id of its normalized text (as
        /// the views' `text()` then `lower`/`upper` would give it), through the caches
        /// and the views fast path, and nulls (also after normalization) get `null`.
        #[test]
        fn text_roles_are_interned_by_their_normalized_text(
            values in proptest::collection::vec(
                proptest::option::of(proptest::sample::select(vec![
                    "EUR", "eur", " EUR\t", "\t", "", "Subscription", " subscription\t",
                    "a long value, past twelve bytes", "A LONG VALUE, PAST TWELVE BYTES ",
                    "ÉCOLE", "école",
                ])),
                0..40,
            ),
            case in proptest::sample::select(vec![Case::AsIs, Case::Lower, Case::Upper]),
        ) {
            use datafusion::arrow::array::{DictionaryArray, LargeStringArray, StringViewArray};
            use datafusion::arrow::datatypes::Int32Type;
            let arrays: Vec<ArrayRef> = vec![
                Arc::new(values.iter().copied().collect::<StringArray>()),
                Arc::new(values.iter().copied().collect::<StringViewArray>()),
                Arc::new(values.iter().copied().collect::<LargeStringArray>()),
                Arc::new(values.iter().copied().collect::<DictionaryArray<Int32Type>>()),
            ];
            let shared = Mutex::new(Interner::default());
            let null = u32::MAX;
            let mut names = Names::new(&shared, usize::MAX);
            let mut got = Vec::new();
            for a in &arrays {
                // Twice each: the second time from the caches.
                for _ in 0..2 {
                    got.push(names.column(a, case, null, "country").unwrap());
                }
            }
            let interner = shared.lock().unwrap();
            let want: Vec<Option<String>> = values
                .iter()
                .map(|v| v.and_then(|v| normalized_text(v, case)))
                .collect();
            for ids in got {
                let texts: Vec<Option<String>> = ids
                    .iter()
                    .map(|i| (*i != null).then(|| interner.names[*i as usize].clone()))
                    .collect();
                proptest::prop_assert_eq!(&texts, &want);
            }
        }
    }

    /// The bound on distinct values: spellings that normalize alike fill a task's cache
    /// (emptied past four times the bound) but not the interner, and ids stay right
    /// across the emptying; more distinct values than the bound fail, naming the column.
    #[test]
    fn key_values_are_bounded_and_spellings_only_cached() {
        let shared = Mutex::new(Interner::default());
        let mut names = Names::new(&shared, 3);
        let spellings: Vec<String> = (0..40)
            .map(|i| format!("{}EUR{}", " ".repeat(i % 7), "\t".repeat(i / 7)))
            .collect();
        let a: ArrayRef = Arc::new(StringArray::from(spellings.clone()));
        for _ in 0..3 {
            let ids = names
                .column(&a, Case::Upper, u32::MAX, "t.currency")
                .unwrap();
            assert!(ids.iter().all(|&i| i == ids[0]));
            assert_eq!(shared.lock().unwrap().names[ids[0] as usize], "EUR");
            let cache = &names.local[Case::Upper as usize];
            assert!(cache.inline.len() + cache.text.len() <= 12);
        }
        let four: ArrayRef = Arc::new(StringArray::from(vec!["A", "B", "C", "D"]));
        let e = names.column(&four, Case::AsIs, u32::MAX, "t.country (role country)");
        let e = e.unwrap_err();
        assert!(
            e.contains("more than 3 distinct values") && e.contains("t.country (role country)"),
            "{e}"
        );

        // Passed while reading a column of few values: the error names the column that
        // brought the most.
        let shared = Mutex::new(Interner::default());
        let mut names = Names::new(&shared, 12);
        let ids: ArrayRef = Arc::new(StringArray::from(
            (0..10).map(|i| format!("C{i:03}")).collect::<Vec<_>>(),
        ));
        names
            .column(&ids, Case::AsIs, u32::MAX, "t.country (role country)")
            .unwrap();
        let few: ArrayRef = Arc::new(StringArray::from(vec!["EUR", "USD", "GBP"]));
        let e = names
            .column(&few, Case::Upper, u32::MAX, "t.currency (role currency)")
            .unwrap_err();
        assert!(
            e.contains("t.country (role country)") && !e.contains("t.currency"),
            "{e}"
        );
    }

    #[test]
    fn a_customer_counts_once_per_cell() {
        let unknown = 0;
        let names = Interner::default();
        let cuts = Vec::new();
        let asked = HashMap::new();
        let cx = Context {
            last_month: 2024 * 12 + 11,
            end: i64::MAX,
            names: &names,
            cuts: &cuts,
            cut_index: &HashMap::default(),
            unknown,
            asked: &asked,
            recode: std::array::from_fn(|_| (0..4).collect()),
            revenue_keys: &HashMap::default(),
        };
        let t = chrono::NaiveDate::from_ymd_opt(2024, 3, 5)
            .and_then(|d| d.and_hms_opt(10, 0, 0))
            .map(|t| t.and_utc().timestamp_micros())
            .expect("date");
        let r = Rec {
            cust: 7,
            t,
            month: month_index(t).expect("month") as i32,
            kind: K_PAY,
            amount: 500,
            flags: F_AMOUNT,
            ..Rec::default()
        };
        let mut recs = vec![
            r,
            r,
            Rec {
                kind: K_REFUND,
                ..r
            },
        ];
        let mut acc = Acc::default();
        cx.part(&mut recs, &mut Fold::default(), &mut acc);
        let cell = acc.revenue.values().next().expect("one cell");
        assert_eq!(
            (cell.customers, cell.payments, cell.gross, cell.refunds),
            (1, 2, Some(1000), Some(500))
        );
        assert_eq!(acc.cohorts.get(&(r.month, 0)), Some(&1));
    }

    /// Every cell of `acc`, printed and sorted.
    fn cells(acc: &Acc) -> Vec<String> {
        let mut v: Vec<String> = acc.revenue.iter().map(|c| format!("{c:?}")).collect();
        v.extend(acc.cohorts.iter().map(|c| format!("{c:?}")));
        v.extend(acc.subs.iter().map(|c| format!("{c:?}")));
        v.extend(acc.mrr.iter().map(|c| format!("{c:?}")));
        v.sort();
        v
    }

    proptest::proptest! {
        /// A part gives the same cells whatever order its records arrived in and however
        /// it is held: one run per customer, a customer's records split over several runs,
        /// customers rows first, last or amid the transactions; the fold compacting after
        /// every few records (as it does past `COMPACT_AT` for a customer with millions);
        /// and read from a spill file and sorted on disk in runs of a few records (as a
        /// part larger than its share of memory is).
        #[test]
        fn a_part_gives_the_same_cells_in_any_order(
            recs in proptest::collection::vec(
                (0u128..4, 0u8..5, 0i64..90, 0u32..3, 1i128..1000, 0u128..3),
                0..40,
            ),
            order in proptest::collection::vec(proptest::prelude::any::<u16>(), 40),
            compact_at in 1usize..5,
            limit in 1usize..9,
            block in 1usize..6,
            recode in proptest::prelude::any::<bool>(),
        ) {
            let mut names = Interner::default();
            let unknown = names.id("unknown");
            for c in ["DE", "AT"] {
                names.id(c);
            }
            let asked = HashMap::new();
            let start = chrono::NaiveDate::from_ymd_opt(2024, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp_micros())
                .expect("date");
            let recs: Vec<Rec> = recs
                .into_iter()
                .map(|(cust, kind, day, country, amount, sub)| {
                    let t = start + day * 86_400_000_000;
                    Rec {
                        cust,
                        sub,
                        t,
                        e0: t + 30 * 86_400_000_000,
                        units: 100 + sub as i64,
                        month: month_index(t).expect("month") as i32,
                        amount,
                        currency: 1 + (sub % 2) as u32,
                        country,
                        kind,
                        flags: F_AMOUNT | F_E0 | F_UNITS | F_SUBSCRIPTION | F_SUB,
                        offer: 0,
                    }
                })
                .collect();
            // Refunds and chargebacks cut the coverage of their subscription (any customer's).
            let mut cuts: Vec<(u128, i64)> = recs
                .iter()
                .filter(|r| r.kind == K_REFUND || r.kind == K_CHARGEBACK)
                .map(|r| (r.sub, r.t))
                .collect();
            cuts.sort_unstable();
            let mut cut_index: HashMap<u128, (usize, usize), ahash::RandomState> =
                HashMap::default();
            for (i, (sub, _)) in cuts.iter().enumerate() {
                cut_index.entry(*sub).or_insert((i, 0)).1 += 1;
            }
            let cx = Context {
                last_month: 2024 * 12 + 3,
                end: start + 100 * 86_400_000_000,
                names: &names,
                cuts: &cuts,
                cut_index: &cut_index,
                unknown,
                asked: &asked,
                // Recoding (the second value of each role published as the third) is
                // applied record by record, so it commutes with the order too.
                recode: std::array::from_fn(|_| {
                    if recode { vec![0, 2, 2, 3] } else { vec![0, 1, 2, 3] }
                }),
                revenue_keys: &HashMap::default(),
            };
            // Grouped by customer (one run each: the runs are sorted); the same cut in two
            // and swapped (a customer straddling the cut has two runs, folded one after the
            // other);
            // shuffled (short runs: the records are sorted).
            let mut grouped = recs.clone();
            grouped.sort_by_key(|r| r.cust);
            let mut rotated = grouped.clone();
            rotated.rotate_left(grouped.len() / 2);
            let mut shuffled: Vec<(u16, Rec)> = order.iter().copied().zip(recs).collect();
            shuffled.sort_by_key(|(k, _)| *k);
            let mut shuffled: Vec<Rec> = shuffled.into_iter().map(|(_, r)| r).collect();
            let mut a = Acc::default();
            cx.part(&mut grouped.clone(), &mut Fold::default(), &mut a);
            for other in [&mut rotated, &mut shuffled] {
                let mut b = Acc::default();
                cx.part(other, &mut Fold::default(), &mut b);
                proptest::prop_assert_eq!(cells(&a), cells(&b));
            }
            let mut compacting = Fold { compact_at, ..Fold::default() };
            let mut b = Acc::default();
            cx.part(&mut shuffled.clone(), &mut compacting, &mut b);
            proptest::prop_assert_eq!(cells(&a), cells(&b));

            let dir = tempfile::tempdir().expect("dir");
            let path = dir.path().join("part-00000");
            let mut bytes = Vec::new();
            for b in shuffled.chunks(block) {
                spill::encode_block(b, &mut bytes);
            }
            std::fs::write(&path, &bytes).expect("write");
            let mut b = Acc::default();
            let sorted = cx
                .part_file(&path, limit, &mut Vec::new(), &mut compacting, &mut b)
                .expect("part");
            proptest::prop_assert_eq!(cells(&a), cells(&b));
            proptest::prop_assert_eq!(sorted, shuffled.len() > limit);
            // The sorted runs are removed; only the part stays.
            proptest::prop_assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
        }
    }
}
