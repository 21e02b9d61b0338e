//! The command line: clap definitions only, turned into the library's typed options
//! before any work starts.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "anonymizer",
    version,
    about = "Anonymize subscription-video warehouse exports: keyed pseudonyms, generalization, fail-closed policies, atomic publish.",
    after_help = "Exit codes: 0 success; 1 a privacy check failed (nothing published); 2 error (nothing published).\n\
                  The pseudonymization key is read from ANONYMIZER_KEY (64 hex characters) or the policy's key_file, never from a flag."
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
    /// Only errors and `attention:` lines (what an operator must act on) on stderr.
    #[arg(long, short, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a deterministic synthetic export (customers and transactions, Parquet).
    Generate {
        /// Folder to write customers/ and transactions/ into.
        #[arg(long)]
        out: PathBuf,
        /// Number of customers (about 20 transactions each over three years).
        #[arg(long)]
        customers: u64,
        /// Random seed; the same arguments give byte-identical files.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// First day of the exported period.
        #[arg(long, default_value = "2023-01-01", value_parser = parse_date)]
        start: NaiveDate,
        /// Length of the exported period in months.
        #[arg(long, default_value_t = 36)]
        months: u32,
        /// Number of files per table (default: one per 250,000 customers).
        #[arg(long)]
        files: Option<usize>,
    },
    /// Apply a policy to an export and publish the result atomically.
    Run {
        /// The policy file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The as-of date for age bands (default: the date of the latest event time).
        #[arg(long, value_parser = parse_date)]
        as_of: Option<NaiveDate>,
        /// Output folder (default: the policy's `output`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Worker threads: files transformed at once, and the threads of every other
        /// stage (default: the policy's `threads`, else all cores; 0 = all cores).
        #[arg(long, value_parser = parse_threads)]
        threads: Option<usize>,
        /// Erasure requests to honour (CSV or JSON Lines; default: the policy's
        /// `[erasure] requests`).
        #[arg(long)]
        requests: Option<PathBuf>,
        /// An existing folder where the aggregates and the privacy gate spill what does
        /// not fit in memory (default: the policy's `spill_dir`, else OUT's staging area,
        /// on the output's disk).
        #[arg(long)]
        spill_dir: Option<PathBuf>,
        /// Start a new, empty suppression ledger although the published run was made
        /// with one (the ledger file is missing), or go on with a ledger that has fewer
        /// entries than the published run was made with (an older copy). Everyone erased
        /// before and not in the ledger is published again if still in the export: only
        /// for a deliberate fresh start.
        #[arg(long)]
        new_ledger: bool,
    },
    /// Add one erasure request to the policy's pending requests file (`[erasure] requests`).
    Erase(EraseArgs),
    /// Run the privacy checks on a folder of Parquet tables (default: OUT/current).
    Verify {
        /// The folder (one subfolder of Parquet files per table).
        dir: Option<PathBuf>,
        /// The policy: its input (for the by-value scan), tokens and k; and OUT/current.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The smallest count of people allowed in aggregates (default: the policy's k, else 10).
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        k: Option<u64>,
        /// Worker threads of the checks (default: the policy's `threads`, else all cores;
        /// 0 = all cores).
        #[arg(long, value_parser = parse_threads)]
        threads: Option<usize>,
        /// An existing folder where the by-value check spills output values past
        /// `[verify] max_values` (default: the policy's `spill_dir`, else the system's
        /// temporary folder, `TMPDIR`).
        #[arg(long)]
        spill_dir: Option<PathBuf>,
    },
    /// Run a saved query (queries/NAME.sql) or ad-hoc SQL over the published output.
    Query(QueryArgs),
    /// Benchmarks only: copy the input columns the policy publishes, unchanged, with the
    /// run's chunking and Parquet settings (the I/O floor of a run).
    #[command(hide = true)]
    BenchCopy {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_parser = parse_threads)]
        threads: Option<usize>,
        /// zstd level of the copy (default: the run's, 1)
        #[arg(long)]
        zstd_level: Option<i32>,
        /// rows per row group (default: the run's, 1048576)
        #[arg(long)]
        row_group_rows: Option<usize>,
        /// no dictionary encoding (default: the run's, dictionary on)
        #[arg(long)]
        no_dictionary: bool,
    },
    /// Measure how identifying a file's quasi-identifiers are (ARX's measures), or find
    /// the generalization with the least information loss that makes them k-anonymous.
    Risk(RiskArgs),
    /// Generate a small export, write the sample policy and a fresh key, and run it.
    Demo {
        /// Folder for the demo (export/, anonymizer.toml, demo.key, out/).
        #[arg(long, default_value = "anonymizer-demo")]
        dir: PathBuf,
        /// Number of customers to generate.
        #[arg(long, default_value_t = 20_000)]
        customers: u64,
    },
}

