//! `anonymizer query`: saved and ad-hoc SQL over the published output.
//!
//! Only the tables of the run `OUT/current` points at are registered (one per folder,
//! named after it), so the raw export can never be reached through this command. Saved
//! queries are `.sql` files in the policy's `queries` folder or `./queries/`, one analysis
//! per file, whose header comment (`--` lines at the top) defines every metric. The
//! analyses shipped in the repository's `queries/` are built into the binary, so
//! `anonymizer query growth` works anywhere; a file of the same name in a queries folder
//! takes precedence.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::error::{Error, df_message};
use crate::fsutil::{name_of, sorted_children};
use crate::publish::current_run;

/// Output format of `anonymizer query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryFormat {
    Table,
    Csv,
    Json,
    Parquet,
}

/// A saved query: its name (file stem), where it comes from, the first line of its
/// header, and its SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedQuery {
    pub name: String,
    /// The file, or `None` for a built-in query.
    pub path: Option<PathBuf>,
    pub summary: String,
    pub sql: String,
}

/// The saved analyses shipped in `queries/`, built in.
pub const BUILTIN: [(&str, &str); 5] = [
    (
        "churn_by_country",
        include_str!("../queries/churn_by_country.sql"),
    ),
    ("growth", include_str!("../queries/growth.sql")),
    ("mrr_trend", include_str!("../queries/mrr_trend.sql")),
    (
        "retention_curve",
        include_str!("../queries/retention_curve.sql"),
    ),
    (
        "revenue_by_currency",
        include_str!("../queries/revenue_by_currency.sql"),
    ),
];

/// The first non-empty line of a query's header comment.
fn summary_of(sql: &str) -> String {
    sql.lines()
        .map(str::trim)
        .find(|l| l.starts_with("--") && !l.trim_start_matches('-').trim().is_empty())
        .map(|l| l.trim_start_matches('-').trim().to_string())
        .unwrap_or_default()
}

