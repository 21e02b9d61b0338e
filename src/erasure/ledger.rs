//! The suppression ledger: who has been erased, so that every later run erases them
//! again, even when the export still holds them and no requests file is given.
//!
//! It lives outside the published output (its path is in the policy) and holds keyed
//! hashes only: for each erased customer, the token of their normalized email and of
//! their customer id in the `anonymizer/erasure` domain (never plaintext, and not the
//! tokens published in record-level tables), with the request id, kind and as-of date.
//! The hashes depend on the key, so the ledger records the key id and a run with another
//! key is refused. It is written atomically (temporary file, fsync, rename) and a ledger
//! that exists but cannot be read or parsed stops the run (fail closed).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The pseudonymization domain of ledger hashes.
pub const DOMAIN: &str = "anonymizer/erasure";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "cannot read the erasure ledger {path}: {err}\n  \
         the run stops so that erased customers cannot reappear; restore the file from backup or fix its permissions"
    )]
    Read { path: PathBuf, err: std::io::Error },
    #[error(
        "the erasure ledger {path} is damaged ({message})\n  \
         the run stops so that erased customers cannot reappear; restore the file from backup"
    )]
    Parse { path: PathBuf, message: String },
    #[error(
        "the erasure ledger {path} was written with key {ledger_key}, this run uses {run_key}\n  \
         its hashes only match under the same key; run with the key the ledger was written with"
    )]
    KeyMismatch {
        path: PathBuf,
        ledger_key: String,
        run_key: String,
    },
    #[error("cannot write the erasure ledger {path}: {err}")]
    Write { path: PathBuf, err: std::io::Error },
}

/// One erased customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Keyed hash of the normalized email (the request's).
    pub email: String,
    /// Keyed hash of the customer id; `None` when the request matched no customer yet.
    pub customer: Option<String>,
    pub request_id: String,
    /// `anonymize` or `delete`.
    pub kind: String,
    /// The as-of date of the run that erased them.
    pub erased_as_of: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub version: u32,
    pub key_id: String,
    pub entries: Vec<Entry>,
}

impl Ledger {
    pub fn new(key_id: &str) -> Ledger {
        Ledger {
            version: 1,
            key_id: key_id.to_string(),
            entries: vec![],
        }
    }

    /// Reads the ledger at `path`; a missing file is an empty ledger (the first run).
    pub fn load(path: &Path, key_id: &str) -> Result<Ledger, LedgerError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ledger::new(key_id)),
            Err(err) => {
                return Err(LedgerError::Read {
                    path: path.to_path_buf(),
                    err,
                });
            }
        };
        let ledger: Ledger = serde_json::from_slice(&bytes).map_err(|e| LedgerError::Parse {
            path: path.to_path_buf(),
            message: format!(
                "line {} column {}: {}",
                e.line(),
                e.column(),
                e.classify_str()
            ),
        })?;
        if ledger.version != 1 {
            return Err(LedgerError::Parse {
                path: path.to_path_buf(),
                message: format!("unknown version {}", ledger.version),
            });
        }
        // A hash that is not a token would match nobody: an erased customer would
        // reappear. So would a kind that is misspelled (read as anonymize, not delete).
        for (i, e) in ledger.entries.iter().enumerate() {
            let token = |t: &str| crate::rules::pseudonymize::digest_of_token(t).is_some();
            let bad = if !token(&e.email) {
                Some("its email hash is not a token (32 lower-case hex characters)".to_string())
            } else if e.customer.as_deref().is_some_and(|c| !token(c)) {
                Some("its customer hash is not a token (32 lower-case hex characters)".to_string())
            } else if !matches!(e.kind.as_str(), "anonymize" | "delete") {
                Some("its kind is neither anonymize nor delete".to_string())
            } else {
                None
            };
            if let Some(why) = bad {
                return Err(LedgerError::Parse {
                    path: path.to_path_buf(),
                    message: format!("entry {} (request {}): {why}", i + 1, e.request_id),
                });
            }
        }
        if ledger.key_id != key_id {
            return Err(LedgerError::KeyMismatch {
                path: path.to_path_buf(),
                ledger_key: ledger.key_id,
                run_key: key_id.to_string(),
            });
        }
        Ok(ledger)
    }

    /// Writes the ledger atomically: a temporary file beside it, fsync, rename.
    pub fn store(&self, path: &Path) -> Result<(), LedgerError> {
        let err = |err| LedgerError::Write {
            path: path.to_path_buf(),
            err,
        };
        let mut json = serde_json::to_vec_pretty(self).expect("the ledger serializes");
        json.push(b'\n');
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension("json.tmp");
        {
            use std::io::Write;
            let mut f = crate::fsutil::open_private(&tmp, false).map_err(err)?;
            f.write_all(&json).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && let Ok(d) = std::fs::File::open(dir)
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

trait ClassifyStr {
    fn classify_str(&self) -> &'static str;
}

impl ClassifyStr for serde_json::Error {
    /// The kind of JSON error, without the message (which may quote content).
    fn classify_str(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "not valid JSON",
            serde_json::error::Category::Data => "not a ledger (unexpected fields or types)",
            serde_json::error::Category::Eof => "truncated",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_fail_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.json");
        assert_eq!(Ledger::load(&path, "kid-1").unwrap(), Ledger::new("kid-1"));
        let mut l = Ledger::new("kid-1");
        l.entries.push(Entry {
            email: "e".repeat(32),
            customer: Some("c".repeat(32)),
            request_id: "r1".into(),
            kind: "anonymize".into(),
            erased_as_of: "2025-12-31".into(),
        });
        l.store(&path).unwrap();
        assert_eq!(Ledger::load(&path, "kid-1").unwrap(), l);
        assert!(matches!(
            Ledger::load(&path, "kid-2"),
            Err(LedgerError::KeyMismatch { .. })
        ));
        std::fs::write(&path, "{\"version\": 1, \"key_id\": \"kid-1\", \"entr").unwrap();
        let e = Ledger::load(&path, "kid-1").unwrap_err().to_string();
        assert!(e.contains("damaged") && e.contains("truncated"), "{e}");
    }
}
