//! One nightly run: validate, plan, transform every input file, record, publish.
//!
//! Each input file is cut into chunks that depend only on the file itself (its Parquet row
//! groups, at most 64 chunks; a CSV file whole), and each chunk becomes
//! one output file (`<table>/part-NNNNN.parquet`, or `part-NNNNN-CCC.parquet` for a file of
//! several chunks; N is the file's position in the sorted input list) through one output
//! partition of a DataFusion plan: scan -> projection of rule UDFs -> Parquet writer.
//! Consecutive small files are one chunk together ([`units`]): thousands of small files
//! are not planned, opened and written thousands of times.
//! Chunks run concurrently, one tokio task each, up to `threads` at a time. Memory is
//! bounded by `threads` x (one record batch + one row group being encoded), whatever the
//! number of rows, and because no output depends on scheduling or core count, outputs are
//! byte-identical on any machine.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use chrono::NaiveDate;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Error, df_message};
use crate::key::{Key, KeySource};
use crate::manifest::{InputFile, Manifest, OutputFile, TableReport, rfc3339};
use crate::policy::{Format, Policy, Role, TablePolicy};
use crate::publish::OutputDir;
use crate::rules::Udfs;

/// A failure injected on purpose, to test that failed runs publish nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailPoint {
    /// Fail after the first batch of this table has been written.
    WhileWriting(String),
    /// Fail after everything is staged, just before the swap.
    BeforePublish,
    /// Fail after the suppression ledger is stored, just before the swap (a run killed
    /// in that moment).
    AfterLedger,
}

/// What `anonymizer run` was asked to do (already parsed from the command line).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub config: PathBuf,
    /// Overrides the as-of date (default: the date of the latest event time).
    pub as_of: Option<NaiveDate>,
    /// Overrides the policy's output folder.
    pub out: Option<PathBuf>,
    /// Use this key instead of loading one (tests, demo).
    pub key: Option<Key>,
    /// Files processed at once, and the worker threads of every stage (default: the
    /// policy's `threads`, else the core count; 0 is the core count). See [`threads_for`].
    pub threads: Option<usize>,
    /// An erasure requests file (overrides the policy's `[erasure] requests`).
    pub requests: Option<PathBuf>,
    /// Where the aggregates and the gate spill (default: the run's staging folder); an
    /// existing folder, checked before any work ([`check_spill_dir`]).
    pub spill_dir: Option<PathBuf>,
    /// Start an empty ledger although the published run was made with one, or go on with
    /// one shorter than it was made with (`--new-ledger`; see
    /// [`crate::erasure::check_ledger_present`]).
    pub new_ledger: bool,
    pub fail_point: Option<FailPoint>,
}

/// The outcome of a successful run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub out: PathBuf,
    pub manifest: Manifest,
    /// Erasure requests support must look at (not found, invalid, overdue): one line
    /// each, no personal data; `anonymizer run` prints them on stderr.
    pub attention: Vec<String>,
}

impl RunSummary {
    /// What `anonymizer run` prints on success.
    pub fn report(&self) -> String {
        use std::fmt::Write as _;
        let m = &self.manifest;
        let mut s = format!("published run {} to {}\n", m.run_id, self.run_dir.display());
        for (name, t) in &m.tables {
            if t.kind == "receipts" {
                writeln!(s, "  {name}: {} receipts", t.rows_written).expect("writing to a String");
                continue;
            }
            match (&t.rows_read, &t.suppression) {
                (_, Some(sup)) => writeln!(
                    s,
                    "  {name} (aggregate): {} rows; withheld: {} cells below k = {}, {} more to protect them{}",
                    t.rows_written,
                    sup.cells_suppressed_threshold,
                    sup.k,
                    sup.cells_suppressed_protection,
                    sup.recoded_text()
                ),
                (read, None) => writeln!(
                    s,
                    "  {name}: {} rows read, {} rows written, {} file{}",
                    read.unwrap_or(0),
                    t.rows_written,
                    t.files.len(),
                    if t.files.len() == 1 { "" } else { "s" }
                ),
            }
            .expect("writing to a String");
            if let Some(ka) = &t.k_anonymity {
                let levels: Vec<String> = ka
                    .quasi_identifiers
                    .iter()
                    .zip(&ka.level_names)
                    .map(|(q, l)| format!("{q} {l}"))
                    .collect();
                writeln!(
                    s,
                    "    {}-anonymous: {}; {} records suppressed, smallest group {}",
                    ka.k,
                    levels.join(", "),
                    ka.records_suppressed,
                    ka.smallest_class
                )
                .expect("writing to a String");
            }
        }
        for (name, why) in &m.aggregates_skipped {
            writeln!(s, "  {name}: skipped ({why})").expect("writing to a String");
        }
        if let Some(e) = &m.erasure {
            let per: Vec<String> = e
                .requests
                .iter()
                .map(|(k, v)| match k.as_str() {
                    "completed" => {
                        format!("{v} {k} ({} by this run)", e.requests_completed_this_run)
                    }
                    _ => format!("{v} {k}"),
                })
                .collect();
            writeln!(
                s,
                "  erasure: {} customers erased ({} new ledger entries); requests: {}",
                e.customers_erased,
                e.new_entries,
                if per.is_empty() {
                    "none".to_string()
                } else {
                    per.join(", ")
                }
            )
            .expect("writing to a String");
            for (table, r) in &e.tables {
                writeln!(
                    s,
                    "    {table}: {} rows checked, {} anonymized, {} removed",
                    r.rows_checked, r.rows_anonymized, r.rows_removed
                )
                .expect("writing to a String");
            }
        }
        s
    }
}

/// Runs the policy end to end on a fresh tokio runtime of [`threads_for`] workers.
pub fn run(opts: &RunOptions) -> Result<RunSummary, Error> {
    let threads = threads_for(&opts.config, opts.threads);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the runtime: {e}")))?;
    rt.block_on(run_async(opts))
}

/// The threads of a run of `config`: `threads` (the command line's), else the policy's
/// `threads`, else every core (0 in either place is every core). The policy is only
/// peeked at here; a broken one is reported by the run itself.
pub fn threads_for(config: &Path, threads: Option<usize>) -> usize {
    pick_threads(
        threads,
        crate::policy::raw::RawPolicy::from_file(config)
            .ok()
            .and_then(|r| r.threads),
    )
}

/// The command line's `threads` over the policy's; 0 in either is every core.
pub fn pick_threads(cli: Option<usize>, policy: Option<usize>) -> usize {
    match cli.or(policy) {
        None | Some(0) => default_threads(),
        Some(n) => n,
    }
}

/// Sizes the process's shared pool of worker threads (rayon's global pool) to `threads`.
/// The transform's files run on the tokio runtime's `threads` workers and the kernel's
/// pass 2 on its own pool of `threads`; everything else that runs in parallel (the
/// erasure's scans of the export, the gate's output scan and input lookup, the input
/// digests) uses the shared pool, so sizing it is what makes `--threads` cap a whole run,
/// not only its transform. Once per process, before any parallel work: the binary calls
/// it for `run`; a library caller running several runs in one process sizes it itself
/// (or leaves it at every core).
pub fn size_worker_pool(threads: usize) -> Result<(), Error> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("anonymizer-worker-{i}"))
        .build_global()
        .map_err(|e| Error::Failed(format!("cannot start {threads} worker threads: {e}")))
}

pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
}

/// A DataFusion context whose plans are single-partition (order-preserving).
pub fn session() -> SessionContext {
    crate::contain::context(deterministic().with_target_partitions(1))
}

/// What every DataFusion session of a run starts from: record batches of
/// [`crate::input::BATCH_ROWS`] rows, and no work stealing between file-scan partitions
/// (DataFusion 55 lets an idle partition read a sibling's byte ranges; each of our
/// partitions is executed on its own, as Ballista executes them, so it must read exactly
/// its own range).
pub(crate) fn base_config() -> SessionConfig {
    let mut config = SessionConfig::new().with_batch_size(crate::input::BATCH_ROWS);
    config
        .options_mut()
        .execution
        .enable_file_stream_work_stealing = false;
    config
}

/// [`base_config`], and what else makes a partition's rows a function of the plan alone:
/// no round-robin repartitioning.
fn deterministic() -> SessionConfig {
    let mut config = base_config();
    config
        .options_mut()
        .optimizer
        .enable_round_robin_repartition = false;
    config
}

/// A context whose plans split one file into `chunks` byte ranges (a row group belongs to
/// the range holding its first page), one output partition each.
fn chunked_session(chunks: usize) -> SessionContext {
    let config = deterministic()
        .with_target_partitions(chunks)
        .with_repartition_file_scans(true)
        .with_repartition_file_min_size(0);
    crate::contain::context(config)
}

