//! The policy file as written: TOML parsed and structurally checked (known keys, rule
//! names, parameter types), before anything is known about the data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use toml::{Table, Value};

use super::suggest::{did_you_mean, hint};
use super::{Format, PolicyError, Role};
use crate::rules::{Generalization, Normalize, RULE_NAMES, TruncUnit};

/// A rule as written; pseudonymize keeps its normalization optional until the roles are
/// known (the email role defaults to `email`).
#[derive(Debug, Clone, PartialEq)]
pub enum RawRule {
    Rule(crate::rules::Rule),
    Pseudonymize {
        normalize: Option<Normalize>,
        domain: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct RawTable {
    pub input: String,
    pub format: Option<Format>,
    pub delimiter: u8,
    /// CSV: the size of the pieces a large file is read in ([`crate::run::CSV_PIECE_BYTES`]).
    pub csv_piece_bytes: u64,
    pub roles: BTreeMap<Role, String>,
    /// Column name -> rule, in the order written.
    pub columns: Vec<(String, RawRule)>,
    /// Columns that, combined, could single a person out (country, age band,
    /// registration month, ...): the privacy gate checks them, and k-anonymity
    /// generalizes them.
    pub quasi_identifiers: Vec<String>,
    /// Quasi-identifier column -> a generalization hierarchy file in ARX's format.
    pub hierarchies: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Clone)]
pub struct RawPolicy {
    pub path: PathBuf,
    /// Folder of the policy file: relative paths are resolved against it.
    pub dir: PathBuf,
    /// SHA-256 of the policy file's bytes, hex.
    pub digest: String,
    pub output: PathBuf,
    pub key_file: Option<PathBuf>,
    pub keep_runs: usize,
    pub threads: Option<usize>,
    /// Where the aggregates and the privacy gate spill what does not fit in memory
    /// (`run --spill-dir` and `verify --spill-dir` take precedence).
    pub spill_dir: Option<PathBuf>,
    /// Folder of saved queries for `anonymizer query` (besides `./queries`).
    pub queries: Option<PathBuf>,
    pub tables: BTreeMap<String, RawTable>,
    pub analytics: RawAnalytics,
    /// `[erasure]`: the pending requests file and the suppression ledger.
    pub erasure: RawErasure,
    /// `[k_anonymity]`: how record-level tables with quasi-identifiers are generalized.
    pub k_anonymity: Option<KAnonymity>,
    /// `[verify]`: the privacy gate's settings.
    pub verify: RawVerify,
}

/// The `[verify]` section: the privacy gate's memory bound, and the kept columns the
/// operator vouches hold no personal names or addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RawVerify {
    /// `max_values`: fingerprints of output values the by-value check holds at once (16
    /// bytes each); past them it compares in passes. `None`: the built-in bound.
    pub max_values: Option<u64>,
    /// `not_personal`: `"table.column"` of kept columns the personal-text check passes
    /// over (validated against the tables in `Policy::resolve`).
    pub not_personal: Vec<String>,
}

/// The `[k_anonymity]` section: every record-level table that declares
/// quasi-identifiers is generalized until each combination of them is shared by at least
/// `k` records, suppressing at most `max_suppression` of the records.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct KAnonymity {
    pub k: u64,
    /// A fraction of the table's records, 0 to 1.
    pub max_suppression: f64,
}

/// The `[erasure]` section as written (paths resolved against the policy's folder).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawErasure {
    /// Requests processed by every run and appended to by `anonymizer erase`.
    pub requests: Option<PathBuf>,
    /// The suppression ledger (keyed hashes of erased customers), outside the output.
    pub ledger: Option<PathBuf>,
}

