//! The policy: which tables to read, where to publish, and a rule for every column.
//!
//! Parsing happens in two steps, like ripgrep's LowArgs -> HiArgs: [`raw`] turns TOML into
//! structurally checked raw structs (unknown keys and rule names get "did you mean"), then
//! [`Policy::validate`] checks them against the schemas of the actual export, read from
//! file footers before any row is processed. A column in the data without a rule, a rule
//! naming a column that does not exist, a rule that does not fit its column's type, or a
//! role pointing nowhere stops the run here: nothing unclassified ever reaches the output.

pub mod raw;
pub mod suggest;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::prelude::SessionContext;

use crate::input::{self, InputError};
use crate::rules::{Normalize, Rule, is_string};
use raw::{RawPolicy, RawRule};
use suggest::{did_you_mean, hint};

/// The sample policy for exports written by `anonymizer generate`.
pub const SAMPLE_POLICY: &str = include_str!("../../anonymizer.toml");

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy {path}: {err}\n  check the path given to --config")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("policy {path} is not valid TOML: {message}")]
    Toml { path: PathBuf, message: String },
    #[error("policy {path} has {n} problem(s):\n  {list}", n = problems.len(), list = problems.join("\n  "))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
    #[error(transparent)]
    Input(#[from] InputError),
}

/// Input file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Parquet,
    Csv,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "parquet" => Some(Format::Parquet),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
    pub fn from_path(p: &Path) -> Option<Format> {
        let ext = p.extension()?.to_string_lossy().to_ascii_lowercase();
        match ext.as_str() {
            "parquet" | "pq" => Some(Format::Parquet),
            "csv" | "tsv" => Some(Format::Csv),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Parquet => "Parquet",
            Format::Csv => "CSV",
        })
    }
}

/// What a column means to the analytics and erasure stages, independent of its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    CustomerKey,
    Email,
    EventTime,
    Amount,
    Currency,
    TransactionType,
    OfferType,
    OfferPeriod,
    SubscriptionId,
    Country,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::CustomerKey,
        Role::Email,
        Role::EventTime,
        Role::Amount,
        Role::Currency,
        Role::TransactionType,
        Role::OfferType,
        Role::OfferPeriod,
        Role::SubscriptionId,
        Role::Country,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::CustomerKey => "customer_key",
            Role::Email => "email",
            Role::EventTime => "event_time",
            Role::Amount => "amount",
            Role::Currency => "currency",
            Role::TransactionType => "transaction_type",
            Role::OfferType => "offer_type",
            Role::OfferPeriod => "offer_period",
            Role::SubscriptionId => "subscription_id",
            Role::Country => "country",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
    /// Column names that take this role when the policy does not map it.
    pub fn default_columns(self) -> &'static [&'static str] {
        match self {
            Role::CustomerKey => &["customer_id"],
            Role::Email => &["email", "customer_email"],
            Role::EventTime => &["transaction_at"],
            Role::Amount => &["amount"],
            Role::Currency => &["currency"],
            Role::TransactionType => &["transaction_type"],
            Role::OfferType => &["offer_type"],
            Role::OfferPeriod => &["offer_period"],
            Role::SubscriptionId => &["subscription_id"],
            Role::Country => &["country"],
        }
    }
}

/// One column and its validated rule.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ColumnRule {
    pub name: String,
    #[serde(serialize_with = "ser_type")]
    pub data_type: DataType,
    pub rule: Rule,
}

fn ser_type<S: serde::Serializer>(t: &DataType, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_string())
}

