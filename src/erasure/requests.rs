//! Parsing and validation of the erasure requests file (right to be
//! forgotten: GDPR Art. 17, CCPA deletion).
//!
//! The file lists one erasure request per row, either as CSV with a header
//! row or as JSON Lines (one object per line). Both carry the same fields:
//! `request_id`, `email`, `received_at`, `jurisdiction`, `kind`, `explained`
//! and the optional `note`.
//!
//! Every data row ends up either in [`Parsed::valid`] as a [`Request`] or in
//! [`Parsed::invalid`] as an [`Invalid`] with a reason; no row is ever
//! dropped silently (blank lines are not rows). Problems that make the whole
//! file unusable (a missing, unknown or repeated CSV column, an empty CSV
//! file, an unterminated quoted field, a file that is not UTF-8) are returned
//! as errors instead.
//!
//! Privacy: no error message and no reason ever contains the email or any
//! other value taken from the file. They name only row and line numbers,
//! request ids, field names and the run's as-of date. Column or key names
//! from the file are shown only when they look like a field name (ASCII
//! letters, digits, ` `, `_`, `-`, `.`, at most 64 characters).
//!
//! Rules worth knowing:
//! - Rows are numbered from 1 = the first data row: for CSV the first record
//!   after the header, for JSON Lines the first non-blank line. Blank lines
//!   are skipped and not counted. Reasons about a row's structure also give
//!   the physical line number of the file.
//! - Emails are normalized by trimming and lower-casing the whole address
//!   (local part included, Unicode lower-casing); this normalized form is
//!   what is matched against customers, so `" Alice@Example.COM "` and
//!   `"alice@example.com"` are the same person.
//! - `request_id`s are compared exactly (case-sensitive, after trimming). A
//!   well-formed id already seen on an earlier row, valid or invalid, makes
//!   the later row invalid; the first one keeps its own outcome.
//! - `received_at` is a date, an RFC 3339 timestamp (its UTC date counts) or
//!   `YYYY-MM-DD HH:MM:SS` read as UTC; it must not be after the as-of date, nor
//!   before 2000-01-01 (older than any erasure law: a typo).
//! - Deadlines ([`due_date`]): GDPR and OTHER get one calendar month
//!   (clamped to the target month's last day), CCPA 45 days.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Days, Months, NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;

/// Legal regime a request falls under; decides its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Jurisdiction {
    Gdpr,
    Ccpa,
    Other,
}

impl Jurisdiction {
    /// `GDPR`, `CCPA` or `OTHER`, case-insensitive, surrounding whitespace ignored.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        [Self::Gdpr, Self::Ccpa, Self::Other]
            .into_iter()
            .find(|j| s.eq_ignore_ascii_case(j.as_str()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gdpr => "GDPR",
            Self::Ccpa => "CCPA",
            Self::Other => "OTHER",
        }
    }
}

/// What to do with the customer's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Anonymize,
    Delete,
}

impl Kind {
    /// `anonymize` or `delete`, case-insensitive, surrounding whitespace ignored.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        [Self::Anonymize, Self::Delete]
            .into_iter()
            .find(|k| s.eq_ignore_ascii_case(k.as_str()))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymize => "anonymize",
            Self::Delete => "delete",
        }
    }
}

/// A valid erasure request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// 1-based data row number (see the module docs).
    pub row: usize,
    /// 1-based line of the file on which the request starts (a CSV header is line 1;
    /// blank lines and quoted line breaks count), for support to find it.
    pub line: usize,
    pub request_id: String,
    /// Normalized with [`normalize_email`].
    pub email: String,
    pub received_at: NaiveDate,
    pub jurisdiction: Jurisdiction,
    pub kind: Kind,
    pub explained: bool,
    /// Support's free text, kept as is (an empty value is `None`). Never published.
    pub note: Option<String>,
}

/// A row that could not be accepted. Holds no value from the file except a
/// well-formed request id.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub row: usize,
    /// As [`Request::line`].
    pub line: usize,
    /// The row's request id, when present and well-formed.
    pub request_id: Option<String>,
    /// The row's receipt date, when parsable (even if after the as-of date).
    pub received_at: Option<NaiveDate>,
    /// The row's `explained` flag, when parsable (missing counts as `false`).
    pub explained: Option<bool>,
    /// The row's jurisdiction and kind, when they parse (the receipt says them; the due
    /// date of an invalid row is still the shorter GDPR one).
    pub jurisdiction: Option<Jurisdiction>,
    pub kind: Option<Kind>,
    /// Why the row was rejected: the first failing check.
    pub reason: String,
}

/// Outcome of parsing a requests file; both lists are in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Parsed {
    pub valid: Vec<Request>,
    pub invalid: Vec<Invalid>,
}

/// Input format of the requests file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

/// An error that makes the whole requests file unusable.
#[derive(Debug)]
pub enum RequestsError {
    Read {
        path: PathBuf,
        err: std::io::Error,
    },
    /// The file's structure is wrong (for CSV: the header row, an empty
    /// file, an unterminated quoted field).
    Header {
        path: PathBuf,
        message: String,
    },
    NotUtf8 {
        path: PathBuf,
        line: usize,
    },
}

impl fmt::Display for RequestsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, err } => write!(
                f,
                "cannot read the erasure requests file {}: {err}; check the path and its permissions",
                path.display()
            ),
            Self::Header { path, message } => {
                write!(f, "erasure requests file {}: {message}", path.display())
            }
            Self::NotUtf8 { path, line } => write!(
                f,
                "erasure requests file {} is not valid UTF-8 (first bad byte on line {line}); save it as UTF-8 and retry",
                path.display()
            ),
        }
    }
}

impl std::error::Error for RequestsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { err, .. } => Some(err),
            Self::Header { .. } | Self::NotUtf8 { .. } => None,
        }
    }
}

/// Reads and parses a requests file.
///
/// The format follows the extension (case-insensitive): `.csv` is CSV;
/// `.jsonl`, `.ndjson` and `.json` are JSON Lines; anything else is sniffed:
/// JSON Lines when the first non-blank character is `{`, CSV otherwise.
/// A leading UTF-8 byte order mark is ignored.
pub fn parse_file(path: &Path, as_of: NaiveDate) -> Result<Parsed, RequestsError> {
    let text = read_text(path)?.ok_or_else(|| RequestsError::Read {
        path: path.to_path_buf(),
        err: std::io::ErrorKind::NotFound.into(),
    })?;
    let format = detect_format(path, &text);
    parse_str(&text, format, as_of).map_err(|message| RequestsError::Header {
        path: path.to_path_buf(),
        message,
    })
}

/// The text of a requests file; `None` when it does not exist (what `erase` creates).
/// Not UTF-8 names the line of the first bad byte.
pub fn read_text(path: &Path) -> Result<Option<String>, RequestsError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(RequestsError::Read {
                path: path.to_path_buf(),
                err,
            });
        }
    };
    String::from_utf8(bytes).map(Some).map_err(|e| {
        let bytes = e.as_bytes();
        RequestsError::NotUtf8 {
            path: path.to_path_buf(),
            line: bytes[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1,
        }
    })
}

/// Parses the text of a requests file. `Err` is a whole-file problem (for
/// CSV: the header row, an empty file or an unterminated quoted field);
/// JSON Lines text never fails as a whole.
pub fn parse_str(text: &str, format: Format, as_of: NaiveDate) -> Result<Parsed, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match format {
        Format::Csv => parse_csv(text, as_of),
        Format::JsonLines => Ok(parse_jsonl(text, as_of)),
    }
}

/// The form in which emails are matched against customers: trimmed, lower-cased as
/// a whole (local part too) and composed (Unicode NFC), the same as an email token's
/// input ([`crate::rules::pseudonymize::normalized`]).
pub fn normalize_email(s: &str) -> String {
    let mut scratch = String::new();
    crate::rules::pseudonymize::normalized(s, crate::rules::Normalize::Email, &mut scratch)
        .to_string()
}

