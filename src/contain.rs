//! Panics of the file decoders, contained where DataFusion reads the files.
//!
//! parquet-rs and Arrow's readers panic on some damage instead of returning an error (a
//! run header longer than ten bytes, an overflow in a page decoder: found by the
//! damaged-Parquet sweep in the tests). Where anonymizer drives a reading stream itself,
//! it polls it through [`crate::error::next_contained`]; but inside a DataFusion plan the
//! scan is often polled by a task DataFusion spawned (behind a repartition, for the
//! analysts' `query` and the aggregates' SQL engine), where a panic would only come back
//! as "task N panicked" without the file. So every session anonymizer makes
//! ([`context`]) appends one physical optimizer rule, [`ContainReads`], that puts a
//! [`ContainedScan`] above every file scan: each poll of the scan is contained on the
//! thread that makes it, and a panic becomes that partition's error, naming its file(s)
//! ([`ReadPanicked`]), like any other read error. The node is transparent otherwise: the
//! same partitions, ordering and statistics as the scan, and the plan rewrites that
//! regroup a scan's files ([`crate::input::regroup_file_scans`]) see through it.
//!
//! For a Ballista cluster the node travels through [`crate::codec::Codec`] (it holds
//! nothing but its child).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::{
    ChildStats, ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr,
    PlanProperties, ReplaceChildrenOptions, Statistics, StatisticsArgs,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::Stream;

use crate::error::ReadPanicked;

/// A session on `config` whose plans contain their file readers' panics.
pub fn context(config: SessionConfig) -> SessionContext {
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(ContainReads))
        .build();
    SessionContext::new_with_state(state)
}

/// The rule: a [`ContainedScan`] above every file scan.
#[derive(Debug)]
pub struct ContainReads;

impl PhysicalOptimizerRule for ContainReads {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        // Run once per plan, by the planner: each scan wrapped where it stands.
        Ok(plan
            .transform_up(|node| {
                if !is_file_scan(&node) {
                    return Ok(Transformed::no(node));
                }
                Ok(Transformed::yes(
                    Arc::new(ContainedScan::new(node)) as Arc<dyn ExecutionPlan>
                ))
            })?
            .data)
    }

    fn name(&self) -> &str {
        "contain_reads"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

fn is_file_scan(plan: &Arc<dyn ExecutionPlan>) -> bool {
    scan_config(plan).is_some()
}

/// The file scan's configuration, when `plan` is a file scan.
pub(crate) fn scan_config(plan: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    plan.downcast_ref::<DataSourceExec>()?
        .data_source()
        .downcast_ref::<FileScanConfig>()
}

/// A file scan whose polls are contained: a panic of its reader becomes its partition's
/// error ([`ReadPanicked`]), and the partition ends there.
#[derive(Debug, Clone)]
pub struct ContainedScan {
    input: Arc<dyn ExecutionPlan>,
    properties: Arc<PlanProperties>,
}

impl ContainedScan {
    pub fn new(input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = Arc::clone(input.properties());
        Self { input, properties }
    }

    /// The files partition `partition` reads, as an error names them.
    fn files(&self, partition: usize) -> String {
        let Some(group) = scan_config(&self.input).and_then(|c| c.file_groups.get(partition))
        else {
            return "a file".into();
        };
        let files = group.files();
        // The scan's location, percent-encoded where a name needs it, as a path again.
        let name = |i: usize| {
            let location = &files[i].object_meta.location;
            url::Url::parse(&format!("file:///{location}"))
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .map_or_else(|| format!("/{location}"), |p| p.display().to_string())
        };
        match files.len() {
            0 => "a file".into(),
            1 => name(0),
            n => format!("{} or one of the {} files after it", name(0), n - 1),
        }
    }
}

impl DisplayAs for ContainedScan {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContainedScan")
    }
}

