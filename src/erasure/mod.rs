//! The right to be forgotten, as part of the nightly run.
//!
//! Tax and audit law keep transactions; GDPR Art. 17 and CCPA deletion take the person out
//! of them. Before any table is transformed, [`prepare`] reads the suppression ledger
//! (fail closed), validates the requests file ([`requests`]), matches each request's
//! normalized email to customers (keyed hashes in the `anonymizer/erasure` domain, never
//! plaintext), and builds a [`Plan`]. The transform then applies it to every record-level
//! table (see [`Plan::table_effect`]):
//!
//! - `anonymize`: the customer's rows leave profile tables (tables with a customer key or
//!   email but no event time, such as `customers`); in event tables (`transactions`) the
//!   rows stay but every pseudonymized column (customer, email, subscription, ... tokens)
//!   becomes null, so the rows link neither to each other nor to the person;
//! - `delete`: the customer's rows leave every record-level table.
//!
//! Aggregates are computed from the export itself and still count everyone: anonymous
//! statistics are lawful (GDPR Art. 17(3)(b) and (d); CCPA's aggregate consumer
//! information). Every run erases again everyone in the ledger, so a customer stays erased
//! though the export keeps them. One receipt per request is published
//! (`erasure_receipts/`, `erasure_receipts.json`), holding no personal data.

pub mod ledger;
pub mod requests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::NaiveDate;
use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Int8Builder, Int64Array, RecordBatch, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{SessionContext, ident, lit};

use crate::error::Error;
use crate::key::Key;
use crate::policy::{Policy, Role, TablePolicy};
use crate::rules::generalize::date_to_days;
use crate::rules::pseudonymize::{Pseudonymizer, digest_of_token, for_each_digest_run};
use crate::rules::{Normalize, Rule};
use ledger::{Entry, Ledger};
use requests::{Jurisdiction, Kind};

/// Erased customers' ids or emails, as the digests of their `anonymizer/erasure` tokens
/// ([`Pseudonymizer::digest`]), with what happens to their rows: looked up once per run of
/// equal values of every row of the export, so without building the token's text.
type Erased = HashMap<u128, State, ahash::RandomState>;

/// The tokens the output would hold for erased customers: what the gate must not find.
pub type TokenSet = HashSet<String, ahash::RandomState>;

/// A digest as its token's text.
fn token_text(d: u128) -> String {
    format!("{d:032x}")
}

/// What happens to one customer's rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i8)]
pub enum State {
    Keep = 0,
    Anonymize = 1,
    Delete = 2,
}

/// The outcome of one request, for its receipt.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Receipt {
    pub request_id: Option<String>,
    /// completed | not_found | invalid | already_erased
    pub status: &'static str,
    pub reason: Option<String>,
    pub jurisdiction: Option<&'static str>,
    pub kind: Option<&'static str>,
    pub customers_matched: i64,
    pub transactions_kept_anonymized: i64,
    pub transactions_removed: i64,
    pub received_at: Option<NaiveDate>,
    pub due_at: Option<NaiveDate>,
    pub days_elapsed: Option<i64>,
    pub overdue: bool,
    pub completed_at: Option<NaiveDate>,
    pub active_entitlement: bool,
    pub explained: Option<bool>,
    /// The row of the requests file (for support; not personal data).
    pub row: usize,
    /// The line of the requests file the request starts on (in `attention:` lines only).
    #[serde(skip)]
    pub line: usize,
    #[serde(skip)]
    matched: Vec<Matched>,
}

/// A customer a request matched: erasure-domain token, and the analytics token (to look
/// up an active subscription).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Matched {
    token: String,
    analytics: String,
}

/// The erasure work of one run.
#[derive(Debug, Default)]
pub struct Plan {
    /// Erasure enabled (a ledger is configured).
    pub enabled: bool,
    pub ledger_path: Option<PathBuf>,
    /// The ledger with this run's new entries, stored just before publishing.
    pub ledger: Option<Ledger>,
    /// New ledger entries of this run.
    pub new_entries: usize,
    /// Requests this run carried out (`completed` receipts that no earlier run's ledger
    /// entry honoured, a delete that upgrades an anonymized customer included); the other
    /// `completed` receipts are requests the file still holds, read again.
    pub completed_now: usize,
    customers: Erased,
    emails: Erased,
    pub receipts: Vec<Receipt>,
    pub requests_file: Option<PathBuf>,
    /// What erasure did to each record-level table's rows (filled in by the transform).
    pub rows: BTreeMap<String, crate::manifest::ErasureRows>,
    /// The policy's `[erasure] requests` when no such file exists: no request was read.
    /// Not an error (`anonymizer erase` creates the file with the first request), but said
    /// on every run, since a mistyped path would otherwise skip requests that have
    /// deadlines.
    pub requests_missing: Option<PathBuf>,
}

/// What erasure does to one table's rows.
#[derive(Debug, Clone)]
pub struct TableEffect {
    /// Computes the row's [`State`] (Int8).
    pub state: Expr,
    /// A profile table (no event time): anonymized customers' rows are removed too.
    pub profile: bool,
    /// Rows the state was computed for, by state (the UDF counts as it goes).
    counts: Arc<StateCounts>,
}

/// Rows of one table whose erasure state was computed, and how many of them were of each
/// erasing state.
#[derive(Debug, Default)]
struct StateCounts {
    checked: AtomicU64,
    anonymize: AtomicU64,
    delete: AtomicU64,
}

impl TableEffect {
    /// What the state did to the rows read so far: the manifest's evidence that every row
    /// read was checked. The state is computed once per row read (pinned by a test that
    /// compares `rows_checked` with the rows read), so these are exact.
    pub fn rows(&self) -> crate::manifest::ErasureRows {
        let c = &self.counts;
        let (anonymize, delete) = (
            c.anonymize.load(Ordering::Relaxed),
            c.delete.load(Ordering::Relaxed),
        );
        crate::manifest::ErasureRows {
            rows_checked: c.checked.load(Ordering::Relaxed),
            // A profile table keeps only customers erased by nobody.
            rows_anonymized: if self.profile { 0 } else { anonymize },
            rows_removed: if self.profile {
                anonymize + delete
            } else {
                delete
            },
        }
    }
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.customers.is_empty() && self.emails.is_empty()
    }

    /// Customers erased in this run's output (the ledger's and this run's).
    pub fn customers_erased(&self) -> usize {
        self.customers.len()
    }

    /// How erasure applies to `table`: `None` when nobody is erased or the table maps
    /// neither customer_key nor email.
    pub fn table_effect(&self, table: &TablePolicy, key: &Key) -> Option<TableEffect> {
        if self.is_empty() {
            return None;
        }
        let kc = table.role(Role::CustomerKey);
        let ec = table.role(Role::Email);
        if kc.is_none() && ec.is_none() {
            return None;
        }
        let mut state = StateUdf::new(
            key,
            Arc::new(self.customers.clone()),
            Arc::new(self.emails.clone()),
        );
        let counts = Arc::new(StateCounts::default());
        state.counts = counts.clone();
        let udf = ScalarUDF::from(state);
        let arg = |c: Option<&str>| c.map(ident).unwrap_or(lit(ScalarValue::Utf8(None)));
        Some(TableEffect {
            state: udf.call(vec![arg(kc), arg(ec)]),
            profile: table.role(Role::EventTime).is_none(),
            counts,
        })
    }
}