#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The policy (its `[erasure] requests` file gets the request).
    #[arg(long, default_value = "anonymizer.toml")]
    config: PathBuf,
    /// The email address of the account.
    #[arg(long, required_unless_present = "prune")]
    email: Option<String>,
    /// The date the request was received (YYYY-MM-DD).
    #[arg(long, value_parser = parse_date, required_unless_present = "prune")]
    received: Option<NaiveDate>,
    /// GDPR (one month), CCPA (45 days) or OTHER.
    #[arg(long, default_value = "GDPR")]
    jurisdiction: String,
    /// anonymize (transactions kept without the person) or delete (every row removed).
    #[arg(long, default_value = "anonymize")]
    kind: String,
    /// The customer was told what anonymization keeps.
    #[arg(long)]
    explained: bool,
    /// A note for support (kept in the requests file only, never published).
    #[arg(long)]
    note: Option<String>,
    /// The request id (default: erase-<UTC time>-<random>).
    #[arg(long)]
    request_id: Option<String>,
    /// Instead of adding a request: remove from the requests file every request the
    /// suppression ledger records as honoured (its plaintext email goes; the ledger keeps
    /// erasing the customer). Needs the key, as `run` does.
    #[arg(long, conflicts_with_all = ["email", "received", "explained", "note", "request_id"])]
    prune: bool,
}

/// What `anonymizer erase` was asked to do.
pub enum EraseAction {
    Add(anonymizer::erasure::EraseOptions),
    /// `--prune`, with the policy.
    Prune(PathBuf),
}

impl EraseArgs {
    pub fn into_action(self) -> EraseAction {
        if self.prune {
            return EraseAction::Prune(self.config);
        }
        EraseAction::Add(anonymizer::erasure::EraseOptions {
            config: self.config,
            // clap requires both unless --prune.
            email: self.email.unwrap_or_default(),
            received: self.received.unwrap_or_default(),
            jurisdiction: self.jurisdiction,
            kind: self.kind,
            explained: self.explained,
            note: self.note,
            request_id: self.request_id,
        })
    }
}

#[derive(Debug, Args)]
pub struct RiskArgs {
    /// A Parquet or CSV file (CSV: a header row; the type follows the extension), a
    /// folder of them (a published table such as `OUT/current/customers`), or a glob;
    /// all files are measured together.
    #[arg(long)]
    input: PathBuf,
    /// CSV field delimiter (one character; `tab` or `\t` for tabs).
    #[arg(long, default_value = ",")]
    delimiter: String,
    /// The quasi-identifier columns, comma-separated, e.g. `--qi age,sex,zip`.
    #[arg(long, value_delimiter = ',', required = true)]
    qi: Vec<String>,
    /// A generalization hierarchy in ARX's format (`;`-separated, one row per value, one
    /// column per level, the last level `*`), e.g. `--hierarchy age=age.csv`; repeatable.
    /// Columns without one generalize straight to `*`.
    #[arg(long = "hierarchy", value_parser = parse_hierarchy_arg)]
    hierarchies: Vec<(String, PathBuf)>,
    /// One generalization level per quasi-identifier, in --qi order (default: all 0).
    #[arg(long, value_delimiter = ',', conflicts_with = "optimize")]
    levels: Option<Vec<usize>>,
    /// Classes smaller than k count as below k (AECS, discernibility, records_below_k).
    #[arg(long, default_value_t = 2)]
    k: u64,
    /// With --optimize: the largest fraction of records that may be suppressed (0.04 = 4 %).
    #[arg(
        long,
        default_value_t = 0.0,
        requires = "optimize",
        allow_negative_numbers = true
    )]
    max_suppression: f64,
    /// Search the lattice of levels for the k-anonymous generalization with the least
    /// information loss (ARX's precomputed non-uniform entropy) and report it.
    #[arg(long)]
    optimize: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = RiskFormat::Table)]
    format: RiskFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RiskFormat {
    Table,
    Json,
}

impl RiskArgs {
    pub fn json(&self) -> bool {
        self.format == RiskFormat::Json
    }