/// Most chunks one input file is cut into.
pub const MAX_CHUNKS: usize = 64;
/// A table's `csv_piece_bytes` unless the policy says otherwise: a CSV file larger than
/// this is cut into pieces of about this size, and smaller files are read in groups of up
/// to this size.
pub const CSV_PIECE_BYTES: u64 = 64 << 20;

/// How many chunks the transform's plan of one file has, as DataFusion is asked to cut it:
/// its Parquet row groups, at most [`MAX_CHUNKS`]; a CSV file one (a file larger than a
/// piece is cut into [`crate::input::csv_pieces`] by the scan itself, one partition each).
/// A function of the file alone (never of the core count), so outputs stay
/// byte-identical everywhere. (DataFusion keeps a file of no more rows than one batch,
/// [`crate::input::BATCH_ROWS`], in one piece; that too depends on the file alone.)
fn chunks_of(format: Format, row_groups: Option<&[u64]>) -> usize {
    let n = match format {
        Format::Parquet => row_groups.map_or(1, <[u64]>::len),
        Format::Csv => 1,
    };
    n.clamp(1, MAX_CHUNKS)
}

/// Rows per piece when a Parquet file is one large row group.
const SPLIT_ROWS: usize = 1 << 17;

/// At most this many rows of consecutive small Parquet files are read as one chunk (and
/// at most a table's `csv_piece_bytes` of consecutive small CSV files).
const GROUP_ROWS: u64 = SPLIT_ROWS as u64;

/// What one plan of the transform reads: one input file (cut into its chunks), or
/// consecutive small Parquet files read one after another as a single chunk, so that an
/// export of thousands of small files is not planned, opened and written thousands of
/// times (one output file per group). A function of the files alone (their order and
/// footers), never of the core count, so outputs stay byte-identical everywhere.
#[derive(Clone)]
pub(crate) struct Unit {
    /// The position of the first file in the table's sorted list.
    pub first: usize,
    /// The files with their rows (a group of Parquet files: from their footers; a single
    /// file or a group of CSV files: 0, unknown).
    pub files: Vec<(PathBuf, u64)>,
    /// A single Parquet file's layout.
    layout: Option<crate::input::ParquetLayout>,
    /// A CSV file or group of them: the table, to find the failing file or row by reading
    /// the files one by one, whole, in order (their rows are not known ahead). A copy
    /// made before the units were worked out: read with `open_in_order` only, as `open`
    /// would work them out again.
    csv: Option<Arc<TablePolicy>>,
    /// A single CSV file larger than the table's `csv_piece_bytes`: its pieces, each read
    /// by one partition, in order ([`crate::input::csv_pieces`]).
    pub pieces: Option<Arc<[crate::input::CsvPiece]>>,
}

impl Unit {
    fn path(&self) -> &Path {
        &self.files[0].0
    }

    /// Where a read that failed after `row` rows of the unit failed: the file and the rows
    /// of it read before. A group of CSV files is read again file by file, each alone,
    /// and the first that fails is the one (if none does alone, the first file).
    pub async fn locate_failure(&self, row: u64) -> (PathBuf, u64) {
        let Some(table) = self.csv.as_ref().filter(|_| self.files.len() > 1) else {
            let (f, r) = self.locate(row);
            return (f.to_path_buf(), r);
        };
        let ctx = session();
        for (f, _) in &self.files {
            let mut read = 0u64;
            let stream = match table.open_in_order(&ctx, f).await {
                Ok(df) => df.execute_stream().await,
                Err(_) => return (f.clone(), 0),
            };
            let Ok(mut stream) = stream else {
                return (f.clone(), 0);
            };
            while let Some(b) = stream.next().await {
                match b {
                    Ok(b) => read += b.num_rows() as u64,
                    Err(_) => return (f.clone(), read),
                }
            }
        }
        (self.path().to_path_buf(), row)
    }

    /// The file holding the unit's row `row` (0-based), and that row's index in it.
    pub fn locate(&self, row: u64) -> (&Path, u64) {
        let mut before = 0;
        for (i, (f, n)) in self.files.iter().enumerate() {
            if row < before + n || i + 1 == self.files.len() {
                return (f, row - before);
            }
            before += n;
        }
        (self.path(), row)
    }
}

/// The units of a table, in file order: every Parquet file read whole in one chunk (one
/// row group, or a lone one too small to cut) of at most [`GROUP_ROWS`] rows joins the
/// units of consecutive such files while they total at most [`GROUP_ROWS`] rows; every
/// CSV file of at most its table's `csv_piece_bytes` (one piece) joins consecutive such files while
/// they total at most that; every other file is a unit of its own. Worked out on the
/// first call and kept with the table (every stage reads by the same units).
pub(crate) fn units(table: &TablePolicy) -> Arc<[Unit]> {
    table
        .units
        .0
        .get_or_init(|| compute_units(table).into())
        .clone()
}

fn compute_units(table: &TablePolicy) -> Vec<Unit> {
    // Footers on every core (an export of thousands of files has thousands to read).
    let mut layouts: Vec<Option<crate::input::ParquetLayout>> = table
        .files
        .par_iter()
        .map(|file| match table.format {
            Format::Parquet => {
                crate::input::parquet_layout(file, crate::input::Cut::LoneRowGroup).ok()
            }
            Format::Csv => None,
        })
        .collect();
    let csv = table.format == Format::Csv;
    // Parquet: rows; CSV: bytes.
    let small: Vec<Option<u64>> = if csv {
        table
            .files
            .iter()
            .map(|f| {
                std::fs::metadata(f)
                    .ok()
                    .map(|m| m.len())
                    .filter(|b| *b <= table.csv_piece_bytes)
            })
            .collect()
    } else {
        layouts
            .iter()
            .map(|l| {
                let l = l.as_ref()?;
                let rows: u64 = l.row_groups.iter().sum();
                (l.row_groups.len() <= 1 && rows <= GROUP_ROWS && lone_row_group_split(l).is_none())
                    .then_some(rows)
            })
            .collect()
    };
    let shared = csv.then(|| Arc::new(table.clone()));
    // A CSV file larger than a piece, cut into pieces on every core (a file that cannot be
    // read stays whole, for its reader to report).
    let mut pieces: Vec<Option<Arc<[crate::input::CsvPiece]>>> = if csv {
        table
            .files
            .par_iter()
            .zip(small.par_iter())
            .map(|(f, small)| {
                if small.is_some() {
                    return None;
                }
                let started = std::time::Instant::now();
                let p =
                    crate::input::csv_pieces(f, table.delimiter, table.csv_piece_bytes, MAX_CHUNKS)
                        .ok()?;
                tracing::debug!(
                    file = %f.display(),
                    pieces = p.len(),
                    ms = started.elapsed().as_millis() as u64,
                    "a CSV file cut"
                );
                (p.len() > 1).then(|| p.into())
            })
            .collect()
    } else {
        vec![None; table.files.len()]
    };
    groups(
        &small,
        if csv {
            table.csv_piece_bytes
        } else {
            GROUP_ROWS
        },
    )
    .into_iter()
    .map(|r| Unit {
        first: r.start,
        files: r
            .clone()
            .map(|i| {
                let rows = if csv { 0 } else { small[i].unwrap_or(0) };
                (table.files[i].clone(), rows)
            })
            .collect(),
        layout: if r.len() == 1 {
            layouts[r.start].take()
        } else {
            None
        },
        csv: shared.clone(),
        pieces: if r.len() == 1 {
            pieces[r.start].take()
        } else {
            None
        },
    })
    .collect()
}

/// Cuts files into runs: a file of `Some(rows)` joins the run before it when that run is
/// of such files and stays within `limit` rows; a `None` file is a run of its own.
fn groups(small: &[Option<u64>], limit: u64) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    // Rows of the run being filled (`None`: the last run cannot grow).
    let mut open: Option<u64> = None;
    for (i, rows) in small.iter().enumerate() {
        match (rows, open) {
            (Some(rows), Some(total)) if total + rows <= limit => {
                out.last_mut().expect("an open run is the last").end = i + 1;
                open = Some(total + rows);
            }
            _ => {
                out.push(i..i + 1);
                open = *rows;
            }
        }
    }
    out
}

