//! Entry points for the fuzz targets under `fuzz/` and for the test that replays their
//! corpus on every `cargo test`.
//!
//! Each function takes arbitrary bytes, runs one parser the way the nightly job does,
//! and panics only when a property the rest of the pipeline relies on is broken (a panic
//! inside the parser is a finding too). They live in the library, not in the fuzz crate,
//! so that the corpus replay in `tests/it/fuzz_corpus.rs` runs exactly the code the fuzzer
//! ran, on the stable toolchain and without instrumentation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

use crate::erasure::requests::{self, Format};
use crate::policy::raw::RawPolicy;
use crate::policy::{Format as InputFormat, Policy};
use crate::rules::scrub;

/// The policy parser: TOML text → raw policy → a policy validated against the
/// generated export's schemas (every table the text names gets the customers or the
/// transactions schema, so validation runs past the raw parse).
pub fn policy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let raw = match RawPolicy::from_str(text, Path::new("fuzz.toml"), Path::new("/fuzz")) {
        Ok(raw) => raw,
        Err(e) => {
            // Rendering the error must not panic either.
            let _ = e.to_string();
            return;
        }
    };
    let schemas = raw
        .tables
        .keys()
        .enumerate()
        .map(|(i, name)| {
            let schema = if i % 2 == 0 {
                crate::generate::transactions_schema()
            } else {
                crate::generate::customers_schema()
            };
            (
                name.clone(),
                (
                    vec![PathBuf::from(format!("/fuzz/{name}.parquet"))],
                    InputFormat::Parquet,
                    schema,
                ),
            )
        })
        .collect::<BTreeMap<_, _>>();
    match Policy::validate(raw, schemas) {
        Ok(p) => {
            // A validated policy classifies every column of every table.
            for t in &p.tables {
                for f in t.schema.fields() {
                    assert!(
                        t.rule_of(f.name()).is_some(),
                        "validated policy leaves column {} of {} unclassified",
                        f.name(),
                        t.name
                    );
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

/// The erasure requests parser, as CSV and as JSON Lines. Every accepted request has
/// a valid normalized email and a receipt date no later than the as-of date; row
/// numbers are within the file.
pub fn requests(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let as_of = NaiveDate::from_ymd_opt(2026, 6, 30).expect("a valid date");
    let lines = text.lines().count().max(1);
    for format in [Format::Csv, Format::JsonLines] {
        let Ok(parsed) = requests::parse_str(text, format, as_of) else {
            continue;
        };
        for r in &parsed.valid {
            assert!(requests::valid_email(&r.email), "accepted an invalid email");
            assert_eq!(
                r.email,
                requests::normalize_email(&r.email),
                "not normalized"
            );
            assert!(r.received_at <= as_of, "accepted a receipt after as-of");
            assert!(r.row >= 1 && r.row <= lines, "row {} of {lines}", r.row);
        }
        for i in &parsed.invalid {
            assert!(i.row >= 1 && i.row <= lines, "row {} of {lines}", i.row);
            assert!(!i.reason.is_empty());
        }
    }
}

/// The free-text scrubber: whatever it outputs, the verify gate's detector finds
/// nothing in it (otherwise a scrubbed column would fail every run), scrubbing twice
/// changes nothing more, and a text it reports as clean comes out unchanged. The same
/// holds with a row's name (the input's first line, up to 200 bytes; the text is all of
/// it), checked whenever the name is in the scrubbed text (otherwise the output is the
/// same).
pub fn scrub(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let once = scrubbed(text, scrub::scrub, "");
    let mut names = scrub::NameWords::default();
    let first = text.lines().next().unwrap_or("");
    let name = &first[..first.floor_char_boundary(first.len().min(200))];
    names.add(name);
    let with_names = if scrub::scrub_names(&once, &mut names, &mut String::new()) > 0 {
        scrubbed(
            text,
            |t, o| scrub::scrub_with_names(t, &mut names, o),
            " of names",
        )
    } else {
        once
    };
    // The privacy gate's own reading of words finds none of the name left in it (else a
    // text the scrubber cleaned would stop the run).
    let left = crate::verify::names::left_named(&[name], text, &with_names);
    assert!(left.is_empty(), "the gate still reads {left:?} of the name");
}

/// `f`'s output for `text`, asserted clean and idempotent.
fn scrubbed(text: &str, mut f: impl FnMut(&str, &mut String) -> usize, what: &str) -> String {
    let mut once = String::new();
    if f(text, &mut once) == 0 {
        assert_eq!(once, text, "nothing replaced but the text changed");
    }
    let left = scrub::detect(&once);
    assert!(left.is_empty(), "text scrubbed{what} still holds {left:?}");
    let mut twice = String::new();
    f(&once, &mut twice);
    assert_eq!(twice, once, "scrubbing{what} is not idempotent");
    once
}

/// A Parquet input file, as the run opens it: the bytes written to a file, its footer
/// checked ([`crate::input::parquet_footer_problem`]), and, when the check passes,
/// DataFusion's open of the file (its own footer reader) and a read of every row and
/// column. What must hold: nothing aborts the process (an allocation sized by a damaged
/// length), and once the footer check passes DataFusion's footer reader does not panic
/// (the check exists so that it cannot). A panic while decoding pages is allowed: the run
/// contains it and names the file (as here).
pub fn parquet(data: &[u8]) {
    use futures::StreamExt;
    // libFuzzer's hook aborts on every panic, the ones the run contains too; those are
    // let through to `contained` (as the binary's hook lets them), every other panic goes
    // to the hook that was there.
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let before = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !crate::error::panic_is_contained() {
                before(info);
            }
        }));
    });
    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    let path = dir.path().join("t.parquet");
    if std::fs::write(&path, data).is_err() || crate::input::parquet_footer_problem(&path).is_some()
    {
        return;
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    rt.block_on(async {
        let ctx = crate::contain::context(datafusion::prelude::SessionConfig::new());
        let options = datafusion::prelude::ParquetReadOptions::default();
        let opened = crate::error::contained_async(
            ctx.read_parquet(path.to_string_lossy().into_owned(), options),
        )
        .await;
        let df = match opened {
            Err(panic) => panic!("a footer that passed the check panics DataFusion: {panic}"),
            Ok(Err(_)) => return,
            Ok(Ok(df)) => df,
        };
        let _ = crate::error::contained_async(async {
            let Ok(mut stream) = df.execute_stream().await else {
                return;
            };
            while let Some(batch) = stream.next().await {
                if batch.is_err() {
                    return;
                }
            }
        })
        .await;
    });
}