/// One table of the export, validated against its files.
#[derive(Debug, Clone)]
pub struct TablePolicy {
    pub name: String,
    pub format: Format,
    pub delimiter: u8,
    pub files: Vec<PathBuf>,
    pub schema: SchemaRef,
    /// In the data's column order.
    pub columns: Vec<ColumnRule>,
    pub roles: BTreeMap<Role, String>,
    /// Published columns that could single a person out in combination; in the order
    /// declared.
    pub quasi_identifiers: Vec<String>,
    /// Quasi-identifier -> generalization hierarchy file (ARX's format).
    pub hierarchies: BTreeMap<String, PathBuf>,
    /// CSV: a file larger than this is read in pieces of about this size, one per core
    /// at a time; smaller files are read in groups of up to this size
    /// (`csv_piece_bytes`, default [`crate::run::CSV_PIECE_BYTES`]).
    pub csv_piece_bytes: u64,
    /// How the transform reads the files ([`crate::run::units`]), worked out once: the
    /// input checks, the transform, the erasure's scans and the gate all read by it.
    pub(crate) units: UnitsOnce,
}

/// A table's [`crate::run::Unit`]s, computed on first use (they read every footer). They
/// are a function of `files`, which nothing changes after the policy is loaded; a clone
/// keeps them, so a table must never be cloned with other files.
#[derive(Clone, Default)]
pub(crate) struct UnitsOnce(pub(crate) std::sync::OnceLock<std::sync::Arc<[crate::run::Unit]>>);

impl std::fmt::Debug for UnitsOnce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.get().map(|u| u.len());
        f.debug_tuple("UnitsOnce").field(&n).finish()
    }
}

/// A CSV table's schema as it is read: inferred from a sample of rows, except that the
/// columns a text rule reads (pseudonymize, mask, scrub, a prefix or network, and the
/// name columns a scrub rule reads beside its text) and the columns with no value in the
/// sample are read as text. Inference would read ids
/// `042` and `42` as the same integer (one token for two customers), postal codes
/// `02112` as 2112, and an empty column as a type no rule takes; and it could differ
/// from one export to the next.
fn csv_text_columns(schema: &SchemaRef, t: &raw::RawTable) -> SchemaRef {
    // A rule reads text when it takes strings and not numbers (what `check_type` says),
    // and pseudonymize, whose tokens of text ids keep `042` apart from `42`; and a scrub
    // rule's names (a surname column must not become a number because a sample says so).
    let text_rule = |col: &str| {
        t.columns.iter().any(|(c, r)| {
            c == col
                && match r {
                    RawRule::Pseudonymize { .. } => true,
                    RawRule::Rule(r) => {
                        r.check_type(&DataType::Utf8).is_ok()
                            && r.check_type(&DataType::Int64).is_err()
                    }
                }
        }) || t.columns.iter().any(|(_, r)| {
            matches!(r, RawRule::Rule(Rule::Scrub { names }) if names.iter().any(|n| n == col))
        })
    };
    let fields: Vec<datafusion::arrow::datatypes::FieldRef> = schema
        .fields()
        .iter()
        .map(|f| {
            if (f.data_type() == &DataType::Null || text_rule(f.name()))
                && !is_string(f.data_type())
            {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8))
            } else {
                f.clone()
            }
        })
        .collect();
    Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ))
}

/// A CSV table's columns that a rule needs as times (a generalization to a period or an
/// age band) but that were read as text: some value in them did not read as a time.
fn csv_times_read_as_text(schema: &SchemaRef, t: &raw::RawTable) -> Vec<String> {
    t.columns
        .iter()
        .filter(|(col, r)| {
            matches!(r, RawRule::Rule(r) if r.check_type(&DataType::Utf8).is_err()
                && r.check_type(&DataType::Timestamp(
                    datafusion::arrow::datatypes::TimeUnit::Microsecond,
                    None,
                )).is_ok())
                && schema
                    .field_with_name(col)
                    .is_ok_and(|f| is_string(f.data_type()))
        })
        .map(|(col, _)| col.clone())
        .collect()
}

