//! `_manifest.json`: the evidence a privacy officer or an auditor reads for one run.
//!
//! It records what went in (every input file with size and SHA-256), under which rules
//! (policy digest, key id — never the key), what came out (rows and files per table) and
//! how long each stage took. It never holds a data value.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::policy::{ColumnRule, Role};

#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub run_id: String,
    /// The as-of date (YYYY-MM-DD) relative to which ages and deadlines are computed.
    pub as_of: Option<String>,
    pub as_of_source: String,
    pub started_at: String,
    pub finished_at: String,
    pub tool: String,
    pub tool_version: String,
    pub policy: PathBuf,
    pub policy_digest: String,
    pub key_id: String,
    pub key_source: String,
    pub inputs: Vec<InputFile>,
    pub tables: BTreeMap<String, TableReport>,
    /// Aggregate tables the policy asks for that this export cannot give, with the reason
    /// (for example a role the export lacks).
    pub aggregates_skipped: BTreeMap<String, String>,
    /// Input table -> column -> rows whose customer_key or event_time is null: the
    /// aggregates leave those rows out (the record-level tables keep them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rows_missing: BTreeMap<String, BTreeMap<String, u64>>,
    /// Input table -> rows whose transaction_type is none of purchase, renewal, refund
    /// and chargeback (or null): the subscription, revenue and mrr figures leave them
    /// out; cohort_retention and revenue_monthly's customers count them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rows_other_type: BTreeMap<String, u64>,
    /// Per transactions table: payments of a subscription offer without an offer period
    /// (null or blank). subscriptions_monthly and mrr_monthly leave them out (they give
    /// no coverage); revenue_monthly and cohort_retention count them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub payments_without_period: BTreeMap<String, u64>,
    /// Erasure in this run (when the policy has an `[erasure]` ledger).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erasure: Option<ErasureReport>,
    /// The privacy gate's report in the run folder (`risk_report.json`).
    pub risk_report: String,
    pub stages_ms: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputFile {
    pub table: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputFile {
    /// Relative to the run folder.
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// `record` for pseudonymized record-level tables (still personal data), `aggregate`
    /// for anonymous statistics.
    pub kind: String,
    /// Input rows (record-level tables).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_read: Option<u64>,
    pub rows_written: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<ColumnRule>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<Role, String>,
    pub files: Vec<OutputFile>,
    /// The saved query an aggregate table comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// SHA-256 of the SQL that ran (the query, and coverage.sql when it reads coverage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppression: Option<SuppressionReport>,
    /// Record-level tables with quasi-identifiers: how k-anonymity was enforced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k_anonymity: Option<crate::kanon::enforce::KAnonymityReport>,
}

/// What the erasure stage did (counts only; the receipts hold the details).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    pub ledger: PathBuf,
    /// Entries in the ledger after this run.
    pub ledger_entries: usize,
    /// Entries this run added.
    pub new_entries: usize,
    pub requests_file: Option<PathBuf>,
    /// The policy's requests file when it does not exist (no request was read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_file_missing: Option<PathBuf>,
    /// Requests per status (completed, not_found, invalid, already_erased).
    pub requests: BTreeMap<String, usize>,
    /// Of the `completed` requests, those this run carried out; the others were honoured
    /// by an earlier run and are read again while the requests file holds them.
    pub requests_completed_this_run: usize,
    /// Customers erased in this run's output (everyone in the ledger).
    pub customers_erased: usize,
    /// Per record-level table mapping customer_key or email: what erasure did to its rows.
    pub tables: BTreeMap<String, ErasureRows>,
}

/// What erasure did to one record-level table's rows in a run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErasureRows {
    /// Rows whose customer id and email were looked up among the erased: every row read.
    pub rows_checked: u64,
    /// Rows kept with every token nulled (event tables; anonymized customers).
    pub rows_anonymized: u64,
    /// Rows left out (deleted customers; in profile tables, anonymized ones too).
    pub rows_removed: u64,
}

/// What small-cell protection withheld in one aggregate table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuppressionReport {
    /// The smallest count of people published.
    pub k: u64,
    /// Rows with at least one withheld value.
    pub rows_suppressed: u64,
    /// Values withheld because their own cell had 1..k-1 people.
    pub cells_suppressed_threshold: u64,
    /// Values withheld so that no other withheld value can be recomputed.
    pub cells_suppressed_protection: u64,
    /// Key column -> how many of its values fewer than k customers had, published
    /// together as `other` (the values themselves are not named here).
    pub values_recoded: BTreeMap<String, u64>,
}

impl SuppressionReport {
    /// `"; rare values published as 'other': country 2, currency 1"`, or nothing when
    /// no value was rare (for the run's summary).
    pub fn recoded_text(&self) -> String {
        let parts: Vec<String> = self
            .values_recoded
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        if parts.is_empty() {
            String::new()
        } else {
            format!("; rare values published as 'other': {}", parts.join(", "))
        }
    }
}

/// Renders a UTC timestamp as RFC 3339 with millisecond precision.
pub fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