/// Whether an already normalized email looks like an address: exactly one
/// `@`; a local part of 1 to 64 characters without whitespace or control
/// characters; a domain of at most 255 characters with at least one `.`,
/// made of labels of 1 to 63 lower-case letters or digits of any script or `-`
/// (internationalized domains) that neither start nor end with `-`, the last
/// label (TLD) being at least 2 letters or a punycode label (`xn--...`).
pub fn valid_email(normalized: &str) -> bool {
    let Some((local, domain)) = normalized.split_once('@') else {
        return false;
    };
    if domain.contains('@') {
        return false;
    }
    // Without RFC 5322's specials, which an address holds only quoted: what they mark is
    // a pasted `mailto:jane@…`, `<jane@…>` or `Jane, jane@…`, which would match nobody.
    let local_ok = !local.is_empty()
        && local.chars().count() <= 64
        && !local.chars().any(|c| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    ':' | ';' | ',' | '<' | '>' | '(' | ')' | '[' | ']' | '\\' | '"'
                )
        });
    if !local_ok || domain.len() > 255 || !domain.contains('.') {
        return false;
    }
    // Internationalized domains (RFC 6531: `frank@例え.jp`, `jürgen@bücher.de`) as well
    // as their ASCII (punycode) form: letters and digits of any script, and `-`.
    let labels_ok = domain.split('.').all(|label| {
        !label.is_empty()
            && label.chars().count() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| (c.is_alphanumeric() && !c.is_uppercase()) || c == '-')
    });
    let tld = domain.rsplit('.').next().unwrap_or("");
    labels_ok
        && ((tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic))
            || tld.starts_with("xn--"))
}

/// The date by which a request must be answered.
///
/// GDPR: one calendar month after receipt; when that day does not exist in
/// the target month, the target month's last day (Jan 31 -> Feb 28/29).
/// CCPA: 45 days after receipt. OTHER: treated like GDPR, the shorter and
/// stricter of the two. Saturates at the largest representable date.
pub fn due_date(j: Jurisdiction, received: NaiveDate) -> NaiveDate {
    let due = match j {
        Jurisdiction::Gdpr | Jurisdiction::Other => received.checked_add_months(Months::new(1)),
        Jurisdiction::Ccpa => received.checked_add_days(Days::new(45)),
    };
    due.unwrap_or(NaiveDate::MAX)
}

/// One JSON Lines row for `anonymizer erase` to append, without a trailing
/// newline. Keys in the order `request_id`, `email`, `received_at`
/// (`YYYY-MM-DD`), `jurisdiction`, `kind`, `explained`, `note`; `note` is
/// omitted when `None`. Values are written as given (no normalization).
pub fn jsonl_line(
    request_id: &str,
    email: &str,
    received_at: NaiveDate,
    j: Jurisdiction,
    k: Kind,
    explained: bool,
    note: Option<&str>,
) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        request_id: &'a str,
        email: &'a str,
        received_at: String,
        jurisdiction: Jurisdiction,
        kind: Kind,
        explained: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        note: Option<&'a str>,
    }
    let line = Line {
        request_id,
        email,
        received_at: received_at.format("%Y-%m-%d").to_string(),
        jurisdiction: j,
        kind: k,
        explained,
        note,
    };
    serde_json::to_string(&line).expect("a struct of strings and bools always serializes")
}

// ---------------------------------------------------------------------------
// Fields

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    RequestId,
    Email,
    ReceivedAt,
    Jurisdiction,
    Kind,
    Explained,
    Note,
}

const FIELDS: [Field; 7] = [
    Field::RequestId,
    Field::Email,
    Field::ReceivedAt,
    Field::Jurisdiction,
    Field::Kind,
    Field::Explained,
    Field::Note,
];

const EXPECTED_COLUMNS: &str = "expected columns request_id, email, received_at, jurisdiction, \
     kind, explained and optionally note (any order, names case-insensitive)";

impl Field {
    fn name(self) -> &'static str {
        match self {
            Self::RequestId => "request_id",
            Self::Email => "email",
            Self::ReceivedAt => "received_at",
            Self::Jurisdiction => "jurisdiction",
            Self::Kind => "kind",
            Self::Explained => "explained",
            Self::Note => "note",
        }
    }

    /// Matches a CSV column or JSON key: trimmed, case-insensitive.
    fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        FIELDS
            .into_iter()
            .find(|f| name.eq_ignore_ascii_case(f.name()))
    }
}

/// A column or key name from the file, quoted, if it looks like a field
/// name; `None` if it could be data (and so must not be echoed).
fn shown_name(name: &str) -> Option<String> {
    let name = name.trim();
    let safe = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'_' | b'-' | b'.'));
    safe.then(|| format!("\"{name}\""))
}

fn unknown_name_problem(what: &str, name: &str) -> String {
    match shown_name(name) {
        Some(shown) => format!("unknown {what} {shown}"),
        None if name.trim().is_empty() => format!("a {what} with an empty name"),
        None => {
            format!("an unknown {what} (its name is not shown: it does not look like a field name)")
        }
    }
}

/// A value as found in the file, before validation.
enum Raw {
    Text(String),
    Bool(bool),
    Other,
}

/// One data row before validation. `problem` is a structural defect that
/// takes precedence over the field checks.
#[derive(Default)]
struct RawRow {
    problem: Option<String>,
    values: [Option<Raw>; 7],
}

impl RawRow {
    fn slot(&mut self, f: Field) -> &mut Option<Raw> {
        &mut self.values[f as usize]
    }

    fn get(&self, f: Field) -> Option<&Raw> {
        self.values[f as usize].as_ref()
    }

    fn problem(&mut self, message: String) {
        self.problem.get_or_insert(message);
    }
}

/// A trimmed, non-empty text value; `Ok(None)` when missing or blank.
fn text_value(raw: Option<&Raw>, f: Field) -> Result<Option<&str>, String> {
    match raw {
        None => Ok(None),
        Some(Raw::Text(s)) => Ok(Some(s.trim()).filter(|s| !s.is_empty())),
        Some(Raw::Bool(_) | Raw::Other) => Err(format!("{} must be a string", f.name())),
    }
}

fn check_request_id(id: &str) -> Result<(), String> {
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err("request_id may only contain A-Z, a-z, 0-9, '.', '_', ':' and '-'".into());
    }
    if id.len() > 128 {
        return Err("request_id is longer than 128 characters".into());
    }
    // The receipts are published, and the privacy gate refuses any published value its
    // detectors find (a token's shape excepted, as there): such an id would stop every run.
    if !crate::rules::pseudonymize::is_token(id)
        && let Some(kind) = crate::rules::scrub::detect(id).first()
    {
        return Err(format!(
            "request_id has the shape of {}, which the privacy gate refuses in the published receipts; use an id with letters, such as \
             REQ-20251201-0042",
            crate::rules::scrub::kind_phrase(kind)
        ));
    }
    Ok(())
}

/// `pattern`: `d` is an ASCII digit, any other byte must match itself.
fn has_shape(s: &str, pattern: &str) -> bool {
    s.len() == pattern.len()
        && s.bytes().zip(pattern.bytes()).all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p,
        })
}

fn parse_received(s: &str) -> Option<NaiveDate> {
    if has_shape(s, "dddd-dd-dd") {
        return NaiveDate::parse_from_str(s, "%Y-%m-%d").ok();
    }
    if has_shape(s, "dddd-dd-dd dd:dd:dd") {
        return NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .ok()
            .map(|dt| dt.date());
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|dt| dt.naive_utc().date())
}

/// The earliest plausible receipt date: no erasure law is older (GDPR applies from
/// 2018, CCPA from 2020); an earlier date is a typo, and its deadline long past.
fn earliest_received() -> NaiveDate {
    NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date")
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "no" | "0" => Some(false),
        "true" | "yes" | "1" => Some(true),
        _ => None,
    }
}

