//! k-anonymity at warehouse scale: `anonymizer risk --optimize` end to end (Parquet read,
//! dictionary encoding, grouping, lattice search) on 10M rows with five quasi-identifiers,
//! and the kernel's search alone on the same rows.
//!
//! `cargo bench --bench kanon` (`KANON_ROWS` changes the size; default 10,000,000).
//! The data: age 18-90 (hierarchy of 5/10/20-year bands), 60 countries in 6 regions,
//! 60 months (quarter, year), 6 payment methods (no hierarchy: straight to `*`), 1,000
//! postal codes (2- and 1-digit prefixes); uniform, fixed seed.

use std::path::Path;
use std::sync::Arc;

use anonymizer::kanon::{DatasetBuilder, Hierarchy, optimize};
use anonymizer::risk::{RiskOptions, risk};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

struct Rng(u64);
impl Rng {
    fn pick(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn rows() -> usize {
    std::env::var("KANON_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000)
}

const K: u64 = 5;
const SUPPRESSION: f64 = 0.01;

struct Hierarchies {
    age: Vec<Vec<String>>,
    country: Vec<Vec<String>>,
    month: Vec<Vec<String>>,
    postal: Vec<Vec<String>>,
}

fn hierarchies() -> Hierarchies {
    Hierarchies {
        age: (18..=90u32)
            .map(|a| {
                let (b5, b10, b20) = (a / 5 * 5, a / 10 * 10, a / 20 * 20);
                vec![
                    a.to_string(),
                    format!("{b5}-{}", b5 + 4),
                    format!("{b10}-{}", b10 + 9),
                    format!("{b20}-{}", b20 + 19),
                    "*".into(),
                ]
            })
            .collect(),
        country: (0..60)
            .map(|i| vec![format!("C{i:02}"), format!("R{}", i % 6), "*".into()])
            .collect(),
        month: (0..60)
            .map(|i| {
                let y = 2020 + i / 12;
                vec![
                    format!("{y}-{:02}", i % 12 + 1),
                    format!("{y}-Q{}", (i % 12) / 3 + 1),
                    y.to_string(),
                    "*".into(),
                ]
            })
            .collect(),
        postal: (0..1000)
            .map(|i| {
                let p = format!("{i:03}");
                vec![
                    p.clone(),
                    format!("{}*", &p[..2]),
                    format!("{}**", &p[..1]),
                    "*".into(),
                ]
            })
            .collect(),
    }
}

const PAYMENTS: [&str; 6] = ["card", "paypal", "sepa", "apple", "google", "voucher"];

/// Column values of row `i` of the data set (deterministic).
fn generate(n: usize, h: &Hierarchies) -> Vec<[String; 5]> {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    (0..n)
        .map(|_| {
            [
                h.age[rng.pick(h.age.len())][0].clone(),
                h.country[rng.pick(60)][0].clone(),
                h.month[rng.pick(60)][0].clone(),
                PAYMENTS[rng.pick(6)].to_string(),
                h.postal[rng.pick(1000)][0].clone(),
            ]
        })
        .collect()
}

fn write_inputs(dir: &Path, data: &[[String; 5]], h: &Hierarchies) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("age", DataType::Int64, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("month", DataType::Utf8, false),
        Field::new("payment", DataType::Utf8, false),
        Field::new("postal", DataType::Utf8, false),
    ]));
    let file = std::fs::File::create(dir.join("qi.parquet")).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(
        file,
        schema.clone(),
        Some(anonymizer::run::writer_properties()),
    )
    .unwrap();
    for chunk in data.chunks(1 << 20) {
        let col = |c: usize| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(chunk.iter().map(|r| &r[c])))
        };
        let age: ArrayRef = Arc::new(Int64Array::from_iter_values(
            chunk.iter().map(|r| r[0].parse::<i64>().unwrap()),
        ));
        let b = RecordBatch::try_new(schema.clone(), vec![age, col(1), col(2), col(3), col(4)])
            .unwrap();
        w.write(&b).unwrap();
    }
    w.close().unwrap();
    for (name, rows) in [
        ("age", &h.age),
        ("country", &h.country),
        ("month", &h.month),
        ("postal", &h.postal),
    ] {
        let text: Vec<String> = rows.iter().map(|r| r.join(";")).collect();
        std::fs::write(dir.join(format!("{name}.csv")), text.join("\n")).unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let n = rows();
    let h = hierarchies();
    let data = generate(n, &h);
    let dir = tempfile::tempdir().unwrap();
    write_inputs(dir.path(), &data, &h);

    let mut g = c.benchmark_group("kanon");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n as u64));

    // The whole command: read the Parquet file, encode, group, search.
    let qi: Vec<String> = ["age", "country", "month", "payment", "postal"]
        .map(String::from)
        .to_vec();
    let opts = RiskOptions {
        input: dir.path().join("qi.parquet"),
        delimiter: b',',
        qi: qi.clone(),
        hierarchies: ["age", "country", "month", "postal"]
            .map(|c| (c.to_string(), dir.path().join(format!("{c}.csv"))))
            .into_iter()
            .collect(),
        levels: None,
        k: K,
        max_suppression: SUPPRESSION,
        optimize: true,
    };
    g.bench_function("risk_optimize_parquet_5qi", |b| {
        b.iter(|| risk(&opts).unwrap())
    });

    // The kernel alone: rows already in memory as text.
    let hier = |rows: &Vec<Vec<String>>| Some(Hierarchy::from_rows(rows.clone()).unwrap());
    let mut builder = DatasetBuilder::new(
        qi,
        vec![
            hier(&h.age),
            hier(&h.country),
            hier(&h.month),
            None,
            hier(&h.postal),
        ],
    )
    .unwrap();
    for r in &data {
        builder.push_row(r).unwrap();
    }
    let dataset = builder.finish().unwrap();
    g.bench_function("optimize_in_memory_5qi", |b| {
        b.iter(|| optimize(&dataset, K, SUPPRESSION).unwrap().unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