/// The `[analytics]` section as written.
#[derive(Debug, Clone)]
pub struct RawAnalytics {
    /// Smallest count of people published (counts of 1..k-1 are withheld).
    pub k: u64,
    pub transactions: Option<String>,
    pub customers: Option<String>,
    /// Which aggregate tables to build; `None`: all of them.
    pub tables: Option<Vec<String>>,
    /// `engine = "kernel"` (default) or `"sql"`.
    pub engine: Option<String>,
    /// `memory_mb`: what the kernel may hold of the transactions in memory before it
    /// spills them to disk.
    pub memory_mb: Option<u64>,
    /// `max_key_values`: how many distinct values the key columns (country, currency,
    /// offer type) may hold together before the run stops.
    pub max_key_values: Option<u64>,
}

impl Default for RawAnalytics {
    fn default() -> Self {
        RawAnalytics {
            k: DEFAULT_K,
            transactions: None,
            customers: None,
            tables: None,
            engine: None,
            memory_mb: None,
            max_key_values: None,
        }
    }
}

/// The small-cell threshold when the policy does not set one.
pub const DEFAULT_K: u64 = 10;

const TOP_KEYS: [&str; 11] = [
    "erasure",
    "k_anonymity",
    "output",
    "key_file",
    "keep_runs",
    "threads",
    "spill_dir",
    "queries",
    "tables",
    "analytics",
    "verify",
];
const K_ANONYMITY_KEYS: [&str; 2] = ["k", "max_suppression"];
const ERASURE_KEYS: [&str; 2] = ["requests", "ledger"];
const VERIFY_KEYS: [&str; 2] = ["max_values", "not_personal"];
const ANALYTICS_KEYS: [&str; 7] = [
    "k",
    "transactions",
    "customers",
    "tables",
    "engine",
    "memory_mb",
    "max_key_values",
];
const TABLE_KEYS: [&str; 8] = [
    "input",
    "format",
    "delimiter",
    "csv_piece_bytes",
    "roles",
    "columns",
    "quasi_identifiers",
    "hierarchies",
];

struct Ctx {
    problems: Vec<String>,
}

impl Ctx {
    fn unknown_keys(&mut self, t: &Table, allowed: &[&str], place: &str) {
        for k in t.keys() {
            if !allowed.contains(&k.as_str()) {
                let s = did_you_mean(k, allowed.iter().copied());
                self.problems.push(format!(
                    "{place}: unknown key '{k}'{}; expected one of: {}",
                    hint(&s),
                    allowed.join(", ")
                ));
            }
        }
    }

    fn string(&mut self, t: &Table, key: &str, place: &str) -> Option<String> {
        match t.get(key) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.problems.push(format!(
                    "{place}: '{key}' must be a string, got {}",
                    other.type_str()
                ));
                None
            }
        }
    }

    /// A list of strings (`None` when absent).
    fn strings(&mut self, t: &Table, key: &str, place: &str, example: &str) -> Option<Vec<String>> {
        match t.get(key) {
            None => None,
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                for v in items {
                    match v {
                        Value::String(s) => out.push(s.clone()),
                        other => self.problems.push(format!(
                            "{place}: '{key}' lists strings, got {}",
                            other.type_str()
                        )),
                    }
                }
                Some(out)
            }
            Some(other) => {
                self.problems.push(format!(
                    "{place}: '{key}' must be a list such as {example}, got {}",
                    other.type_str()
                ));
                None
            }
        }
    }

    fn int(
        &mut self,
        t: &Table,
        key: &str,
        place: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        match t.get(key) {
            None => None,
            Some(Value::Integer(i)) if range.contains(i) => Some(*i),
            Some(Value::Integer(i)) => {
                self.problems.push(format!(
                    "{place}: '{key}' is {i}, must be between {} and {}",
                    range.start(),
                    range.end()
                ));
                None
            }
            Some(other) => {
                self.problems.push(format!(
                    "{place}: '{key}' must be an integer, got {}",
                    other.type_str()
                ));
                None
            }
        }
    }
}