/// Validates one row. `seen` maps well-formed request ids to the row that
/// first carried them.
fn validate(
    raw: RawRow,
    (row, line): (usize, usize),
    seen: &mut HashMap<String, usize>,
    as_of: NaiveDate,
) -> Result<Request, Invalid> {
    let request_id = match text_value(raw.get(Field::RequestId), Field::RequestId) {
        Ok(Some(id)) => check_request_id(id).map(|()| id.to_string()),
        Ok(None) => Err("missing request_id".to_string()),
        Err(e) => Err(e),
    };
    let duplicate_of = match &request_id {
        Ok(id) => {
            let first = *seen.entry(id.clone()).or_insert(row);
            (first != row).then_some(first)
        }
        Err(_) => None,
    };
    let email = match text_value(raw.get(Field::Email), Field::Email) {
        Ok(Some(s)) => {
            let normalized = normalize_email(s);
            if valid_email(&normalized) {
                Ok(normalized)
            } else {
                Err("malformed email".to_string())
            }
        }
        Ok(None) => Err("missing email".to_string()),
        Err(e) => Err(e),
    };
    let received_at = match text_value(raw.get(Field::ReceivedAt), Field::ReceivedAt) {
        Ok(Some(s)) => parse_received(s).ok_or_else(|| {
            "received_at is not a date (YYYY-MM-DD) or RFC 3339 timestamp".to_string()
        }),
        Ok(None) => Err("missing received_at".to_string()),
        Err(e) => Err(e),
    };
    let jurisdiction = match text_value(raw.get(Field::Jurisdiction), Field::Jurisdiction) {
        Ok(Some(s)) => Jurisdiction::parse(s)
            .ok_or_else(|| "unknown jurisdiction (GDPR, CCPA or OTHER)".to_string()),
        Ok(None) => Err("missing jurisdiction".to_string()),
        Err(e) => Err(e),
    };
    let kind = match text_value(raw.get(Field::Kind), Field::Kind) {
        Ok(Some(s)) => {
            Kind::parse(s).ok_or_else(|| "unknown kind (anonymize or delete)".to_string())
        }
        Ok(None) => Ok(Kind::Anonymize),
        Err(e) => Err(e),
    };
    let explained = match raw.get(Field::Explained) {
        None => Some(false),
        Some(Raw::Bool(b)) => Some(*b),
        Some(Raw::Text(s)) => parse_bool(s),
        Some(Raw::Other) => None,
    }
    .ok_or_else(|| "explained must be true or false (or yes/no, 1/0; empty is false)".to_string());
    let note = match raw.get(Field::Note) {
        None => Ok(None),
        Some(Raw::Text(s)) if s.is_empty() => Ok(None),
        Some(Raw::Text(s)) => Ok(Some(s.clone())),
        Some(Raw::Bool(_) | Raw::Other) => Err("note must be a string".to_string()),
    };

    let reason = raw
        .problem
        .or_else(|| request_id.as_ref().err().cloned())
        .or_else(|| {
            duplicate_of.map(|first| format!("duplicate request_id (first on row {first})"))
        })
        .or_else(|| email.as_ref().err().cloned())
        .or_else(|| received_at.as_ref().err().cloned())
        .or_else(|| match received_at {
            Ok(date) if date < earliest_received() => Some(
                "received_at is before 2000-01-01, older than any erasure law: correct the \
                 date (a typo such as 0024 for 2024?)"
                    .to_string(),
            ),
            Ok(date) if date > as_of => Some(format!(
                "received_at is after the as-of date {}; if the date is right, \
                 keep the request in the file: the first run whose as-of date reaches it \
                 honours it",
                as_of.format("%Y-%m-%d")
            )),
            _ => None,
        })
        .or_else(|| jurisdiction.as_ref().err().cloned())
        .or_else(|| kind.as_ref().err().cloned())
        .or_else(|| explained.as_ref().err().cloned())
        .or_else(|| note.as_ref().err().cloned());

    match (
        reason,
        request_id,
        email,
        received_at,
        jurisdiction,
        kind,
        explained,
        note,
    ) {
        (
            None,
            Ok(request_id),
            Ok(email),
            Ok(received_at),
            Ok(jurisdiction),
            Ok(kind),
            Ok(explained),
            Ok(note),
        ) => Ok(Request {
            row,
            line,
            request_id,
            email,
            received_at,
            jurisdiction,
            kind,
            explained,
            note,
        }),
        (reason, request_id, _, received_at, jurisdiction, kind, explained, _) => Err(Invalid {
            row,
            line,
            request_id: request_id.ok(),
            received_at: received_at.ok(),
            explained: explained.ok(),
            jurisdiction: jurisdiction.ok(),
            kind: kind.ok(),
            reason: reason.unwrap_or_else(|| "invalid row".to_string()),
        }),
    }
}

fn push(out: &mut Parsed, result: Result<Request, Invalid>) {
    match result {
        Ok(request) => out.valid.push(request),
        Err(invalid) => out.invalid.push(invalid),
    }
}

pub(crate) fn detect_format(path: &Path, text: &str) -> Format {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => Format::Csv,
        Some("jsonl" | "ndjson" | "json") => Format::JsonLines,
        _ => {
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            if text.trim_start().starts_with('{') {
                Format::JsonLines
            } else {
                Format::Csv
            }
        }
    }
}

// ---------------------------------------------------------------------------
// CSV (RFC 4180)

struct CsvRecord {
    /// Physical line on which the record starts.
    line: usize,
    fields: Vec<String>,
    /// Text between a closing quote and the next delimiter.
    malformed: bool,
    /// A single unquoted field of only whitespace: a blank line.
    blank: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum CsvState {
    FieldStart,
    Unquoted,
    AfterQuote,
}

/// Splits RFC 4180 text into records: `,` separates fields, CRLF or LF ends
/// a record, fields may be quoted with `"` (holding commas, line breaks and
/// doubled quotes). A quote inside an unquoted field is kept literally; text
/// after a closing quote marks the record malformed. An unterminated quoted
/// field is an error for the whole file.
fn read_csv(text: &str) -> Result<Vec<CsvRecord>, String> {
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    let mut record_line = 1;
    let mut fields: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut state = CsvState::FieldStart;
    let mut any_quoted = false;
    let mut malformed = false;
    let mut started = false;

    let mut finish = |fields: &mut Vec<String>,
                      field: &mut String,
                      any_quoted: &mut bool,
                      malformed: &mut bool,
                      record_line: usize| {
        fields.push(std::mem::take(field));
        let blank = fields.len() == 1 && !*any_quoted && fields[0].trim().is_empty();
        records.push(CsvRecord {
            line: record_line,
            fields: std::mem::take(fields),
            malformed: *malformed,
            blank,
        });
        *any_quoted = false;
        *malformed = false;
    };

    while let Some(c) = chars.next() {
        started = true;
        if state == CsvState::FieldStart && c == '"' {
            any_quoted = true;
            let open_line = line;
            loop {
                match chars.next() {
                    None => {
                        return Err(format!(
                            "unterminated quoted field starting on line {open_line}: \
                             add the closing double quote"
                        ));
                    }
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(ch) => {
                        if ch == '\n' {
                            line += 1;
                        }
                        field.push(ch);
                    }
                }
            }
            state = CsvState::AfterQuote;
            continue;
        }
        let end_of_record = c == '\n' || (c == '\r' && chars.peek() == Some(&'\n'));
        if end_of_record {
            if c == '\r' {
                chars.next();
            }
            finish(
                &mut fields,
                &mut field,
                &mut any_quoted,
                &mut malformed,
                record_line,
            );
            line += 1;
            record_line = line;
            state = CsvState::FieldStart;
            started = false;
        } else if c == ',' {
            fields.push(std::mem::take(&mut field));
            state = CsvState::FieldStart;
        } else {
            if state == CsvState::AfterQuote {
                malformed = true;
            }
            field.push(c);
            state = CsvState::Unquoted;
        }
    }
    if started {
        finish(
            &mut fields,
            &mut field,
            &mut any_quoted,
            &mut malformed,
            record_line,
        );
    }
    Ok(records)
}

/// The column names of a CSV requests file's header row, in its order (`None` for a file
/// without one yet), as the run reads them: for `anonymizer erase` to append in that order.
pub(crate) fn csv_columns(text: &str) -> Result<Option<Vec<&'static str>>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let Some(header) = read_csv(text)?.into_iter().find(|r| !r.blank) else {
        return Ok(None);
    };
    Ok(Some(
        map_header(&header)?.into_iter().map(Field::name).collect(),
    ))
}