/// Wraps the rule expressions of a table with its erasure effect: returns the filter to
/// apply on the `__erasure` column and the new output expressions.
pub fn apply_effect(
    table: &TablePolicy,
    exprs: Vec<Expr>,
    effect: &TableEffect,
) -> (Expr, Vec<Expr>) {
    let state = ident("__erasure");
    let keep = if effect.profile {
        state.clone().eq(lit(State::Keep as i8))
    } else {
        state.clone().not_eq(lit(State::Delete as i8))
    };
    // Every token, every value derived from the person that could tie their rows
    // together or to what was published of them before (a /48 network, a masked phone,
    // scrubbed text, a postal prefix), and whatever column holds the customer, email or
    // subscription even if the policy keeps it as is.
    let mut linking: HashSet<&str> = table
        .columns
        .iter()
        .filter(|c| {
            matches!(
                c.rule,
                Rule::Pseudonymize { .. }
                    | Rule::Mask { .. }
                    | Rule::Scrub { .. }
                    | Rule::Generalize(
                        crate::rules::Generalization::Network { .. }
                            | crate::rules::Generalization::Prefix { .. }
                    )
            )
        })
        .map(|c| c.name.as_str())
        .collect();
    for r in [Role::CustomerKey, Role::Email, Role::SubscriptionId] {
        linking.extend(table.role(r));
    }
    let out = exprs
        .into_iter()
        .map(|e| {
            let name = e.schema_name().to_string();
            if !effect.profile && linking.contains(name.as_str()) {
                let inner = match e {
                    Expr::Alias(a) => *a.expr,
                    other => other,
                };
                datafusion::logical_expr::when(
                    state.clone().eq(lit(State::Anonymize as i8)),
                    lit(ScalarValue::Null),
                )
                .otherwise(inner)
                .expect("a CASE with one branch")
                .alias(name)
            } else {
                e
            }
        })
        .collect();
    (keep, out)
}

/// `anon_erasure_state(customer_key, email)` -> Int8: the stronger of the states the
/// ledger and this run's requests give the row's customer id and normalized email.
#[derive(Debug)]
struct StateUdf {
    p: Pseudonymizer,
    customers: Arc<Erased>,
    emails: Arc<Erased>,
    signature: Signature,
    counts: Arc<StateCounts>,
}

impl PartialEq for StateUdf {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.customers, &o.customers) && Arc::ptr_eq(&self.emails, &o.emails)
    }
}
impl Eq for StateUdf {}
impl std::hash::Hash for StateUdf {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.customers.len().hash(h);
        self.emails.len().hash(h);
    }
}