/// Reads a plan's one file, and then the rest of `files` after it, in order, as one
/// partition: the plan of a group of small files is the plan of its first file.
fn group_files(
    plan: Arc<dyn ExecutionPlan>,
    files: &[(PathBuf, u64)],
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    use datafusion::datasource::physical_plan::FileGroup;
    if files.len() < 2 {
        return Ok(plan);
    }
    let mut metas = Vec::with_capacity(files.len());
    for (f, _) in files {
        let len = std::fs::metadata(f)
            .map_err(|e| {
                datafusion::error::DataFusionError::Execution(format!(
                    "cannot read {}: {e}",
                    f.display()
                ))
            })?
            .len();
        metas.push((crate::input::location(f)?, len));
    }
    let (plan, replaced) = crate::input::regroup_file_scans(plan, |config| {
        let template = config.file_groups.iter().flat_map(|g| g.files()).next()?;
        // Each file as the plan read its first one (the same schema and options), whole.
        let group: Vec<_> = metas
            .iter()
            .map(|(location, len)| {
                let mut f = template.clone();
                f.object_meta = datafusion::object_store::ObjectMeta {
                    location: location.clone(),
                    last_modified: template.object_meta.last_modified,
                    size: *len,
                    e_tag: None,
                    version: None,
                };
                f.range = None;
                f.statistics = None;
                f.metadata_size_hint = None;
                f
            })
            .collect();
        Some(vec![FileGroup::new(group)])
    })?;
    if !replaced {
        return Err(datafusion::error::DataFusionError::Internal(
            "the plan of a group of files reads no file".into(),
        ));
    }
    Ok(plan)
}

/// How a Parquet file of one large row group is cut into row ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowGroupSplit {
    pub rows: usize,
    pub pieces: usize,
}

/// The cut of a Parquet file of one row group ([`crate::input::ParquetLayout::pieces`]:
/// about [`SPLIT_ROWS`] rows a piece, at most [`MAX_CHUNKS`], fewer when the file's
/// dictionaries or pages make ranges dear); `None` for a file of several row groups
/// (they are its chunks) or one read in a single piece.
pub(crate) fn lone_row_group_split(layout: &crate::input::ParquetLayout) -> Option<RowGroupSplit> {
    let [rows] = layout.row_groups[..] else {
        return None;
    };
    let pieces = layout.pieces(0, SPLIT_ROWS, MAX_CHUNKS);
    tracing::debug!(rows, pieces, cost = ?layout.costs.first(), "a lone row group cut");
    (pieces > 1).then_some(RowGroupSplit {
        rows: rows as usize,
        pieces,
    })
}

/// A Parquet file of one large row group would be one chunk, transformed by one core.
/// Its plan's scan is cut into row ranges of that row group instead (DataFusion's
/// Parquet access plans with a row selection per piece), one partition each, in order:
/// like row-group chunks, a function of the file alone.
pub(crate) fn split_row_group(
    plan: Arc<dyn ExecutionPlan>,
    split: Option<RowGroupSplit>,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    use datafusion::datasource::physical_plan::FileGroup;
    use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, RowGroupAccess};
    use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
    let Some(RowGroupSplit { rows, pieces }) = split else {
        return Ok(plan);
    };
    let per = rows.div_ceil(pieces);
    let (plan, _) = crate::input::regroup_file_scans(plan, |config| {
        // One file, whole or in byte ranges (a session with several target partitions
        // cuts it so, and then one range holds the whole row group).
        let files: Vec<_> = config.file_groups.iter().flat_map(|g| g.files()).collect();
        let first = files.first()?;
        if files
            .iter()
            .any(|f| f.object_meta.location != first.object_meta.location)
        {
            return None;
        }
        let mut only = (*first).clone();
        only.range = None;
        let groups: Vec<FileGroup> = (0..pieces)
            .map(|i| i * per)
            .take_while(|start| *start < rows)
            .map(|start| {
                let len = per.min(rows - start);
                let mut selectors = vec![RowSelector::skip(start), RowSelector::select(len)];
                if start + len < rows {
                    selectors.push(RowSelector::skip(rows - start - len));
                }
                let access = ParquetAccessPlan::new(vec![RowGroupAccess::Selection(
                    RowSelection::from(selectors),
                )]);
                FileGroup::new(vec![only.clone().with_extension(access)])
            })
            .collect();
        Some(groups)
    })?;
    Ok(plan)
}

/// The Parquet settings of every published file: zstd level 1, page statistics, 1M-row
/// groups, dictionary encoding (measured against the alternatives: BENCHMARKS.md).
pub fn writer_properties() -> WriterProperties {
    writer_properties_with(&ParquetSettings::default())
}

/// The Parquet settings a published file is written with (see BENCHMARKS.md, "Output
/// Parquet settings", for how they were chosen).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParquetSettings {
    pub zstd_level: i32,
    pub row_group_rows: usize,
    pub dictionary: bool,
}

impl Default for ParquetSettings {
    fn default() -> Self {
        ParquetSettings {
            zstd_level: 1,
            row_group_rows: 1 << 20,
            dictionary: true,
        }
    }
}

pub fn writer_properties_with(p: &ParquetSettings) -> WriterProperties {
    settings_builder(p).build()
}

fn settings_builder(p: &ParquetSettings) -> parquet::file::properties::WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(p.zstd_level).unwrap_or_default(),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(p.row_group_rows.max(1)))
        .set_dictionary_enabled(p.dictionary)
        // Parquet's own types where Arrow's have none: a Date64 column (a date in
        // milliseconds) is written as a Parquet DATE, not as a bare INT64 that readers
        // other than Arrow's see as a number.
        .set_coerce_types(true)
}

/// The published settings of one record-level table: [`writer_properties`], except that
/// its token columns (`pseudonymize`), generalized networks and scrubbed free text have
/// no min/max statistics. A token is a keyed hash, so every page's min/max spans almost
/// the whole token space and prunes nothing; a network or a text in an export's order
/// is no better, and nobody filters on ranges of them; computing them costs two byte
/// comparisons per value (BENCHMARKS.md, "Output Parquet settings"). Their dictionary
/// stays: an export sorted by customer repeats a customer's token on each transaction,
/// and the writer falls back to plain by itself when the dictionary outgrows its page.
pub fn table_writer_properties(table: &TablePolicy) -> WriterProperties {
    let mut b = settings_builder(&ParquetSettings::default());
    for c in &table.columns {
        if matches!(
            c.rule,
            crate::rules::Rule::Pseudonymize { .. }
                | crate::rules::Rule::Scrub { .. }
                | crate::rules::Rule::Generalize(crate::rules::Generalization::Network { .. })
        ) {
            let path = parquet::schema::types::ColumnPath::from(c.name.as_str());
            b = b.set_column_statistics_enabled(path, EnabledStatistics::None);
        }
    }
    b.build()
}

/// Checks a `--spill-dir` before any work starts: it must be an existing folder (each
/// spill makes its own temporary subfolder in it and removes it when done).
pub fn check_spill_dir(dir: &Path) -> Result<(), Error> {
    check_spill_folder("--spill-dir", dir)
}

/// [`check_spill_dir`] for a folder named by `what` (the flag, or a policy's `spill_dir`).
fn check_spill_folder(what: &str, dir: &Path) -> Result<(), Error> {
    let problem = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => "not a folder".to_string(),
        Err(e) => e.to_string(),
    };
    Err(Error::Usage(format!(
        "{what} {}: {problem}\n  give an existing folder on a disk with room for the spill",
        dir.display()
    )))
}

/// The folder a command spills into: `--spill-dir` (checked by the caller before it
/// loaded the policy), else the policy's `spill_dir`, checked here; `None`: neither, the
/// command's own default.
pub fn chosen_spill_dir(
    flag: Option<&Path>,
    policy: Option<&Policy>,
) -> Result<Option<PathBuf>, Error> {
    if let Some(d) = flag {
        return Ok(Some(d.to_path_buf()));
    }
    match policy.and_then(|p| p.spill_dir.as_ref().map(|d| (p, d))) {
        Some((p, d)) => {
            check_spill_folder(&format!("{}: spill_dir", p.path.display()), d)?;
            Ok(Some(d.clone()))
        }
        None => Ok(None),
    }
}