fn map_header(header: &CsvRecord) -> Result<Vec<Field>, String> {
    // A first row naming no known column is most likely data (a missing
    // header row); its cells must not be echoed.
    if !header
        .fields
        .iter()
        .any(|name| Field::from_name(name).is_some())
    {
        return Err(format!(
            "the first row (line {}) is not a header row: it names none of the expected \
             columns; add a header row: {EXPECTED_COLUMNS}",
            header.line
        ));
    }
    let mut columns = Vec::with_capacity(header.fields.len());
    let mut problems = Vec::new();
    if header.malformed {
        problems.push("malformed quoting (text after a closing quote)".to_string());
    }
    for (i, name) in header.fields.iter().enumerate() {
        match Field::from_name(name) {
            Some(f) if columns.contains(&f) => {
                problems.push(format!("column {} appears more than once", f.name()));
            }
            Some(f) => columns.push(f),
            None => problems.push(format!(
                "{} (column {})",
                unknown_name_problem("column", name),
                i + 1
            )),
        }
    }
    for f in FIELDS {
        if f != Field::Note && !columns.contains(&f) {
            problems.push(format!("missing required column {}", f.name()));
        }
    }
    if problems.is_empty() {
        Ok(columns)
    } else {
        Err(format!(
            "header row (line {}): {}; {EXPECTED_COLUMNS}",
            header.line,
            problems.join("; ")
        ))
    }
}

