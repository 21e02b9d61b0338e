//! The run's physical plans as bytes: what a Ballista scheduler sends its executors.
//!
//! Past one machine the same plans are to run on an Apache DataFusion Ballista cluster,
//! whose scheduler ships each stage to executors as a datafusion-proto message. Stock
//! DataFusion nodes and expressions have a message each; anonymizer's own node
//! ([`ContainedScan`], above every file scan) needs an extension codec, [`Codec`], and its
//! rules (`anon_pseudonymize`, `anon_trunc`, ...) travel by name only: an executor
//! resolves them in its own registry, where they were registered with the key it holds
//! ([`crate::rules::Udfs`]). So the key never travels with a plan, and neither does any
//! rule parameter that is not a literal argument of the call (a test serializes every
//! transform plan of the sample policy, looks for the key in the bytes, runs the decoded
//! plans in a session of their own and compares every batch with the original's).
//!
//! Not yet travelling: the erasure state (`anon_erasure_state` holds the erased
//! customers' digests and counts, for the manifest, the rows it sees in the process
//! that planned it: [`crate::run::transform_plans`] plans without erasure requests), and
//! a lone row group cut into row ranges (the ranges are a Parquet access plan attached to
//! the file, which datafusion-proto drops, so that every partition would read the whole
//! row group: [`to_bytes`] refuses such a plan rather than let it run wrong).

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

use crate::contain::ContainedScan;
use crate::error::{Error, df_message};

/// The one byte that stands for a [`ContainedScan`] (which holds nothing but its child).
const CONTAINED_SCAN: u8 = 1;

/// datafusion-proto's extension codec for anonymizer's own plan nodes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Codec;

impl PhysicalExtensionCodec for Codec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        _ctx: &TaskContext,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match (buf, inputs) {
            ([CONTAINED_SCAN], [child]) => Ok(Arc::new(ContainedScan::new(Arc::clone(child)))),
            ([CONTAINED_SCAN], _) => Err(DataFusionError::Internal(format!(
                "a ContainedScan takes one child, not {}",
                inputs.len()
            ))),
            _ => Err(DataFusionError::Internal(
                "an extension node this build of anonymizer does not know".into(),
            )),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        _proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> DfResult<()> {
        if node.downcast_ref::<ContainedScan>().is_some() {
            buf.push(CONTAINED_SCAN);
            return Ok(());
        }
        Err(DataFusionError::NotImplemented(format!(
            "no codec for the plan node {}",
            node.name()
        )))
    }
}

/// A plan as the bytes a scheduler would send. A plan whose scan carries extensions on
/// a file (the access plan of a row group cut into row ranges) is refused: they would
/// not travel.
pub fn to_bytes(plan: Arc<dyn ExecutionPlan>) -> Result<Vec<u8>, Error> {
    let mut cut = false;
    plan.apply(|node| {
        if let Some(config) = crate::contain::scan_config(node) {
            cut |= config
                .file_groups
                .iter()
                .flat_map(|g| g.files())
                .any(|f| !f.extensions.is_empty());
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(|e| Error::Failed(df_message(&e)))?;
    if cut {
        return Err(Error::Failed(
            "cannot serialize a plan that reads a row group in row ranges: datafusion-proto does not \
             carry the ranges, so every partition would read the whole row group"
                .into(),
        ));
    }
    physical_plan_to_bytes_with_extension_codec(plan, &Codec)
        .map(|b| b.to_vec())
        .map_err(|e| Error::Failed(format!("cannot serialize a plan: {}", df_message(&e))))
}

/// A plan from those bytes, its rules resolved in `ctx`'s registry (an executor's: its
/// own key).
pub fn from_bytes(bytes: &[u8], ctx: &TaskContext) -> Result<Arc<dyn ExecutionPlan>, Error> {
    physical_plan_from_bytes_with_extension_codec(bytes, ctx, &Codec)
        .map_err(|e| Error::Failed(format!("cannot read a serialized plan: {}", df_message(&e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan that reads a lone row group in row ranges cannot travel (the ranges would
    /// be lost and every partition would read the whole row group): refused, not sent
    /// wrong.
    #[test]
    fn a_row_group_read_in_ranges_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = crate::generate::GenerateOptions::new(dir.path().join("export"), 50);
        o.files = 1;
        crate::generate::generate(&o).unwrap();
        let config = dir.path().join("anonymizer.toml");
        std::fs::write(&config, crate::policy::SAMPLE_POLICY).unwrap();
        let key =
            crate::key::Key::from_hex(&"a1b2".repeat(16), crate::key::KeySource::Provided).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let plans = rt
            .block_on(crate::run::transform_plans(
                &config,
                &key,
                chrono::NaiveDate::from_ymd_opt(2025, 12, 31),
            ))
            .unwrap();
        let plan = Arc::clone(&plans[0].plan);
        assert!(to_bytes(Arc::clone(&plan)).is_ok());
        let cut = crate::run::split_row_group(
            plan,
            Some(crate::run::RowGroupSplit { rows: 4, pieces: 2 }),
        )
        .unwrap();
        let e = to_bytes(cut).unwrap_err().to_string();
        assert!(e.contains("row ranges"), "{e}");
    }
}