impl StateUdf {
    fn new(key: &Key, customers: Arc<Erased>, emails: Arc<Erased>) -> Self {
        StateUdf {
            p: Pseudonymizer::new(key, Some(ledger::DOMAIN)),
            customers,
            emails,
            counts: Arc::default(),
            // Deterministic, but declared volatile so that the optimizer computes it
            // once per row: an immutable expression is copied into the filter that
            // pushes below the `__erasure` projection, and the state was then computed
            // twice per row (once to drop deleted customers, once to null the tokens).
            signature: Signature::any(2, Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for StateUdf {
    fn name(&self) -> &str {
        "anon_erasure_state"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Int8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let n = args.number_rows;
        let mut state = vec![State::Keep; n];
        for (i, (arg, map, normalize)) in [
            (&args.args[0], &self.customers, Normalize::Trim),
            (&args.args[1], &self.emails, Normalize::Email),
        ]
        .into_iter()
        .enumerate()
        {
            if map.is_empty() || matches!(arg, ColumnarValue::Scalar(s) if s.is_null()) {
                continue;
            }
            let array = arg.to_array(n)?;
            let mut row = 0;
            for_each_digest_run(&self.p, &array, normalize, |d, len| {
                if let Some(s) = d.and_then(|d| map.get(&d)) {
                    for st in &mut state[row..row + len] {
                        *st = (*st).max(*s);
                    }
                }
                row += len;
            })
            .map_err(|e| {
                datafusion::error::DataFusionError::Execution(format!(
                    "erasure: argument {}: {e}",
                    i + 1
                ))
            })?;
        }
        let mut b = Int8Builder::with_capacity(n);
        let (mut anonymize, mut delete) = (0, 0);
        for s in state {
            anonymize += u64::from(s == State::Anonymize);
            delete += u64::from(s == State::Delete);
            b.append_value(s as i8);
        }
        let c = &self.counts;
        c.checked.fetch_add(n as u64, Ordering::Relaxed);
        c.anonymize.fetch_add(anonymize, Ordering::Relaxed);
        c.delete.fetch_add(delete, Ordering::Relaxed);
        Ok(ColumnarValue::Array(Arc::new(b.finish())))
    }
}

/// Tokens of a column (strings normalized, integers through their decimal text), one
/// per row: for the few rows a scan found (whole columns go through
/// [`for_each_digest_run`]).
fn token_strings(
    p: &Pseudonymizer,
    array: &ArrayRef,
    normalize: Normalize,
) -> DfResult<Vec<Option<String>>> {
    let mut out = Vec::with_capacity(array.len());
    for_each_digest_run(p, array, normalize, |d, n| {
        out.extend(std::iter::repeat_n(d.map(token_text), n))
    })?;
    Ok(out)
}

/// The runs of equal values of `array` whose digest `hit` picks, as (first row, rows,
/// digest).
fn digest_hits(
    p: &Pseudonymizer,
    array: &ArrayRef,
    normalize: Normalize,
    mut hit: impl FnMut(u128) -> bool,
) -> DfResult<Vec<(usize, usize, u128)>> {
    let (mut hits, mut row) = (Vec::new(), 0);
    for_each_digest_run(p, array, normalize, |d, n| {
        if let Some(d) = d
            && hit(d)
        {
            hits.push((row, n, d));
        }
        row += n;
    })?;
    Ok(hits)
}

fn err(message: String) -> Error {
    Error::Erasure(message)
}

/// A missing ledger is an empty one (the first run) only while nothing published says
/// otherwise. When `published` (a run folder: `OUT/current` for `run`, the folder checked
/// for `verify`) was made with ledger entries, the ledger was lost (a path edited, a
/// restore or a new host without it), and going on would publish everyone erased before
/// again (`run`) or pass them unchecked (`verify`): an error, unless `new_ledger`. So is
/// a ledger with fewer entries than the published run was made with (entries are never
/// removed): an older copy, restored from a backup taken before the last run, or edited.
pub fn check_ledger_present(
    ledger: &Path,
    published: Option<&Path>,
    new_ledger: bool,
) -> Result<(), Error> {
    if new_ledger {
        return Ok(());
    }
    let Some(run) = published else {
        return Ok(());
    };
    let held = if std::fs::symlink_metadata(ledger).is_ok() {
        match ledger_entries(ledger) {
            Some(n) => Some(n),
            // Unreadable or malformed: the ledger's own reader says what is wrong.
            None => return Ok(()),
        }
    } else {
        None
    };
    let manifest = run.join("_manifest.json");
    let entries = std::fs::read(&manifest)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|m| m["erasure"]["ledger_entries"].as_u64().unwrap_or(0));
    let lost = |what: String| {
        err(format!(
            "the suppression ledger {} is missing, but {what}: without it, every customer \
             erased before would be published again\n  restore the ledger (from a backup, or \
             correct [erasure] ledger in the policy); to start a new, empty ledger on purpose, \
             pass --new-ledger",
            ledger.display()
        ))
    };
    match (held, entries) {
        (None, Some(0)) => Ok(()),
        (None, Some(n)) => Err(lost(format!(
            "the published run {} was made with {n} ledger entries",
            run.display()
        ))),
        (None, None) => Err(lost(format!(
            "{} cannot be read to tell whether the published run had any",
            manifest.display()
        ))),
        (Some(h), Some(n)) if h < n => Err(err(format!(
            "the suppression ledger {} holds {h} entries, but the published run {} was made \
             with {n}: it is an older copy (restored from a backup taken before the last run) \
             or was edited, and entries are never removed; going on would publish again every \
             customer erased since\n  restore the newest ledger (the one the last run wrote); \
             to go on with this one on purpose, pass --new-ledger",
            ledger.display(),
            run.display()
        ))),
        // An unreadable manifest does not make an existing ledger suspect.
        (Some(_), _) => Ok(()),
    }
}

/// How many entries the ledger file at `path` holds, without checking them (`None`
/// when it cannot be read or parsed: [`Ledger::load`] reports that).
fn ledger_entries(path: &Path) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Count {
        entries: Vec<serde::de::IgnoredAny>,
    }
    let bytes = std::fs::read(path).ok()?;
    let c: Count = serde_json::from_slice(&bytes).ok()?;
    Some(c.entries.len() as u64)
}

/// Reads the ledger and the requests, matches requests to customers, and plans the
/// erasure of this run. `requests_override` is `anonymizer run --requests FILE`.
pub async fn prepare(
    ctx: &SessionContext,
    policy: &Policy,
    key: &Key,
    as_of: Option<NaiveDate>,
    requests_override: Option<&Path>,
) -> Result<Plan, Error> {
    let Some(ledger_path) = policy.erasure.ledger.clone() else {
        if let Some(r) = requests_override {
            return Err(Error::Usage(format!(
                "--requests {} needs a suppression ledger: add [erasure] ledger = \"erasure-ledger.json\" to the policy",
                r.display()
            )));
        }
        return Ok(Plan::default());
    };
    let mut ledger = Ledger::load(&ledger_path, &key.id())?;
    let mut plan = Plan {
        enabled: true,
        ledger_path: Some(ledger_path),
        ..Default::default()
    };

    // Requests.
    let file = match requests_override {
        Some(f) => {
            if !f.exists() {
                return Err(Error::Usage(format!(
                    "--requests {}: no such file\n  check the path (relative paths start at the current folder); \
                     without --requests the run reads the policy's [erasure] requests",
                    f.display()
                )));
            }
            Some(f.to_path_buf())
        }
        None => match policy.erasure.requests.clone() {
            Some(f) if f.exists() => Some(f),
            missing => {
                plan.requests_missing = missing;
                None
            }
        },
    };
    plan.requests_file = file.clone();
    let parsed = match (&file, as_of) {
        (Some(f), Some(d)) => requests::parse_file(f, d).map_err(|e| err(e.to_string()))?,
        (Some(_), None) => {
            return Err(Error::Usage(
                "erasure requests need an as-of date, and no table maps event_time; pass --as-of YYYY-MM-DD".into(),
            ));
        }
        (None, _) => requests::Parsed::default(),
    };
    let as_of_date = as_of.unwrap_or_default();
    let email_p = Pseudonymizer::new(key, Some(ledger::DOMAIN));
    let email_token = |e: &str| email_p.token_str(e, Normalize::Email);

    // Match the valid requests' emails to customers of every table mapping both
    // customer_key and email.
    let wanted: HashSet<u128, ahash::RandomState> = parsed
        .valid
        .iter()
        .map(|r| email_p.digest_str(&r.email, Normalize::Email))
        .collect();
    let EmailMatches {
        customers: matches,
        rows: email_rows,
    } = match_emails(ctx, policy, key, &wanted).await?;
    let counts = event_counts(ctx, policy, key, &matches).await?;

    // Email hash -> the as-of date it was first erased at; and (email hash, request id,
    // kind) -> the as-of date of the run that honoured that request: a request the
    // requests file still holds (until `erase --prune`) is read by every later run, and
    // its receipt stays the same, `completed` at that date.
    let mut ledger_emails: HashMap<String, NaiveDate> = HashMap::new();
    let mut honoured: HashMap<(String, String, String), NaiveDate> = HashMap::new();
    for e in &ledger.entries {
        let d = e.erased_as_of.parse().unwrap_or(as_of_date);
        for slot in [
            ledger_emails.entry(e.email.clone()).or_insert(d),
            honoured
                .entry((e.email.clone(), e.request_id.clone(), e.kind.clone()))
                .or_insert(d),
        ] {
            *slot = (*slot).min(d);
        }
    }
    // (email hash, customer token) pairs the ledger already erases by deletion: a delete
    // request for them records nothing new (else every run that still reads the request
    // would append it to the ledger again).
    let mut deleted: HashSet<(String, String)> = ledger
        .entries
        .iter()
        .filter(|e| e.kind == Kind::Delete.as_str())
        .map(|e| (e.email.clone(), e.customer.clone().unwrap_or_default()))
        .collect();
    let mut done_in_batch: HashMap<String, String> = HashMap::new();
    let mut receipts: Vec<Receipt> = Vec::new();
    for r in &parsed.valid {
        let et = email_token(&r.email);
        let matched: Vec<Matched> = matches
            .get(&et)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let honoured_at = honoured
            .get(&(
                et.clone(),
                r.request_id.clone(),
                r.kind.as_str().to_string(),
            ))
            .copied();
        let (mut status, mut reason) = if honoured_at.is_some() {
            // Honoured by an earlier run (or by a run that wrote the ledger and was
            // stopped before publishing): the same receipt as that run's.
            ("completed", None)
        } else if ledger_emails.contains_key(&et) {
            (
                "already_erased",
                Some("erased by an earlier run (in the suppression ledger)".to_string()),
            )
        } else if let Some(first) = done_in_batch.get(&et) {
            (
                "already_erased",
                Some(format!("erased by request {first} of this batch")),
            )
        } else if matched.is_empty() && !email_rows.contains(&et) {
            (
                "not_found",
                Some(
                    "no row of the export has this email; check the address with the customer"
                        .to_string(),
                ),
            )
        } else {
            ("completed", None)
        };
        // A request for an email already erased (earlier run or this batch) records only
        // an upgrade to delete: delete is stronger than anonymize.
        let record = (status == "completed" && honoured_at.is_none())
            || (status == "already_erased" && r.kind == Kind::Delete);
        if status == "completed" {
            done_in_batch
                .entry(et.clone())
                .or_insert(r.request_id.clone());
        }
        if record {
            let before = plan.new_entries;
            // Rows with the email but no customer id (a guest checkout, a table without
            // customer ids): one entry for the email alone, which erases them.
            let customers: Vec<Option<&str>> = if matched.is_empty() {
                vec![None]
            } else {
                matched.iter().map(|m| Some(m.token.as_str())).collect()
            };
            for customer in customers {
                let pair = (et.clone(), customer.unwrap_or_default().to_string());
                if r.kind == Kind::Delete && !deleted.insert(pair) {
                    continue;
                }
                ledger.entries.push(Entry {
                    email: et.clone(),
                    customer: customer.map(str::to_string),
                    request_id: r.request_id.clone(),
                    kind: r.kind.as_str().to_string(),
                    erased_as_of: as_of_date.to_string(),
                });
                plan.new_entries += 1;
            }
            // A delete request that upgrades an anonymized customer to deleted is carried
            // out by this run: completed (and so on every later run that reads it).
            if status == "already_erased" && plan.new_entries > before {
                (status, reason) = ("completed", None);
            }
        }
        if status == "completed" && honoured_at.is_none() {
            plan.completed_now += 1;
        }
        let due = requests::due_date(r.jurisdiction, r.received_at);
        let completed = match status {
            "completed" => Some(honoured_at.unwrap_or(as_of_date)),
            "already_erased" => Some(ledger_emails.get(&et).copied().unwrap_or(as_of_date)),
            _ => None,
        };
        receipts.push(Receipt {
            request_id: Some(r.request_id.clone()),
            status,
            reason,
            jurisdiction: Some(r.jurisdiction.as_str()),
            kind: Some(r.kind.as_str()),
            customers_matched: matched.len() as i64,
            // Set below, once every request's kind is known.
            transactions_kept_anonymized: 0,
            transactions_removed: 0,
            received_at: Some(r.received_at),
            due_at: Some(due),
            days_elapsed: Some((as_of_date - r.received_at).num_days()),
            overdue: completed.unwrap_or(as_of_date) > due,
            completed_at: completed,
            active_entitlement: false,
            explained: Some(r.explained),
            row: r.row,
            line: r.line,
            matched,
        });
    }
    // What the run does to each matched customer's transactions: removed when any
    // request (of this batch or an earlier run) deletes them, else kept anonymized. An
    // anonymize receipt for someone a later delete upgraded says they were removed.
    let deleting: HashSet<&str> = ledger
        .entries
        .iter()
        .filter(|e| e.kind == Kind::Delete.as_str())
        .filter_map(|e| e.customer.as_deref())
        .collect();
    for receipt in &mut receipts {
        let (kept, removed) = receipt.matched.iter().fold((0, 0), |(k, d), m| {
            let n = counts.get(&m.token).copied().unwrap_or(0);
            if deleting.contains(m.token.as_str()) {
                (k, d + n)
            } else {
                (k + n, d)
            }
        });
        receipt.transactions_kept_anonymized = kept;
        receipt.transactions_removed = removed;
    }
    for i in &parsed.invalid {
        // The jurisdiction of an invalid row is said but not trusted for the deadline:
        // the shorter GDPR one.
        let due = i
            .received_at
            .map(|d| requests::due_date(Jurisdiction::Gdpr, d));
        receipts.push(Receipt {
            request_id: i.request_id.clone(),
            status: "invalid",
            reason: Some(i.reason.clone()),
            jurisdiction: i.jurisdiction.map(Jurisdiction::as_str),
            kind: i.kind.map(Kind::as_str),
            customers_matched: 0,
            transactions_kept_anonymized: 0,
            transactions_removed: 0,
            received_at: i.received_at,
            due_at: due,
            days_elapsed: i.received_at.map(|d| (as_of_date - d).num_days()),
            overdue: due.is_some_and(|d| as_of_date > d),
            completed_at: None,
            active_entitlement: false,
            explained: i.explained,
            row: i.row,
            line: i.line,
            matched: vec![],
        });
    }
    receipts.sort_by_key(|r| r.row);
    plan.receipts = receipts;
    plan.erase_ledger(ledger)?;
    Ok(plan)
}

impl Plan {
    /// The plan that only re-erases the ledger's customers (no requests): what
    /// `anonymizer verify` needs to check that none of them is published.
    pub fn from_ledger(path: &Path, key: &Key) -> Result<Plan, Error> {
        let mut plan = Plan {
            enabled: true,
            ledger_path: Some(path.to_path_buf()),
            ..Default::default()
        };
        plan.erase_ledger(Ledger::load(path, &key.id())?)?;
        Ok(plan)
    }

    /// Everyone in the ledger is erased; delete is stronger than anonymize.
    fn erase_ledger(&mut self, ledger: Ledger) -> Result<(), Error> {
        for (i, e) in ledger.entries.iter().enumerate() {
            let s = if e.kind == "delete" {
                State::Delete
            } else {
                State::Anonymize
            };
            // Ledger::load checked every entry; this run's entries are tokens it made.
            let digest = |t: &str, what: &str| {
                digest_of_token(t).ok_or_else(|| {
                    err(format!(
                        "ledger entry {}: the {what} hash is not a token",
                        i + 1
                    ))
                })
            };
            let slot = self.emails.entry(digest(&e.email, "email")?).or_insert(s);
            *slot = (*slot).max(s);
            if let Some(c) = &e.customer {
                let slot = self.customers.entry(digest(c, "customer")?).or_insert(s);
                *slot = (*slot).max(s);
            }
        }
        self.ledger = Some(ledger);
        Ok(())
    }
}

/// What the requests' emails matched in the export.
#[derive(Default)]
struct EmailMatches {
    /// Email token -> the customers (tokens) whose email it is, over every table mapping
    /// both customer_key and email.
    customers: BTreeMap<String, BTreeSet<Matched>>,
    /// Email tokens found in any row of any table mapping email, with a customer id or
    /// not (a guest checkout, a newsletter list without customer ids).
    rows: BTreeSet<String>,
}

/// Matches the requests' emails (`wanted`) against every table mapping the email role.
async fn match_emails(
    ctx: &SessionContext,
    policy: &Policy,
    key: &Key,
    wanted: &HashSet<u128, ahash::RandomState>,
) -> Result<EmailMatches, Error> {
    let mut out = EmailMatches::default();
    if wanted.is_empty() {
        return Ok(out);
    }
    let erasure_p = Pseudonymizer::new(key, Some(ledger::DOMAIN));
    let analytics_p = Pseudonymizer::new(key, None);
    type Found = (BTreeMap<String, BTreeSet<Matched>>, BTreeSet<String>);
    for table in &policy.tables {
        let Some(ec) = table.role(Role::Email) else {
            continue;
        };
        let kc = table.role(Role::CustomerKey);
        let columns: Vec<&str> = kc.into_iter().chain([ec]).collect();
        let found = scan(ctx, table, &columns, Found::default, |(found, rows), b| {
            let emails = b.column(columns.len() - 1);
            let hits = digest_hits(&erasure_p, emails, Normalize::Email, |d| {
                wanted.contains(&d)
            })
            .map_err(|e| err(format!("table {}, column {ec}: {e}", table.name)))?;
            // Only the rows whose email a request names have their customer id hashed.
            for (start, n, email) in hits {
                rows.insert(token_text(email));
                let Some(kc) = kc else {
                    continue;
                };
                let keys = b.column(0).slice(start, n);
                let tok = token_strings(&erasure_p, &keys, Normalize::Trim)
                    .map_err(|e| err(format!("table {}, column {kc}: {e}", table.name)))?;
                let ana = token_strings(&analytics_p, &keys, Normalize::Trim)
                    .map_err(|e| err(format!("table {}, column {kc}: {e}", table.name)))?;
                for (t, a) in tok.into_iter().zip(ana) {
                    if let (Some(token), Some(analytics)) = (t, a) {
                        found
                            .entry(token_text(email))
                            .or_insert_with(BTreeSet::new)
                            .insert(Matched { token, analytics });
                    }
                }
            }
            Ok(())
        })
        .await?;
        for (customers, rows) in found {
            for (email, matched) in customers {
                out.customers.entry(email).or_default().extend(matched);
            }
            out.rows.extend(rows);
        }
    }
    Ok(out)
}

/// [`crate::run::scan_chunks`] of `columns` of `table`, on every core, with read errors
/// worded for the erasure.
async fn scan<S: Send>(
    ctx: &SessionContext,
    table: &TablePolicy,
    columns: &[&str],
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, RecordBatch) -> Result<(), Error> + Sync,
) -> Result<Vec<S>, Error> {
    crate::run::scan_chunks(ctx, table, columns, init, f, |file, e| {
        err(format!(
            "table {}, file {}: cannot read {}: {e}",
            table.name,
            file.display(),
            columns.join(", "),
        ))
    })
    .await
}

/// Customer token -> rows of event tables (tables with event_time) for the matched
/// customers.
async fn event_counts(
    ctx: &SessionContext,
    policy: &Policy,
    key: &Key,
    matches: &BTreeMap<String, BTreeSet<Matched>>,
) -> Result<HashMap<String, i64>, Error> {
    let wanted: HashSet<u128, ahash::RandomState> = matches
        .values()
        .flatten()
        .filter_map(|m| digest_of_token(&m.token))
        .collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let mut out: HashMap<u128, i64> = HashMap::new();
    let p = Pseudonymizer::new(key, Some(ledger::DOMAIN));
    for table in &policy.tables {
        let (Some(kc), Some(_)) = (table.role(Role::CustomerKey), table.role(Role::EventTime))
        else {
            continue;
        };
        let counts = scan(ctx, table, &[kc], HashMap::new, |counts, b| {
            for (_, n, d) in digest_hits(&p, b.column(0), Normalize::Trim, |d| wanted.contains(&d))
                .map_err(|e| err(format!("table {}, column {kc}: {e}", table.name)))?
            {
                *counts.entry(d).or_insert(0) += n as i64;
            }
            Ok(())
        })
        .await?;
        for (d, n) in counts.into_iter().flatten() {
            *out.entry(d).or_insert(0) += n;
        }
    }
    Ok(out.into_iter().map(|(d, n)| (token_text(d), n)).collect())
}

impl Plan {
    /// The tokens the record-level tables would publish for the erased customers (their
    /// customer_key and email columns under each column's pseudonymize rule): the privacy
    /// gate checks that none of them is published.
    pub async fn published_tokens(
        &self,
        ctx: &SessionContext,
        policy: &Policy,
        key: &Key,
    ) -> Result<TokenSet, Error> {
        let mut out = TokenSet::default();
        if self.is_empty() {
            return Ok(out);
        }
        let erasure_p = Pseudonymizer::new(key, Some(ledger::DOMAIN));
        for table in &policy.tables {
            for (role, normalize, erased) in [
                (Role::CustomerKey, Normalize::Trim, &self.customers),
                (Role::Email, Normalize::Email, &self.emails),
            ] {
                let Some(col) = table.role(role) else {
                    continue;
                };
                let Some(Rule::Pseudonymize {
                    normalize: rule_norm,
                    domain,
                }) = table.rule_of(col)
                else {
                    continue;
                };
                let published_p = Pseudonymizer::new(key, domain.as_deref());
                let rule_norm = *rule_norm;
                let context = |e| err(format!("table {}, column {col}: {e}", table.name));
                let found = scan(ctx, table, &[col], TokenSet::default, |found, b| {
                    let hits = digest_hits(&erasure_p, b.column(0), normalize, |d| {
                        erased.contains_key(&d)
                    })
                    .map_err(context)?;
                    // A run is of equal values: its first row's token is every row's.
                    for (start, _, _) in hits {
                        let first = b.column(0).slice(start, 1);
                        let published =
                            token_strings(&published_p, &first, rule_norm).map_err(context)?;
                        found.extend(published.into_iter().flatten());
                    }
                    Ok(())
                })
                .await?;
                out.extend(found.into_iter().flatten());
            }
        }
        Ok(out)
    }

