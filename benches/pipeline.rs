//! Criterion benchmarks of the run's stages on a generated export: each saved aggregate
//! query (with its small-cell suppression) and the privacy gate's scan, with throughput
//! in transaction rows; and each of the analysts' saved queries (`queries/*.sql`) over
//! the published run, with throughput in published aggregate rows.
//!
//! `cargo bench --bench pipeline` (`PIPELINE_CUSTOMERS` changes the size; default 20,000
//! customers, about 400,000 transactions). The end-to-end comparison with DuckDB is
//! `benches/e2e/bench.py`.

use anonymizer::generate::{GenerateOptions, generate};
use anonymizer::key::{Key, KeySource};
use anonymizer::policy::Policy;
use anonymizer::run::{RunOptions, run};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn customers() -> u64 {
    std::env::var("PIPELINE_CUSTOMERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000)
}

fn key() -> Key {
    // Any fixed key that passes the key checks (not one byte repeated).
    Key::from_hex(&format!("{}3c", "6b".repeat(31)), KeySource::Provided).unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut o = GenerateOptions::new(dir.path().join("export"), customers());
    o.seed = 11;
    let g = generate(&o).unwrap();
    let config = dir.path().join("anonymizer.toml");
    std::fs::write(&config, anonymizer::policy::SAMPLE_POLICY).unwrap();
    // One published run, for the gate and the as-of date.
    let summary = run(&RunOptions {
        config: config.clone(),
        key: Some(key()),
        ..Default::default()
    })
    .unwrap();
    let as_of = summary
        .manifest
        .as_of
        .as_deref()
        .and_then(|d| d.parse().ok());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let ctx = anonymizer::run::session();
    let policy = rt.block_on(Policy::load(&config, &ctx)).unwrap();
    let threads = anonymizer::run::default_threads();

    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.throughput(Throughput::Elements(g.transactions));
    // The kernel computes all four tables in one read; the SQL engine one query each.
    let compute = |p: &anonymizer::policy::Policy| {
        rt.block_on(anonymizer::analytics::compute(
            p,
            &key(),
            as_of,
            threads,
            &[],
            None,
        ))
        .unwrap()
    };
    let mut kernel = policy.clone();
    kernel.analytics.engine = anonymizer::policy::Engine::Kernel;
    group.bench_function("aggregates_kernel_all", |b| b.iter(|| compute(&kernel)));
    for name in policy.analytics.tables.clone() {
        let mut one = policy.clone();
        one.analytics.tables = vec![name];
        one.analytics.engine = anonymizer::policy::Engine::Sql;
        group.bench_function(format!("aggregate_sql_{name}"), |b| {
            b.iter(|| compute(&one))
        });
    }
    group.bench_function("privacy_gate_scan", |b| {
        b.iter(|| {
            let r = rt
                .block_on(anonymizer::verify::verify(
                    &summary.run_dir,
                    Some(&policy),
                    policy.analytics.k,
                    None,
                    None,
                    None,
                ))
                .unwrap();
            assert!(r.passed);
        })
    });
    group.finish();

    // The analysts' saved queries (`anonymizer query NAME`, `queries/*.sql`) over the
    // published run, registration of its tables included as `anonymizer query` does it;
    // throughput in rows of the published aggregate tables they read.
    let aggregate_rows: u64 = summary
        .manifest
        .tables
        .values()
        .filter(|t| t.kind == "aggregate")
        .map(|t| t.rows_written)
        .sum();
    let mut group = c.benchmark_group("saved_query");
    group.throughput(Throughput::Elements(aggregate_rows));
    for (name, sql) in anonymizer::query::BUILTIN {
        let rows = rt
            .block_on(anonymizer::query::run_sql(&summary.out, sql))
            .unwrap();
        assert!(
            rows.iter().map(|b| b.num_rows()).sum::<usize>() > 0,
            "{name}"
        );
        group.bench_function(name, |b| {
            b.iter(|| {
                rt.block_on(anonymizer::query::run_sql(&summary.out, sql))
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