impl ExecutionPlan for ContainedScan {
    fn name(&self) -> &str {
        "ContainedScan"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.len() != 1 {
            return Err(DataFusionError::Internal(format!(
                "ContainedScan takes one child, not {}",
                children.len()
            )));
        }
        let input = children.swap_remove(0);
        Ok(Arc::new(match options.children_properties {
            ChildrenPropertiesMode::Keep => Self {
                input,
                properties: Arc::clone(&self.properties),
            },
            ChildrenPropertiesMode::Recompute => Self::new(input),
        }))
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let files = self.files(partition);
        let input = crate::error::contained(|| self.input.execute(partition, context))
            .unwrap_or_else(|panic| Err(external(files.clone(), panic)))?;
        Ok(Box::pin(ContainedStream {
            input: Some(input),
            schema: self.schema(),
            files,
        }))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        Ok(Arc::clone(&input_stats[0]))
    }
}

fn external(files: String, panic: String) -> DataFusionError {
    DataFusionError::External(Box::new(ReadPanicked {
        files: Some(files),
        panic,
    }))
}

/// [`ContainedScan`]'s stream: `None` once its reader panicked (what it held is dropped).
struct ContainedStream {
    input: Option<SendableRecordBatchStream>,
    schema: SchemaRef,
    files: String,
}

impl Stream for ContainedStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(input) = self.input.as_mut() else {
            return Poll::Ready(None);
        };
        match crate::error::contained(|| input.as_mut().poll_next(cx)) {
            Ok(p) => p,
            Err(panic) => {
                // The reader's state is unknown after a panic: dropped, contained too.
                let input = self.input.take();
                let _ = crate::error::contained(move || drop(input));
                Poll::Ready(Some(Err(external(self.files.clone(), panic))))
            }
        }
    }
}

impl RecordBatchStream for ContainedStream {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig};

    /// Every file scan of a plan gets one `ContainedScan` right above it (a plan that is
    /// only a scan too), and regrouping the scan's files afterwards keeps it.
    #[tokio::test]
    async fn every_file_scan_is_wrapped_once() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b"] {
            let batch = RecordBatch::try_from_iter([(
                "id",
                std::sync::Arc::new(Int64Array::from(vec![1, 2, 3])) as _,
            )])
            .unwrap();
            let f = std::fs::File::create(dir.path().join(format!("{name}.parquet"))).unwrap();
            let mut w = parquet::arrow::ArrowWriter::try_new(f, batch.schema(), None).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        }
        let ctx = super::context(SessionConfig::new().with_target_partitions(2));
        let path = dir.path().to_string_lossy().into_owned();
        ctx.register_parquet("t", &path, ParquetReadOptions::default())
            .await
            .unwrap();
        for sql in [
            "SELECT id FROM t",
            "SELECT count(*), sum(id) FROM t",
            "SELECT x.id FROM t x JOIN t y ON x.id = y.id",
        ] {
            let df = ctx.sql(sql).await.unwrap();
            let plan = df.clone().create_physical_plan().await.unwrap();
            let text = displayable(plan.as_ref()).indent(false).to_string();
            let scans = text.matches("DataSourceExec").count();
            assert!(scans > 0, "{sql}:\n{text}");
            assert_eq!(
                text.matches("ContainedScan").count(),
                scans,
                "{sql}:\n{text}"
            );
            for (above, below) in text.lines().zip(text.lines().skip(1)) {
                if below.contains("DataSourceExec") {
                    assert!(above.contains("ContainedScan"), "{sql}:\n{text}");
                }
            }
            // The transform's rewrites of a scan's file groups see through the node.
            let (regrouped, replaced) =
                crate::input::regroup_file_scans(plan, |c| Some(c.file_groups.clone())).unwrap();
            assert!(replaced);
            let again = displayable(regrouped.as_ref()).indent(false).to_string();
            assert_eq!(again, text, "{sql}");
            // And it runs as before.
            let rows: usize = datafusion::physical_plan::collect(regrouped, ctx.task_ctx())
                .await
                .unwrap()
                .iter()
                .map(|b| b.num_rows())
                .sum();
            assert!(rows > 0, "{sql}");
        }
    }
}