    /// The analytics tokens of every customer a completed request matched (to check for
    /// an active subscription at the as-of date).
    pub fn matched_analytics_tokens(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .receipts
            .iter()
            .flat_map(|r| r.matched.iter().map(|m| m.analytics.clone()))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Flags the receipts whose customers have an active subscription at the as-of date.
    pub fn set_active(&mut self, active: &HashSet<String>) {
        for r in &mut self.receipts {
            r.active_entitlement = r.matched.iter().any(|m| active.contains(&m.analytics));
        }
    }

    /// The receipts as a table.
    pub fn receipts_batch(&self) -> RecordBatch {
        let r = &self.receipts;
        let text = |f: &dyn Fn(&Receipt) -> Option<String>| -> ArrayRef {
            Arc::new(r.iter().map(f).collect::<StringArray>())
        };
        let int = |f: &dyn Fn(&Receipt) -> i64| -> ArrayRef {
            Arc::new(r.iter().map(f).collect::<Int64Array>())
        };
        let date = |f: &dyn Fn(&Receipt) -> Option<NaiveDate>| -> ArrayRef {
            Arc::new(
                r.iter()
                    .map(|x| f(x).map(date_to_days))
                    .collect::<Date32Array>(),
            )
        };
        let boolean = |f: &dyn Fn(&Receipt) -> Option<bool>| -> ArrayRef {
            Arc::new(r.iter().map(f).collect::<BooleanArray>())
        };
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("request_id", text(&|x| x.request_id.clone())),
            ("status", text(&|x| Some(x.status.to_string()))),
            ("reason", text(&|x| x.reason.clone())),
            (
                "jurisdiction",
                text(&|x| x.jurisdiction.map(str::to_string)),
            ),
            ("kind", text(&|x| x.kind.map(str::to_string))),
            ("customers_matched", int(&|x| x.customers_matched)),
            (
                "transactions_kept_anonymized",
                int(&|x| x.transactions_kept_anonymized),
            ),
            ("transactions_removed", int(&|x| x.transactions_removed)),
            ("received_at", date(&|x| x.received_at)),
            ("due_at", date(&|x| x.due_at)),
            (
                "days_elapsed",
                Arc::new(r.iter().map(|x| x.days_elapsed).collect::<Int64Array>()),
            ),
            ("overdue", boolean(&|x| Some(x.overdue))),
            ("completed_at", date(&|x| x.completed_at)),
            (
                "active_entitlement",
                boolean(&|x| Some(x.active_entitlement)),
            ),
            ("explained", boolean(&|x| x.explained)),
            ("row", int(&|x| x.row as i64)),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .expect("receipt columns have equal lengths")
    }

    /// The receipts as JSON (an array, in the requests file's order).
    pub fn receipts_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(&self.receipts).expect("receipts serialize");
        v.push(b'\n');
        v
    }