/// Where the first value of `column` in CSV `files` that does not read as a date or a
/// time is, as Arrow's CSV reader infers them (its patterns: `2011-12-01`, `2011-12-01
/// 08:26:00`, with a fraction of up to 9 digits, then anything that does not start with
/// a digit, `Z` or ` UTC`; empty values are nulls): the file, the row and the line, never
/// the value. `None` when none is found or a file cannot be read (its own error comes
/// later).
fn first_value_not_a_time(files: &[PathBuf], delimiter: u8, column: &str) -> Option<String> {
    static TIME: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^\d{4}-\d\d-\d\d([T ]\d\d:\d\d:\d\d(\.\d{1,9}([^\d].*)?|([^\d\.].*)?))?$",
        )
        .expect("time pattern")
    });
    for file in files {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .from_path(file)
            .ok()?;
        let index = reader.headers().ok()?.iter().position(|h| h == column)?;
        let mut record = csv::StringRecord::new();
        let mut row = 0u64;
        while reader.read_record(&mut record).ok()? {
            row += 1;
            let value = record.get(index).unwrap_or("").trim();
            if !value.is_empty() && !TIME.is_match(value) {
                let line = record.position().map_or(row + 1, |p| p.line());
                return Some(format!(
                    "{}, row {row} (line {line}), holds a value that is not a date or time \
                     (not printed); correct it in the export",
                    file.display()
                ));
            }
        }
    }
    None
}

impl TablePolicy {
    pub fn role(&self, r: Role) -> Option<&str> {
        self.roles.get(&r).map(String::as_str)
    }
    /// One of the table's files as a DataFrame, read with the validated schema (every
    /// column nullable, text hinted as a dictionary in some files read as text), so
    /// that any of the table's files, or a group of them, reads as the table. A CSV file
    /// larger than `csv_piece_bytes` is read in its pieces, one partition each, in order
    /// ([`crate::run::Unit::pieces`]): execute the partitions one by one, or read it with
    /// [`TablePolicy::open_in_order`], where the order of the rows matters.
    pub async fn open(
        &self,
        ctx: &SessionContext,
        file: &Path,
    ) -> Result<datafusion::dataframe::DataFrame, PolicyError> {
        let df = self.open_in_order(ctx, file).await?;
        Ok(input::in_pieces(df, self.pieces_of(&[file])))
    }

    /// Whether [`TablePolicy::open`] reads `file` in pieces.
    pub(crate) fn reads_in_pieces(&self, file: &Path) -> bool {
        !self.pieces_of(&[file]).is_empty()
    }

    /// The pieces of those of `files` that are CSV files read in pieces.
    fn pieces_of(&self, files: &[&Path]) -> input::PiecesByFile {
        if self.format != Format::Csv {
            return Default::default();
        }
        crate::run::units(self)
            .iter()
            .filter_map(|u| Some((u.files[0].0.as_path(), u.pieces.clone()?)))
            .filter(|(f, _)| files.contains(f))
            .filter_map(|(f, p)| Some((input::location(f).ok()?, p)))
            .collect()
    }

    /// One of the table's files as [`TablePolicy::open`] reads it, but whole, as one
    /// partition whose rows come in the file's order (a CSV file too: on one core).
    pub async fn open_in_order(
        &self,
        ctx: &SessionContext,
        file: &Path,
    ) -> Result<datafusion::dataframe::DataFrame, PolicyError> {
        Ok(input::open(
            ctx,
            &self.name,
            file,
            self.format,
            self.delimiter,
            Some(&self.schema),
        )
        .await?)
    }

    /// Some of the table's files as one DataFrame: one file as [`TablePolicy::open`]
    /// reads it, several as one scan with the table's validated schema
    /// ([`input::open_all`]; row order not kept).
    pub async fn open_files(
        &self,
        ctx: &SessionContext,
        files: &[PathBuf],
    ) -> Result<datafusion::dataframe::DataFrame, PolicyError> {
        if let [file] = files {
            return self.open(ctx, file).await;
        }
        let df = input::open_all(
            ctx,
            &self.name,
            files,
            self.format,
            self.delimiter,
            &self.schema,
        )
        .await?;
        let files: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        Ok(input::in_pieces(df, self.pieces_of(&files)))
    }

    pub fn rule_of(&self, column: &str) -> Option<&Rule> {
        self.columns
            .iter()
            .find(|c| c.name == column)
            .map(|c| &c.rule)
    }
}