pub async fn run_async(opts: &RunOptions) -> Result<RunSummary, Error> {
    let started = chrono::Utc::now();
    if let Some(d) = &opts.spill_dir {
        check_spill_dir(d)?;
    }
    let mut stages = BTreeMap::new();
    let t = Instant::now();
    let ctx = session();
    let policy = Policy::load(&opts.config, &ctx).await?;
    let chosen_spill = chosen_spill_dir(opts.spill_dir.as_deref(), Some(&policy))?;
    let (key, key_source) = match &opts.key {
        Some(k) => (k.clone(), KeySource::Provided),
        None => Key::load(policy.key_file.as_deref())?,
    };
    stages.insert("validate".to_string(), ms(t));
    let threads = pick_threads(opts.threads, policy.threads);

    let out_root = opts.out.clone().unwrap_or_else(|| policy.output.clone());
    let out = OutputDir::lock(&out_root)?;

    let t = Instant::now();
    let spinner = crate::progress::stage("checks", None, "");
    let facts = crate::checks::check_export(&ctx, &policy).await?;
    drop(spinner);
    stages.insert("checks".to_string(), ms(t));
    let t = Instant::now();
    let (as_of, as_of_source) = match opts.as_of {
        Some(d) => (Some(d), "--as-of".to_string()),
        None => match latest_event_date(&policy, &facts) {
            Some((d, src)) => (Some(d), src),
            None => (None, "none: no table maps the event_time role".to_string()),
        },
    };
    // An as-of date before every event leaves every aggregate table empty (a typo such
    // as 1925 for 2025): refused rather than published over the last good run.
    if let Some(d) = opts.as_of
        && let Some((table, first)) = facts
            .iter()
            .filter_map(|(t, f)| f.first_event.map(|d| (t, d)))
            .min_by_key(|(_, d)| *d)
        && d < first
    {
        return Err(Error::Usage(format!(
            "--as-of {d} is before the first event of the export (table {table}): every aggregate table \
             would be empty; pass a date on or after the export's first event (or leave --as-of out: the \
             latest event's date is the default)"
        )));
    }
    let needs_as_of = policy
        .tables
        .iter()
        .flat_map(|t| t.columns.iter())
        .any(|c| c.rule.needs_as_of());
    if needs_as_of && as_of.is_none() {
        return Err(Error::Usage(
            "an age_band rule needs an as-of date, and no table maps the event_time role to derive one; pass --as-of YYYY-MM-DD".into(),
        ));
    }
    stages.insert("as_of".to_string(), ms(t));

    let t = Instant::now();
    if let Some(ledger) = &policy.erasure.ledger {
        crate::erasure::check_ledger_present(
            ledger,
            crate::publish::current_run(&out_root).as_deref(),
            opts.new_ledger,
        )?;
    }
    let mut erasure =
        crate::erasure::prepare(&ctx, &policy, &key, as_of, opts.requests.as_deref()).await?;
    if erasure.enabled {
        stages.insert("erasure".to_string(), ms(t));
    }

    let run_id = out.new_run_id();
    let staging = out.create_staging(&run_id)?;
    // Spill folders of killed runs in --spill-dir or the policy's spill_dir (the staging
    // area's go with it above): only those whose lock no live process holds.
    if let Some(d) = &chosen_spill {
        crate::fsutil::remove_abandoned_spills(d);
    }
    tracing::info!(
        run_id = %run_id,
        out = %out_root.display(),
        threads,
        shared_pool = rayon::current_num_threads(),
        "run started"
    );
    // Spills go to --spill-dir, else to the policy's spill_dir, else into the staging
    // folder (on the output's disk, and removed with it should the run stop).
    let spill_dir = chosen_spill.unwrap_or_else(|| staging.clone());
    let result = stage_run(
        &ctx,
        &policy,
        &key,
        as_of,
        threads,
        &staging,
        &spill_dir,
        &mut erasure,
        opts.fail_point.as_ref(),
        &mut stages,
    )
    .await;
    let (inputs, tables, aggregates_skipped, payments_without_period) = match result {
        Ok(r) => r,
        Err(e) => {
            out.discard_staging(&run_id);
            return Err(match e {
                Error::PrivacyCheckFailed(m) => Error::PrivacyCheckFailed(format!(
                    "{m}\nnothing was published; {}",
                    current_unchanged(&out_root)
                )),
                e => e,
            });
        }
    };

    // The privacy gate: checks what was staged; a failure publishes nothing (exit 1).
    let t = Instant::now();
    let spinner = crate::progress::stage("privacy gate", None, "");
    let gate = async {
        let erased = if erasure.enabled {
            Some(erasure.published_tokens(&ctx, &policy, &key).await?)
        } else {
            None
        };
        // The rows whose free text named them, for the check of the scrubber's names.
        let named = crate::verify::names::named_rows(&ctx, &policy, &key).await?;
        // Values past the by-value check's bound spill into a folder of their own
        // (removed before anything is published), by default next to the tables.
        let mut report = crate::verify::verify(
            &staging,
            Some(&policy),
            policy.analytics.k,
            erased.as_ref(),
            Some(&named),
            Some(&spill_dir),
        )
        .await?;
        // The report names the folder it stays in once published, not the staging one.
        let published = out_root.join("runs").join(&run_id);
        let published = std::path::absolute(&published).unwrap_or(published);
        let checked = std::mem::replace(&mut report.dir, published);
        let json = serde_json::to_vec_pretty(&report).expect("the report serializes");
        report.dir = checked;
        let path = staging.join("risk_report.json");
        write_synced(&path, &json)
            .map_err(|e| Error::Failed(format!("cannot write {}: {e}", path.display())))?;
        if !report.passed {
            return Err(Error::PrivacyCheckFailed(format!(
                "{}nothing was published; {}",
                report.summary(),
                current_unchanged(&out_root)
            )));
        }
        Ok(report.removed_whole())
    }
    .await;
    drop(spinner);
    let removed_whole = match gate {
        Ok(r) => r,
        Err(e) => {
            out.discard_staging(&run_id);
            return Err(e);
        }
    };
    stages.insert("verify".to_string(), ms(t));

    let t = Instant::now();
    let mut manifest = Manifest {
        run_id: run_id.clone(),
        as_of: as_of.map(|d| d.to_string()),
        as_of_source,
        started_at: rfc3339(started),
        finished_at: String::new(),
        tool: env!("CARGO_PKG_NAME").into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        policy: std::path::absolute(&policy.path).unwrap_or(policy.path.clone()),
        policy_digest: format!("sha256:{}", policy.digest),
        key_id: key.id(),
        key_source: key_source.to_string(),
        inputs,
        tables,
        aggregates_skipped,
        rows_missing: facts
            .iter()
            .filter(|(_, f)| !f.missing.is_empty())
            .map(|(t, f)| (t.clone(), f.missing.clone()))
            .collect(),
        rows_other_type: facts
            .iter()
            .filter_map(|(t, f)| {
                f.types
                    .filter(|x| x.other > 0)
                    .map(|x| (t.clone(), x.other))
            })
            .collect(),
        payments_without_period,
        risk_report: "risk_report.json".into(),
        erasure: erasure.enabled.then(|| crate::manifest::ErasureReport {
            ledger: erasure.ledger_path.clone().unwrap_or_default(),
            ledger_entries: erasure.ledger.as_ref().map_or(0, |l| l.entries.len()),
            new_entries: erasure.new_entries,
            requests_file: erasure.requests_file.clone(),
            requests_file_missing: erasure.requests_missing.clone(),
            requests: erasure
                .summary()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            requests_completed_this_run: erasure.completed_now,
            customers_erased: erasure.customers_erased(),
            tables: erasure.rows.clone(),
        }),
        stages_ms: stages,
    };
    let publish = (|| -> Result<PathBuf, Error> {
        if opts.fail_point == Some(FailPoint::BeforePublish) {
            return Err(Error::Failed("injected failure before publish".into()));
        }
        manifest.stages_ms.insert("publish".into(), ms(t));
        manifest.finished_at = rfc3339(chrono::Utc::now());
        let json = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        let mpath = staging.join("_manifest.json");
        write_synced(&mpath, &json).map_err(|err| crate::publish::PublishError::Io {
            path: mpath.clone(),
            what: "cannot write the manifest",
            err,
        })?;
        // The ledger goes first: should publishing fail now, the next run erases these
        // customers anyway (and gives the requests it reads again the receipts this run
        // would have published); the other order could let an erased customer reappear.
        if erasure.new_entries > 0
            && let (Some(l), Some(p)) = (&erasure.ledger, &erasure.ledger_path)
        {
            l.store(p)?;
        }
        if opts.fail_point == Some(FailPoint::AfterLedger) {
            return Err(Error::Failed("injected failure after the ledger".into()));
        }
        Ok(out.publish(&run_id)?)
    })();
    let run_dir = match publish {
        Ok(d) => d,
        Err(e) => {
            out.discard_staging(&run_id);
            return Err(e);
        }
    };
    // The run is published: failing to remove old runs must not turn it into a failure.
    // A run that honoured new erasure requests removes every older run: they still hold
    // the erased customers' rows (pseudonymized, so personal data), which must not stay
    // on disk for `keep_runs` more nights.
    // A removal that failed is retried by every later run until it succeeds (the marker
    // file says one is owed).
    let pending = out.root().join(crate::publish::ERASED_RUNS_PENDING);
    let erased = erasure.new_entries > 0 || pending.exists();
    let mut attention = erasure.attention();
    match out.prune(if erased { 1 } else { policy.keep_runs }) {
        Ok(removed) => {
            if erased {
                let _ = std::fs::remove_file(&pending);
            }
            if !removed.is_empty() {
                tracing::info!(
                    removed = removed.len(),
                    erasure = erased,
                    "old runs removed"
                )
            }
        }
        Err(e) if erased => {
            let _ = std::fs::write(&pending, b"older runs hold erased customers' rows\n");
            attention.push(format!(
                "published, but older runs holding erased customers' rows could not all be removed \
                 ({e}); every later run retries; or remove every folder of {} but the current run",
                out.runs_dir().display()
            ))
        }
        Err(e) => tracing::warn!(error = %e, "published, but old runs could not be removed"),
    }
    tracing::info!(run_id = %run_id, "published");
    for (table, other) in &manifest.rows_other_type {
        let rows = facts.get(table).map_or(0, |f| f.rows);
        attention.push(format!(
            "table {table}: {other} of its {rows} row(s) have a transaction_type other than {}, {}, {} or {} \
             (or none); the subscription, revenue and mrr figures leave them out \
             (cohort_retention and revenue_monthly's customers count a transaction of any type)",
            crate::analytics::PAYMENT_TYPES[0],
            crate::analytics::PAYMENT_TYPES[1],
            crate::analytics::REVERSAL_TYPES[0],
            crate::analytics::REVERSAL_TYPES[1],
        ));
    }
    for (table, rows) in &manifest.payments_without_period {
        attention.push(format!(
            "table {table}: {rows} subscription payment(s) have no offer_period; \
             subscriptions_monthly and mrr_monthly leave them out (no coverage to count), \
             revenue_monthly and cohort_retention count them"
        ));
    }
    for (column, texts) in removed_whole {
        attention.push(format!(
            "{column}: {texts} free text(s) did not settle after {} rounds of scrubbing and \
             were published as {} (text built so that each replacement exposes another \
             identifier, or garbled); the privacy report counts them ({}.TABLE.COLUMN)",
            crate::rules::scrub::MAX_ROUNDS,
            crate::rules::scrub::REMOVED,
            crate::verify::REMOVED_WHOLE,
        ));
    }
    for (table, missing) in &manifest.rows_missing {
        for (column, rows) in missing {
            attention.push(format!(
                "table {table}: {rows} row(s) have no {column}; the aggregates leave them out \
                 (the record-level table keeps them)"
            ));
        }
    }
    Ok(RunSummary {
        run_dir,
        out: out_root,
        manifest,
        attention,
    })
}