    /// What support needs about requests that did not complete in time or at all: one
    /// line each, without personal data.
    pub fn attention(&self) -> Vec<String> {
        let missing = self.requests_missing.iter().map(|f| {
            format!(
                "no erasure requests read: the policy's [erasure] requests file {} does not exist \
                 (`anonymizer erase` creates it with the first request; if requests were sent, check the path)",
                f.display()
            )
        });
        missing.chain(self.requests_attention()).collect()
    }

    fn requests_attention(&self) -> impl Iterator<Item = String> + '_ {
        self.receipts
            .iter()
            .filter(|r| matches!(r.status, "not_found" | "invalid") || r.overdue)
            .map(|r| {
                let what = match (r.status, &r.reason) {
                    ("completed", _) | ("already_erased", _) => format!(
                        "overdue: completed {} after the due date {}",
                        r.completed_at.map(|d| d.to_string()).unwrap_or_default(),
                        r.due_at.map(|d| d.to_string()).unwrap_or_default()
                    ),
                    (s, Some(reason)) => {
                        format!("{s}: {reason}{}", if r.overdue { " (overdue)" } else { "" })
                    }
                    (s, None) => s.to_string(),
                };
                format!(
                    "erasure request {} (row {}, line {} of the file, received {}, explained: {}): {what}",
                    r.request_id.as_deref().unwrap_or("<no id>"),
                    r.row,
                    r.line,
                    r.received_at
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "<unknown>".into()),
                    match r.explained {
                        Some(true) => "yes",
                        Some(false) => "no",
                        None => "unknown",
                    },
                )
            })
    }

    /// Counts per status.
    pub fn summary(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for r in &self.receipts {
            *m.entry(r.status).or_insert(0) += 1;
        }
        m
    }
}