/// A policy validated against the export it will run on.
#[derive(Debug, Clone)]
pub struct Policy {
    pub path: PathBuf,
    pub digest: String,
    pub output: PathBuf,
    pub key_file: Option<PathBuf>,
    pub keep_runs: usize,
    pub threads: Option<usize>,
    /// `spill_dir`: where spills go unless `--spill-dir` says otherwise (`None`: the
    /// staging area for a run, the system's temporary folder for `verify`).
    pub spill_dir: Option<PathBuf>,
    /// Sorted by name.
    pub tables: Vec<TablePolicy>,
    pub analytics: AnalyticsPolicy,
    pub erasure: raw::RawErasure,
    /// `[k_anonymity]`; present whenever a table declares quasi-identifiers.
    pub k_anonymity: Option<raw::KAnonymity>,
    /// `[verify]`: the privacy gate's memory bound and the kept columns vouched for.
    pub verify: raw::RawVerify,
}

/// The `[analytics]` section, resolved against the tables.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AnalyticsPolicy {
    /// Smallest count of people published; counts of 1..k-1 are withheld.
    pub k: u64,
    /// The table of transactions the aggregates are computed from; `None`: no table maps
    /// both customer_key and event_time, so every aggregate is skipped.
    pub transactions: Option<String>,
    /// The table the customer's country comes from, if any.
    pub customers: Option<String>,
    /// The aggregate tables to build, in build order.
    pub tables: Vec<&'static str>,
    /// How the aggregates are computed.
    pub engine: Engine,
    /// What the kernel may hold of the transactions in memory, in bytes, before it
    /// spills them to disk (by customer, so each part is processed alone).
    pub memory_bytes: u64,
    /// How many distinct values the key columns (country, currency, offer type; the
    /// customers' country) may hold together: past it the run stops (a column given one of
    /// these roles by mistake, an id or free text, would otherwise grow the aggregates'
    /// memory without bound).
    pub max_key_values: usize,
}

/// How the aggregate tables are computed. Both give the same tables (tested).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    /// The built-in kernel (`analytics::kernel`): one read of the transactions, grouped
    /// by customer in bounded memory.
    Kernel,
    /// The saved SQL in `queries/analytics/`, run by DataFusion.
    Sql,
}

/// What the kernel holds in memory when `[analytics] memory_mb` is not set.
pub const DEFAULT_AGGREGATE_MEMORY_MB: u64 = 512;

/// `[analytics] max_key_values` when the policy does not set it: the world's countries,
/// currencies and a few offer types come to about 500.
pub const DEFAULT_MAX_KEY_VALUES: u64 = 10_000;

impl Policy {
    /// Reads the policy file, finds every table's files, reads their schemas, and
    /// validates. No rows are read.
    pub async fn load(path: &Path, ctx: &SessionContext) -> Result<Policy, PolicyError> {
        let raw = RawPolicy::from_file(path)?;
        let mut schemas = BTreeMap::new();
        let mut text_times = BTreeMap::new();
        for (name, t) in &raw.tables {
            let files = input::discover(name, &t.input, &raw.dir)?;
            let format = input::format_of(name, &files, t.format)?;
            let mut schema = input::read_schema(ctx, name, &files, format, t.delimiter).await?;
            if format == Format::Csv {
                schema = csv_text_columns(&schema, t);
                for col in csv_times_read_as_text(&schema, t) {
                    if let Some(at) = first_value_not_a_time(&files, t.delimiter, &col) {
                        text_times.insert((name.clone(), col), at);
                    }
                }
            }
            schemas.insert(name.clone(), (files, format, schema));
        }
        Policy::validate_with(raw, schemas, &text_times)
    }

    /// Checks a raw policy against the tables' schemas.
    pub fn validate(
        raw: RawPolicy,
        schemas: BTreeMap<String, (Vec<PathBuf>, Format, SchemaRef)>,
    ) -> Result<Policy, PolicyError> {
        Policy::validate_with(raw, schemas, &BTreeMap::new())
    }