type Staged = (
    Vec<InputFile>,
    BTreeMap<String, TableReport>,
    BTreeMap<String, String>,
    BTreeMap<String, u64>,
);

#[allow(clippy::too_many_arguments)]
async fn stage_run(
    ctx: &SessionContext,
    policy: &Policy,
    key: &Key,
    as_of: Option<NaiveDate>,
    threads: usize,
    staging: &Path,
    spill_dir: &Path,
    erasure: &mut crate::erasure::Plan,
    fail: Option<&FailPoint>,
    stages: &mut BTreeMap<String, u64>,
) -> Result<Staged, Error> {
    let t = Instant::now();
    // Input digests run on rayon threads while the transform runs on tokio's.
    let all_inputs: Vec<(String, PathBuf)> = policy
        .tables
        .iter()
        .flat_map(|t| t.files.iter().map(|f| (t.name.clone(), f.clone())))
        .collect();
    let hashing = tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        let r: Vec<Result<InputFile, Error>> = all_inputs
            .par_iter()
            .map(|(table, path)| hash_input(table, path))
            .collect();
        (r, ms(t))
    });

    let udfs = Udfs::new(key);
    udfs.register(ctx);
    let mut jobs = Vec::new();
    let mut effects = Vec::new();
    for table in &policy.tables {
        let exprs = rule_exprs(table, &udfs, as_of);
        let effect = erasure.table_effect(table, key);
        if let Some(e) = &effect {
            effects.push((table.name.clone(), e.clone()));
        }
        let fail = matches!(fail, Some(FailPoint::WhileWriting(t)) if *t == table.name);
        let props = table_writer_properties(table);
        jobs.extend(table_jobs(ctx, table, staging, &exprs, effect.as_ref(), fail, &props).await?);
    }
    let total = policy
        .tables
        .iter()
        .map(|t| crate::input::estimate_rows(t.format, &t.files))
        .sum();
    let bar = crate::progress::stage("transform", Some(total), "rows");
    let results = run_jobs(jobs, threads, &bar).await;
    drop(bar);
    let (hashes, hash_ms) = hashing
        .await
        .map_err(|e| Error::Failed(format!("the input digest task failed: {e}")))?;
    let mut results = results?;
    erasure.rows = effects.into_iter().map(|(t, e)| (t, e.rows())).collect();
    stages.insert("transform".into(), ms(t));
    stages.insert("hash_inputs".into(), hash_ms);
    release_freed_memory("transform");
    let inputs = hashes.into_iter().collect::<Result<Vec<_>, _>>()?;

    results.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let mut tables = BTreeMap::new();
    for table in &policy.tables {
        let mine: Vec<_> = results.iter().filter(|r| r.0 == table.name).collect();
        tables.insert(
            table.name.clone(),
            TableReport {
                kind: "record".into(),
                // The plan's rows come out after erasure's filter; the rows it removed
                // were read too.
                rows_read: Some(
                    mine.iter().map(|r| r.2).sum::<u64>()
                        + erasure.rows.get(&table.name).map_or(0, |r| r.rows_removed),
                ),
                rows_written: mine
                    .iter()
                    .filter_map(|r| r.3.as_ref())
                    .map(|f| f.rows)
                    .sum(),
                columns: table.columns.clone(),
                roles: table.roles.clone(),
                files: mine.iter().filter_map(|r| r.3.clone()).collect(),
                query: None,
                query_sha256: None,
                suppression: None,
                k_anonymity: None,
            },
        );
    }
    // k-anonymity: generalize and suppress the staged tables that declare
    // quasi-identifiers (the gate re-checks the result from the files).
    if let Some(ka) = policy.k_anonymity {
        let t = Instant::now();
        let _spinner = crate::progress::stage("k-anonymity", None, "");
        for table in policy
            .tables
            .iter()
            .filter(|t| !t.quasi_identifiers.is_empty())
        {
            let report = tables
                .get_mut(&table.name)
                .expect("every table has a report");
            let r = crate::kanon::enforce::enforce(table, staging, &mut report.files, ka)?;
            tracing::info!(
                table = %table.name,
                levels = ?r.level_names,
                suppressed = r.records_suppressed,
                "k-anonymity enforced"
            );
            report.k_anonymity = Some(r);
        }
        stages.insert("k_anonymity".into(), ms(t));
    }
    let t = Instant::now();
    let spinner = crate::progress::stage("aggregates", None, "");
    let built = crate::analytics::build(
        policy,
        key,
        as_of,
        threads,
        staging,
        spill_dir,
        &erasure.matched_analytics_tokens(),
    )
    .await;
    let built = match built {
        Err(e)
            if e.to_string()
                .contains(crate::analytics::period::PERIOD_HELP) =>
        {
            return Err(bad_offer_period(policy, e).await);
        }
        other => other?,
    };
    drop(spinner);
    stages.insert("analytics".into(), ms(t));
    release_freed_memory("aggregates");
    tables.extend(built.tables);
    if erasure.enabled {
        erasure.set_active(&built.active);
        let batch = erasure.receipts_batch();
        let file = write_parquet(
            &staging.join("erasure_receipts"),
            "erasure_receipts",
            "part-00000.parquet",
            &batch,
        )
        .map_err(Error::Erasure)?;
        let json = staging.join("erasure_receipts.json");
        write_synced(&json, &erasure.receipts_json())
            .map_err(|e| Error::Erasure(format!("cannot write {}: {e}", json.display())))?;
        tables.insert(
            "erasure_receipts".into(),
            TableReport {
                kind: "receipts".into(),
                rows_read: None,
                rows_written: batch.num_rows() as u64,
                columns: vec![],
                roles: BTreeMap::new(),
                files: vec![file],
                query: None,
                query_sha256: None,
                suppression: None,
                k_anonymity: None,
            },
        );
    }
    Ok((inputs, tables, built.skipped, built.without_period))
}