/// The saved queries in `dirs` (earlier folders win on equal names), sorted by name.
pub fn list_saved(dirs: &[PathBuf]) -> Vec<SavedQuery> {
    let mut out: Vec<SavedQuery> = Vec::new();
    for d in dirs {
        let Ok(files) = sorted_children(d, |p| p.extension().is_some_and(|x| x == "sql")) else {
            continue;
        };
        for p in files {
            let name = p
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            if out.iter().any(|q| q.name == name) {
                continue;
            }
            let Ok(sql) = std::fs::read_to_string(&p) else {
                continue;
            };
            out.push(SavedQuery {
                name,
                path: Some(p),
                summary: summary_of(&sql),
                sql,
            });
        }
    }
    for (name, sql) in BUILTIN {
        if !out.iter().any(|q| q.name == name) {
            out.push(SavedQuery {
                name: name.to_string(),
                path: None,
                summary: summary_of(sql),
                sql: sql.to_string(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Finds a saved query by name.
pub fn find_saved(dirs: &[PathBuf], name: &str) -> Result<SavedQuery, Error> {
    let all = list_saved(dirs);
    if let Some(q) = all.iter().find(|q| q.name == name) {
        return Ok(q.clone());
    }
    // `anonymizer query "SELECT ..."`: a name has no spaces; SQL almost always does.
    if name.split_whitespace().nth(1).is_some() {
        return Err(Error::Usage(
            "the query's NAME holds words separated by spaces: SQL rather than the name of a \
             saved query. Give ad-hoc SQL with --sql: anonymizer query --sql \"SELECT ...\""
                .into(),
        ));
    }
    let s = crate::policy::suggest::did_you_mean(name, all.iter().map(|q| q.name.as_str()));
    Err(Error::Usage(format!(
        "no saved query '{name}'{} (looked in {} and the built-in ones); `anonymizer query --list` shows them",
        crate::policy::suggest::hint(&s),
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )))
}

/// A context with every table of the current published run registered.
pub async fn published_context(out: &Path) -> Result<(SessionContext, Vec<String>), Error> {
    let run = current_run(out).ok_or_else(|| {
        // Pointed at a run (`OUT/current`, `OUT/runs/<id>`) rather than OUT.
        let root = match out.file_name().and_then(|n| n.to_str()) {
            Some("current") => out.parent(),
            _ => out
                .parent()
                .filter(|p| p.file_name().is_some_and(|n| n == "runs"))
                .and_then(Path::parent),
        };
        match root {
            Some(root) if out.join("_manifest.json").is_file() => Error::Usage(format!(
                "{} is a published run, not an output folder: give OUT, the folder that holds \
                 `current` (here --out {})",
                out.display(),
                if root.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    root
                }
                .display()
            )),
            _ => Error::Usage(format!(
                "{} has no published run (no `current`); run `anonymizer run` first",
                out.display()
            )),
        }
    })?;
    // Only what a run published (and its gate passed) is queried: a `current` that names
    // some other folder (a link to the raw export) is not.
    if !run.join("_manifest.json").is_file() {
        return Err(Error::Usage(format!(
            "{} is not a run anonymizer published (it has no _manifest.json): query reads \
             only published runs; give the OUT folder of `anonymizer run`",
            run.display()
        )));
    }
    let ctx = crate::contain::context(datafusion::prelude::SessionConfig::new());
    let mut tables = Vec::new();
    let dirs = sorted_children(&run, |p| p.is_dir())
        .map_err(|e| Error::Failed(format!("cannot list {}: {e}", run.display())))?;
    for d in dirs {
        let name = name_of(&d);
        // A damaged footer can make the reader panic where DataFusion opens the file:
        // refused in words first (a run's files are its own, but disks and copies fail).
        let files = sorted_children(&d, |p| p.extension().is_some_and(|x| x == "parquet"))
            .map_err(|e| Error::Failed(format!("cannot list {}: {e}", d.display())))?;
        for f in &files {
            if let Some(problem) = crate::input::parquet_footer_problem(f) {
                return Err(Error::Usage(format!(
                    "published table {name}: {}: {problem}\n  {REPUBLISH}",
                    f.display()
                )));
            }
        }
        ctx.register_parquet(
            &name,
            &crate::input::path_str(&d),
            ParquetReadOptions::default(),
        )
        .await
        .map_err(|e| {
            Error::Usage(format!(
                "cannot register published table {name}: {}",
                df_message(&e)
            ))
        })?;
        tables.push(name);
    }
    Ok((ctx, tables))
}

/// The hint under an error about a damaged published file.
const REPUBLISH: &str = "run `anonymizer run` again to publish the tables afresh";

/// Runs `sql` over the current published run of `out`.
pub async fn run_sql(out: &Path, sql: &str) -> Result<Vec<RecordBatch>, Error> {
    let mut batches = Vec::new();
    let schema = stream_sql(out, sql, |b| {
        batches.push(b);
        Ok(())
    })
    .await?;
    // No rows: still the columns (a CSV header, a table's head, a Parquet schema).
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

/// Runs `sql` over the published tables of `out` and hands each result batch to `each`
/// as it comes (a result larger than memory streams through); returns the result's
/// schema. An error of `each` stops the query.
pub async fn stream_sql(
    out: &Path,
    sql: &str,
    mut each: impl FnMut(RecordBatch) -> Result<(), Error>,
) -> Result<datafusion::arrow::datatypes::SchemaRef, Error> {
    let (ctx, tables) = published_context(out).await?;
    // Read-only: no DDL (CREATE EXTERNAL TABLE could reach the raw export), no DML, no
    // SET statements.
    let options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let names = published_names(&ctx, &tables).await;
    let failed = |e: datafusion::error::DataFusionError, executing: bool| {
        Error::Usage(format!(
            "query failed: {}\n  published tables: {}",
            query_error_message(&e, sql, &tables, &names, executing),
            tables.join(", ")
        ))
    };
    // Planning and execution errors alike (a cast that fails on a row is found only
    // while executing).
    let df = ctx
        .sql_with_options(sql, options)
        .await
        .map_err(|e| failed(e, false))?;
    let mut stream = df.execute_stream().await.map_err(|e| failed(e, true))?;
    let schema = stream.schema();
    loop {
        // A damaged page of a published file can make a decoder panic rather than fail.
        match crate::error::next_contained(&mut stream).await {
            Ok(None) => break,
            Ok(Some(b)) => each(b.map_err(|e| failed(e, true))?)?,
            Err(p) => {
                return Err(Error::Usage(format!(
                    "query failed: {p}; a damaged file can do this\n  {REPUBLISH}"
                )));
            }
        }
    }
    Ok(schema)
}

/// The published tables' names and their columns' names.
async fn published_names(ctx: &SessionContext, tables: &[String]) -> HashSet<String> {
    let mut names: HashSet<String> = tables.iter().cloned().collect();
    for t in tables {
        if let Ok(p) = ctx.table_provider(t.as_str()).await {
            names.extend(p.schema().fields().iter().map(|f| f.name().clone()));
        }
    }
    names
}

/// A query's error without the published values it may quote (pseudonyms are personal
/// data, and errors reach logs): quoted text is shown only when the analyst typed it in
/// the SQL or it names published tables and columns (`customers."COUNTRY"`), and numbers
/// in an execution error only when the SQL spells them. A regex pattern in an error is
/// always blanked (it may be built from a column). An unknown table gets "did you
/// mean", and DataFusion's advice to change a setting `query` does not allow is left out.
pub fn query_error_message(
    e: &datafusion::error::DataFusionError,
    sql: &str,
    tables: &[String],
    names: &HashSet<String>,
    executing: bool,
) -> String {
    // A name, or a path of them (`customers."COUNTRY"`, `datafusion.public.custommers`:
    // the catalog's and schema's names, and a table name the analyst typed).
    let is_name_path = |q: &str| {
        q.split('.').all(|part| {
            let p = part.trim_matches('"');
            !p.is_empty()
                && (names.contains(p) || p == "datafusion" || p == "public" || sql.contains(p))
        })
    };
    // Never a path, though typed: it names the machine's folders, not the output.
    let keep = |q: &str| !q.contains(['/', '\\']) && (sql.contains(q) || is_name_path(q));
    let mut m = crate::error::df_message_keeping(e, &keep).replace(
        " or disable the datafusion.sql_parser.enable_ident_normalization configuration",
        "",
    );
    if executing {
        let typed: HashSet<&str> = sql
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .map(|n| n.trim_matches('.'))
            .filter(|n| !n.is_empty())
            .collect();
        m = crate::error::redact_numbers_keeping(&m, &|n| typed.contains(n));
    }
    if let Some(at) = m.find("table '")
        && let Some(len) = m[at + 7..].find("' not found")
    {
        let path = &m[at + 7..at + 7 + len];
        let typed = path.rsplit('.').next().unwrap_or(path).trim_matches('"');
        let hint = crate::policy::suggest::hint(&crate::policy::suggest::did_you_mean(
            typed,
            tables.iter().map(String::as_str),
        ));
        m.insert_str(at + 7 + len + "' not found".len(), &hint);
    }
    m
}

/// Writes a result in `format` batch by batch, so that only one batch (and the writer's
/// buffers) is held, whatever the result's size; `table` holds at most `max_rows` rows
/// (it needs them all to size its columns) and counts the rest.
pub struct Renderer<W: std::io::Write + Send> {
    state: RenderState<W>,
    wrote: bool,
    /// Rows of the result so far (the row a render error names; a table's count).
    rows: usize,
}

enum RenderState<W: std::io::Write + Send> {
    Table {
        w: W,
        held: Vec<RecordBatch>,
        held_rows: usize,
        max_rows: Option<usize>,
    },
    Csv(datafusion::arrow::csv::Writer<W>),
    Json(datafusion::arrow::json::Writer<W, datafusion::arrow::json::writer::JsonArray>),
    Parquet(parquet::arrow::ArrowWriter<W>),
}

fn render_error(e: &dyn std::fmt::Display) -> Error {
    Error::Usage(format!("cannot render the result: {e}"))
}

/// Whether a column of this type has dates or times in it (at any depth).
fn holds_time(t: &datafusion::arrow::datatypes::DataType) -> bool {
    use datafusion::arrow::datatypes::DataType as T;
    match t {
        T::Dictionary(_, v) => holds_time(v),
        T::List(f)
        | T::LargeList(f)
        | T::FixedSizeList(f, _)
        | T::ListView(f)
        | T::LargeListView(f)
        | T::Map(f, _) => holds_time(f.data_type()),
        T::Struct(fs) => fs.iter().any(|f| holds_time(f.data_type())),
        T::Union(fs, _) => fs.iter().any(|(_, f)| holds_time(f.data_type())),
        T::RunEndEncoded(_, v) => holds_time(v.data_type()),
        t => t.is_temporal(),
    }
}

/// Checks that every date and time in `b` can be written as text. Arrow writes a value
/// no calendar can show (`to_timestamp_seconds(9223372036854775807)`: past year 262,143)
/// as the cell `ERROR: Cast error: ...` in a table and in JSON, and the query would exit
/// 0 with it; this stops first, naming the column and the result's row (`first_row` + 1
/// for the batch's first), not the value.
fn check_showable(b: &RecordBatch, first_row: usize) -> Result<(), Error> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let strict = FormatOptions::new().with_display_error(false);
    let mut text = String::new();
    for (column, field) in b.columns().iter().zip(b.schema().fields()) {
        if !holds_time(field.data_type()) {
            continue;
        }
        let f = ArrayFormatter::try_new(column.as_ref(), &strict).map_err(|e| render_error(&e))?;
        for row in 0..b.num_rows() {
            text.clear();
            if column.is_valid(row) && f.value(row).write(&mut text).is_err() {
                return Err(render_error(&format!(
                    "column `{}`, row {} of the result holds a date or time that no calendar can \
                     show (outside years -262143..262142); cast it to BIGINT to see its number, \
                     or use --format parquet",
                    field.name(),
                    first_row + row + 1
                )));
            }
        }
    }
    Ok(())
}

impl<W: std::io::Write + Send> Renderer<W> {
    /// `max_rows`: the table format's limit (`None`: every row).
    pub fn new(
        w: W,
        format: QueryFormat,
        schema: &datafusion::arrow::datatypes::SchemaRef,
        max_rows: Option<usize>,
    ) -> Result<Self, Error> {
        let state = match format {
            QueryFormat::Table => RenderState::Table {
                w,
                held: vec![],
                held_rows: 0,
                max_rows,
            },
            QueryFormat::Csv => RenderState::Csv(datafusion::arrow::csv::Writer::new(w)),
            // Nulls written out (`"churn_pct":null`): a withheld cell is a key with null,
            // not a missing key.
            QueryFormat::Json => RenderState::Json(
                datafusion::arrow::json::WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, datafusion::arrow::json::writer::JsonArray>(w),
            ),
            QueryFormat::Parquet => RenderState::Parquet(
                parquet::arrow::ArrowWriter::try_new(
                    w,
                    schema.clone(),
                    Some(crate::run::writer_properties()),
                )
                .map_err(|e| render_error(&e))?,
            ),
        };
        Ok(Renderer {
            state,
            wrote: false,
            rows: 0,
        })
    }

    pub fn write(&mut self, b: &RecordBatch) -> Result<(), Error> {
        self.wrote = true;
        let first_row = self.rows;
        self.rows += b.num_rows();
        match &mut self.state {
            RenderState::Table {
                held,
                held_rows,
                max_rows,
                ..
            } => {
                let room = max_rows.map_or(b.num_rows(), |m| m.saturating_sub(*held_rows));
                let take = room.min(b.num_rows());
                if take > 0 || held.is_empty() {
                    let shown = b.slice(0, take);
                    check_showable(&shown, first_row)?;
                    held.push(shown);
                    *held_rows += take;
                }
                Ok(())
            }
            RenderState::Csv(w) => {
                check_showable(b, first_row)?;
                w.write(b).map_err(|e| render_error(&e))
            }
            RenderState::Json(w) => {
                check_showable(b, first_row)?;
                w.write(b).map_err(|e| render_error(&e))
            }
            RenderState::Parquet(w) => w.write(b).map_err(|e| render_error(&e)),
        }
    }

    /// Ends the output (a result without rows still has its columns: a CSV header, a
    /// table's head) and returns the writer.
    pub fn finish(mut self, schema: &datafusion::arrow::datatypes::SchemaRef) -> Result<W, Error> {
        if !self.wrote {
            self.write(&RecordBatch::new_empty(schema.clone()))?;
        }
        let io = |e: std::io::Error| render_error(&e);
        let rows = self.rows;
        match self.state {
            RenderState::Table {
                mut w,
                held,
                held_rows,
                max_rows,
            } => {
                let t = datafusion::arrow::util::pretty::pretty_format_batches(&held)
                    .map_err(|e| render_error(&e))?;
                writeln!(w, "{t}").map_err(io)?;
                if rows > held_rows {
                    writeln!(
                        w,
                        "({rows} rows, the first {} shown: --max-rows 0 shows them all; --format csv, json or parquet streams them)",
                        max_rows.unwrap_or(rows)
                    )
                    .map_err(io)?;
                }
                Ok(w)
            }
            RenderState::Csv(w) => Ok(w.into_inner()),
            RenderState::Json(mut w) => {
                w.finish().map_err(|e| render_error(&e))?;
                let mut w = w.into_inner();
                w.write_all(b"\n").map_err(io)?;
                Ok(w)
            }
            RenderState::Parquet(w) => w.into_inner().map_err(|e| render_error(&e)),
        }
    }
}

/// Renders batches in `format` (Parquet is binary), every row.
pub fn render(batches: &[RecordBatch], format: QueryFormat) -> Result<Vec<u8>, Error> {
    let Some(first) = batches.first() else {
        return Err(Error::Usage(
            "the query returned no batches to render".into(),
        ));
    };
    let schema = first.schema();
    let mut r = Renderer::new(Vec::new(), format, &schema, None)?;
    for b in batches {
        r.write(b)?;
    }
    r.finish(&schema)
}

/// What `anonymizer query` was asked to do.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// A saved query's name, or `None` with `sql` or `list`.
    pub name: Option<String>,
    pub sql: Option<String>,
    pub list: bool,
    pub format: QueryFormat,
    pub output: Option<PathBuf>,
    pub config: Option<PathBuf>,
    pub out: Option<PathBuf>,
    /// The table format's row limit (`None`: every row); other formats stream every row.
    pub max_rows: Option<usize>,
}

/// The table format's default row limit: a table is for reading, and holds what it shows
/// in memory; csv, json and parquet stream any number of rows.
pub const DEFAULT_MAX_ROWS: usize = 1000;

/// Where saved queries are looked up: the policy's `queries` folder, then `./queries`.
pub fn query_dirs(config: Option<&Path>) -> Result<Vec<PathBuf>, Error> {
    let mut dirs = Vec::new();
    if let Some(c) = config {
        let raw = crate::policy::raw::RawPolicy::from_file(c)?;
        if let Some(q) = raw.queries {
            dirs.push(q);
        }
    }
    dirs.push(PathBuf::from("queries"));
    Ok(dirs)
}

/// Runs `sql` and writes its result to `w` in `opts.format`, batch by batch as the query
/// produces it; returns the writer.
fn stream_into<W: std::io::Write + Send>(
    rt: &tokio::runtime::Runtime,
    out: &Path,
    sql: &str,
    opts: &QueryOptions,
    w: W,
) -> Result<W, Error> {
    let mut renderer: Option<Renderer<W>> = None;
    let mut w = Some(w);
    let schema = rt.block_on(stream_sql(out, sql, |b| {
        let r = match &mut renderer {
            Some(r) => r,
            None => renderer.insert(Renderer::new(
                w.take().expect("the writer, taken once"),
                opts.format,
                &b.schema(),
                opts.max_rows,
            )?),
        };
        r.write(&b)
    }))?;
    let renderer = match renderer {
        Some(r) => r,
        // No batch at all: the columns still.
        None => Renderer::new(
            w.take().expect("the writer, unused"),
            opts.format,
            &schema,
            opts.max_rows,
        )?,
    };
    renderer.finish(&schema)
}

/// Runs the query command; returns what it printed on stdout (nothing when `output` was
/// written).
pub fn execute(opts: &QueryOptions) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    execute_to(opts, &mut buf)?;
    Ok(buf)
}

/// Runs the query command, writing the result to `stdout` (or `output`) as it comes.
pub fn execute_to<W: std::io::Write + Send>(
    opts: &QueryOptions,
    mut stdout: W,
) -> Result<(), Error> {
    let dirs = query_dirs(opts.config.as_deref())?;
    if opts.list {
        if opts.name.is_some() || opts.sql.is_some() {
            return Err(Error::Usage(
                "--list lists the saved queries; run one (a name or --sql) without --list".into(),
            ));
        }
        if opts.output.as_ref().is_some_and(|p| p.as_os_str() != "-") {
            return Err(Error::Usage(
                "--list prints to standard output; leave out --output".into(),
            ));
        }
        let saved = list_saved(&dirs);
        let from = |q: &SavedQuery| match &q.path {
            Some(p) => p.display().to_string(),
            None => "built-in".to_string(),
        };
        let bytes = match opts.format {
            QueryFormat::Table => {
                let mut s = String::new();
                for q in &saved {
                    s.push_str(&format!("{:<24} {}  [{}]\n", q.name, q.summary, from(q)));
                }
                s.into_bytes()
            }
            // For scripts: one record per query, with its name, summary and source.
            QueryFormat::Csv | QueryFormat::Json => {
                use datafusion::arrow::array::{ArrayRef, StringArray};
                use std::sync::Arc;
                let column = |f: &dyn Fn(&SavedQuery) -> String| {
                    Arc::new(StringArray::from_iter_values(saved.iter().map(f))) as ArrayRef
                };
                let batch = RecordBatch::try_from_iter([
                    ("name", column(&|q| q.name.clone())),
                    ("summary", column(&|q| q.summary.clone())),
                    ("source", column(&from)),
                ])
                .map_err(|e| Error::Failed(format!("cannot list the saved queries: {e}")))?;
                render(&[batch], opts.format)?
            }
            QueryFormat::Parquet => {
                return Err(Error::Usage(
                    "--list prints a table, csv or json; not parquet".into(),
                ));
            }
        };
        return stdout
            .write_all(&bytes)
            .map_err(|e| Error::Failed(format!("cannot write the list: {e}")));
    }
    let sql = match (&opts.name, &opts.sql) {
        (Some(_), Some(_)) => {
            return Err(Error::Usage(
                "give a saved query name or --sql, not both".into(),
            ));
        }
        (Some(n), None) => find_saved(&dirs, n)?.sql,
        (None, Some(s)) => s.clone(),
        (None, None) => {
            return Err(Error::Usage(
                "name a saved query, or pass --sql \"...\" or --list".into(),
            ));
        }
    };
    let out = match (&opts.out, &opts.config) {
        (Some(o), _) => o.clone(),
        (None, Some(c)) => crate::policy::raw::RawPolicy::from_file(c)?.output,
        (None, None) => {
            return Err(Error::Usage(
                "where is the output? pass --config POLICY or --out DIR".into(),
            ));
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Failed(format!("cannot start the runtime: {e}")))?;
    // `--output -` is standard output, as for most tools.
    let output = opts.output.as_ref().filter(|p| p.as_os_str() != "-");
    let to_stdout = opts.output.is_some() && output.is_none();
    match output {
        Some(path) => {
            // A file written among the published tables would be read as part of them,
            // never checked by the privacy gate.
            let absolute = |p: &Path| {
                std::fs::canonicalize(p)
                    .or_else(|_| std::path::absolute(p))
                    .unwrap_or_else(|_| p.to_path_buf())
            };
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let parent_abs = absolute(parent);
            // This output folder, or any published run or output folder (another
            // policy's, or the one --config names when --out points elsewhere).
            let published = parent_abs.ancestors().find(|a| {
                a.join("_manifest.json").is_file()
                    || (a.join("current").is_symlink() && a.join("runs").is_dir())
            });
            if parent_abs.starts_with(absolute(&out)) || published.is_some() {
                return Err(Error::Usage(format!(
                    "--output {} is inside the output folder {}: a file there would be read as published data \
                     that no privacy check has seen; write it elsewhere",
                    path.display(),
                    published
                        .map_or_else(|| out.clone(), Path::to_path_buf)
                        .display()
                )));
            }
            // Written beside, then renamed over the name: a symbolic or hard link there
            // is replaced, never written through (it could point at a published file).
            let cannot = |e: &dyn std::fmt::Display| {
                Error::Failed(format!("cannot write {}: {e}", path.display()))
            };
            let tmp = tempfile::Builder::new()
                .prefix(".anonymizer-query-")
                .tempfile_in(parent)
                .map_err(|e| cannot(&e))?;
            let mut file = std::io::BufWriter::new(tmp.as_file());
            stream_into(&rt, &out, &sql, opts, &mut file)?;
            std::io::Write::flush(&mut file).map_err(|e| cannot(&e))?;
            drop(file);
            tmp.persist(path).map_err(|e| cannot(&e.error))?;
            Ok(())
        }
        None if opts.format == QueryFormat::Parquet && !to_stdout => Err(Error::Usage(
            "--format parquet needs --output FILE (or --output - for standard output)".into(),
        )),
        None => stream_into(&rt, &out, &sql, opts, &mut stdout)?
            .flush()
            .map_err(|e| Error::Failed(format!("cannot write the result: {e}"))),
    }
}
