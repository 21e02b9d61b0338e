//! The transform's plans as bytes (what a Ballista scheduler sends its executors): decoded
//! in another session, with the rules that session registered, they give the same batches
//! partition by partition, and the key never travels with them.

use std::sync::Arc;

use anonymizer::codec;
use anonymizer::run::{session, transform_plans};
use chrono::NaiveDate;
use datafusion::arrow::array::RecordBatch;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::{ExecutionPlan, collect_partitioned, displayable};

use crate::common::{KEY_HEX, key, other_key, sample_policy};

fn as_of() -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(2025, 12, 31)
}

/// An executor's session: its own registry, the rules registered with its own key.
fn executor(key: &anonymizer::key::Key) -> Arc<TaskContext> {
    let ctx = session();
    anonymizer::rules::Udfs::new(key).register(&ctx);
    ctx.task_ctx()
}

fn run(
    rt: &tokio::runtime::Runtime,
    plan: Arc<dyn ExecutionPlan>,
    ctx: Arc<TaskContext>,
) -> Vec<Vec<RecordBatch>> {
    rt.block_on(collect_partitioned(plan, ctx)).unwrap()
}

/// Serializes every transform plan of the policy at `config`, checks that the key is not
/// in the bytes, decodes them in an executor's session and compares every partition's
/// batches; returns the plans' tables and partitions, and the rows compared.
fn round_trip(config: &std::path::Path) -> (Vec<(String, usize)>, usize) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let plans = rt
        .block_on(transform_plans(config, &key(), as_of()))
        .unwrap();
    let key_bytes = hex::decode(KEY_HEX).unwrap();
    let mut seen = Vec::new();
    let mut rows = 0;
    for p in plans {
        let text = displayable(p.plan.as_ref()).indent(true).to_string();
        assert!(text.contains("ContainedScan"), "{text}");
        let bytes = codec::to_bytes(Arc::clone(&p.plan)).unwrap();
        for secret in [&key_bytes[..], KEY_HEX.as_bytes()] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "the key travels with the plan of {}",
                p.table
            );
        }
        // Decoded where the rules were registered with the same key: the same plan, the
        // same batches, partition by partition.
        let decoded = codec::from_bytes(&bytes, &executor(&key())).unwrap();
        let decoded_text = displayable(decoded.as_ref()).indent(true).to_string();
        assert_eq!(text, decoded_text, "the plan changed on its way");
        let want = run(&rt, Arc::clone(&p.plan), Arc::clone(&p.task_ctx));
        let got = run(&rt, decoded, executor(&key()));
        assert_eq!(want, got, "table {}: another result once decoded", p.table);
        rows += want.iter().flatten().map(|b| b.num_rows()).sum::<usize>();
        // Decoded where the rules hold another key: other tokens, the same kept values,
        // so the plan carried no key of its own.
        let elsewhere = codec::from_bytes(&bytes, &executor(&other_key())).unwrap();
        let other = run(&rt, elsewhere, executor(&other_key()));
        assert_ne!(
            want, other,
            "tokens that do not depend on the executor's key"
        );
        assert_eq!(
            want.iter()
                .flatten()
                .map(|b| b.num_rows())
                .collect::<Vec<_>>(),
            other
                .iter()
                .flatten()
                .map(|b| b.num_rows())
                .collect::<Vec<_>>()
        );
        seen.push((p.table, want.len()));
    }
    (seen, rows)
}

#[test]
fn transform_plans_travel_as_bytes_without_the_key() {
    let (seen, rows) = round_trip(&sample_policy());
    assert!(seen.iter().any(|(t, _)| t == "customers"), "{seen:?}");
    assert!(seen.iter().any(|(t, _)| t == "transactions"), "{seen:?}");
    assert!(rows > 0);
}

/// A CSV file read in pieces: each piece a partition reading a byte range of the file,
/// which the bytes carry.
#[test]
fn a_csv_file_in_pieces_travels_as_bytes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sales.csv"),
        crate::csv_mapping::sales_csv(3000),
    )
    .unwrap();
    let (_, pieced) = crate::csv_mapping::whole_and_pieced(dir.path(), "");
    let (seen, rows) = round_trip(&pieced);
    assert_eq!(rows, 3000);
    assert!(
        seen.iter().all(|(_, partitions)| *partitions > 10),
        "{seen:?}"
    );
}
