//! Policy validation and key handling: every mistake is refused before any row is read,
//! with a message that says what and where (and never echoes the key).

use std::path::Path;

use anonymizer::policy::Policy;
use anonymizer::run::session;

use crate::common::*;

/// Writes a variant of the sample policy (export paths made absolute) and validates it.
fn validate(edit: impl Fn(String) -> String) -> Result<Policy, String> {
    let dir = tempfile::tempdir().unwrap();
    let export = fixture().join("export");
    let text = edit(anonymizer::policy::SAMPLE_POLICY.to_string())
        .replace("\"export/", &format!("\"{}/", export.display()));
    let path = dir.path().join("p.toml");
    std::fs::write(&path, text).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(Policy::load(&path, &session()))
        .map_err(|e| e.to_string())
}

#[test]
fn the_sample_policy_is_valid() {
    let p = validate(|t| t).unwrap();
    assert_eq!(p.tables.len(), 2);
    let tx = p.table("transactions").unwrap();
    assert_eq!(tx.files.len(), 2);
}

#[test]
fn misspelt_rules_keys_and_columns_get_did_you_mean() {
    let e = validate(|t| {
        t.replace(
            "customer_id      = \"pseudonymize\"",
            "customer_id      = \"pseudonymise\"",
        )
    })
    .unwrap_err();
    assert!(
        e.contains("unknown rule 'pseudonymise' (did you mean 'pseudonymize'?)"),
        "{e}"
    );

    let e = validate(|t| t.replace("first_name       = \"drop\"", "frist_name       = \"drop\""))
        .unwrap_err();
    assert!(
        e.contains(
            "column 'frist_name', which the data does not have (did you mean 'first_name'?)"
        ),
        "{e}"
    );
    assert!(
        e.contains("column 'first_name' (Utf8"),
        "the unclassified column is named too: {e}"
    );

    let e = validate(|t| t.replace("keep_runs = 5", "keep_run = 5")).unwrap_err();
    assert!(
        e.contains("unknown key 'keep_run' (did you mean 'keep_runs'?)"),
        "{e}"
    );

    let e = validate(|t| t.replace("to = \"month\"", "to = \"mnth\"")).unwrap_err();
    assert!(
        e.contains("cannot generalize to 'mnth' (did you mean 'month'?)"),
        "{e}"
    );

    let e = validate(|t| {
        t.replace(
            "event_time       = \"transaction_at\"",
            "event_time       = \"transacton_at\"",
        )
    })
    .unwrap_err();
    assert!(
        e.contains("role event_time names column 'transacton_at'")
            && e.contains("did you mean 'transaction_at'"),
        "{e}"
    );
}

#[test]
fn a_rule_that_does_not_fit_the_column_type_is_refused() {
    let e = validate(|t| {
        t.replace(
            "registered_at    = { rule = \"generalize\", to = \"month\" }",
            "registered_at    = { rule = \"mask\", keep_last = 2 }",
        )
    })
    .unwrap_err();
    assert!(
        e.contains(
            "rule mask on column 'registered_at' needs a string column, but the column is Timestamp"
        ),
        "{e}"
    );
    let e = validate(|t| {
        t.replace(
            "country          = \"keep\"\n# A locale",
            "country          = { rule = \"generalize\", to = \"year\" }\n# A locale",
        )
    })
    .unwrap_err();
    assert!(e.contains("needs a timestamp or date column"), "{e}");
}

/// A table's name becomes a folder of the run and an SQL table: one that could leave the
/// run's folder, hide in a sub-folder the gate does not read, or need quoting is refused.
#[test]
fn table_names_that_are_not_plain_identifiers_are_refused() {
    for bad in [
        "\"crm/customers\"",
        "\"../leak\"",
        "\".hidden\"",
        "Customers",
        "\"9lives\"",
    ] {
        let e =
            validate(|t| t.replace("[tables.customers]", &format!("[tables.{bad}]"))).unwrap_err();
        assert!(
            e.contains("must be 1 to 63 lower-case letters, digits or underscores"),
            "{bad}: {e}"
        );
    }
    assert!(anonymizer::policy::raw::is_table_name("crm_customers_2"));
    assert!(!anonymizer::policy::raw::is_table_name(""));
    assert!(!anonymizer::policy::raw::is_table_name(&"a".repeat(64)));
}