fn parse_csv(text: &str, as_of: NaiveDate) -> Result<Parsed, String> {
    let records = read_csv(text)?;
    let mut records = records.into_iter().filter(|r| !r.blank);
    let header = records.next().ok_or_else(|| {
        format!("the CSV file is empty: it needs a header row; {EXPECTED_COLUMNS}")
    })?;
    let columns = map_header(&header)?;

    let mut seen = HashMap::new();
    let mut out = Parsed::default();
    for (i, record) in records.enumerate() {
        let row = i + 1;
        let mut raw = RawRow::default();
        if record.fields.len() != columns.len() {
            raw.problem(format!(
                "row has {} fields but the header has {} (line {})",
                record.fields.len(),
                columns.len(),
                record.line
            ));
            // The id, when it is the first column: nothing before it can have shifted it,
            // so the receipt can name the request (it is still checked as an id). Other
            // fields may be shifted and are not read.
            if columns.first() == Some(&Field::RequestId)
                && let Some(id) = record.fields.into_iter().next()
            {
                *raw.slot(Field::RequestId) = Some(Raw::Text(id));
            }
        } else {
            if record.malformed {
                raw.problem(format!(
                    "malformed CSV quoting: text after a closing quote (line {})",
                    record.line
                ));
            }
            for (&f, value) in columns.iter().zip(record.fields) {
                *raw.slot(f) = Some(Raw::Text(value));
            }
        }
        push(
            &mut out,
            validate(raw, (row, record.line), &mut seen, as_of),
        );
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// JSON Lines

/// A JSON object's entries in file order, duplicates kept.
struct Entries(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

fn parse_jsonl(text: &str, as_of: NaiveDate) -> Parsed {
    let mut seen = HashMap::new();
    let mut out = Parsed::default();
    let mut row = 0;
    for (i, line) in text.split('\n').enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        row += 1;
        let line_no = i + 1;
        let mut raw = RawRow::default();
        // serde_json's error text may quote the input, so it is never shown.
        match serde_json::from_str::<Entries>(line) {
            Err(_) => raw.problem(format!("line {line_no} is not a JSON object")),
            Ok(Entries(entries)) => {
                for (key, value) in entries {
                    let Some(f) = Field::from_name(&key) else {
                        raw.problem(format!(
                            "{} on line {line_no}; expected keys request_id, email, received_at, \
                             jurisdiction, kind, explained, note",
                            unknown_name_problem("key", &key)
                        ));
                        continue;
                    };
                    let slot = raw.slot(f);
                    if slot.is_some() {
                        raw.problem(format!(
                            "key {} appears more than once on line {line_no}",
                            f.name()
                        ));
                        continue;
                    }
                    *slot = match value {
                        Value::Null => None,
                        Value::String(s) => Some(Raw::Text(s)),
                        Value::Bool(b) => Some(Raw::Bool(b)),
                        Value::Number(_) | Value::Array(_) | Value::Object(_) => Some(Raw::Other),
                    };
                }
            }
        }
        push(&mut out, validate(raw, (row, line_no), &mut seen, as_of));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn as_of() -> NaiveDate {
        d(2024, 6, 30)
    }

    const HEADER: &str = "request_id,email,received_at,jurisdiction,kind,explained,note";

    fn csv(rows: &[&str]) -> Parsed {
        let text = format!("{HEADER}\n{}\n", rows.join("\n"));
        parse_str(&text, Format::Csv, as_of()).unwrap()
    }

    fn csv_err(text: &str) -> String {
        parse_str(text, Format::Csv, as_of()).unwrap_err()
    }

    fn jsonl(lines: &[&str]) -> Parsed {
        parse_str(&lines.join("\n"), Format::JsonLines, as_of()).unwrap()
    }

    fn only_invalid(p: &Parsed) -> &Invalid {
        assert!(p.valid.is_empty(), "unexpected valid rows: {:?}", p.valid);
        assert_eq!(p.invalid.len(), 1, "{:?}", p.invalid);
        &p.invalid[0]
    }

    /// Found by the fourth audit (2026-12-04): `erase --request-id 12345678` was accepted,
    /// and the gate then refused the published receipts (a phone number) in every run.
    #[test]
    fn request_ids_the_gate_would_refuse_are_invalid() {
        for (id, shape) in [
            ("12345678", "a phone number"),
            ("4111111111111111", "a card number"),
            ("10.1.2.3", "an IP address"),
        ] {
            let e = check_request_id(id).unwrap_err();
            assert!(e.contains(shape) && !e.contains(id), "{id}: {e}");
        }
        for id in [
            "REQ-A1042",
            "erase-20251215T101010-123456",
            "r-1",
            "ticket:481516",
            "0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check_request_id(id), Ok(()), "{id}");
        }
    }

    #[test]
    fn valid_csv_row() {
        let p = csv(&["r-1, Alice@Example.COM ,2024-05-01,gdpr,Delete,yes,call back"]);
        assert!(p.invalid.is_empty(), "{:?}", p.invalid);
        assert_eq!(
            p.valid,
            vec![Request {
                row: 1,
                line: 2,
                request_id: "r-1".into(),
                email: "alice@example.com".into(),
                received_at: d(2024, 5, 1),
                jurisdiction: Jurisdiction::Gdpr,
                kind: Kind::Delete,
                explained: true,
                note: Some("call back".into()),
            }]
        );
    }

    #[test]
    fn each_request_knows_the_line_it_starts_on() {
        let ok = |id: &str| {
            format!(
                r#"{{"request_id":"{id}","email":"a@b.co","received_at":"2024-01-01","jurisdiction":"GDPR"}}"#
            )
        };
        let p = jsonl(&[&ok("j1"), "", "  ", &ok("j2"), "not json"]);
        let rows: Vec<(usize, usize)> = p.valid.iter().map(|r| (r.row, r.line)).collect();
        assert_eq!(rows, vec![(1, 1), (2, 4)]);
        assert_eq!((p.invalid[0].row, p.invalid[0].line), (3, 5));
        // CSV: the header is line 1, and a quoted note may hold line breaks.
        let p = csv(&[
            "c1,a@b.co,2024-01-01,GDPR,,,\"two\nlines\"",
            "c2,a@b.co,2024-01-01,GDPR,,,",
        ]);
        let rows: Vec<(usize, usize)> = p.valid.iter().map(|r| (r.row, r.line)).collect();
        assert_eq!(rows, vec![(1, 2), (2, 4)]);
    }

    #[test]
    fn valid_jsonl_row_and_defaults() {
        let p = jsonl(&[
            r#"{"request_id":"r-1","email":"bob@example.org","received_at":"2024-05-01","jurisdiction":"CCPA"}"#,
            r#"{"request_id":"r-2","email":"c@example.org","received_at":"2024-05-01","jurisdiction":"other","kind":"DELETE","explained":true,"note":null}"#,
            r#"{"request_id":"r-3","email":"e@example.org","received_at":"2024-05-01","jurisdiction":"GDPR","kind":"","explained":"No","note":"  x "}"#,
        ]);
        assert!(p.invalid.is_empty(), "{:?}", p.invalid);
        let r = &p.valid;
        assert_eq!(
            (r[0].kind, r[0].explained, r[0].note.as_deref()),
            (Kind::Anonymize, false, None)
        );
        assert_eq!(r[0].jurisdiction, Jurisdiction::Ccpa);
        assert_eq!(
            (r[1].kind, r[1].explained, r[1].jurisdiction),
            (Kind::Delete, true, Jurisdiction::Other)
        );
        assert_eq!(
            (r[2].kind, r[2].explained, r[2].note.as_deref()),
            (Kind::Anonymize, false, Some("  x "))
        );
        assert_eq!(r.iter().map(|r| r.row).collect::<Vec<_>>(), vec![1, 2, 3]);
    }

    /// Every per-row reason, in CSV and in JSON Lines. Each case gives the
    /// fields (None = missing) and the expected reason; each row has its own
    /// email, which must not appear in the reason.
    #[test]
    fn every_invalid_reason_csv_and_jsonl() {
        type Case = ([Option<&'static str>; 7], &'static str);
        let long_id = "a".repeat(129);
        let long_id: &'static str = Box::leak(long_id.into_boxed_str());
        let cases: Vec<Case> = vec![
            (
                [
                    None,
                    Some("m1@example.com"),
                    Some("2024-01-01"),
                    Some("GDPR"),
                    None,
                    None,
                    None,
                ],
                "missing request_id",
            ),
            (
                [
                    Some("  "),
                    Some("m2@example.com"),
                    Some("2024-01-01"),
                    Some("GDPR"),
                    None,
                    None,
                    None,
                ],
                "missing request_id",
            ),
            (
                [
                    Some("bad id"),
                    Some("m3@example.com"),
                    Some("2024-01-01"),
                    Some("GDPR"),
                    None,
                    None,
                    None,
                ],
                "request_id may only contain A-Z, a-z, 0-9, '.', '_', ':' and '-'",
            ),
            (
                [
                    Some(long_id),
                    Some("m4@example.com"),
                    Some("2024-01-01"),
                    Some("GDPR"),
                    None,
                    None,
                    None,
                ],
                "request_id is longer than 128 characters",
            ),
            (
                [
                    Some("id-5"),
                    None,
                    Some("2024-01-01"),
                    Some("GDPR"),
                    None,
                    None,
                    None,
                ],
                "missing email",
            ),
            (
                [
                    Some("id-6"),
                    Some("m6@example"),
                    Some("2024-01-01"),
                    Some("GDPR"),
                    None,
                    None,
                    None,
                ],
                "malformed email",
            ),
            (
                [
                    Some("id-7"),
                    Some("M7@EXAMPLE.COM"),
                    None,
                    Some("GDPR"),
                    None,
                    None,
                    None,
                ],
                "missing received_at",
            ),
            (
                [
                    Some("id-8"),
                    Some("m8@example.com"),
                    Some("01/02/2024"),
                    Some("GDPR"),
                    None,
                    None,
                    None,
                ],
                "received_at is not a date (YYYY-MM-DD) or RFC 3339 timestamp",
            ),
            (
                [
                    Some("id-9"),
                    Some("m9@example.com"),
                    Some("2024-07-01"),
                    Some("GDPR"),
                    None,
                    None,
                    None,
                ],
                "received_at is after the as-of date 2024-06-30; if the date is right, \
                 keep the request in the file: the first run whose as-of date reaches it \
                 honours it",
            ),
            (
                [
                    Some("id-9b"),
                    Some("m9b@example.com"),
                    Some("0024-03-01"),
                    Some("GDPR"),
                    None,
                    None,
                    None,
                ],
                "received_at is before 2000-01-01, older than any erasure law: correct the \
                 date (a typo such as 0024 for 2024?)",
            ),
            (
                [
                    Some("id-10"),
                    Some("m10@example.com"),
                    Some("2024-01-01"),
                    None,
                    None,
                    None,
                    None,
                ],
                "missing jurisdiction",
            ),
            (
                [
                    Some("id-11"),
                    Some("m11@example.com"),
                    Some("2024-01-01"),
                    Some("EU"),
                    None,
                    None,
                    None,
                ],
                "unknown jurisdiction (GDPR, CCPA or OTHER)",
            ),
            (
                [
                    Some("id-12"),
                    Some("m12@example.com"),
                    Some("2024-01-01"),
                    Some("GDPR"),
                    Some("purge"),
                    None,
                    None,
                ],
                "unknown kind (anonymize or delete)",
            ),
            (
                [
                    Some("id-13"),
                    Some("m13@example.com"),
                    Some("2024-01-01"),
                    Some("GDPR"),
                    None,
                    Some("maybe"),
                    None,
                ],
                "explained must be true or false (or yes/no, 1/0; empty is false)",
            ),
            // The first failing check wins: request_id before email.
            (
                [
                    Some("bad id"),
                    Some("not-an-email"),
                    Some("x"),
                    Some("EU"),
                    None,
                    None,
                    None,
                ],
                "request_id may only contain A-Z, a-z, 0-9, '.', '_', ':' and '-'",
            ),
        ];
        for (fields, reason) in &cases {
            let csv_row: Vec<String> = fields.iter().map(|v| v.unwrap_or("").to_string()).collect();
            let p = csv(&[&csv_row.join(",")]);
            let inv = only_invalid(&p);
            assert_eq!(inv.reason, *reason, "CSV {fields:?}");

            let obj: serde_json::Map<String, Value> = FIELDS
                .iter()
                .zip(fields)
                .filter_map(|(f, v)| v.map(|v| (f.name().to_string(), Value::String(v.into()))))
                .collect();
            let line = Value::Object(obj).to_string();
            let p = jsonl(&[&line]);
            let inv = only_invalid(&p);
            assert_eq!(inv.reason, *reason, "JSONL {line}");
            // What parses of the row is kept for its receipt: jurisdiction and kind.
            assert_eq!(
                inv.jurisdiction,
                fields[3].and_then(Jurisdiction::parse),
                "{line}"
            );
            let kind = match fields[4] {
                None => Some(Kind::Anonymize),
                Some(k) => Kind::parse(k),
            };
            assert_eq!(inv.kind, kind, "{line}");
            if let Some(email) = fields[1] {
                assert!(!inv.reason.contains(email));
                assert!(!inv.reason.to_lowercase().contains(&email.to_lowercase()));
            }
        }
    }

    #[test]
    fn jsonl_only_reasons() {
        let p = jsonl(&[
            "not json at all a@b.co",
            "",
            "[1, 2]",
            r#""just a string""#,
            r#"{"request_id":"x-1","email":"a@b.co","received_at":"2024-01-01","jurisdiction":"GDPR","extra":1}"#,
            r#"{"request_id":"x-2","email":"a@b.co","received_at":"2024-01-01","jurisdiction":"GDPR","a@b.co":1}"#,
            r#"{"request_id":"x-3","email":"a@b.co","Email":"z@b.co","received_at":"2024-01-01","jurisdiction":"GDPR"}"#,
            r#"{"request_id":4,"email":"a@b.co","received_at":"2024-01-01","jurisdiction":"GDPR"}"#,
            r#"{"request_id":"x-5","email":["a@b.co"],"received_at":"2024-01-01","jurisdiction":"GDPR"}"#,
            r#"{"request_id":"x-6","email":"a@b.co","received_at":20240101,"jurisdiction":"GDPR"}"#,
            r#"{"request_id":"x-7","email":"a@b.co","received_at":"2024-01-01","jurisdiction":true}"#,
            r#"{"request_id":"x-8","email":"a@b.co","received_at":"2024-01-01","jurisdiction":"GDPR","kind":1}"#,
            r#"{"request_id":"x-9","email":"a@b.co","received_at":"2024-01-01","jurisdiction":"GDPR","explained":1}"#,
            r#"{"request_id":"x-10","email":"a@b.co","received_at":"2024-01-01","jurisdiction":"GDPR","note":5}"#,
            r#"{"request_id":"x-11","email":"a@b.co","received_at":"2024-01-01","jurisdiction":"GDPR"} trailing"#,
        ]);
        assert!(p.valid.is_empty(), "{:?}", p.valid);
        let reasons: Vec<(usize, &str)> = p
            .invalid
            .iter()
            .map(|i| (i.row, i.reason.as_str()))
            .collect();
        let keys =
            "expected keys request_id, email, received_at, jurisdiction, kind, explained, note";
        assert_eq!(
            reasons,
            vec![
                (1, "line 1 is not a JSON object"),
                (2, "line 3 is not a JSON object"),
                (3, "line 4 is not a JSON object"),
                (4, &*format!("unknown key \"extra\" on line 5; {keys}")),
                (
                    5,
                    &*format!(
                        "an unknown key (its name is not shown: it does not look like a field name) on line 6; {keys}"
                    )
                ),
                (6, "key email appears more than once on line 7"),
                (7, "request_id must be a string"),
                (8, "email must be a string"),
                (9, "received_at must be a string"),
                (10, "jurisdiction must be a string"),
                (11, "kind must be a string"),
                (
                    12,
                    "explained must be true or false (or yes/no, 1/0; empty is false)"
                ),
                (13, "note must be a string"),
                (14, "line 15 is not a JSON object"),
            ]
        );
        // Structurally broken rows still report what they could read.
        assert_eq!(p.invalid[3].request_id.as_deref(), Some("x-1"));
        assert_eq!(p.invalid[3].received_at, Some(d(2024, 1, 1)));
        assert_eq!(p.invalid[3].explained, Some(false));
        assert_eq!(p.invalid[0].request_id, None);
        for inv in &p.invalid {
            assert!(
                !inv.reason.contains("a@b.co") && !inv.reason.contains("z@b.co"),
                "{}",
                inv.reason
            );
        }
    }

    #[test]
    fn csv_structural_reasons() {
        let p = csv(&[
            "r-1,a@b.co,2024-01-01,GDPR,anonymize,no",
            "r-2,a@b.co,2024-01-01,GDPR,anonymize,no,note,extra",
            "\"r-3\"x,a@b.co,2024-01-01,GDPR,anonymize,no,",
            "r-4,a@b.co,2024-01-01,GDPR,anonymize,no,\"n\"x",
        ]);
        let reasons: Vec<&str> = p.invalid.iter().map(|i| i.reason.as_str()).collect();
        assert_eq!(
            reasons,
            vec![
                "row has 6 fields but the header has 7 (line 2)",
                "row has 8 fields but the header has 7 (line 3)",
                "malformed CSV quoting: text after a closing quote (line 4)",
                "malformed CSV quoting: text after a closing quote (line 5)",
            ]
        );
        // The id is the header's first column: rows of the wrong length are named by it.
        assert_eq!(p.invalid[0].request_id.as_deref(), Some("r-1"));
        assert_eq!(p.invalid[1].request_id.as_deref(), Some("r-2"));
        assert_eq!(p.invalid[3].request_id.as_deref(), Some("r-4"));
        // Elsewhere in the header it may have shifted, and is not read.
        let p = parse_str(
            "email,request_id,received_at,jurisdiction,kind,explained\n\
             x,a@b.co,r-5,2024-01-01,GDPR,anonymize,no\n",
            Format::Csv,
            NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
        )
        .unwrap();
        assert_eq!(p.invalid[0].request_id, None);
    }

    #[test]
    fn duplicates_keep_the_first() {
        let p = csv(&[
            "d-1,a@b.co,2024-01-01,GDPR,,,",
            "d-2,not-an-email,2024-01-01,GDPR,,,",
            "d-1,c@b.co,2024-01-02,CCPA,,,",
            " d-2 ,e@b.co,2024-01-01,GDPR,,,",
            "D-1,f@b.co,2024-01-01,GDPR,,,",
        ]);
        let valid: Vec<(usize, &str)> = p
            .valid
            .iter()
            .map(|r| (r.row, r.request_id.as_str()))
            .collect();
        assert_eq!(valid, vec![(1, "d-1"), (5, "D-1")]);
        let invalid: Vec<(usize, Option<&str>, &str)> = p
            .invalid
            .iter()
            .map(|i| (i.row, i.request_id.as_deref(), i.reason.as_str()))
            .collect();
        assert_eq!(
            invalid,
            vec![
                (2, Some("d-2"), "malformed email"),
                (3, Some("d-1"), "duplicate request_id (first on row 1)"),
                (4, Some("d-2"), "duplicate request_id (first on row 2)"),
            ]
        );
        assert_eq!(p.invalid[1].received_at, Some(d(2024, 1, 2)));
    }

    #[test]
    fn email_normalization_and_validity() {
        let variants = [
            "alice@example.com",
            " Alice@Example.COM",
            "ALICE@EXAMPLE.COM\t",
            "\n aLiCe@eXaMpLe.cOm ",
        ];
        for v in variants {
            assert_eq!(normalize_email(v), "alice@example.com");
        }
        let p = csv(&[
            "e-1,alice@example.com,2024-01-01,GDPR,,,",
            "e-2,\" Alice@Example.COM \",2024-01-01,GDPR,,,",
        ]);
        assert_eq!(p.valid[0].email, p.valid[1].email);

        for ok in [
            "a@b.co",
            "first.last+tag@sub.example-x.org",
            "o'brien!#$%&*/=?^_`{|}~-@example.com",
            "x@123.example.museum",
            "ü@example.de",
            "frank@例え.jp",
            "jürgen@bücher.de",
            "frank@xn--r8jz45g.jp",
            "a@пример.рф",
            "a@example.xn--p1ai",
        ] {
            assert!(valid_email(ok), "{ok}");
        }
        let long_local = format!("{}@example.com", "a".repeat(65));
        let long_domain = format!("a@{}.com", ["abc"; 70].join("."));
        let long_label = format!("a@{}.com", "a".repeat(64));
        for bad in [
            "",
            "a",
            "@b.co",
            "a@",
            "a@b",
            "a@@b.co",
            "a@b@c.co",
            "a b@c.co",
            "a@b.c",
            "a@b.c0",
            "a@-b.co",
            "a@b-.co",
            "a@b..co",
            "a@.b.co",
            "a@b.co.",
            "a@b_c.co",
            "a@B.co",
            "a@b.co ",
            // Found by the fourth audit (2026-12-04): pasted forms of an address.
            "mailto:jane@example.com",
            "<jane@example.com>",
            "jane,jane@example.com",
            "\"jane\"@example.com",
            &long_local,
            &long_domain,
            &long_label,
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
        assert!(valid_email(&format!("{}@example.com", "a".repeat(64))));
    }

    #[test]
    fn quoted_csv_fields() {
        let text = format!(
            "{HEADER}\n\"q-1\",\"Smith, John\"\"x\"\"@ex.com\",2024-01-01,GDPR,delete,1,\"He said \"\"hi\"\", then, left\"\n\
             q-2,a@b.co,2024-01-01,GDPR,delete,0,\"two\nlines\"\n\
             q-3,a@b.co,2024-01-01,GDPR,delete,0,5\" screen\n\
             q-4,a@b.co,2024-01-01,GDPR,delete,0,\"\"\n"
        );
        let p = parse_str(&text, Format::Csv, as_of()).unwrap();
        // Row 1's email holds a comma and a space: parsed as one field, then rejected.
        assert_eq!(p.invalid.len(), 1, "{:?}", p.invalid);
        assert_eq!(p.invalid[0].row, 1);
        assert_eq!(p.invalid[0].reason, "malformed email");
        assert_eq!(p.invalid[0].request_id.as_deref(), Some("q-1"));
        let notes: Vec<(usize, Option<&str>)> =
            p.valid.iter().map(|r| (r.row, r.note.as_deref())).collect();
        // A bare quote inside an unquoted field is kept literally; "" is an empty note.
        assert_eq!(
            notes,
            vec![(2, Some("two\nlines")), (3, Some("5\" screen")), (4, None)]
        );

        let p = csv(&["q-4,a@b.co,2024-01-01,GDPR,,,\"He said \"\"hi\"\", then, left\""]);
        assert_eq!(
            p.valid[0].note.as_deref(),
            Some("He said \"hi\", then, left")
        );
    }

    #[test]
    fn crlf_bom_blank_lines_and_column_order() {
        let text = "\u{feff}NOTE, Explained ,Kind,JURISDICTION,received_at,Email,Request_ID\r\n\
                    \r\n\
                    n1,true,delete,ccpa,2024-02-01,a@b.co,c-1\r\n\
                    \"multi\r\nline\",false,,gdpr,2024-02-02,c@d.co,c-2\r\n\
                    \r\n";
        let p = parse_str(text, Format::Csv, as_of()).unwrap();
        assert!(p.invalid.is_empty(), "{:?}", p.invalid);
        assert_eq!(p.valid.len(), 2);
        assert_eq!(p.valid[0].request_id, "c-1");
        assert_eq!(p.valid[0].note.as_deref(), Some("n1"));
        assert_eq!(p.valid[0].jurisdiction, Jurisdiction::Ccpa);
        assert!(p.valid[0].explained);
        assert_eq!(p.valid[1].row, 2);
        assert_eq!(p.valid[1].note.as_deref(), Some("multi\r\nline"));
        // No trailing newline at all.
        let p = parse_str(
            &format!("{HEADER}\r\nz-1,a@b.co,2024-01-01,GDPR,,,"),
            Format::Csv,
            as_of(),
        )
        .unwrap();
        assert_eq!(p.valid.len(), 1);
    }

    #[test]
    fn csv_without_note_column() {
        let text = "request_id,email,received_at,jurisdiction,kind,explained\nn-1,a@b.co,2024-01-01,GDPR,,\n";
        let p = parse_str(text, Format::Csv, as_of()).unwrap();
        assert_eq!(p.valid.len(), 1);
        assert_eq!(p.valid[0].note, None);
        assert_eq!(p.valid[0].kind, Kind::Anonymize);
        assert!(!p.valid[0].explained);
    }

    #[test]
    fn header_errors() {
        let err = csv_err(&format!("{HEADER},Phone\nx,a@b.co,2024-01-01,GDPR,,,,1\n"));
        assert!(err.contains("unknown column \"Phone\" (column 8)"), "{err}");
        assert!(err.contains("expected columns request_id"), "{err}");

        let err = csv_err("request_id,email,received_at,kind,explained\n");
        assert!(
            err.contains("missing required column jurisdiction"),
            "{err}"
        );
        assert!(!err.contains("missing required column kind"), "{err}");

        let err = csv_err(&format!("{HEADER},EMAIL\n"));
        assert!(err.contains("column email appears more than once"), "{err}");

        let err = csv_err(&format!("{HEADER},\n"));
        assert!(
            err.contains("a column with an empty name (column 8)"),
            "{err}"
        );

        // A missing header: the data row's values are not echoed.
        let err = csv_err("r-1,secret@example.com,2024-01-01,GDPR,delete,yes,call back\n");
        assert!(
            !err.contains("secret") && !err.contains("call back"),
            "{err}"
        );
        assert!(
            err.starts_with("the first row (line 1) is not a header row"),
            "{err}"
        );

        // A name that could be data is not shown.
        let err = csv_err(&format!("{HEADER},x@y.co\n"));
        assert!(!err.contains("x@y.co"), "{err}");
        assert!(
            err.contains("an unknown column (its name is not shown"),
            "{err}"
        );

        let err = csv_err("");
        assert!(err.starts_with("the CSV file is empty"), "{err}");
        let err = csv_err("\n \r\n");
        assert!(err.starts_with("the CSV file is empty"), "{err}");

        let err = csv_err(&format!(
            "{HEADER}\nu-1,a@b.co,2024-01-01,GDPR,,,\"open\nstill open\n"
        ));
        assert_eq!(
            err,
            "unterminated quoted field starting on line 2: add the closing double quote"
        );

        // Header only: no rows, not an error.
        assert_eq!(
            parse_str(HEADER, Format::Csv, as_of()).unwrap(),
            Parsed::default()
        );
    }

    #[test]
    fn received_at_formats_and_as_of_boundary() {
        let p = csv(&[
            "t-1,a@b.co,2024-06-30,GDPR,,,",
            "t-2,a@b.co,2024-06-30T23:59:59Z,GDPR,,,",
            "t-3,a@b.co,2024-07-01T01:00:00+02:00,GDPR,,,",
            "t-4,a@b.co,2024-06-30 23:59:59,GDPR,,,",
            "t-5,a@b.co,2024-06-30T23:30:00-01:00,GDPR,,,",
            "t-6,a@b.co,2024-07-01,GDPR,,,",
            "t-7,a@b.co,2024-1-5,GDPR,,,",
            "t-8,a@b.co,2024-02-30,GDPR,,,",
            "t-9,a@b.co,2024-06-30T25:00:00Z,GDPR,,,",
            "t-10,a@b.co,2024-06-30 12:00,GDPR,,,",
        ]);
        let valid: Vec<(&str, NaiveDate)> = p
            .valid
            .iter()
            .map(|r| (r.request_id.as_str(), r.received_at))
            .collect();
        assert_eq!(
            valid,
            vec![
                ("t-1", d(2024, 6, 30)),
                ("t-2", d(2024, 6, 30)),
                ("t-3", d(2024, 6, 30)),
                ("t-4", d(2024, 6, 30))
            ]
        );
        let after = "received_at is after the as-of date 2024-06-30; if the date is right, \
                     keep the request in the file: the first run whose as-of date reaches it \
                     honours it";
        let bad = "received_at is not a date (YYYY-MM-DD) or RFC 3339 timestamp";
        let invalid: Vec<(&str, Option<NaiveDate>, &str)> = p
            .invalid
            .iter()
            .map(|i| {
                (
                    i.request_id.as_deref().unwrap(),
                    i.received_at,
                    i.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(
            invalid,
            vec![
                ("t-5", Some(d(2024, 7, 1)), after),
                ("t-6", Some(d(2024, 7, 1)), after),
                ("t-7", None, bad),
                ("t-8", None, bad),
                ("t-9", None, bad),
                ("t-10", None, bad),
            ]
        );
    }

    #[test]
    fn explained_and_kind_variants() {
        for (text, want) in [
            ("true", true),
            ("TRUE", true),
            ("Yes", true),
            ("1", true),
            (" y e s", false),
            ("false", false),
            ("No", false),
            ("0", false),
            ("", false),
            ("  ", false),
        ] {
            let p = csv(&[&format!("x-1,a@b.co,2024-01-01,GDPR,,{text},")]);
            if text == " y e s" {
                assert_eq!(
                    only_invalid(&p).reason,
                    "explained must be true or false (or yes/no, 1/0; empty is false)"
                );
                assert_eq!(p.invalid[0].explained, None);
            } else {
                assert_eq!(p.valid[0].explained, want, "{text:?}");
            }
        }
        assert_eq!(Kind::parse(" DeLeTe "), Some(Kind::Delete));
        assert_eq!(Kind::parse("anonymise"), None);
        assert_eq!(Jurisdiction::parse(" ccpa "), Some(Jurisdiction::Ccpa));
        assert_eq!(Jurisdiction::parse("GDPR2"), None);
        for j in [Jurisdiction::Gdpr, Jurisdiction::Ccpa, Jurisdiction::Other] {
            assert_eq!(Jurisdiction::parse(j.as_str()), Some(j));
        }
        for k in [Kind::Anonymize, Kind::Delete] {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn no_reason_contains_its_email() {
        let text = format!(
            "{HEADER}\n\
             ,Priv1@Example.com,2024-01-01,GDPR,,,\n\
             bad id,priv2@example.com,2024-01-01,GDPR,,,\n\
             ok-1,priv3@example,2024-01-01,GDPR,,,\n\
             ok-2,priv4@example.com,,GDPR,,,\n\
             ok-3,priv5@example.com,soon,GDPR,,,\n\
             ok-4,priv6@example.com,2030-01-01,GDPR,,,\n\
             ok-5,priv7@example.com,2024-01-01,,,,\n\
             ok-6,priv8@example.com,2024-01-01,priv8@example.com,,,\n\
             ok-7,priv9@example.com,2024-01-01,GDPR,priv9@example.com,,\n\
             ok-8,priv10@example.com,2024-01-01,GDPR,,priv10@example.com,\n\
             ok-1,priv11@example.com,2024-01-01,GDPR,,,\n\
             ok-9,priv12@example.com,2024-01-01,GDPR,,\n\
             ok-10,priv13@example.com\"x\",2024-01-01,GDPR,,,\n"
        );
        let p = parse_str(&text, Format::Csv, as_of()).unwrap();
        assert!(p.valid.is_empty(), "{:?}", p.valid);
        assert_eq!(p.invalid.len(), 13);
        for inv in &p.invalid {
            let email = format!("priv{}@example", inv.row);
            assert!(
                !inv.reason.to_lowercase().contains(&email),
                "{}",
                inv.reason
            );
            assert!(!inv.reason.contains('@'), "{}", inv.reason);
        }
    }

    #[test]
    fn due_dates() {
        use Jurisdiction::*;
        let cases = [
            (Gdpr, d(2024, 1, 31), d(2024, 2, 29)),
            (Gdpr, d(2023, 1, 31), d(2023, 2, 28)),
            (Gdpr, d(2024, 3, 31), d(2024, 4, 30)),
            (Gdpr, d(2024, 12, 31), d(2025, 1, 31)),
            (Gdpr, d(2024, 8, 15), d(2024, 9, 15)),
            (Gdpr, d(2024, 2, 29), d(2024, 3, 29)),
            (Other, d(2024, 1, 31), d(2024, 2, 29)),
            (Other, d(2024, 8, 15), d(2024, 9, 15)),
            (Ccpa, d(2024, 12, 20), d(2025, 2, 3)),
            (Ccpa, d(2024, 2, 1), d(2024, 3, 17)),
            (Ccpa, d(2023, 2, 1), d(2023, 3, 18)),
            (Ccpa, d(2024, 1, 20), d(2024, 3, 5)),
        ];
        for (j, received, due) in cases {
            assert_eq!(due_date(j, received), due, "{j:?} {received}");
        }
        assert_eq!(due_date(Ccpa, NaiveDate::MAX), NaiveDate::MAX);
    }

    #[test]
    fn jsonl_line_format_and_round_trip() {
        let line = jsonl_line(
            "r-1",
            "a@b.co",
            d(2024, 2, 29),
            Jurisdiction::Ccpa,
            Kind::Delete,
            true,
            Some("say \"hi\"\n"),
        );
        assert_eq!(
            line,
            r#"{"request_id":"r-1","email":"a@b.co","received_at":"2024-02-29","jurisdiction":"CCPA","kind":"delete","explained":true,"note":"say \"hi\"\n"}"#
        );
        let line2 = jsonl_line(
            "r-2",
            "c@d.co",
            d(2024, 3, 1),
            Jurisdiction::Gdpr,
            Kind::Anonymize,
            false,
            None,
        );
        assert_eq!(
            line2,
            r#"{"request_id":"r-2","email":"c@d.co","received_at":"2024-03-01","jurisdiction":"GDPR","kind":"anonymize","explained":false}"#
        );
        let crlf = format!("{line}\r\n\r\n{line2}\r\n");
        let p = parse_str(&crlf, Format::JsonLines, as_of()).unwrap();
        assert!(p.invalid.is_empty());
        assert_eq!(
            p.valid.iter().map(|r| r.row).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(p.valid[0].note.as_deref(), Some("say \"hi\"\n"));
        assert_eq!(
            (p.valid[1].jurisdiction, p.valid[1].kind),
            (Jurisdiction::Gdpr, Kind::Anonymize)
        );
    }

    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, bytes: &[u8]) -> Self {
            let path = std::env::temp_dir()
                .join(format!("erasure-requests-{}-{name}", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn parse_file_formats_and_errors() {
        let json = r#"{"request_id":"f-1","email":"a@b.co","received_at":"2024-01-01","jurisdiction":"GDPR"}"#;
        let csv_text = format!("{HEADER}\nf-1,a@b.co,2024-01-01,GDPR,,,\n");
        for (name, body) in [
            ("a.jsonl", json.to_string()),
            ("a.NDJSON", json.to_string()),
            ("a.json", json.to_string()),
            ("a.txt", format!("\n  {json}\n")),
            ("noext", format!("\u{feff}{json}")),
            ("b.CSV", csv_text.clone()),
            ("b.txt", csv_text.clone()),
        ] {
            let f = TempFile::new(name, body.as_bytes());
            let p = parse_file(&f.0, as_of()).unwrap();
            assert_eq!(p.valid.len(), 1, "{name}");
            assert_eq!(p.valid[0].request_id, "f-1");
        }
        // The extension wins over sniffing.
        let f = TempFile::new("c.csv", json.as_bytes());
        let err = parse_file(&f.0, as_of()).unwrap_err();
        assert!(matches!(err, RequestsError::Header { .. }));
        assert!(!err.to_string().contains("a@b.co"), "{err}");
        let f = TempFile::new("c.jsonl", csv_text.as_bytes());
        let p = parse_file(&f.0, as_of()).unwrap();
        assert_eq!(p.invalid.len(), 2);

        let f = TempFile::new("d.csv", format!("{HEADER},ssn\n").as_bytes());
        let err = parse_file(&f.0, as_of()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("d.csv") && msg.contains("unknown column \"ssn\""),
            "{msg}"
        );

        let mut bytes = format!("{HEADER}\nf-1,a@b.co,2024-01-01,GDPR,,,\n").into_bytes();
        bytes.extend_from_slice(b"f-2,\xff@b.co,2024-01-01,GDPR,,,\n");
        let f = TempFile::new("e.csv", &bytes);
        match parse_file(&f.0, as_of()) {
            Err(e @ RequestsError::NotUtf8 { line: 3, .. }) => {
                assert!(e.to_string().contains("line 3"), "{e}");
            }
            other => panic!("{other:?}"),
        }

        let missing = std::env::temp_dir().join("erasure-requests-does-not-exist.csv");
        let err = parse_file(&missing, as_of()).unwrap_err();
        assert!(matches!(err, RequestsError::Read { .. }));
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.to_string().contains("cannot read"), "{err}");
    }
}