/// `anonymizer erase`: one request for the pending requests file.
#[derive(Debug, Clone)]
pub struct EraseOptions {
    pub config: PathBuf,
    pub email: String,
    pub received: NaiveDate,
    pub jurisdiction: String,
    pub kind: String,
    pub explained: bool,
    pub note: Option<String>,
    pub request_id: Option<String>,
}

/// Validates one request and appends it to the policy's `[erasure] requests` file (JSON
/// Lines, or CSV when the file ends in .csv). Returns the request id and the file.
pub fn append_request(o: &EraseOptions) -> Result<(String, PathBuf), Error> {
    let raw = crate::policy::raw::RawPolicy::from_file(&o.config)?;
    let Some(file) = raw.erasure.requests else {
        return Err(Error::Usage(format!(
            "{} has no [erasure] requests file; add [erasure] requests = \"erasure-requests.jsonl\" and ledger = \"erasure-ledger.json\"",
            o.config.display()
        )));
    };
    let email = requests::normalize_email(&o.email);
    if !requests::valid_email(&email) {
        return Err(Error::Usage(
            "--email is not a valid email address (the address is not repeated here)".into(),
        ));
    }
    let j = Jurisdiction::parse(&o.jurisdiction).ok_or_else(|| {
        Error::Usage(format!(
            "--jurisdiction '{}' is unknown; use GDPR, CCPA or OTHER",
            o.jurisdiction
        ))
    })?;
    let k = Kind::parse(&o.kind).ok_or_else(|| {
        Error::Usage(format!(
            "--kind '{}' is unknown; use anonymize or delete",
            o.kind
        ))
    })?;
    let id = match &o.request_id {
        Some(id) => id.clone(),
        None => {
            let mut r = [0u8; 3];
            rand::Rng::fill(&mut rand::rng(), &mut r);
            format!(
                "erase-{}-{}",
                chrono::Utc::now().format("%Y%m%dT%H%M%S"),
                hex::encode(r)
            )
        }
    };
    let io = |e: std::io::Error| Error::Failed(format!("cannot append to {}: {e}", file.display()));
    // Held until the request is written: `erase --prune` rewrites the file under it.
    let _lock = lock_requests(&file)?;
    // The file as it is, so that the new request is checked exactly as the run will
    // check it (duplicate ids included) before anything is written.
    let existing = read_requests(&file)?.unwrap_or_default();
    let format = requests::detect_format(&file, &existing);
    let whole_file = |message: String| {
        Error::Usage(format!(
            "erasure requests file {}: {message}; correct the file, then add the request again",
            file.display()
        ))
    };
    let mut added = String::new();
    if format == requests::Format::Csv {
        // In the header's order (any order is allowed), or the default header first.
        let columns = match requests::csv_columns(&existing).map_err(whole_file)? {
            Some(c) => c,
            None => {
                added.push_str("request_id,email,received_at,jurisdiction,kind,explained,note\n");
                vec![
                    "request_id",
                    "email",
                    "received_at",
                    "jurisdiction",
                    "kind",
                    "explained",
                    "note",
                ]
            }
        };
        if o.note.is_some() && !columns.contains(&"note") {
            return Err(Error::Usage(format!(
                "the erasure requests file {} has no note column: add `note` to its header row, or leave --note out",
                file.display()
            )));
        }
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let fields: Vec<String> = columns
            .iter()
            .map(|c| match *c {
                "request_id" => q(&id),
                "email" => q(&email),
                "received_at" => o.received.to_string(),
                "jurisdiction" => j.as_str().to_string(),
                "kind" => k.as_str().to_string(),
                "explained" => o.explained.to_string(),
                _ => q(o.note.as_deref().unwrap_or("")),
            })
            .collect();
        added.push_str(&fields.join(","));
    } else {
        added.push_str(&requests::jsonl_line(
            &id,
            &email,
            o.received,
            j,
            k,
            o.explained,
            o.note.as_deref(),
        ));
    }
    added.push('\n');
    // A last line without its newline would otherwise be glued to the new one.
    if !existing.is_empty() && !existing.ends_with('\n') {
        added.insert(0, '\n');
    }
    let today = chrono::Utc::now().date_naive();
    let after =
        requests::parse_str(&format!("{existing}{added}"), format, today).map_err(whole_file)?;
    let last = after
        .valid
        .iter()
        .map(|r| r.row)
        .chain(after.invalid.iter().map(|r| r.row))
        .max();
    if let Some(bad) = after.invalid.iter().find(|r| Some(r.row) == last) {
        return Err(Error::Usage(format!(
            "the request was not added to {}: {} (the run would not honour it; nothing was written)",
            file.display(),
            bad.reason
        )));
    }
    use std::io::Write;
    let mut f = crate::fsutil::open_private(&file, true).map_err(io)?;
    f.write_all(added.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok((id, file))
}

/// [`requests::read_text`] for `erase`: a file that is not UTF-8 is the user's to fix
/// (exit 2), one that cannot be read is a failure.
fn read_requests(file: &Path) -> Result<Option<String>, Error> {
    requests::read_text(file).map_err(|e| match e {
        requests::RequestsError::Read { .. } => Error::Failed(e.to_string()),
        _ => Error::Usage(e.to_string()),
    })
}

/// Takes the lock that `erase` (appending) and `erase --prune` (rewriting) hold on a
/// requests file: a hidden file beside it, `.NAME.lock` (flock, released when the process
/// ends, however it ends). Without it a request appended while a prune rewrote the file
/// would be lost with the old file.
fn lock_requests(file: &Path) -> Result<std::fs::File, Error> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let path = file.with_file_name(format!(".{name}.lock"));
    let cannot = |e: std::io::Error| {
        Error::Failed(format!(
            "cannot lock the erasure requests file {} (through {}): {e}",
            file.display(),
            path.display()
        ))
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(cannot)?;
    }
    let lock = crate::fsutil::open_private(&path, true).map_err(cannot)?;
    lock.lock().map_err(cannot)?;
    Ok(lock)
}

