//! Replays the fuzzers' corpus (`fuzz/corpus/<target>/`, kept in the repo) through the
//! same entry points the fuzz targets call, so every input the fuzzers ever kept, and
//! every crash they found (saved there once fixed), is checked by `cargo test` on the
//! stable toolchain.

use std::path::Path;

fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        // A running fuzzer may remove files it has reduced while this reads.
        let Ok(bytes) = std::fs::read(&p) else {
            continue;
        };
        let r = std::panic::catch_unwind(|| f(&bytes));
        assert!(r.is_ok(), "{target}: {} fails", p.display());
        n += 1;
    }
    assert!(
        n >= 3,
        "{target}: only {n} corpus files in {}",
        dir.display()
    );
}

#[test]
fn policy_corpus() {
    replay("policy", anonymizer::fuzzing::policy);
}

#[test]
fn requests_corpus() {
    replay("requests", anonymizer::fuzzing::requests);
}

#[test]
fn scrub_corpus() {
    replay("scrub", anonymizer::fuzzing::scrub);
}

#[test]
fn parquet_corpus() {
    replay("parquet", anonymizer::fuzzing::parquet);
}