impl RawPolicy {
    pub fn from_file(path: &Path) -> Result<RawPolicy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|err| PolicyError::Read {
            path: path.to_path_buf(),
            err,
        })?;
        let dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        RawPolicy::from_str(&text, path, &dir)
    }

    /// Parses policy text; `path` is for messages, `dir` resolves relative paths.
    pub fn from_str(text: &str, path: &Path, dir: &Path) -> Result<RawPolicy, PolicyError> {
        let digest = hex::encode(Sha256::digest(text.as_bytes()));
        let top: Table = text
            .parse()
            .map_err(|e: toml::de::Error| PolicyError::Toml {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
        let mut cx = Ctx { problems: vec![] };
        cx.unknown_keys(&top, &TOP_KEYS, "top level");
        let output = cx.string(&top, "output", "top level");
        if output.is_none() && !top.contains_key("output") {
            cx.problems
                .push("top level: 'output' is required (the folder runs are published to)".into());
        }
        let key_file = cx
            .string(&top, "key_file", "top level")
            .map(|k| dir.join(k));
        let queries = cx.string(&top, "queries", "top level").map(|q| dir.join(q));
        let spill_dir = cx
            .string(&top, "spill_dir", "top level")
            .map(|d| dir.join(d));
        let keep_runs = cx
            .int(&top, "keep_runs", "top level", 1..=1000)
            .unwrap_or(5) as usize;
        let threads = cx
            .int(&top, "threads", "top level", 0..=1024)
            .and_then(|t| if t == 0 { None } else { Some(t as usize) });
        let analytics = match top.get("analytics") {
            None => RawAnalytics::default(),
            Some(Value::Table(a)) => parse_analytics(&mut cx, a),
            Some(other) => {
                cx.problems.push(format!(
                    "[analytics] must be a table, got {}",
                    other.type_str()
                ));
                RawAnalytics::default()
            }
        };
        let verify = match top.get("verify") {
            None => RawVerify::default(),
            Some(Value::Table(v)) => {
                cx.unknown_keys(v, &VERIFY_KEYS, "[verify]");
                RawVerify {
                    // At least a thousand; at most 2^32 (64 GiB of fingerprints).
                    max_values: cx
                        .int(v, "max_values", "[verify]", 1_000..=4_294_967_296)
                        .map(|n| n as u64),
                    not_personal: cx
                        .strings(v, "not_personal", "[verify]", "[\"stores.address\"]")
                        .unwrap_or_default(),
                }
            }
            Some(other) => {
                cx.problems.push(format!(
                    "[verify] must be a table, got {}",
                    other.type_str()
                ));
                RawVerify::default()
            }
        };
        let erasure = match top.get("erasure") {
            None => RawErasure::default(),
            Some(Value::Table(e)) => {
                cx.unknown_keys(e, &ERASURE_KEYS, "[erasure]");
                RawErasure {
                    requests: cx.string(e, "requests", "[erasure]").map(|p| dir.join(p)),
                    ledger: cx.string(e, "ledger", "[erasure]").map(|p| dir.join(p)),
                }
            }
            Some(other) => {
                cx.problems.push(format!(
                    "[erasure] must be a table, got {}",
                    other.type_str()
                ));
                RawErasure::default()
            }
        };
        if erasure.requests.is_some() && erasure.ledger.is_none() {
            cx.problems.push(
                "[erasure]: 'requests' needs 'ledger' too (the file that keeps erased customers erased in later runs)".into(),
            );
        }
        let k_anonymity = match top.get("k_anonymity") {
            None => None,
            Some(Value::Table(t)) => {
                let place = "[k_anonymity]";
                cx.unknown_keys(t, &K_ANONYMITY_KEYS, place);
                let k = cx.int(t, "k", place, 2..=1_000_000);
                if k.is_none() && !t.contains_key("k") {
                    cx.problems.push(format!(
                        "{place}: 'k' is required (each combination of quasi-identifiers is shared by at least k records), e.g. k = 10"
                    ));
                }
                let max_suppression = match t.get("max_suppression") {
                    None => 0.0,
                    Some(Value::Float(f)) if (0.0..=1.0).contains(f) => *f,
                    Some(Value::Integer(i)) if (0..=1).contains(i) => *i as f64,
                    Some(other) => {
                        cx.problems.push(format!(
                            "{place}: 'max_suppression' must be a fraction of the records between 0 and 1 (0.05 = 5 %), got {other}"
                        ));
                        0.0
                    }
                };
                k.map(|k| KAnonymity {
                    k: k as u64,
                    max_suppression,
                })
            }
            Some(other) => {
                cx.problems.push(format!(
                    "[k_anonymity] must be a table, got {}",
                    other.type_str()
                ));
                None
            }
        };
        let mut tables = BTreeMap::new();
        match top.get("tables") {
            Some(Value::Table(t)) => {
                for (name, v) in t {
                    let place = format!("[tables.{name}]");
                    if !is_table_name(name) {
                        cx.problems.push(format!(
                            "{place}: a table's name becomes a folder of the published run and a table name in SQL, \
                             so it must be 1 to 63 lower-case letters, digits or underscores, starting with a letter \
                             (e.g. [tables.crm_customers]); rename the section"
                        ));
                        continue;
                    }
                    match v {
                        Value::Table(tt) => {
                            if let Some(rt) = parse_table(&mut cx, tt, &place, dir) {
                                tables.insert(name.clone(), rt);
                            }
                        }
                        other => cx
                            .problems
                            .push(format!("{place} must be a table, got {}", other.type_str())),
                    }
                }
                if t.is_empty() {
                    cx.problems
                        .push("no tables: add a [tables.NAME] section".into());
                }
            }
            Some(other) => cx.problems.push(format!(
                "'tables' must be a table, got {}",
                other.type_str()
            )),
            None => cx.problems.push(
                "no tables: add a [tables.customers] and/or [tables.transactions] section".into(),
            ),
        }
        if !cx.problems.is_empty() {
            return Err(PolicyError::Invalid {
                path: path.to_path_buf(),
                problems: cx.problems,
            });
        }
        Ok(RawPolicy {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
            digest,
            output: dir.join(output.unwrap_or_default()),
            key_file,
            keep_runs,
            threads,
            spill_dir,
            queries,
            tables,
            analytics,
            erasure,
            k_anonymity,
            verify,
        })
    }
}

fn parse_analytics(cx: &mut Ctx, a: &Table) -> RawAnalytics {
    let place = "[analytics]";
    cx.unknown_keys(a, &ANALYTICS_KEYS, place);
    let k = cx
        .int(a, "k", place, 1..=1_000_000)
        .map_or(DEFAULT_K, |k| k as u64);
    let tables = cx.strings(a, "tables", place, "[\"subscriptions_monthly\"]");
    RawAnalytics {
        k,
        transactions: cx.string(a, "transactions", place),
        customers: cx.string(a, "customers", place),
        tables,
        engine: cx.string(a, "engine", place),
        memory_mb: cx
            .int(a, "memory_mb", place, 64..=1_048_576)
            .map(|m| m as u64),
        max_key_values: cx
            .int(a, "max_key_values", place, 16..=100_000_000)
            .map(|m| m as u64),
    }
}

/// A table name that is safe as a folder name (no `/`, `..`, leading dot or underscore)
/// and as an unquoted SQL identifier: `[a-z][a-z0-9_]{0,62}`.
pub fn is_table_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=63).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