/// Writes one batch as `dir/name` (creating `dir`) with the published Parquet settings;
/// `table` names the folder in the returned record.
pub(crate) fn write_parquet(
    dir: &Path,
    table: &str,
    name: &str,
    batch: &datafusion::arrow::array::RecordBatch,
) -> Result<OutputFile, String> {
    let path = dir.join(name);
    let fail =
        |what: &str, e: &dyn std::fmt::Display| format!("cannot {what} {}: {e}", path.display());
    std::fs::create_dir_all(dir).map_err(|e| fail("create the folder for", &e))?;
    let file = std::fs::File::create(&path).map_err(|e| fail("create", &e))?;
    let mut writer = ArrowWriter::try_new(
        HashingWriter::new(file),
        batch.schema(),
        Some(writer_properties()),
    )
    .map_err(|e| fail("start writing", &e))?;
    writer.write(batch).map_err(|e| fail("write", &e))?;
    let mut hw = writer.into_inner().map_err(|e| fail("finish", &e))?;
    hw.flush()
        .and_then(|_| hw.inner.get_ref().sync_all())
        .map_err(|e| fail("flush", &e))?;
    Ok(OutputFile {
        path: format!("{table}/{name}"),
        rows: batch.num_rows() as u64,
        bytes: hw.bytes,
        sha256: hex::encode(hw.hasher.finalize()),
    })
}

/// Rewrites the staged file `run_dir/file.path` batch by batch through `f` (same row
/// groups' worth of rows, written with `props`), replacing it atomically, and returns its
/// new record.
pub(crate) fn rewrite_parquet(
    run_dir: &Path,
    file: &OutputFile,
    props: &WriterProperties,
    mut f: impl FnMut(
        datafusion::arrow::array::RecordBatch,
    ) -> Result<datafusion::arrow::array::RecordBatch, String>,
) -> Result<OutputFile, String> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let path = run_dir.join(&file.path);
    let tmp = path.with_extension("parquet.tmp");
    let fail =
        |what: &str, e: &dyn std::fmt::Display| format!("cannot {what} {}: {e}", path.display());
    let input = std::fs::File::open(&path).map_err(|e| fail("open", &e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(input)
        .map_err(|e| fail("read", &e))?
        .with_batch_size(crate::input::BATCH_ROWS);
    let empty = datafusion::arrow::array::RecordBatch::new_empty(reader.schema().clone());
    let reader = reader.build().map_err(|e| fail("read", &e))?;
    let schema = f(empty)?.schema();
    let out = std::fs::File::create(&tmp).map_err(|e| fail("create a file beside", &e))?;
    let mut writer = ArrowWriter::try_new(HashingWriter::new(out), schema, Some(props.clone()))
        .map_err(|e| fail("start rewriting", &e))?;
    let mut rows = 0u64;
    for b in reader {
        let b = f(b.map_err(|e| fail("read", &e))?)?;
        rows += b.num_rows() as u64;
        writer.write(&b).map_err(|e| fail("rewrite", &e))?;
    }
    let mut hw = writer.into_inner().map_err(|e| fail("finish", &e))?;
    hw.flush()
        .and_then(|_| hw.inner.get_ref().sync_all())
        .map_err(|e| fail("flush", &e))?;
    std::fs::rename(&tmp, &path).map_err(|e| fail("replace", &e))?;
    Ok(OutputFile {
        path: file.path.clone(),
        rows,
        bytes: hw.bytes,
        sha256: hex::encode(hw.hasher.finalize()),
    })
}

/// The jobs that write one table into `out/<table>/`: one per chunk of each input file.
async fn table_jobs(
    ctx: &SessionContext,
    table: &TablePolicy,
    out: &Path,
    exprs: &[Expr],
    effect: Option<&crate::erasure::TableEffect>,
    fail: bool,
    props: &WriterProperties,
) -> Result<Vec<FileJob>, Error> {
    let dir = out.join(&table.name);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Transform {
        table: table.name.clone(),
        file: dir.clone(),
        message: format!("cannot create the output folder: {e}"),
    })?;
    let mut jobs = Vec::new();
    let units = units(table);
    for (u, unit) in units.iter().enumerate() {
        let idx = unit.first;
        let (plan, task_ctx, schema) = chunked_plan(ctx, table, unit, exprs, effect).await?;
        // A CSV file in pieces: the same plan over the whole file, in order, to say where a
        // piece's failure is in the file (only executed then).
        let whole = match unit.pieces {
            Some(_) => {
                let (p, c, _) = plan_file(ctx, table, unit.path(), exprs, effect, true).await?;
                Some((p, c))
            }
            None => None,
        };
        let partitions = plan.output_partitioning().partition_count();
        for chunk in 0..partitions {
            let name = if partitions == 1 {
                format!("part-{idx:05}.parquet")
            } else {
                format!("part-{idx:05}-{chunk:03}.parquet")
            };
            jobs.push(FileJob {
                table: table.name.clone(),
                idx: idx * MAX_CHUNKS + chunk,
                chunk,
                units: units.clone(),
                unit: u,
                output: dir.join(name),
                plan: plan.clone(),
                task_ctx: task_ctx.clone(),
                whole: whole.clone(),
                schema: schema.clone(),
                csv_schema: (table.format == crate::policy::Format::Csv)
                    .then(|| table.schema.clone()),
                props: props.clone(),
                fail,
            });
        }
    }
    Ok(jobs)
}

/// One unit's plan of the rules, one output partition per chunk: a file's row groups (a
/// lone large one cut into row ranges), a CSV file, or a group of small
/// files read one after another. The file's footer (read once, by [`units`]) decides the
/// chunks, from the file alone.
async fn chunked_plan(
    ctx: &SessionContext,
    table: &TablePolicy,
    unit: &Unit,
    exprs: &[Expr],
    effect: Option<&crate::erasure::TableEffect>,
) -> Result<(Arc<dyn ExecutionPlan>, Arc<TaskContext>, SchemaRef), Error> {
    let file = unit.path();
    if unit.files.len() > 1 {
        let (plan, task_ctx, schema) = plan_file(ctx, table, file, exprs, effect, false).await?;
        let plan = group_files(plan, &unit.files).map_err(|e| Error::Transform {
            table: table.name.clone(),
            file: file.to_path_buf(),
            message: format!(
                "cannot plan the {} files from this one on: {}",
                unit.files.len(),
                df_message(&e)
            ),
        })?;
        return Ok((plan, task_ctx, schema));
    }
    let layout = unit.layout.as_ref();
    let chunks = chunks_of(table.format, layout.map(|l| l.row_groups.as_slice()));
    let ctx = if chunks > 1 {
        chunked_session(chunks)
    } else {
        ctx.clone()
    };
    let (plan, task_ctx, schema) = plan_file(&ctx, table, file, exprs, effect, false).await?;
    let plan = match (chunks, table.format) {
        (1, Format::Parquet) => split_row_group(plan, layout.and_then(lone_row_group_split))
            .map_err(|e| Error::Transform {
                table: table.name.clone(),
                file: file.to_path_buf(),
                message: format!("cannot split the row group: {}", df_message(&e)),
            })?,
        _ => plan,
    };
    Ok((plan, task_ctx, schema))
}

/// Reads `columns` of every file of `table` on every core, each file cut into the
/// transform's chunks: `f` sees every batch of a chunk, in order, with that chunk's own
/// state (from `init`), and the states come back in file and chunk order. For scans
/// whose result does not depend on how the rows are cut (sets, counts): the erasure's
/// lookups of the export's ids and emails. A read error names the file; `fail` words it.
pub(crate) async fn scan_chunks<S: Send>(
    ctx: &SessionContext,
    table: &TablePolicy,
    columns: &[&str],
    init: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, datafusion::arrow::array::RecordBatch) -> Result<(), Error> + Sync,
    fail: impl Fn(&Path, String) -> Error + Sync,
) -> Result<Vec<S>, Error> {
    let exprs: Vec<Expr> = columns
        .iter()
        .map(|c| datafusion::prelude::ident(*c))
        .collect();
    let mut streams = Vec::new();
    let units = units(table);
    for unit in units.iter() {
        // Planning errors are worded by `fail`, not as the transform's.
        let (plan, task_ctx, _) =
            chunked_plan(ctx, table, unit, &exprs, None)
                .await
                .map_err(|e| match e {
                    Error::Transform { file, message, .. } => fail(&file, message),
                    e => e,
                })?;
        for chunk in 0..plan.output_partitioning().partition_count() {
            let stream = plan
                .execute(chunk, task_ctx.clone())
                .map_err(|e| fail(unit.path(), df_message(&e)))?;
            streams.push((unit, stream));
        }
    }
    // The chunks are read on rayon's threads, each driving its stream to the end; the
    // runtime stays entered there for DataFusion's file reads (on its blocking pool).
    let handle = tokio::runtime::Handle::current();
    let read = || {
        streams
            .into_par_iter()
            .map(|(unit, mut stream)| {
                let _runtime = handle.enter();
                let mut state = init();
                let mut rows = 0u64;
                // A damaged page can make a decoder panic rather than fail (the erasure
                // reads its columns before the transform does): the file's error too.
                let message: Result<Option<String>, Error> = futures::executor::block_on(async {
                    loop {
                        let b = match crate::error::next_contained(&mut stream).await {
                            Ok(None) => return Ok(None),
                            Ok(Some(Ok(b))) => b,
                            Ok(Some(Err(e))) => return Ok(Some(df_message(&e))),
                            Err(p) => return Ok(Some(crate::error::damaged_read(&p.panic))),
                        };
                        rows += b.num_rows() as u64;
                        f(&mut state, b)?;
                    }
                });
                let Some(message) = message? else {
                    return Ok(state);
                };
                // A group's error names the file it failed in.
                let (file, _) = futures::executor::block_on(unit.locate_failure(rows));
                Err(fail(&file, message))
            })
            .collect()
    };
    match handle.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(read),
        _ => read(),
    }
}

