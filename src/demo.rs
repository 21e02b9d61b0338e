//! `anonymizer demo`: the README's first command. Generates a small export, writes the
//! sample policy beside it with a fresh random key in a key file (an existing key or
//! edited policy kept), runs it, and says what was produced and how to run it again.

use std::path::{Path, PathBuf};

use crate::error::Error;
use crate::generate::{GenerateOptions, GenerateSummary, generate};
use crate::key::Key;
use crate::policy::SAMPLE_POLICY;
use crate::run::{RunOptions, RunSummary, run};

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub dir: PathBuf,
    pub customers: u64,
    pub seed: u64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            dir: PathBuf::from("anonymizer-demo"),
            customers: 20_000,
            seed: 42,
        }
    }
}

#[derive(Debug)]
pub struct DemoSummary {
    pub policy: PathBuf,
    pub key_file: PathBuf,
    pub generated: GenerateSummary,
    pub run: RunSummary,
    /// The last 12 months of the saved `growth` query, rendered as a table by
    /// `anonymizer query` (empty when the run published no subscriptions_monthly).
    pub growth: String,
}

/// The demo's growth table: the saved `growth` query, last 12 months.
pub fn growth_sql() -> String {
    let growth = crate::query::BUILTIN
        .iter()
        .find(|(n, _)| *n == "growth")
        .map(|(_, sql)| *sql)
        .expect("growth is a built-in saved query");
    format!(
        "SELECT * FROM (\n{growth}\n) growth\n\
         WHERE month > (SELECT MAX(month) FROM subscriptions_monthly) - INTERVAL '12 months'\n\
         ORDER BY month"
    )
}

/// The sample policy with `key_file` pointing at `name`.
pub fn policy_with_key_file(name: &str) -> String {
    let line = "# key_file = \"anonymizer.key\"";
    assert!(
        SAMPLE_POLICY.contains(line),
        "the sample policy has a key_file placeholder"
    );
    SAMPLE_POLICY.replacen(line, &format!("key_file = \"{name}\""), 1)
}

pub fn demo(opts: &DemoOptions) -> Result<DemoSummary, Error> {
    let dir = &opts.dir;
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Error::Failed(format!("demo: cannot {what} {}: {e}", p.display()))
    };
    std::fs::create_dir_all(dir).map_err(|e| io("create", dir, e))?;
    let mut g = GenerateOptions::new(dir.join("export"), opts.customers);
    g.seed = opts.seed;
    // Two files per table at least, so the run shows its file-level parallelism.
    g.files = g.files.max(2).min(opts.customers.max(1) as usize);
    let generated = generate(&g)?;

    // A demo folder made before keeps its key: a new one would make the earlier runs'
    // tokens unlinkable to the next ones (and a key is never replaced silently).
    let key_file = dir.join("demo.key");
    if key_file.exists() {
        Key::from_file(&key_file).map_err(|e| {
            Error::Failed(format!(
                "demo: {} exists but is not a usable key ({e}); remove it to start afresh, or use another --dir",
                key_file.display()
            ))
        })?;
        tracing::info!(key_file = %key_file.display(), "demo: the folder's existing key is kept");
    } else {
        Key::random()
            .write_file(&key_file)
            .map_err(|e| io("write the key file", &key_file, e))?;
    }
    // Likewise a policy edited since (the demo invites trying changes): kept and run,
    // never overwritten; removing it brings the sample back.
    let policy = dir.join("anonymizer.toml");
    let sample = policy_with_key_file("demo.key");
    match std::fs::read(&policy) {
        Ok(text) if text != sample.as_bytes() => {
            tracing::info!(
                policy = %policy.display(),
                "demo: the folder's existing policy differs from the sample and is kept; remove it to get the sample back"
            );
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::write(&policy, &sample).map_err(|e| io("write", &policy, e))?;
        }
        Err(e) => return Err(io("read", &policy, e)),
    }

    let run = run(&RunOptions {
        config: policy.clone(),
        ..Default::default()
    })?;
    let growth = if run.manifest.tables.contains_key("subscriptions_monthly") {
        let bytes = crate::query::execute(&crate::query::QueryOptions {
            name: None,
            sql: Some(growth_sql()),
            list: false,
            format: crate::query::QueryFormat::Table,
            output: None,
            config: Some(policy.clone()),
            out: None,
            max_rows: None,
        })?;
        String::from_utf8_lossy(&bytes).into_owned()
    } else {
        String::new()
    };
    Ok(DemoSummary {
        policy,
        key_file,
        generated,
        run,
        growth,
    })
}

impl DemoSummary {
    /// What the demo prints: what was produced, where, and how to rerun it.
    pub fn report(&self) -> String {
        use std::fmt::Write;
        let m = &self.run.manifest;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Generated a synthetic export: {} customers, {} transactions ({})",
            self.generated.customers,
            self.generated.transactions,
            self.generated
                .customer_files
                .first()
                .and_then(|p| p.parent())
                .and_then(|p| p.parent())
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
        let _ = writeln!(s, "Policy:    {}", self.policy.display());
        let _ = writeln!(
            s,
            "Key file:  {} (key id {})",
            self.key_file.display(),
            m.key_id
        );
        let _ = writeln!(
            s,
            "Run:       {} (as of {})",
            m.run_id,
            m.as_of.as_deref().unwrap_or("-")
        );
        let _ = writeln!(s, "Published: {}", self.run.run_dir.display());
        for (name, t) in &m.tables {
            if let Some(sup) = &t.suppression {
                let _ = writeln!(
                    s,
                    "  {name:<22} {:>9} rows  anonymous aggregate; {} values withheld (k = {}), {} more to protect them{}",
                    t.rows_written,
                    sup.cells_suppressed_threshold,
                    sup.k,
                    sup.cells_suppressed_protection,
                    sup.recoded_text()
                );
                continue;
            }
            let dropped = t
                .columns
                .iter()
                .filter(|c| c.rule == crate::rules::Rule::Drop)
                .count();
            let _ = writeln!(
                s,
                "  {name:<22} {:>9} rows  pseudonymized records; {:>2} columns published, {dropped} dropped",
                t.rows_written,
                t.columns.len() - dropped,
            );
            if let Some(ka) = &t.k_anonymity {
                let _ = writeln!(
                    s,
                    "  {:<22} {}-anonymous over {}: generalized to {}; {} records suppressed",
                    "",
                    ka.k,
                    ka.quasi_identifiers.join(", "),
                    ka.level_names.join(", "),
                    ka.records_suppressed
                );
            }
        }
        let _ = writeln!(
            s,
            "  risk_report.json  the privacy gate's checks (residual PII, small cells, k-anonymity, ...): passed"
        );
        let _ = writeln!(
            s,
            "  _manifest.json  inputs with SHA-256, policy digest, key id, rows, stage times"
        );
        let _ = writeln!(s, "Latest run: {}", self.run.out.join("current").display());
        if !self.growth.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(
                s,
                "Growth, last 12 months (anonymizer query growth --config {}; empty = withheld):",
                self.policy.display()
            );
            s.push_str(&self.growth);
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "Run it again (same key, same tokens):");
        let _ = writeln!(s, "  anonymizer run --config {}", self.policy.display());
        let _ = writeln!(
            s,
            "  (from a checkout: cargo run --release -- run --config {})",
            self.policy.display()
        );
        s
    }
}