/// What `anonymizer erase --prune` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pruned {
    pub file: PathBuf,
    /// Requests removed: the ledger erases their customer (for a delete request, by
    /// deletion).
    pub removed: usize,
    /// Valid requests kept: not honoured yet, `not_found` (support still has to check
    /// the address), or honoured for an email no customer id had.
    pub kept: usize,
    /// Rows kept because they are invalid (they need correcting).
    pub invalid: usize,
}

impl Pruned {
    pub fn summary(&self) -> String {
        format!(
            "{}: {} honoured request(s) removed (the suppression ledger keeps erasing them); {} pending or unmatched and {} invalid kept",
            self.file.display(),
            self.removed,
            self.kept,
            self.invalid
        )
    }
}

/// `anonymizer erase --prune`: removes from the policy's requests file every valid
/// request whose email the suppression ledger records with a matched customer (for a
/// delete request, with a delete entry), so that the plaintext emails of people erased
/// do not stay in it for ever. Everything else stays byte for byte (the CSV header,
/// other rows, blank lines between them). Compared by the ledger's keyed hash of the
/// email, never by request id (an id reused for another person must not be pruned
/// unhonoured); hence the key. The file is rewritten atomically (a temporary file
/// beside it with the same permissions, fsync, rename), under the lock `erase` takes.
pub fn prune_requests(config: &Path) -> Result<Pruned, Error> {
    let raw = crate::policy::raw::RawPolicy::from_file(config)?;
    let Some(file) = raw.erasure.requests.clone() else {
        return Err(Error::Usage(format!(
            "{} has no [erasure] requests file: nothing to prune",
            config.display()
        )));
    };
    let Some(ledger_path) = raw.erasure.ledger.clone() else {
        return Err(Error::Usage(format!(
            "{} has no [erasure] ledger: without one no request is known to be honoured, so none is pruned",
            config.display()
        )));
    };
    let _lock = lock_requests(&file)?;
    let Some(text) = read_requests(&file)? else {
        return Ok(Pruned {
            file,
            removed: 0,
            kept: 0,
            invalid: 0,
        });
    };
    let (key, _) = Key::load(raw.key_file.as_deref())?;
    let ledger = Ledger::load(&ledger_path, &key.id())?;
    let format = requests::detect_format(&file, &text);
    // No as-of date: a request received later than today is pruned only if honoured.
    let parsed = requests::parse_str(&text, format, NaiveDate::MAX).map_err(|m| {
        Error::Usage(format!(
            "erasure requests file {}: {m}; correct the file, then prune again",
            file.display()
        ))
    })?;
    // Email hash -> erased by deletion, for every ledger entry that matched a customer.
    let mut honoured: HashMap<&str, bool> = HashMap::new();
    for e in ledger.entries.iter().filter(|e| e.customer.is_some()) {
        *honoured.entry(e.email.as_str()).or_default() |= e.kind == Kind::Delete.as_str();
    }
    let p = Pseudonymizer::new(&key, Some(ledger::DOMAIN));
    let removed: HashSet<usize> = parsed
        .valid
        .iter()
        .filter(|r| {
            honoured
                .get(p.token_str(&r.email, Normalize::Email).as_str())
                .is_some_and(|deleted| *deleted || r.kind == Kind::Anonymize)
        })
        .map(|r| r.line)
        .collect();
    let out = Pruned {
        file: file.clone(),
        removed: removed.len(),
        kept: parsed.valid.len() - removed.len(),
        invalid: parsed.invalid.len(),
    };
    if removed.is_empty() {
        return Ok(out);
    }
    let kept = without_requests(&text, &parsed, &removed);
    let cannot =
        |e: std::io::Error| Error::Failed(format!("cannot rewrite {}: {e}", file.display()));
    let dir = match file.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(cannot)?;
    {
        use std::io::Write;
        let mode = std::fs::metadata(&file).map_err(cannot)?.permissions();
        tmp.as_file().set_permissions(mode).map_err(cannot)?;
        tmp.write_all(kept.as_bytes()).map_err(cannot)?;
        tmp.as_file().sync_all().map_err(cannot)?;
    }
    tmp.persist(&file).map_err(|e| cannot(e.error))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(out)
}