/// Runs `jobs`, `threads` at a time; the first error stops the others.
async fn run_jobs(
    jobs: Vec<FileJob>,
    threads: usize,
    progress: &crate::progress::Stage,
) -> Result<Vec<(String, usize, u64, Option<OutputFile>)>, Error> {
    let mut results = Vec::with_capacity(jobs.len());
    let mut set = tokio::task::JoinSet::new();
    let mut pending = jobs.into_iter();
    let mut first_error: Option<Error> = None;
    loop {
        while set.len() < threads && first_error.is_none() {
            match pending.next() {
                Some(job) => {
                    set.spawn(job.run(progress.handle()));
                }
                None => break,
            }
        }
        match set.join_next().await {
            None => break,
            Some(Ok(Ok(r))) => results.push(r),
            Some(Ok(Err(e))) => {
                // Stop the other files early: the run is failing anyway.
                set.abort_all();
                first_error.get_or_insert(e);
            }
            Some(Err(join)) if join.is_cancelled() => {}
            Some(Err(join)) => {
                set.abort_all();
                first_error.get_or_insert(Error::Failed(format!("a worker task failed: {join}")));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(results),
    }
}

/// `anonymizer bench-copy`: the I/O floor of a run. Copies the columns the policy
/// publishes (every column it does not drop) of every input table, unchanged, to
/// `out/<table>/` with the same chunking, concurrency and Parquet settings as `run`, and
/// nothing else: no rules, no aggregates, no gate, no publishing. Returns rows copied.
pub fn bench_copy(
    config: &Path,
    out: &Path,
    threads: Option<usize>,
    parquet: ParquetSettings,
) -> Result<u64, Error> {
    let threads = threads_for(config, threads);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async {
        let ctx = session();
        let policy = Policy::load(config, &ctx).await?;
        let mut jobs = Vec::new();
        for table in &policy.tables {
            let exprs: Vec<Expr> = table
                .columns
                .iter()
                .filter(|c| c.rule != crate::rules::Rule::Drop)
                .map(|c| datafusion::prelude::ident(&c.name))
                .collect();
            let props = writer_properties_with(&parquet);
            jobs.extend(table_jobs(&ctx, table, out, &exprs, None, false, &props).await?);
        }
        let results = run_jobs(jobs, threads, &crate::progress::stage("copy", None, "")).await?;
        Ok(results.iter().map(|r| r.2).sum())
    })
}

/// The output expressions of a table's rules (a dropped column has none).
fn rule_exprs(table: &TablePolicy, udfs: &Udfs, as_of: Option<NaiveDate>) -> Vec<Expr> {
    table
        .columns
        .iter()
        .filter_map(|c| c.rule.expr(&c.name, udfs, as_of))
        .collect()
}

/// One transform plan of [`transform_plans`]: a unit of a table (a file, a group of
/// small files, a large file in its chunks), one partition per output file.
pub struct TransformPlan {
    pub table: String,
    pub plan: Arc<dyn ExecutionPlan>,
    pub task_ctx: Arc<TaskContext>,
}

/// The transform's plans for the policy at `config`, as `run` makes them, without
/// erasure requests, each with a task context whose rules hold `key`: what a Ballista
/// scheduler would ship ([`crate::codec`]).
pub async fn transform_plans(
    config: &Path,
    key: &Key,
    as_of: Option<NaiveDate>,
) -> Result<Vec<TransformPlan>, Error> {
    let ctx = session();
    let policy = Policy::load(config, &ctx).await?;
    let udfs = Udfs::new(key);
    udfs.register(&ctx);
    let mut plans = Vec::new();
    for table in &policy.tables {
        let exprs = rule_exprs(table, &udfs, as_of);
        for unit in units(table).iter() {
            let (plan, task_ctx, _) = chunked_plan(&ctx, table, unit, &exprs, None).await?;
            plans.push(TransformPlan {
                table: table.name.clone(),
                plan,
                task_ctx,
            });
        }
    }
    Ok(plans)
}

/// Plans the rules over one input file: scan -> projection, one partition per chunk.
async fn plan_file(
    ctx: &SessionContext,
    table: &TablePolicy,
    file: &Path,
    exprs: &[Expr],
    erasure: Option<&crate::erasure::TableEffect>,
    in_order: bool,
) -> Result<(Arc<dyn ExecutionPlan>, Arc<TaskContext>, SchemaRef), Error> {
    let err = |message: String| Error::Transform {
        table: table.name.clone(),
        file: file.to_path_buf(),
        message,
    };
    let mut df = if in_order {
        table.open_in_order(ctx, file).await?
    } else {
        table.open(ctx, file).await?
    };
    let mut exprs = exprs.to_vec();
    if let Some(effect) = erasure {
        // Each row's erasure state, computed once: filter, then null the tokens.
        let (keep, wrapped) = crate::erasure::apply_effect(table, exprs, effect);
        exprs = wrapped;
        df = df
            .with_column("__erasure", effect.state.clone())
            .and_then(|d| d.filter(keep))
            .map_err(|e| err(format!("cannot plan the erasure: {}", df_message(&e))))?;
    }
    let df = df
        .select(exprs)
        .map_err(|e| err(format!("cannot plan the rules: {}", df_message(&e))))?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let task_ctx = Arc::new(df.task_ctx());
    let plan = df
        .create_physical_plan()
        .await
        .map_err(|e| err(format!("cannot plan the rules: {}", df_message(&e))))?;
    Ok((plan, task_ctx, schema))
}

/// One chunk of one input file: executes one partition of the file's plan into one
/// output file.
struct FileJob {
    table: String,
    /// Sort key of the output: file index x MAX_CHUNKS + chunk.
    idx: usize,
    /// Which output partition of the file's plan this job writes.
    chunk: usize,
    /// The table's units, and which of them (a file or group of files) is read.
    units: Arc<[Unit]>,
    unit: usize,
    output: PathBuf,
    plan: Arc<dyn ExecutionPlan>,
    task_ctx: Arc<TaskContext>,
    /// A CSV file read in pieces: the plan of the whole file, in order (one partition).
    whole: Option<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)>,
    schema: SchemaRef,
    /// A CSV table's schema as read (Arrow's parse errors name a column by its index).
    csv_schema: Option<SchemaRef>,
    props: WriterProperties,
    fail: bool,
}