    /// [`Policy::validate`], with where a CSV table's column that a time rule needs holds
    /// a value that is not a time, by (table, column), to say in the rule's error.
    fn validate_with(
        raw: RawPolicy,
        mut schemas: BTreeMap<String, (Vec<PathBuf>, Format, SchemaRef)>,
        text_times: &BTreeMap<(String, String), String>,
    ) -> Result<Policy, PolicyError> {
        let mut problems = Vec::new();
        let mut tables = Vec::new();
        for (name, rt) in &raw.tables {
            let (files, format, schema) = schemas
                .remove(name)
                .expect("a schema is read for every table of the policy");
            let data_cols: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();

            // Roles: explicit mappings must exist; defaults fill in by name.
            let mut roles = BTreeMap::new();
            for (role, col) in &rt.roles {
                if data_cols.contains(&col.as_str()) {
                    roles.insert(*role, col.clone());
                } else {
                    let s = did_you_mean(col, data_cols.iter().copied());
                    problems.push(format!(
                        "table {name}: role {} names column '{col}', which the data does not have{}",
                        role.as_str(),
                        hint(&s)
                    ));
                }
            }
            for role in Role::ALL {
                if rt.roles.contains_key(&role) {
                    continue;
                }
                if let Some(c) = role
                    .default_columns()
                    .iter()
                    .find_map(|d| data_cols.iter().find(|c| c.eq_ignore_ascii_case(d)))
                {
                    roles.insert(role, c.to_string());
                }
            }

            // Roles the aggregates compute with need a type they can read.
            for (role, col) in &roles {
                let Ok(field) = schema.field_with_name(col) else {
                    continue;
                };
                let t = field.data_type();
                let text = crate::rules::is_string(t);
                let needs = match role {
                    Role::Amount if !(t.is_numeric() || text) => {
                        Some("a number (or text holding one)")
                    }
                    Role::Currency | Role::Country | Role::TransactionType | Role::OfferType
                        if !text =>
                    {
                        Some("text")
                    }
                    Role::EventTime
                        if !(text
                            || matches!(
                                t,
                                DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
                            )) =>
                    {
                        Some("a timestamp or a date (or text holding one)")
                    }
                    _ => None,
                };
                if let Some(needs) = needs {
                    problems.push(format!(
                        "table {name}: role {} needs {needs}, but column '{col}' is {t}\n    \
                         export the column with that type, or map the role to another column under [tables.{name}.roles]",
                        role.as_str()
                    ));
                }
            }

            // Every policy column must exist in the data.
            for (col, _) in &rt.columns {
                if !data_cols.contains(&col.as_str()) {
                    let s = did_you_mean(col, data_cols.iter().copied());
                    problems.push(format!(
                        "table {name}: the policy has a rule for column '{col}', which the data does not have{}",
                        hint(&s)
                    ));
                }
            }

            // Every data column must have a rule that fits its type.
            let mut columns = Vec::new();
            for field in schema.fields() {
                let col = field.name();
                let Some((_, rr)) = rt.columns.iter().find(|(c, _)| c == col) else {
                    problems.push(format!(
                        "table {name}: column '{col}' ({}) has no rule; every column must be classified (fail closed).\n    \
                         add a line under [tables.{name}.columns], e.g. {col} = \"drop\"",
                        field.data_type()
                    ));
                    continue;
                };
                let rule = match rr {
                    RawRule::Rule(r) => r.clone(),
                    RawRule::Pseudonymize { normalize, domain } => Rule::Pseudonymize {
                        normalize: normalize.unwrap_or(
                            if roles.get(&Role::Email).map(String::as_str) == Some(col.as_str())
                                || col.to_ascii_lowercase().contains("email")
                            {
                                Normalize::Email
                            } else if is_string(field.data_type()) {
                                Normalize::Trim
                            } else {
                                Normalize::None
                            },
                        ),
                        domain: domain.clone(),
                    },
                };
                if let Err(needs) = rule.check_type(field.data_type()) {
                    let at = text_times
                        .get(&(name.clone(), col.clone()))
                        .map(|at| format!(": {at}"))
                        .unwrap_or_default();
                    problems.push(format!(
                        "table {name}: rule {rule} on column '{col}' needs {needs}, but the column is {}{at}",
                        field.data_type()
                    ));
                    continue;
                }
                columns.push(ColumnRule {
                    name: col.clone(),
                    data_type: field.data_type().clone(),
                    rule,
                });
            }
            // A scrub rule's `names`: text columns of this table, each named once.
            for c in &columns {
                let Rule::Scrub { names } = &c.rule else {
                    continue;
                };
                let col = &c.name;
                if names.len() > crate::rules::scrub::MAX_NAME_COLUMNS {
                    problems.push(format!(
                        "table {name}: scrub on column '{col}' names {} columns; at most {} can be given",
                        names.len(),
                        crate::rules::scrub::MAX_NAME_COLUMNS
                    ));
                }
                for (i, n) in names.iter().enumerate() {
                    if names[..i].contains(n) {
                        problems.push(format!(
                            "table {name}: scrub on column '{col}' names '{n}' twice"
                        ));
                    } else if n == col {
                        problems.push(format!(
                            "table {name}: scrub on column '{col}' names the column itself; \
                             names lists the columns holding the person's name (e.g. first_name, last_name)"
                        ));
                    } else {
                        match schema.field_with_name(n) {
                            Err(_) => {
                                let s = did_you_mean(n, data_cols.iter().copied());
                                problems.push(format!(
                                    "table {name}: scrub on column '{col}' names '{n}', which is not a column of the data{}",
                                    hint(&s)
                                ));
                            }
                            Ok(f) if !is_string(f.data_type()) => problems.push(format!(
                                "table {name}: scrub on column '{col}' names '{n}', which is {}; names must be text columns",
                                f.data_type()
                            )),
                            Ok(_) => {}
                        }
                    }
                }
            }
            // k-anonymity counts records: in a table of events one customer has many, so
            // k records can be one person. Only a table with one row per person qualifies.
            if !rt.quasi_identifiers.is_empty()
                && let Some(time) = roles.get(&Role::EventTime)
            {
                problems.push(format!(
                    "table {name}: quasi_identifiers on a table of events (it maps event_time to '{time}'): \
                     k-anonymity counts records, and one customer has many here, so a group of k records \
                     can be one person.\n    declare them on the table with one row per customer (customers), \
                     and generalize or drop these columns in this table"
                ));
            }
            let mut seen = Vec::new();
            for q in &rt.quasi_identifiers {
                if seen.contains(&q) {
                    problems.push(format!(
                        "table {name}: quasi-identifier '{q}' is listed twice"
                    ));
                    continue;
                }
                seen.push(q);
                match columns.iter().find(|c| &c.name == q) {
                    Some(c) if c.rule == Rule::Drop => problems.push(format!(
                        "table {name}: quasi-identifier '{q}' is dropped, so it is never published; remove it from quasi_identifiers"
                    )),
                    Some(_) => {}
                    None if data_cols.contains(&q.as_str()) => {} // its rule failed above
                    None => {
                        let s = did_you_mean(q, data_cols.iter().copied());
                        problems.push(format!(
                            "table {name}: quasi-identifier '{q}' is not a column of the data{}",
                            hint(&s)
                        ));
                    }
                }
            }
            for col in rt.hierarchies.keys() {
                if !rt.quasi_identifiers.contains(col) {
                    problems.push(format!(
                        "table {name}: a hierarchy is given for '{col}', which is not among quasi_identifiers; add it there or remove the hierarchy"
                    ));
                }
            }
            if columns.iter().all(|c| c.rule == Rule::Drop) && !columns.is_empty() {
                problems.push(format!(
                    "table {name}: every column is dropped; remove the table from the policy instead"
                ));
            }
            tables.push(TablePolicy {
                name: name.clone(),
                format,
                delimiter: rt.delimiter,
                csv_piece_bytes: rt.csv_piece_bytes,
                files,
                schema,
                columns,
                roles,
                quasi_identifiers: rt.quasi_identifiers.clone(),
                hierarchies: rt.hierarchies.clone(),
                units: UnitsOnce::default(),
            });
        }
        let analytics = resolve_analytics(&raw.analytics, &tables, &mut problems);
        check_not_personal(&raw.verify.not_personal, &tables, &mut problems);
        if raw.k_anonymity.is_none()
            && let Some(t) = tables.iter().find(|t| !t.quasi_identifiers.is_empty())
        {
            problems.push(format!(
                "table {}: quasi_identifiers are declared but the policy has no [k_anonymity] section; add one, e.g.\n    [k_anonymity]\n    k = 10\n    max_suppression = 0.05",
                t.name
            ));
        }
        if !problems.is_empty() {
            return Err(PolicyError::Invalid {
                path: raw.path,
                problems,
            });
        }
        Ok(Policy {
            path: raw.path,
            digest: raw.digest,
            output: raw.output,
            key_file: raw.key_file,
            keep_runs: raw.keep_runs,
            threads: raw.threads,
            spill_dir: raw.spill_dir.clone(),
            tables,
            analytics,
            erasure: raw.erasure.clone(),
            k_anonymity: raw.k_anonymity,
            verify: raw.verify.clone(),
        })
    }