#[test]
fn bad_toml_and_missing_inputs_are_clear() {
    let e = validate(|t| t.replace("output = \"out\"", "output = out")).unwrap_err();
    assert!(e.contains("not valid TOML") && e.contains("line"), "{e}");
    let e = validate(|t| {
        t.replace(
            "input = \"export/customers\"",
            "input = \"nowhere/customers\"",
        )
    })
    .unwrap_err();
    assert!(
        e.contains("table customers: input 'nowhere/customers' matches no Parquet or CSV files"),
        "{e}"
    );
}

fn cfg(dir: &Path) -> String {
    dir.join("anonymizer.toml").to_str().unwrap().to_string()
}

#[test]
fn keys_are_required_checked_and_never_echoed() {
    let dir = fixture_copy();
    let c = cfg(dir.path());
    let o = cli(&["run", "--config", &c], None);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        err.contains("no pseudonymization key") && err.contains("ANONYMIZER_KEY"),
        "{err}"
    );

    let short = &KEY_HEX[..40];
    let o = cli(&["run", "--config", &c], Some(short));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2));
    assert!(err.contains("40 characters, expected 64"), "{err}");
    assert!(!err.contains(short));
    assert!(
        !dir.path().join("out/current").exists(),
        "nothing is published without a key"
    );

    // A key file readable by others is refused; 0600 is accepted.
    let key_file = dir.path().join("anonymizer.key");
    std::fs::write(&key_file, format!("{KEY_HEX}\n")).unwrap();
    let text = std::fs::read_to_string(&c).unwrap().replace(
        "# key_file = \"anonymizer.key\"",
        "key_file = \"anonymizer.key\"",
    );
    std::fs::write(&c, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let o = cli(&["run", "--config", &c], None);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2));
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let o = cli(&["run", "--config", &c], None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.contains(KEY_HEX) && !String::from_utf8_lossy(&o.stderr).contains(KEY_HEX));
    let help = cli(&["run", "--help"], Some(KEY_HEX));
    assert!(!String::from_utf8_lossy(&help.stdout).contains(KEY_HEX));
}

/// `[verify] max_values`: taken from the policy, in range, and no other key.
#[test]
fn the_verify_section_is_checked() {
    let with = |section: &'static str| move |t: String| format!("{t}\n{section}\n");
    let p = validate(with("[verify]\nmax_values = 5000")).unwrap();
    assert_eq!(p.verify.max_values, Some(5000));
    assert_eq!(validate(|t| t).unwrap().verify.max_values, None);
    let e = validate(with("[verify]\nmax_values = 10")).unwrap_err();
    assert!(
        e.contains("[verify]: 'max_values' is 10, must be between 1000 and"),
        "{e}"
    );
    let e = validate(with("[verify]\nmax_value = 5000")).unwrap_err();
    assert!(e.contains("[verify]: unknown key 'max_value'"), "{e}");
    // A top-level key goes before the first table.
    let e = validate(|t| format!("verify = 3\n{t}")).unwrap_err();
    assert!(e.contains("[verify] must be a table"), "{e}");
}

#[test]
fn a_scrub_rules_names_must_be_text_columns_of_the_table() {
    const RULE: &str =
        "custom_answers   = { rule = \"scrub\", names = [\"first_name\", \"last_name\"] }";
    let with = |names: &'static str| {
        move |t: String| {
            assert!(t.contains(RULE));
            t.replace(
                RULE,
                &format!("custom_answers   = {{ rule = \"scrub\", names = {names} }}"),
            )
        }
    };
    let shown = |p: Policy| {
        let c = p.table("customers").unwrap();
        let c = c
            .columns
            .iter()
            .find(|c| c.name == "custom_answers")
            .unwrap();
        c.rule.to_string()
    };
    let p = validate(|t| t).unwrap();
    assert_eq!(shown(p), "scrub(names = first_name, last_name)");
    for (names, says) in [
        (
            "[\"frist_name\"]",
            "scrub on column 'custom_answers' names 'frist_name', which is not a column of the data (did you mean 'first_name'?)",
        ),
        (
            "[\"first_name\", \"first_name\"]",
            "names 'first_name' twice",
        ),
        ("[\"custom_answers\"]", "names the column itself"),
        (
            "[\"marketing_opt_in\"]",
            "names 'marketing_opt_in', which is Boolean; names must be text columns",
        ),
        ("\"first_name\"", "'names' must be a list such as"),
        ("[1]", "'names' lists strings, got integer"),
    ] {
        let e = validate(with(names)).unwrap_err();
        assert!(e.contains(says), "{names}: {e}");
    }
    // Without names, scrub is what it always was.
    assert_eq!(shown(validate(with("[]")).unwrap()), "scrub");
}