/// `text` without the requests starting on the lines in `removed`: each spans from its
/// line to the line before the next request (a CSV row's quoted line breaks, and any
/// blank lines after it, go with it).
fn without_requests(text: &str, parsed: &requests::Parsed, removed: &HashSet<usize>) -> String {
    let mut starts: Vec<usize> = parsed
        .valid
        .iter()
        .map(|r| r.line)
        .chain(parsed.invalid.iter().map(|r| r.line))
        .collect();
    starts.sort_unstable();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut dropped = vec![false; lines.len()];
    for (i, start) in starts.iter().enumerate() {
        if removed.contains(start) {
            let end = starts.get(i + 1).copied().unwrap_or(lines.len() + 1);
            for d in dropped.iter_mut().take(end - 1).skip(start - 1) {
                *d = true;
            }
        }
    }
    lines
        .iter()
        .zip(dropped)
        .filter(|(_, d)| !d)
        .map(|(l, _)| *l)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int8Array, StringViewArray};

    #[test]
    fn pruning_takes_a_request_and_the_blank_lines_after_it() {
        let ok = |id: &str| {
            format!(
                r#"{{"request_id":"{id}","email":"{id}@b.co","received_at":"2024-01-01","jurisdiction":"GDPR"}}"#
            )
        };
        let text = format!("{}\n\n{}\r\nnot json\n{}", ok("j1"), ok("j2"), ok("j3"));
        let parsed =
            requests::parse_str(&text, requests::Format::JsonLines, NaiveDate::MAX).unwrap();
        let lines = |ids: &[&str]| -> HashSet<usize> {
            parsed
                .valid
                .iter()
                .filter(|r| ids.contains(&r.request_id.as_str()))
                .map(|r| r.line)
                .collect()
        };
        assert_eq!(
            without_requests(&text, &parsed, &lines(&["j1", "j3"])),
            format!("{}\r\nnot json\n", ok("j2"))
        );
        assert_eq!(
            without_requests(&text, &parsed, &lines(&["j2"])),
            format!("{}\n\nnot json\n{}", ok("j1"), ok("j3"))
        );
        assert_eq!(without_requests(&text, &parsed, &HashSet::new()), text);
    }
    use datafusion::prelude::col;

    /// The erasure state of each row, by customer id (integers through their decimal
    /// text, text trimmed) and by email (trimmed, lower-cased), from digests of ledger
    /// tokens: delete beats anonymize, nulls and everyone else are kept.
    #[tokio::test]
    async fn rows_are_erased_by_customer_id_or_email_digest() {
        let key = Key::from_hex(
            "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0",
            crate::key::KeySource::Provided,
        )
        .unwrap();
        let p = Pseudonymizer::new(&key, Some(ledger::DOMAIN));
        let digest = |t: String| digest_of_token(&t).unwrap();
        let customers: Erased = [
            (digest(p.token_i64(42)), State::Anonymize),
            (digest(p.token_str("c-7", Normalize::Trim)), State::Delete),
        ]
        .into_iter()
        .collect();
        let emails: Erased = [(
            digest(p.token_str("ana@example.com", Normalize::Email)),
            State::Anonymize,
        )]
        .into_iter()
        .collect();
        let udf = ScalarUDF::from(StateUdf::new(&key, Arc::new(customers), Arc::new(emails)));
        let ids: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(41),
            Some(42),
            Some(42),
            None,
            Some(7),
            Some(43),
        ]));
        let texts: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("c-1"),
            Some(" c-7 "),
            Some("c-7"),
            None,
            Some("c-42"),
            Some("c-8"),
        ]));
        let mails: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("bo@example.com"),
            Some("x@example.com"),
            None,
            Some(" Ana@Example.COM "),
            Some("ana@example.co"),
            Some("ANA@EXAMPLE.COM"),
        ]));
        let ctx = SessionContext::new();
        let states = |keys: ArrayRef| {
            let b = RecordBatch::try_from_iter([("k", keys), ("e", mails.clone())]).unwrap();
            let df = ctx.read_batch(b).unwrap();
            let udf = udf.clone();
            async move {
                let out = df
                    .select(vec![udf.call(vec![col("k"), col("e")]).alias("s")])
                    .unwrap()
                    .collect()
                    .await
                    .unwrap();
                out[0]
                    .column(0)
                    .as_any()
                    .downcast_ref::<Int8Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            }
        };
        // Integer ids: 42 anonymized (twice, a run); the email erases rows 4 and 6.
        assert_eq!(states(ids).await, vec![0, 1, 1, 1, 0, 1]);
        // Text ids: " c-7 " and "c-7" deleted (trimmed); "c-42" is not 42.
        assert_eq!(states(texts).await, vec![0, 2, 2, 1, 0, 1]);
    }
}