    pub fn table(&self, name: &str) -> Option<&TablePolicy> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// `[verify] not_personal`: each entry a `table.column` the policy keeps (unchanged or
/// truncated to a prefix): the only columns the personal-text check looks at.
fn check_not_personal(entries: &[String], tables: &[TablePolicy], problems: &mut Vec<String>) {
    for e in entries {
        let Some((table, column)) = e.split_once('.') else {
            problems.push(format!(
                "[verify] not_personal: '{e}' is not table.column, e.g. \"customers.city\""
            ));
            continue;
        };
        let Some(t) = tables.iter().find(|t| t.name == table) else {
            let s = did_you_mean(table, tables.iter().map(|t| t.name.as_str()));
            problems.push(format!(
                "[verify] not_personal: '{e}': {table} is not a table of the policy{}",
                hint(&s)
            ));
            continue;
        };
        match t.rule_of(column) {
            Some(
                Rule::Keep
                | Rule::Generalize(crate::rules::Generalization::Prefix { .. }),
            ) => {}
            Some(_) => problems.push(format!(
                "[verify] not_personal: '{e}': the policy does not keep {column} unchanged, so the check never looks at it; remove it from the list"
            )),
            None => {
                let s = did_you_mean(column, t.columns.iter().map(|c| c.name.as_str()));
                problems.push(format!(
                    "[verify] not_personal: '{e}': {column} is not a column of table {table}{}",
                    hint(&s)
                ));
            }
        }
    }
}

/// Picks the transactions and customers tables of the `[analytics]` section (named, or
/// found by their roles) and checks the aggregate names.
fn resolve_analytics(
    raw: &raw::RawAnalytics,
    tables: &[TablePolicy],
    problems: &mut Vec<String>,
) -> AnalyticsPolicy {
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let mut named = |key: &str, v: &Option<String>| -> Option<String> {
        let v = v.as_ref()?;
        if names.contains(&v.as_str()) {
            Some(v.clone())
        } else {
            let s = did_you_mean(v, names.iter().copied());
            problems.push(format!(
                "[analytics]: {key} = '{v}' is not a table of the policy{}",
                hint(&s)
            ));
            None
        }
    };
    let has = |t: &TablePolicy, r: Role| t.roles.contains_key(&r);
    let by_role = |want_events: bool| -> Vec<&TablePolicy> {
        tables
            .iter()
            .filter(|t| has(t, Role::CustomerKey) && has(t, Role::EventTime) == want_events)
            .collect()
    };
    let pick = |candidates: Vec<&TablePolicy>, usual: &str| -> Option<String> {
        match candidates.as_slice() {
            [one] => Some(one.name.clone()),
            many => many
                .iter()
                .find(|t| t.name == usual)
                .map(|t| t.name.clone()),
        }
    };
    let transactions =
        named("transactions", &raw.transactions).or_else(|| pick(by_role(true), "transactions"));
    let customers =
        named("customers", &raw.customers).or_else(|| pick(by_role(false), "customers"));
    if raw.transactions.is_none() && transactions.is_none() && by_role(true).len() > 1 {
        problems.push(
            "[analytics]: several tables map customer_key and event_time; name the one with the transactions, e.g. transactions = \"transactions\"".into(),
        );
    }
    let all = crate::analytics::TABLE_NAMES;
    let mut chosen = Vec::new();
    match &raw.tables {
        None => chosen.extend(all),
        Some(list) => {
            for name in list {
                match all.iter().find(|a| **a == name.as_str()) {
                    Some(a) if !chosen.contains(a) => chosen.push(*a),
                    Some(_) => {}
                    None => {
                        let s = did_you_mean(name, all.iter().copied());
                        problems.push(format!(
                            "[analytics]: unknown aggregate table '{name}'{}; they are: {}",
                            hint(&s),
                            all.join(", ")
                        ));
                    }
                }
            }
        }
    }
    let engine = match raw.engine.as_deref() {
        None | Some("kernel") => Engine::Kernel,
        Some("sql") => Engine::Sql,
        Some(other) => {
            problems.push(format!(
                "[analytics]: engine = '{other}' is not an engine; use \"kernel\" (the default) or \"sql\""
            ));
            Engine::Kernel
        }
    };
    for t in tables {
        if chosen.contains(&t.name.as_str()) {
            problems.push(format!(
                "table {}: the name is taken by the aggregate table of the same name; rename the table or leave the aggregate out with [analytics] tables = [...]",
                t.name
            ));
        }
    }
    AnalyticsPolicy {
        k: raw.k,
        transactions,
        customers,
        tables: chosen,
        engine,
        memory_bytes: raw.memory_mb.unwrap_or(DEFAULT_AGGREGATE_MEMORY_MB) << 20,
        max_key_values: raw.max_key_values.unwrap_or(DEFAULT_MAX_KEY_VALUES) as usize,
    }
}

#[cfg(test)]
mod tests {
    /// The first value that is not a date or time is found past quoted line breaks and
    /// empty values, in the second file, and said by file, row and line, not by value.
    #[test]
    fn the_first_value_that_is_not_a_time_is_named_by_row_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        std::fs::write(
            &a,
            "Note;When\n\"two\nlines\";2011-12-01 08:26:00\nx;\ny;2011-12-02\nz;2011-12-03T08:26:00.123456Z\n",
        )
        .unwrap();
        std::fs::write(
            &b,
            "Note;When\nx;2011-12-04 08:26:00 UTC\ny;2011-12-04 08:26\n",
        )
        .unwrap();
        let files = [a.clone(), b.clone()];
        assert_eq!(
            super::first_value_not_a_time(&files[..1], b';', "When"),
            None
        );
        let at = super::first_value_not_a_time(&files, b';', "When").unwrap();
        assert_eq!(
            at,
            format!(
                "{}, row 2 (line 3), holds a value that is not a date or time (not printed); \
                 correct it in the export",
                b.display()
            )
        );
        assert!(
            !at.contains("08:26"),
            "no seconds: text to Arrow, and never printed"
        );
        // Past a record over two lines, the line counts both.
        std::fs::write(&a, "Note;When\n\"two\nlines\";soon\n").unwrap();
        let at = super::first_value_not_a_time(&files, b';', "When").unwrap();
        assert!(at.contains("row 1 (line 2)"), "{at}");
        std::fs::write(&a, "Note;When\nx;2011-12-01\n\"two\nlines\";soon\n").unwrap();
        let at = super::first_value_not_a_time(&files, b';', "When").unwrap();
        assert!(at.contains("row 2 (line 3)"), "{at}");
        // No such column: nothing to say.
        assert_eq!(super::first_value_not_a_time(&files, b';', "Other"), None);
    }
}