impl FileJob {
    /// Transforms one chunk of an input file into one output file. Returns (table, index,
    /// rows read, output file record; none when the chunk holds no rows).
    async fn run(
        self,
        progress: crate::progress::Stage,
    ) -> Result<(String, usize, u64, Option<OutputFile>), Error> {
        let input = &self.units[self.unit];
        let err = |message: String| Error::Transform {
            table: self.table.clone(),
            file: input.path().to_path_buf(),
            message,
        };
        const WRITE_HINT: &str = "\n  check the free space and permissions of the output folder; \
                                  nothing was published and the previous run stays current";
        let write_err = |what: &str, e: &dyn std::fmt::Display| {
            err(format!("{what} {}: {e}{WRITE_HINT}", self.output.display()))
        };
        let mut stream = self
            .plan
            .execute(self.chunk, self.task_ctx.clone())
            .map_err(|e| err(format!("cannot start reading: {}", df_message(&e))))?;
        let file =
            std::fs::File::create(&self.output).map_err(|e| write_err("cannot create", &e))?;
        let mut writer = ArrowWriter::try_new(
            HashingWriter::new(file),
            self.schema.clone(),
            Some(self.props),
        )
        .map_err(|e| err(format!("cannot start the Parquet writer: {e}")))?;
        let mut rows = 0u64;
        loop {
            // A damaged page can make a decoder panic rather than fail: the error of the
            // file (in a group, the file the rows so far end in).
            let batch = match crate::error::next_contained(&mut stream).await {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(p) => {
                    let (file, row) = input.locate_failure(rows).await;
                    return Err(Error::Transform {
                        table: self.table.clone(),
                        file,
                        message: format!(
                            "failed after {row} rows (row {} or later): {}",
                            row + 1,
                            crate::error::damaged_read(&p.panic),
                        ),
                    });
                }
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    // A CSV file read in pieces: the error the same plan gives over the
                    // whole file, in order, and where (Arrow counts rows from the start
                    // of the piece); should that not fail, after the pieces before.
                    let (rows, e) = match &self.whole {
                        Some((whole, ctx)) => {
                            let found = match whole.execute(0, ctx.clone()) {
                                Ok(s) => crate::input::first_error_of(s).await,
                                Err(e) => Some((0, e)),
                            };
                            found.unwrap_or_else(|| {
                                let pieces = input.pieces.as_deref().unwrap_or_default();
                                let before = pieces.get(self.chunk).map_or(0, |p| p.rows_before);
                                (before + rows, e)
                            })
                        }
                        None => (rows, e),
                    };
                    // In a group of files, the file and row the failure came at.
                    let (file, row) = input.locate_failure(rows).await;
                    let message = df_message(&e);
                    let position = self
                        .csv_schema
                        .as_ref()
                        .and_then(|s| crate::error::csv_parse_position(&message, s));
                    return Err(Error::Transform {
                        table: self.table.clone(),
                        file,
                        message: match position {
                            Some(at) => {
                                format!("{at}: {message}\n  {}", crate::error::CSV_PARSE_HINT)
                            }
                            None => format!(
                                "failed after {row} rows (row {} or later): {message}\n  \
                                 is the input file complete? Re-export it, or remove it from the input folder",
                                row + 1,
                            ),
                        },
                    });
                }
            };
            rows += batch.num_rows() as u64;
            progress.inc(batch.num_rows() as u64);
            writer
                .write(&batch)
                .map_err(|e| write_err("cannot write", &e))?;
            if self.fail {
                return Err(err("injected failure while writing".into()));
            }
        }
        let mut hw = writer
            .into_inner()
            .map_err(|e| write_err("cannot finish", &e))?;
        hw.flush()
            .and_then(|_| hw.inner.get_ref().sync_all())
            .map_err(|e| write_err("cannot flush", &e))?;
        if rows == 0 && self.chunk > 0 {
            // A byte range that holds no row group: no file.
            let _ = std::fs::remove_file(&self.output);
            return Ok((self.table.clone(), self.idx, 0, None));
        }
        let rel = format!(
            "{}/{}",
            self.table,
            self.output
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
        );
        Ok((
            self.table.clone(),
            self.idx,
            rows,
            Some(OutputFile {
                path: rel,
                rows,
                bytes: hw.bytes,
                sha256: hex::encode(hw.hasher.finalize()),
            }),
        ))
    }
}

/// A writer that computes the SHA-256 and size of what passes through it.
struct HashingWriter {
    inner: std::io::BufWriter<std::fs::File>,
    hasher: Sha256,
    bytes: u64,
}

impl HashingWriter {
    fn new(file: std::fs::File) -> Self {
        HashingWriter {
            inner: std::io::BufWriter::with_capacity(1 << 20, file),
            hasher: Sha256::new(),
            bytes: 0,
        }
    }
}

impl Write for HashingWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        self.hasher.update(&data[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hash_input(table: &str, path: &Path) -> Result<InputFile, Error> {
    let err = |e: std::io::Error| Error::Transform {
        table: table.to_string(),
        file: path.to_path_buf(),
        message: format!("cannot read for the input digest: {e}"),
    };
    let mut f = std::fs::File::open(path).map_err(err)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(err)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(InputFile {
        table: table.to_string(),
        path: std::path::absolute(path).unwrap_or(path.to_path_buf()),
        bytes,
        sha256: hex::encode(h.finalize()),
    })
}

/// The date of the latest event time over every table that maps the event_time role.
/// The events view only knows that some offer_period failed to parse: find the file
/// and row, so the message says where (the value itself is never shown).
async fn bad_offer_period(policy: &Policy, e: Error) -> Error {
    let ctx = session();
    for table in &policy.tables {
        match crate::checks::locate_bad_offer_period(&ctx, table).await {
            Ok(Some((file, row))) => {
                return Error::Transform {
                    table: table.name.clone(),
                    file,
                    message: format!(
                        "row {row}, column '{}' (offer_period): {}",
                        table.role(Role::OfferPeriod).unwrap_or("offer_period"),
                        crate::analytics::period::PERIOD_HELP.trim_start_matches("offer_period ")
                    ),
                };
            }
            Ok(None) => {}
            Err(located) => return located,
        }
    }
    e
}

/// What a failed run left of the published output, for its error message.
fn current_unchanged(out_root: &Path) -> String {
    let current = out_root.join("current");
    if current.exists() {
        format!("{} still points at the last good run", current.display())
    } else {
        format!("no run has been published to {} yet", out_root.display())
    }
}

/// The latest event date over the tables that map the event_time role (from the
/// input checks), and where it came from.
fn latest_event_date(
    policy: &Policy,
    facts: &BTreeMap<String, crate::checks::Facts>,
) -> Option<(NaiveDate, String)> {
    let mut best: Option<(NaiveDate, String)> = None;
    for table in &policy.tables {
        let Some(col) = table.role(Role::EventTime) else {
            continue;
        };
        if let Some(d) = facts.get(&table.name).and_then(|f| f.latest_event) {
            let src = format!("latest {}.{}", table.name, col);
            if best.as_ref().is_none_or(|(b, _)| d > *b) {
                best = Some((d, src));
            }
        }
    }
    best
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

/// Gives the pages the allocator keeps after a stage back to the system. glibc's malloc
/// keeps what a stage freed (in every thread's arena, and above a threshold that grows
/// with each large block freed), so each later stage would start from the earlier
/// stages' high-water mark: on 20M transactions in another order than by customer, 469
/// MiB resident after the transform, of which `malloc_trim(0)` gives back 339 MiB. It
/// walks every arena and releases their free pages, in milliseconds. The debug log
/// records the resident memory before and after. A no-op on other allocators and systems.
fn release_freed_memory(after: &str) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let before = resident_mib();
        // SAFETY: malloc_trim only returns the allocator's free pages to the system; it
        // is thread-safe and touches no live allocation.
        unsafe {
            libc::malloc_trim(0);
        }
        tracing::debug!(
            after,
            before_mib = before,
            now_mib = resident_mib(),
            "allocator's free pages released"
        );
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = after;
}

/// The process's resident memory in MiB (0 if /proc cannot tell).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn resident_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib >> 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The debug log's resident memory is read from /proc and moves with what the
    /// process touches; trimming the allocator never fails or frees live memory.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn resident_memory_is_read_and_trim_keeps_live_memory() {
        let before = resident_mib();
        assert!(before > 0, "VmRSS not read from /proc/self/status");
        let block = vec![7u8; 256 << 20];
        assert!(
            resident_mib() >= before + 128,
            "256 MiB touched but not seen"
        );
        release_freed_memory("test");
        assert_eq!(
            block.iter().map(|&b| u64::from(b)).sum::<u64>(),
            7 * (256 << 20)
        );
    }

    /// Small files join the run before them up to the limit; a file too large to group
    /// stands alone and starts the next run afresh; order is kept, nothing is lost.
    #[test]
    fn small_files_are_grouped_in_order_up_to_the_limit() {
        let s = |v: &[Option<u64>]| groups(v, 10);
        assert!(s(&[]).is_empty());
        assert_eq!(s(&[Some(3)]), vec![0..1]);
        assert_eq!(s(&[Some(3), Some(3), Some(4), Some(1)]), vec![0..3, 3..4]);
        assert_eq!(
            s(&[Some(3), None, Some(3), Some(0), Some(7), Some(10)]),
            vec![0..1, 1..2, 2..5, 5..6]
        );
        assert_eq!(s(&[None, None]), vec![0..1, 1..2]);
        assert_eq!(s(&[Some(0); 3]), vec![0..3]);
    }

    #[test]
    fn a_row_of_a_group_is_located_in_its_file() {
        let unit = Unit {
            first: 4,
            files: vec![("a".into(), 3), ("b".into(), 0), ("c".into(), 2)],
            layout: None,
            csv: None,
            pieces: None,
        };
        let at = |r| {
            let (f, i) = unit.locate(r);
            (f.to_string_lossy().into_owned(), i)
        };
        assert_eq!(at(0), ("a".into(), 0));
        assert_eq!(at(2), ("a".into(), 2));
        assert_eq!(at(3), ("c".into(), 0));
        assert_eq!(at(4), ("c".into(), 1));
        // Past the end: the last file.
        assert_eq!(at(9), ("c".into(), 6));
    }
}