fn parse_table(cx: &mut Ctx, t: &Table, place: &str, dir: &Path) -> Option<RawTable> {
    cx.unknown_keys(t, &TABLE_KEYS, place);
    let input = cx.string(t, "input", place);
    if input.is_none() && !t.contains_key("input") {
        cx.problems.push(format!(
            "{place}: 'input' is required (a file, folder or glob of Parquet or CSV files)"
        ));
    }
    let format = cx
        .string(t, "format", place)
        .and_then(|f| match Format::parse(&f) {
            Some(f) => Some(f),
            None => {
                cx.problems.push(format!(
                    "{place}: unknown format '{f}'; expected parquet or csv"
                ));
                None
            }
        });
    let delimiter = match cx.string(t, "delimiter", place) {
        None => b',',
        Some(d) if d.len() == 1 => d.as_bytes()[0],
        Some(d) if d == "\\t" || d == "tab" => b'\t',
        Some(_) => {
            cx.problems.push(format!(
                "{place}: 'delimiter' must be a single ASCII character"
            ));
            b','
        }
    };
    let mut roles = BTreeMap::new();
    match t.get("roles") {
        None => {}
        Some(Value::Table(r)) => {
            for (role, col) in r {
                let Some(rl) = Role::parse(role) else {
                    let s = did_you_mean(role, Role::ALL.iter().map(|r| r.as_str()));
                    cx.problems.push(format!(
                        "{place}.roles: unknown role '{role}'{}; roles are: {}",
                        hint(&s),
                        Role::ALL
                            .iter()
                            .map(|r| r.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                    continue;
                };
                match col {
                    Value::String(c) => {
                        roles.insert(rl, c.clone());
                    }
                    other => cx.problems.push(format!(
                        "{place}.roles: '{role}' must name a column (a string), got {}",
                        other.type_str()
                    )),
                }
            }
        }
        Some(other) => cx.problems.push(format!(
            "{place}.roles must be a table, got {}",
            other.type_str()
        )),
    }
    let mut columns = Vec::new();
    match t.get("columns") {
        Some(Value::Table(cols)) => {
            for (name, v) in cols {
                let cplace = format!("{place} column '{name}'");
                if let Some(r) = parse_rule(cx, v, &cplace) {
                    columns.push((name.clone(), r));
                }
            }
        }
        Some(other) => cx.problems.push(format!(
            "{place}.columns must be a table, got {}",
            other.type_str()
        )),
        None => cx.problems.push(format!(
            "{place}: no [columns] section; every column of the table needs a rule"
        )),
    }
    let quasi_identifiers = cx
        .strings(
            t,
            "quasi_identifiers",
            place,
            "[\"country\", \"birth_date\"]",
        )
        .unwrap_or_default();
    let mut hierarchies = BTreeMap::new();
    match t.get("hierarchies") {
        None => {}
        Some(Value::Table(h)) => {
            for (col, v) in h {
                match v {
                    Value::String(f) => {
                        hierarchies.insert(col.clone(), dir.join(f));
                    }
                    other => cx.problems.push(format!(
                        "{place}.hierarchies: '{col}' must name a file (a string), got {}",
                        other.type_str()
                    )),
                }
            }
        }
        Some(other) => cx.problems.push(format!(
            "{place}.hierarchies must be a table of column = \"file.csv\", got {}",
            other.type_str()
        )),
    }
    let csv_piece_bytes = cx
        .int(t, "csv_piece_bytes", place, 1024..=1 << 40)
        .map_or(crate::run::CSV_PIECE_BYTES, |b| b as u64);
    Some(RawTable {
        input: input.unwrap_or_default(),
        format,
        delimiter,
        csv_piece_bytes,
        roles,
        columns,
        quasi_identifiers,
        hierarchies,
    })
}

fn parse_rule(cx: &mut Ctx, v: &Value, place: &str) -> Option<RawRule> {
    use crate::rules::Rule;
    let (name, params) = match v {
        Value::String(s) => (s.clone(), Table::new()),
        Value::Table(t) => match t.get("rule") {
            Some(Value::String(s)) => (s.clone(), t.clone()),
            _ => {
                cx.problems.push(format!(
                    "{place}: an inline table needs rule = \"...\" (one of {})",
                    RULE_NAMES.join(", ")
                ));
                return None;
            }
        },
        other => {
            cx.problems.push(format!(
                "{place}: a rule is a string such as \"drop\" or a table such as {{ rule = \"mask\", keep_last = 4 }}, got {}",
                other.type_str()
            ));
            return None;
        }
    };
    let allowed: &[&str] = match name.as_str() {
        "keep" | "drop" => &["rule"],
        "scrub" => &["rule", "names"],
        "redact" => &["rule", "value"],
        "mask" => &["rule", "keep_last"],
        "pseudonymize" => &["rule", "normalize", "domain"],
        "generalize" => &[
            "rule",
            "to",
            "width",
            "length",
            "ipv4_prefix",
            "ipv6_prefix",
        ],
        _ => {
            let s = did_you_mean(&name, RULE_NAMES);
            cx.problems.push(format!(
                "{place}: unknown rule '{name}'{}; rules are: {}",
                hint(&s),
                RULE_NAMES.join(", ")
            ));
            return None;
        }
    };
    let before = cx.problems.len();
    cx.unknown_keys(&params, allowed, place);
    let rule = match name.as_str() {
        "keep" => RawRule::Rule(Rule::Keep),
        "drop" => RawRule::Rule(Rule::Drop),
        "scrub" => RawRule::Rule(Rule::Scrub {
            names: cx
                .strings(&params, "names", place, "[\"first_name\", \"last_name\"]")
                .unwrap_or_default(),
        }),
        "redact" => RawRule::Rule(Rule::Redact {
            value: cx
                .string(&params, "value", place)
                .unwrap_or_else(|| "[redacted]".into()),
        }),
        "mask" => RawRule::Rule(Rule::Mask {
            keep_last: cx.int(&params, "keep_last", place, 0..=64).unwrap_or(4) as u32,
        }),
        "pseudonymize" => {
            let normalize = cx.string(&params, "normalize", place).and_then(|n| {
                let r = Normalize::parse(&n);
                if r.is_none() {
                    let s = did_you_mean(&n, Normalize::NAMES);
                    cx.problems.push(format!(
                        "{place}: unknown normalize '{n}'{}; expected one of: {}",
                        hint(&s),
                        Normalize::NAMES.join(", ")
                    ));
                }
                r
            });
            let domain = cx.string(&params, "domain", place);
            RawRule::Pseudonymize { normalize, domain }
        }
        "generalize" => {
            let to = cx.string(&params, "to", place);
            let targets = [
                "day", "week", "month", "quarter", "year", "age_band", "prefix", "network",
            ];
            let g = match to.as_deref() {
                None => {
                    cx.problems.push(format!(
                        "{place}: generalize needs to = one of: {}",
                        targets.join(", ")
                    ));
                    return None;
                }
                Some("age_band") => Generalization::AgeBand {
                    width: cx.int(&params, "width", place, 1..=100).unwrap_or(10) as u32,
                },
                Some("prefix") => Generalization::Prefix {
                    length: match cx.int(&params, "length", place, 0..=64) {
                        Some(l) => l as u32,
                        None => {
                            if !params.contains_key("length") {
                                cx.problems.push(format!(
                                    "{place}: generalize to prefix needs length = N (characters kept)"
                                ));
                            }
                            return None;
                        }
                    },
                },
                Some("network") => Generalization::Network {
                    ipv4_prefix: cx.int(&params, "ipv4_prefix", place, 0..=32).unwrap_or(24) as u8,
                    ipv6_prefix: cx.int(&params, "ipv6_prefix", place, 0..=128).unwrap_or(48) as u8,
                },
                Some(u) => match TruncUnit::parse(u) {
                    Some(unit) => Generalization::Trunc { unit },
                    None => {
                        let s = did_you_mean(u, targets);
                        cx.problems.push(format!(
                            "{place}: cannot generalize to '{u}'{}; expected one of: {}",
                            hint(&s),
                            targets.join(", ")
                        ));
                        return None;
                    }
                },
            };
            RawRule::Rule(Rule::Generalize(g))
        }
        _ => unreachable!("rule names were matched above"),
    };
    (cx.problems.len() == before).then_some(rule)
}