    pub fn into_options(self) -> Result<anonymizer::risk::RiskOptions, String> {
        let delimiter = match self.delimiter.as_str() {
            "tab" | "\\t" | "\t" => b'\t',
            d if d.len() == 1 => d.as_bytes()[0],
            d => return Err(format!("--delimiter '{d}' must be one ASCII character")),
        };
        Ok(anonymizer::risk::RiskOptions {
            input: self.input,
            delimiter,
            qi: self.qi,
            hierarchies: self.hierarchies.into_iter().collect(),
            levels: self.levels,
            k: self.k,
            max_suppression: self.max_suppression,
            optimize: self.optimize,
        })
    }
}

fn parse_hierarchy_arg(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((c, f)) if !c.is_empty() && !f.is_empty() => Ok((c.to_string(), PathBuf::from(f))),
        _ => Err(format!(
            "'{s}' is not COLUMN=FILE, e.g. age=hierarchies/age.csv"
        )),
    }
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Name of a saved query (a .sql file in the policy's `queries` folder or ./queries).
    name: Option<String>,
    /// Ad-hoc SQL instead of a saved query.
    #[arg(long, conflicts_with = "name")]
    sql: Option<String>,
    /// List the saved queries with the first line of their header.
    #[arg(long, conflicts_with_all = ["name", "sql"])]
    list: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    format: OutputFormat,
    /// Write the result to this file instead of stdout (required for parquet; `-` is
    /// stdout). Never inside a published run or output folder.
    #[arg(long)]
    output: Option<PathBuf>,
    /// The policy, to find the output folder and the saved queries.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The output folder (instead of the policy's).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Rows the table format shows at most (0: all); csv, json and parquet stream every
    /// row.
    #[arg(long, default_value_t = anonymizer::query::DEFAULT_MAX_ROWS)]
    max_rows: usize,
}

impl QueryArgs {
    pub fn into_options(self) -> anonymizer::query::QueryOptions {
        use anonymizer::query::QueryFormat;
        anonymizer::query::QueryOptions {
            name: self.name,
            sql: self.sql,
            list: self.list,
            format: match self.format {
                OutputFormat::Table => QueryFormat::Table,
                OutputFormat::Csv => QueryFormat::Csv,
                OutputFormat::Json => QueryFormat::Json,
                OutputFormat::Parquet => QueryFormat::Parquet,
            },
            output: self.output,
            config: self.config,
            out: self.out,
            max_rows: (self.max_rows > 0).then_some(self.max_rows),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

/// 0 (all cores) to 1024, as the policy's `threads`.
fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n <= 1024 => Ok(n),
        _ => Err(format!(
            "'{s}' is not a thread count; use 0 (all cores) to 1024"
        )),
    }
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("'{s}' is not a date; use YYYY-MM-DD, e.g. 2026-01-31"))
}

/// The log filter for `ANONYMIZER_LOG`'s value: other crates stay at `warn`, and a bare
/// level (`debug`, also in a list: `debug,anonymizer::run=trace`) applies to
/// anonymizer's own logs only, since other crates' debug logs print query plans and SQL,
/// literals included, which may be values. Directives naming a target
/// (`datafusion=debug`) are kept as given.
pub fn log_filter(v: &str) -> String {
    let mut out = vec!["warn".to_string()];
    for d in v.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = ["trace", "debug", "info", "warn", "error"]
            .iter()
            .any(|l| d.eq_ignore_ascii_case(l));
        out.push(if bare {
            format!("anonymizer={}", d.to_ascii_lowercase())
        } else {
            d.to_string()
        });
    }
    out.join(",")
}

#[cfg(test)]
mod tests {
    use super::log_filter;

    #[test]
    fn a_bare_level_is_anonymizers_own_even_in_a_list() {
        assert_eq!(log_filter("debug"), "warn,anonymizer=debug");
        assert_eq!(log_filter(" TRACE "), "warn,anonymizer=trace");
        assert_eq!(
            log_filter("debug,anonymizer=debug"),
            "warn,anonymizer=debug,anonymizer=debug"
        );
        assert_eq!(
            log_filter("trace,hyper=warn"),
            "warn,anonymizer=trace,hyper=warn"
        );
        assert_eq!(
            log_filter("debug,datafusion=debug"),
            "warn,anonymizer=debug,datafusion=debug"
        );
        assert_eq!(log_filter(""), "warn");
    }
}
