//! Where a table's files are, what format and schema they have, and how to open one file
//! as a DataFrame. Only footers (Parquet) or a sample (CSV schema inference) are read
//! here: the policy is validated against these schemas before any row is processed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::dataframe::DataFrame;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use crate::policy::Format;

/// Rows per record batch in a run: DataFusion's sessions (its default is 8,192) and
/// the reads the project makes with parquet-rs itself (the gate, k-anonymity, rewrites;
/// parquet-rs's default is 1,024). Per-batch work is a few percent of a run at smaller
/// sizes (benches/e2e/HISTORY.md, run I). DataFusion keeps a file of no more rows than
/// this in one piece.
pub const BATCH_ROWS: usize = 16384;

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error(
        "table {table}: input '{spec}' matches no Parquet or CSV files (looked for {looked})\n  \
         check `input` under [tables.{table}] (relative paths start at the policy's folder)"
    )]
    NoFiles {
        table: String,
        spec: String,
        looked: String,
    },
    /// Every file of a CSV table holds its header only (found before the policy is
    /// checked against the columns, which such files type as text).
    #[error("{0}")]
    NoRows(String),
    #[error("table {table}: bad glob '{spec}': {message}")]
    Glob {
        table: String,
        spec: String,
        message: String,
    },
    #[error("table {table}: cannot list {path}: {err}")]
    List {
        table: String,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error(
        "table {table}: input mixes formats ({first} and {other}); put Parquet and CSV exports in separate tables or set `format`"
    )]
    MixedFormats {
        table: String,
        first: PathBuf,
        other: PathBuf,
    },
    #[error(
        "table {table}: cannot read {format} file {path}: {message}\n  \
         is it a complete {format} file? Re-export it, or remove it from the input folder"
    )]
    Unreadable {
        table: String,
        path: PathBuf,
        format: Format,
        message: String,
    },
    #[error(
        "table {table}: {path} has two columns named '{name}' (columns {first} and {second})\n  \
         column names must be unique: one of them would be neither classified nor read; re-export with distinct names"
    )]
    RepeatedColumn {
        table: String,
        path: PathBuf,
        name: String,
        first: usize,
        second: usize,
    },
    #[error(
        "table {table}: the header row of {path} {problem}\n  \
         {advice}"
    )]
    Header {
        table: String,
        path: PathBuf,
        problem: String,
        advice: &'static str,
    },
    #[error(
        "table {table}: {path} does not match the table's first file {first}: {difference}\n  \
         every file of a table must have the same columns and types"
    )]
    SchemaMismatch {
        table: String,
        path: PathBuf,
        first: PathBuf,
        difference: String,
    },
}

/// The glob pattern of `spec` under `base`: the policy's folder, and every leading part
/// of `spec` that exists as written (a folder named `e[1]`), are escaped; the rest is
/// the pattern. So `../e[1]/export/tx-*.parquet` never reads `../e1/export`.
fn glob_pattern(base: &Path, spec: &str) -> String {
    let spec_path = Path::new(spec);
    let (mut literal, mut pattern) = if spec_path.is_absolute() {
        (PathBuf::new(), String::new())
    } else {
        let b = glob::Pattern::escape(&base.to_string_lossy());
        (base.to_path_buf(), b)
    };
    let mut still_literal = true;
    for part in spec_path.components() {
        let text = part.as_os_str().to_string_lossy();
        let next = literal.join(part.as_os_str());
        let piece = if still_literal && (next.exists() || !text.contains(['*', '?', '['])) {
            literal = next;
            glob::Pattern::escape(&text)
        } else {
            still_literal = false;
            text.into_owned()
        };
        if !pattern.is_empty() && !pattern.ends_with(std::path::MAIN_SEPARATOR) {
            pattern.push(std::path::MAIN_SEPARATOR);
        }
        pattern.push_str(&piece);
    }
    pattern
}

/// The files named by a table's `input`: one file, every Parquet/CSV file directly in a
/// folder (names starting with `.` or `_` skipped), or a glob. Sorted, so file order
/// (and hence output file numbering) never depends on the file system.
pub fn discover(table: &str, spec: &str, base: &Path) -> Result<Vec<PathBuf>, InputError> {
    let full = base.join(spec);
    let mut files = Vec::new();
    let looked;
    // A name that exists as written is that file or folder, whatever it holds (`e[1]`);
    // only a name that does not is a pattern.
    if spec.contains(['*', '?', '[']) && !full.exists() {
        let pattern = glob_pattern(base, spec);
        looked = format!("files matching {pattern}");
        let paths = glob::glob(&pattern).map_err(|e| InputError::Glob {
            table: table.into(),
            spec: spec.into(),
            message: e.to_string(),
        })?;
        for p in paths.flatten() {
            if p.is_file() {
                files.push(p);
            }
        }
    } else if full.is_dir() {
        looked = format!("*.parquet and *.csv in {}", full.display());
        files = crate::fsutil::sorted_children(&full, |p| {
            p.is_file() && !crate::fsutil::is_hidden(p) && Format::from_path(p).is_some()
        })
        .map_err(|err| InputError::List {
            table: table.into(),
            path: full.clone(),
            err,
        })?;
    } else {
        looked = full.display().to_string();
        if full.is_file() {
            files.push(full.clone());
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(InputError::NoFiles {
            table: table.into(),
            spec: spec.into(),
            looked,
        });
    }
    Ok(files)
}

/// The format of a table's files: the policy's `format`, or their extension.
pub fn format_of(
    table: &str,
    files: &[PathBuf],
    declared: Option<Format>,
) -> Result<Format, InputError> {
    if let Some(f) = declared {
        return Ok(f);
    }
    let first = Format::from_path(&files[0]).unwrap_or(Format::Parquet);
    for f in files {
        let this = Format::from_path(f).unwrap_or(Format::Parquet);
        if this != first {
            return Err(InputError::MixedFormats {
                table: table.into(),
                first: files[0].clone(),
                other: f.clone(),
            });
        }
    }
    Ok(first)
}

fn ext_of(path: &Path) -> String {
    path.extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default()
}

/// The path as DataFusion must be given it: a `file://` URL of the resolved path. A plain
/// path string is parsed as a glob (a folder named `brack[1]` or `q?x` above the export
/// matched nothing) and its `..` segments are refused by the object store.
pub(crate) fn path_str(path: &Path) -> String {
    let abs = resolved(path);
    let url = if abs.is_dir() {
        url::Url::from_directory_path(&abs)
    } else {
        url::Url::from_file_path(&abs)
    };
    match url {
        Ok(u) => u.to_string(),
        Err(()) => abs.to_string_lossy().into_owned(),
    }
}

/// The absolute path without `.` or `..` segments (symbolic links resolved when the file
/// exists): what the object store accepts, whatever folder the run was started from.
pub(crate) fn resolved(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .or_else(|_| std::path::absolute(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// What a Parquet file's footer says about reading it in pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetLayout {
    /// The rows of each row group.
    pub row_groups: Vec<u64>,
    /// What cutting each row group into row ranges costs ([`ParquetLayout::pieces`]).
    pub costs: Vec<GroupCost>,
}

/// What reading a row group in several row ranges costs over reading it once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCost {
    /// Compressed bytes of the row group's column chunks.
    pub bytes: u64,
    /// Compressed bytes of their dictionary pages, which every range reads and decodes
    /// again: at most 1 MiB a column from parquet-rs, but DuckDB writes one dictionary of
    /// up to millions of values per column of a row group.
    pub dictionary_bytes: u64,
    /// About the compressed bytes of one data page of each column, summed (0 when not
    /// read: row groups too small to cut): a range decodes the page it starts in from
    /// the page's first row. Estimated from each column's first data page header, as the
    /// share of the column chunk its values are (DuckDB's pages of a low-cardinality
    /// column hold millions of rows).
    pub page_bytes: u64,
}

/// Row groups of at most this many rows are never cut, so their pages are not looked at.
const UNCUT_ROWS: u64 = 1 << 17;

/// Which row groups a reader may cut into ranges, so whose pages [`parquet_layout`]
/// looks at (page headers cost a read per column; a reader that cuts none only needs the
/// footer: [`parquet_row_groups`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Every row group (the gate's input lookup).
    EveryRowGroup,
    /// Only a file's lone row group (the transform and the aggregates, whose chunks are
    /// otherwise the row groups).
    LoneRowGroup,
}

impl ParquetLayout {
    /// How many row ranges to read row group `g` in, so that a large row group is read on
    /// every core: about `rows_per_piece` rows each, at most `most`, and fewer when the
    /// ranges' repeated reading would exceed half of reading the row group once (each
    /// range reads the dictionary pages again, and the page it starts in). A function of
    /// the file alone, never of the machine, so that outputs cut by it stay
    /// byte-identical everywhere. Measured on a DuckDB file of one 20M-row row group
    /// (886 MB; 45 MB of dictionaries, and pages of 3-20M rows): 64 ranges took the
    /// transform 5x as long as 2, which took half as long as 1 (BENCHMARKS.md).
    pub fn pieces(&self, g: usize, rows_per_piece: usize, most: usize) -> usize {
        let Some(&rows) = self.row_groups.get(g) else {
            return 1;
        };
        let cost = self.costs.get(g).copied().unwrap_or_default();
        let mut p = rows.div_ceil(rows_per_piece.max(1) as u64).min(most as u64);
        let again = cost.dictionary_bytes + cost.page_bytes;
        if again > 0 {
            p = p.min(1 + cost.bytes / (2 * again));
        }
        p.max(1) as usize
    }
}

/// The layout of a Parquet file, from its footer (and, for the row groups `cut` may cut
/// that are large enough, the header of each column's first data page); the error says
/// why the footer cannot be read (callers that only plan with it take `.ok()`: the error
/// comes again, located, when the rows are read).
pub fn parquet_layout(path: &Path, cut: Cut) -> Result<ParquetLayout, String> {
    read_layout(path, Some(cut))
}

fn read_layout(path: &Path, cut: Option<Cut>) -> Result<ParquetLayout, String> {
    use parquet::file::reader::FileReader;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file)
        .map_err(|e| e.to_string())?;
    let groups = reader.metadata().row_groups();
    let rows =
        |g: &parquet::file::metadata::RowGroupMetaData| u64::try_from(g.num_rows()).unwrap_or(0);
    let mut costs = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        let mut cost = GroupCost::default();
        let cuttable = match cut {
            None => false,
            Some(Cut::EveryRowGroup) => true,
            Some(Cut::LoneRowGroup) => groups.len() == 1,
        };
        let group = (cuttable && rows(g) > UNCUT_ROWS).then(|| reader.get_row_group(i));
        for (j, c) in g.columns().iter().enumerate() {
            let size = u64::try_from(c.compressed_size()).unwrap_or(0);
            cost.bytes += size;
            if let Some(d) = c.dictionary_page_offset() {
                cost.dictionary_bytes += u64::try_from(c.data_page_offset() - d)
                    .unwrap_or(0)
                    .min(size);
            }
            // A header that cannot be read counts the whole column chunk (so the row
            // group is not cut; the read reports the error).
            let page_values = match &group {
                None => continue,
                Some(Ok(rg)) => rg
                    .get_column_page_reader(j)
                    .and_then(first_data_page_values)
                    .unwrap_or(u64::MAX),
                Some(Err(_)) => u64::MAX,
            };
            let values = u64::try_from(c.num_values()).unwrap_or(0).max(1);
            cost.page_bytes += (u128::from(size) * u128::from(page_values.min(values))
                / u128::from(values)) as u64;
        }
        costs.push(cost);
    }
    Ok(ParquetLayout {
        row_groups: groups.iter().map(rows).collect(),
        costs,
    })
}

/// The values (rows, for a column that is not repeated) of a column chunk's first data
/// page, from page headers alone: nothing is decompressed.
fn first_data_page_values(
    mut pages: Box<dyn parquet::column::page::PageReader>,
) -> parquet::errors::Result<u64> {
    while let Some(m) = pages.peek_next_page()? {
        if !m.is_dict {
            return Ok(m.num_rows.or(m.num_levels).unwrap_or(0) as u64);
        }
        pages.skip_next_page()?;
    }
    Ok(0)
}

/// The rows of each row group of a Parquet file, from its footer alone.
pub fn parquet_row_groups(path: &Path) -> Result<Vec<u64>, String> {
    read_layout(path, None).map(|l| l.row_groups)
}

/// About how many rows the files hold, to size buffers: the Parquet footers' counts, or
/// for CSV the size at 32 bytes a row. An unreadable footer counts as its file's size.
pub fn estimate_rows(format: Format, files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|f| {
            let size = || std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            match format {
                Format::Parquet => parquet_row_groups(f)
                    .map(|g| g.iter().sum())
                    .unwrap_or_else(|_| size()),
                Format::Csv => size() / 32,
            }
        })
        .sum()
}

/// `read` of a group of files read as one scan; when that fails, `read` of each file
/// alone, in order, so that the error names the first file that fails by itself (as if
/// the files had been read one by one). If none fails alone, the group's error.
pub async fn first_failing_file<'a, T, Fut>(
    files: &'a [PathBuf],
    read: impl Fn(&'a [PathBuf]) -> Fut,
) -> Result<T, crate::error::Error>
where
    Fut: std::future::Future<Output = Result<T, crate::error::Error>>,
{
    match read(files).await {
        Err(e) if files.len() > 1 => {
            for f in files {
                read(std::slice::from_ref(f)).await?;
            }
            Err(e)
        }
        r => r,
    }
}

/// A Parquet file's footer, read once ahead of DataFusion: its metadata (with the page
/// index), or why it cannot be used.
enum Footer {
    Read(parquet::arrow::arrow_reader::ArrowReaderMetadata),
    /// Damage that would make a reader panic rather than fail (found by the
    /// damaged-Parquet sweep in the tests), said in words: the file is refused here.
    Damaged(String),
    /// parquet-rs's own error: left to DataFusion, whose error says it (`Corrupt footer`)
    /// where the file is opened.
    Unreadable,
}

/// Reads a Parquet file's footer and checks what its readers take on trust:
/// - the metadata length in the last 8 bytes fits the file (DataFusion's footer reader
///   subtracts it from the file's length unchecked: an overflow);
/// - decoding the metadata does not panic (an embedded Arrow schema with a type tag
///   arrow-ipc does not know is `unimplemented!`; a bit width it does not expect, a
///   `panic!`): decoded with the panic [`contained`](crate::error::contained);
/// - every column chunk, its page index and bloom filter, and every page the page index
///   locates, lie inside the data between the two magics, its pages inside its own bytes
///   (a page location before its chunk's start is an overflow in the page reader; a
///   range of 2^60 bytes, an allocation that aborts the process), with counts that are
///   not negative.
fn read_footer(path: &Path) -> Footer {
    use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Footer::Unreadable;
    };
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return Footer::Unreadable;
    };
    let mut tail = [0u8; 8];
    if f.seek(SeekFrom::End(-8)).is_err() || f.read_exact(&mut tail).is_err() {
        return Footer::Unreadable;
    }
    let metadata = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if &tail[4..] != b"PAR1" {
        return Footer::Unreadable;
    }
    // The magic at both ends (4 + 4 bytes) and the length (4) around the metadata.
    let room = len.saturating_sub(12);
    if metadata > room {
        return Footer::Damaged(format!(
            "Corrupt footer: it gives the file's metadata as {metadata} bytes, but the file \
             has room for {room} ({len} bytes in all)"
        ));
    }
    let data_end = len - 8 - metadata;
    // The footer alone first: the page index is read by the ranges it gives, which are
    // checked before anything reads them. The footer is parsed once.
    let checked = crate::error::contained(|| {
        use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataReader};
        let mut reader = ParquetMetaDataReader::new();
        reader.try_parse(&f).ok()?;
        let meta = reader.finish().ok()?;
        if let Some(problem) = layout_problem(&meta, data_end) {
            return Some(Err(problem));
        }
        let mut reader = ParquetMetaDataReader::new_with_metadata(meta)
            .with_page_index_policy(PageIndexPolicy::Optional);
        reader.read_page_indexes(&f).ok()?;
        let meta = reader.finish().ok()?;
        if let Some(problem) = layout_problem(&meta, data_end) {
            return Some(Err(problem));
        }
        // The Arrow schema (the embedded one decoded: where arrow-ipc may panic).
        ArrowReaderMetadata::try_new(Arc::new(meta), ArrowReaderOptions::new())
            .ok()
            .map(Ok)
    });
    match checked {
        Err(panic) => Footer::Damaged(crate::error::footer_panicked(&panic)),
        Ok(None) => Footer::Unreadable,
        Ok(Some(Err(problem))) => Footer::Damaged(format!("Corrupt footer: {problem}")),
        Ok(Some(Ok(meta))) => Footer::Read(meta),
    }
}

/// The first column chunk or page of `meta` that does not lie where it must (see
/// [`read_footer`]); the data between the magics ends at `data_end`.
fn layout_problem(
    meta: &parquet::file::metadata::ParquetMetaData,
    data_end: u64,
) -> Option<String> {
    let offsets = meta.offset_index();
    for (g, rg) in meta.row_groups().iter().enumerate() {
        if rg.num_rows() < 0 {
            return Some(format!("row group {g} has {} rows", rg.num_rows()));
        }
        for (c, col) in rg.columns().iter().enumerate() {
            let name = col.column_path().string();
            let at = |what: String| Some(format!("row group {g}, column {name}: {what}"));
            let data = col.data_page_offset();
            let start = col.dictionary_page_offset().unwrap_or(data);
            let size = col.compressed_size();
            let end = start.checked_add(size);
            let inside = |x: i64| x >= 4 && u64::try_from(x).is_ok_and(|x| x <= data_end);
            if size < 0 || !inside(start) || !end.is_some_and(inside) {
                return at(format!(
                    "its {size} bytes at offset {start} are not inside the file's data (4..{data_end})"
                ));
            }
            let end = start + size;
            if data < start || data >= end.max(start + 1) {
                return at(format!(
                    "its first data page (offset {data}) is not inside its bytes"
                ));
            }
            if col.num_values() < 0 {
                return at(format!("{} values", col.num_values()));
            }
            // What readers fetch by these ranges without other checks (a length of
            // 2^60 is an allocation that aborts the process).
            for (what, offset, length) in [
                (
                    "column index",
                    col.column_index_offset(),
                    col.column_index_length(),
                ),
                (
                    "offset index",
                    col.offset_index_offset(),
                    col.offset_index_length(),
                ),
                (
                    "bloom filter",
                    col.bloom_filter_offset(),
                    col.bloom_filter_length(),
                ),
            ] {
                let Some(offset) = offset else { continue };
                let length = i64::from(length.unwrap_or(0));
                if length < 0 || !inside(offset) || !offset.checked_add(length).is_some_and(inside)
                {
                    return at(format!(
                        "its {what} ({length} bytes at offset {offset}) is not inside the file's data (4..{data_end})"
                    ));
                }
            }
            let Some(pages) = offsets.and_then(|o| o.get(g)).and_then(|o| o.get(c)) else {
                continue;
            };
            let mut row = 0;
            for (i, p) in pages.page_locations().iter().enumerate() {
                let page_end = p.offset.checked_add(i64::from(p.compressed_page_size));
                if p.offset < start
                    || p.compressed_page_size < 0
                    || page_end.is_none_or(|e| e > end)
                {
                    return at(format!(
                        "page {i} ({} bytes at offset {}) is not inside the column's bytes ({start}..{end})",
                        p.compressed_page_size, p.offset
                    ));
                }
                if p.first_row_index < row
                    || (rg.num_rows() > 0 && p.first_row_index >= rg.num_rows())
                {
                    return at(format!("page {i} starts at row {}", p.first_row_index));
                }
                row = p.first_row_index;
            }
        }
    }
    None
}

/// A file's length and modification time.
type Stamp = (u64, Option<std::time::SystemTime>);

/// Files whose footer [`read_footer`] passed, with their [`Stamp`] then: each stage opens
/// every file again, and the check is made once per file.
fn footer_passed() -> &'static std::sync::Mutex<std::collections::HashMap<PathBuf, Stamp>> {
    static PASSED: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<PathBuf, Stamp>>,
    > = std::sync::OnceLock::new();
    PASSED.get_or_init(Default::default)
}

fn stamp(path: &Path) -> Option<Stamp> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), m.modified().ok()))
}

/// [`read_footer`], remembering a file that passed.
fn checked_footer(path: &Path) -> Footer {
    let before = stamp(path);
    let footer = read_footer(path);
    if let (Footer::Read(_), Some(s)) = (&footer, before)
        && stamp(path) == Some(s)
    {
        footer_passed()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf(), s);
    }
    footer
}

/// Why a Parquet file's footer is refused before DataFusion reads it ([`read_footer`]),
/// if it is; a file that passed unchanged since is not read again.
pub(crate) fn parquet_footer_problem(path: &Path) -> Option<String> {
    let passed = footer_passed()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(path)
        .copied();
    if passed.is_some() && passed == stamp(path) {
        return None;
    }
    match checked_footer(path) {
        Footer::Damaged(problem) => Some(problem),
        Footer::Read(_) | Footer::Unreadable => None,
    }
}

/// Opens one file as a DataFrame (no rows are read until it is executed).
pub async fn open(
    ctx: &SessionContext,
    table: &str,
    path: &Path,
    format: Format,
    delimiter: u8,
    schema: Option<&SchemaRef>,
) -> Result<DataFrame, InputError> {
    let ext = ext_of(path);
    let p = path_str(path);
    if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) {
        return Err(InputError::Unreadable {
            table: table.into(),
            path: path.to_path_buf(),
            format,
            message: "the file is empty (0 bytes)".into(),
        });
    }
    if format == Format::Csv && schema.is_none() {
        check_csv_header(table, path, delimiter)?;
    }
    if format == Format::Parquet
        && let Some(message) = parquet_footer_problem(path)
    {
        return Err(InputError::Unreadable {
            table: table.into(),
            path: path.to_path_buf(),
            format,
            message,
        });
    }
    let res = match format {
        Format::Parquet => {
            let o = ParquetReadOptions {
                file_extension: &ext,
                schema: schema.map(|s| s.as_ref()),
                ..Default::default()
            };
            ctx.read_parquet(p, o).await
        }
        Format::Csv => {
            let mut o = CsvReadOptions::new()
                .newlines_in_values(true)
                .has_header(true)
                .delimiter(delimiter)
                .file_extension(&ext);
            if let Some(s) = schema {
                o = o.schema(s.as_ref());
            }
            ctx.read_csv(p, o).await
        }
    };
    res.map_err(|e| InputError::Unreadable {
        table: table.into(),
        path: path.to_path_buf(),
        format,
        message: crate::error::df_message(&e),
    })
}

/// Several files of a table as one DataFrame: one scan listing all the files (DataFusion
/// reads them as one table), not a union of one scan per file, whose planning grows with
/// the number of files (an export of a thousand files took seconds to plan). `schema` is
/// the table's, as [`read_schema`] validated it (the first file's as [`open`] reads it),
/// so no footer is read again to find it; files of different extensions are read per
/// extension and unioned. Row order is not kept: for readers that aggregate.
pub async fn open_all(
    ctx: &SessionContext,
    table: &str,
    files: &[PathBuf],
    format: Format,
    delimiter: u8,
    schema: &SchemaRef,
) -> Result<DataFrame, InputError> {
    let schema = schema.as_ref().clone();
    let mut by_ext: BTreeMap<String, Vec<&PathBuf>> = BTreeMap::new();
    for f in files {
        by_ext.entry(ext_of(f)).or_default().push(f);
    }
    let mut all: Option<DataFrame> = None;
    for (ext, group) in by_ext {
        let paths: Vec<String> = group.iter().map(|f| path_str(f)).collect();
        let read = match format {
            Format::Parquet => {
                let o = ParquetReadOptions {
                    file_extension: &ext,
                    schema: Some(&schema),
                    ..Default::default()
                };
                ctx.read_parquet(paths, o).await
            }
            Format::Csv => {
                let o = CsvReadOptions::new()
                    .newlines_in_values(true)
                    .has_header(true)
                    .delimiter(delimiter)
                    .file_extension(&ext)
                    .schema(&schema);
                ctx.read_csv(paths, o).await
            }
        };
        let unreadable = |e: datafusion::error::DataFusionError| InputError::Unreadable {
            table: table.into(),
            path: group[0].clone(),
            format,
            message: crate::error::df_message(&e),
        };
        let df = read.map_err(unreadable)?;
        all = Some(match all {
            None => df,
            Some(prev) => prev.union(df).map_err(unreadable)?,
        });
    }
    all.ok_or_else(|| InputError::Unreadable {
        table: table.into(),
        path: PathBuf::new(),
        format,
        message: "the table has no files".into(),
    })
}

/// Reads the schema of a table: every file's footer (Parquet), checked to agree, or one
/// schema inferred over all files (CSV).
pub async fn read_schema(
    ctx: &SessionContext,
    table: &str,
    files: &[PathBuf],
    format: Format,
    delimiter: u8,
) -> Result<SchemaRef, InputError> {
    match format {
        Format::Parquet => {
            // The first file as DataFusion reads it: the table's schema.
            let first = open(ctx, table, &files[0], format, delimiter, None)
                .await?
                .schema()
                .inner()
                .clone();
            // The others' footers by parquet-rs on every core (an export of thousands of
            // files has thousands), compared with the first file's footer; a file whose
            // footer cannot be read or differs is read as DataFusion reads it, in file
            // order, for the exact error (or no difference that matters).
            let all = files.to_vec();
            let footers: Vec<Option<Vec<(String, DataType)>>> =
                tokio::task::spawn_blocking(move || {
                    use rayon::prelude::*;
                    all.par_iter().map(|f| footer_fields(f)).collect()
                })
                .await
                .unwrap_or_default();
            // DataFusion keeps one column of a name written twice; the other would go
            // unclassified and unread, so a repeated name stops the run.
            for (f, fields) in files.iter().zip(&footers) {
                let Some(fields) = fields else { continue };
                let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
                if let Some((i, j)) = repeated(&names) {
                    return Err(InputError::RepeatedColumn {
                        table: table.into(),
                        path: f.clone(),
                        name: names[i].to_string(),
                        first: i + 1,
                        second: j + 1,
                    });
                }
            }
            // Text columns an Arrow writer hinted as dictionaries in some files (a pandas
            // `category`) and not in others: read as plain text from every file.
            let mut plain_text: Vec<String> = Vec::new();
            for (i, f) in files.iter().enumerate().skip(1) {
                if footers.len() == files.len() && footers[0].is_some() && footers[i] == footers[0]
                {
                    continue;
                }
                let s: SchemaRef = open(ctx, table, f, format, delimiter, None)
                    .await?
                    .schema()
                    .inner()
                    .clone();
                plain_text.extend(dictionary_text_differences(&first, &s));
                if let Some(difference) = schema_difference(&first, &s) {
                    return Err(InputError::SchemaMismatch {
                        table: table.into(),
                        path: f.clone(),
                        first: files[0].clone(),
                        difference,
                    });
                }
            }
            // Every column nullable: a column one file writes as required may hold nulls
            // in another (a guest checkout's customer id), and the files of a group are
            // read with one schema.
            let fields: Vec<Field> = first
                .fields()
                .iter()
                .map(|f| {
                    let f = f.as_ref().clone().with_nullable(true);
                    if plain_text.contains(f.name()) {
                        f.with_data_type(DataType::Utf8View)
                    } else {
                        f
                    }
                })
                .collect();
            Ok(Arc::new(Schema::new_with_metadata(
                fields,
                first.metadata().clone(),
            )))
        }
        Format::Csv => {
            for f in files {
                check_csv_header(table, f, delimiter)?;
            }
            // Inferred here, file by file, by arrow's CSV reader (which reads a quoted
            // value with a line break in it as one value: DataFusion's inference cuts
            // the file at every line break), from each file's first rows.
            let mut merged: Option<(PathBuf, Schema)> = None;
            let mut any_rows = false;
            for f in files {
                let (s, rows) =
                    infer_csv_schema(f, delimiter).map_err(|message| InputError::Unreadable {
                        table: table.into(),
                        path: f.clone(),
                        format,
                        message,
                    })?;
                any_rows |= rows > 0;
                merged = Some(match merged {
                    None => (f.clone(), s),
                    Some((first, m)) => {
                        let joined = merge_csv_schemas(&m, &s).map_err(|difference| {
                            InputError::SchemaMismatch {
                                table: table.into(),
                                path: f.clone(),
                                first: first.clone(),
                                difference,
                            }
                        })?;
                        (first, joined)
                    }
                });
            }
            if !any_rows {
                return Err(InputError::NoRows(crate::checks::no_rows(table, files)));
            }
            let (_, schema) = merged.expect("a table has at least one file");
            Ok(Arc::new(schema))
        }
    }
}

/// Rows of each CSV file its column types are inferred from.
const CSV_INFER_ROWS: usize = 1000;

/// A CSV file's schema, inferred from its first [`CSV_INFER_ROWS`] rows as DataFusion
/// infers it (arrow's rules), reading quoted values whole.
fn infer_csv_schema(path: &Path, delimiter: u8) -> Result<(Schema, usize), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let (schema, rows) = datafusion::arrow::csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(delimiter)
        .infer_schema(std::io::BufReader::new(file), Some(CSV_INFER_ROWS))
        .map_err(|e| crate::error::redact_quoted(&e.to_string()))?;
    // Times are read in microseconds (nanoseconds where the file has them): arrow infers
    // whole seconds for `2025-01-05T10:00:00Z`, which Parquet has no unit for (such a
    // column was published as a bare INT64 that DuckDB reads as a number), and two files
    // with and without fractions would disagree on the type.
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Timestamp(unit, tz) if *unit != TimeUnit::Nanosecond => Field::new(
                f.name(),
                DataType::Timestamp(TimeUnit::Microsecond, tz.clone()),
                f.is_nullable(),
            ),
            _ => f.as_ref().clone(),
        })
        .collect();
    Ok((
        Schema::new_with_metadata(fields, schema.metadata().clone()),
        rows,
    ))
}

/// The schema of two CSV files read as one table: the same columns in the same order;
/// a column typed differently is read as the wider number (Int64 and Float64), as the
/// other type where one file has no value in it (Null), or else as text.
fn merge_csv_schemas(a: &Schema, b: &Schema) -> Result<Schema, String> {
    let names = |s: &Schema| {
        s.fields()
            .iter()
            .map(|f| f.name().clone())
            .collect::<Vec<_>>()
    };
    if names(a) != names(b) {
        return Err(format!(
            "its columns are {:?}, the first file's {:?}",
            names(b),
            names(a)
        ));
    }
    let fields: Vec<Field> = a
        .fields()
        .iter()
        .zip(b.fields())
        .map(|(x, y)| {
            let t = match (x.data_type(), y.data_type()) {
                (p, q) if p == q => p.clone(),
                (DataType::Null, q) => q.clone(),
                (p, DataType::Null) => p.clone(),
                (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => {
                    DataType::Float64
                }
                // Microseconds in one file, nanoseconds in another: the finer unit.
                (DataType::Timestamp(_, t1), DataType::Timestamp(_, t2)) if t1 == t2 => {
                    DataType::Timestamp(TimeUnit::Nanosecond, t1.clone())
                }
                _ => DataType::Utf8,
            };
            Field::new(x.name(), t, true)
        })
        .collect();
    Ok(Schema::new(fields))
}

/// The first two positions holding the same name, if any.
fn repeated(names: &[&str]) -> Option<(usize, usize)> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (j, n) in names.iter().enumerate() {
        if let Some(&i) = seen.get(n) {
            return Some((i, j));
        }
        seen.insert(n, j);
    }
    None
}

/// What a header field that is really a value looks like (`None`: a plausible column
/// name). A CSV file without its header row would otherwise have its first record's
/// values taken as column names, and those names appear in errors and logs.
pub fn looks_like_a_value(name: &str) -> Option<&'static str> {
    let t = name.trim();
    if t.is_empty() {
        return Some("is empty");
    }
    if t.contains('@') {
        return Some("looks like an email address");
    }
    if t.parse::<f64>().is_ok() {
        return Some("is a number");
    }
    let b = t.as_bytes();
    if b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
    {
        return Some("is a date");
    }
    if crate::rules::generalize::dotted_quad(b).is_some()
        || (t.contains(':') && crate::rules::generalize::ipv6(t).is_some())
    {
        return Some("is an IP address");
    }
    if let Some(kind) = crate::rules::scrub::detect(t).first() {
        return Some(match *kind {
            "phone" => "looks like a phone number",
            "iban" => "looks like an IBAN",
            "card" => "looks like a card number",
            _ => "looks like personal data",
        });
    }
    None
}

/// The header row of one CSV file: present (no field that is a value), and with every
/// name once. Names are not echoed when they look like values.
fn check_csv_header(table: &str, path: &Path, delimiter: u8) -> Result<(), InputError> {
    let header = |problem: String, advice: &'static str| InputError::Header {
        table: table.into(),
        path: path.to_path_buf(),
        problem,
        advice,
    };
    let Ok(file) = std::fs::File::open(path) else {
        return Ok(()); // DataFusion's read says why, with the path
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(std::io::BufReader::new(file));
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => {}
        // Empty, or not UTF-8 / not CSV: DataFusion's read reports it.
        Ok(false) | Err(_) => return Ok(()),
    }
    let names: Vec<&str> = record.iter().collect();
    for (i, n) in names.iter().enumerate() {
        if let Some(what) = looks_like_a_value(n) {
            return Err(header(
                format!(
                    "is missing or not a header: its field {} {what} (not shown: it may be a value)",
                    i + 1
                ),
                "a CSV export needs a first line naming its columns; add it (and check the table's `delimiter`)",
            ));
        }
    }
    if let Some((i, j)) = repeated(&names) {
        return Err(header(
            format!(
                "names column '{}' twice (fields {} and {})",
                names[i],
                i + 1,
                j + 1
            ),
            "column names must be unique; rename one in the export",
        ));
    }
    Ok(())
}

/// The columns (name, type) of a Parquet file's footer as Arrow reads them; `None` when
/// the footer cannot be read.
fn footer_fields(path: &Path) -> Option<Vec<(String, DataType)>> {
    // A damaged footer is `None` like one that fails: `open` then refuses the file with
    // the reason.
    let Footer::Read(meta) = checked_footer(path) else {
        return None;
    };
    Some(
        meta.schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect(),
    )
}

/// Text columns one schema has as a dictionary of strings and the other as strings.
fn dictionary_text_differences(a: &SchemaRef, b: &SchemaRef) -> Vec<String> {
    a.fields()
        .iter()
        .filter_map(|f| {
            let g = b.field_with_name(f.name()).ok()?;
            let dictionary = |t: &DataType| matches!(t, DataType::Dictionary(..));
            (f.data_type() != g.data_type()
                && crate::rules::is_string(f.data_type())
                && crate::rules::is_string(g.data_type())
                && (dictionary(f.data_type()) || dictionary(g.data_type())))
            .then(|| f.name().clone())
        })
        .collect()
}

fn schema_difference(a: &SchemaRef, b: &SchemaRef) -> Option<String> {
    let text_both =
        |x: &DataType, y: &DataType| crate::rules::is_string(x) && crate::rules::is_string(y);
    for f in a.fields() {
        match b.field_with_name(f.name()) {
            Err(_) => return Some(format!("column '{}' is missing", f.name())),
            Ok(g) if g.data_type() != f.data_type() && !text_both(g.data_type(), f.data_type()) => {
                return Some(format!(
                    "column '{}' is {} here but {} in the first file",
                    f.name(),
                    g.data_type(),
                    f.data_type()
                ));
            }
            Ok(_) => {}
        }
    }
    for g in b.fields() {
        if a.field_with_name(g.name()).is_err() {
            return Some(format!("it has an extra column '{}'", g.name()));
        }
    }
    None
}

/// One piece of a CSV file, read by a core of its own: bytes `start..end`, starting at a
/// record (the header, in the first piece) and ending right after the line break of a
/// record, as Arrow's reader parses the file from its start. `rows_before`: the file's
/// rows (after the header) before `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsvPiece {
    pub start: u64,
    pub end: u64,
    pub rows_before: u64,
}

/// Cuts a CSV file into pieces of about `piece_bytes` (no more than `max_pieces`: larger
/// pieces then), each starting at a record. The file is parsed once from its start by the
/// parser Arrow's reader uses (csv-core, with the reader's quote, delimiter and line
/// ends), so a line break inside a quoted value, or a quote inside an unquoted one
/// (`12" screen`), is never taken for the end of a record, as counting quotes would. A
/// cut is made only after a record that ends in `\n` (`\r\n` too): DataFusion reads a
/// byte range from just after the line break before its start to the line break that
/// ends it. A file no larger than `piece_bytes` is one piece. A function of the file's
/// bytes alone, so outputs stay the same on every machine.
pub fn csv_pieces(
    path: &Path,
    delimiter: u8,
    piece_bytes: u64,
    max_pieces: usize,
) -> std::io::Result<Vec<CsvPiece>> {
    use csv_core::ReadRecordResult;
    use std::io::Read;
    let len = std::fs::metadata(path)?.len();
    let mut cuts = Cuts {
        target: piece_bytes
            .max(len.div_ceil(max_pieces.max(1) as u64))
            .max(1),
        len,
        start: 0,
        rows_at_start: 0,
        pieces: Vec::new(),
    };
    if len <= cuts.target {
        return Ok(vec![CsvPiece {
            start: 0,
            end: len,
            rows_before: 0,
        }]);
    }
    let mut file = std::fs::File::open(path)?;
    let mut parser = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
    let mut buf = vec![0u8; 1 << 20];
    // The values are not needed, only where records end: the parser writes them here,
    // and a full buffer is simply handed back empty.
    let mut values = vec![0u8; 1 << 16];
    let mut ends = vec![0usize; 1 << 10];
    // Records ended so far, the header's included; the file's offset of `buf[0]`.
    let (mut records, mut at) = (0u64, 0u64);
    // The last buffer ended with a record's `\r`: a `\n` first in this one is its.
    let mut after_cr = false;
    loop {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let input = &buf[..n];
        if std::mem::take(&mut after_cr) && input.first() == Some(&b'\n') {
            cuts.consider(at + 1, records);
        }
        let mut i = 0;
        loop {
            let (result, read, _, _) = parser.read_record(&input[i..], &mut values, &mut ends);
            i += read;
            match result {
                ReadRecordResult::Record => {
                    records += 1;
                    // The byte that ended the record was read in this call (at the end
                    // of the file, none was).
                    match (i.checked_sub(1).map(|j| input[j]), input.get(i)) {
                        (Some(b'\n'), _) => cuts.consider(at + i as u64, records),
                        (Some(b'\r'), Some(b'\n')) => cuts.consider(at + i as u64 + 1, records),
                        (Some(b'\r'), None) => after_cr = true,
                        _ => {}
                    }
                }
                ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {}
                ReadRecordResult::InputEmpty | ReadRecordResult::End => break,
            }
        }
        if n == 0 {
            break;
        }
        at += n as u64;
    }
    cuts.pieces.push(CsvPiece {
        start: cuts.start,
        end: len,
        rows_before: cuts.rows_at_start,
    });
    Ok(cuts.pieces)
}

/// The pieces of [`csv_pieces`] as record ends are found.
struct Cuts {
    target: u64,
    len: u64,
    start: u64,
    rows_at_start: u64,
    pieces: Vec<CsvPiece>,
}

impl Cuts {
    /// A record (the `records`th, the header's included) ends at `end`, just after a
    /// `\n`: the piece being filled ends there once it holds `target` bytes.
    fn consider(&mut self, end: u64, records: u64) {
        if end >= self.start + self.target && end < self.len {
            self.pieces.push(CsvPiece {
                start: self.start,
                end,
                rows_before: self.rows_at_start,
            });
            self.start = end;
            self.rows_at_start = records.saturating_sub(1);
        }
    }
}

/// Where DataFusion's scans name a file (`PartitionedFile::object_meta.location`).
pub(crate) fn location(
    path: &Path,
) -> datafusion::error::Result<datafusion::object_store::path::Path> {
    datafusion::object_store::path::Path::from_absolute_path(resolved(path))
        .map_err(|e| datafusion::error::DataFusionError::External(Box::new(e)))
}

/// The pieces of the CSV files cut by [`csv_pieces`], by where scans name them.
pub(crate) type PiecesByFile = BTreeMap<datafusion::object_store::path::Path, Arc<[CsvPiece]>>;

/// A DataFrame of CSV files read with the files of `pieces` one piece per partition (a
/// scan over the pieces, in order; the other files as DataFusion plans them), so that a
/// large file is parsed on every core. Row order across partitions is whatever the plan
/// makes of it: for readers that aggregate, or that execute the partitions one by one.
pub(crate) fn in_pieces(df: DataFrame, pieces: PiecesByFile) -> DataFrame {
    use datafusion::logical_expr::LogicalPlan;
    if pieces.values().all(|p| p.len() < 2) {
        return df;
    }
    let LogicalPlan::TableScan(scan) = df.logical_plan() else {
        return df;
    };
    let Ok(inner) = datafusion::datasource::source_as_provider(&scan.source) else {
        return df;
    };
    let (state, _) = df.clone().into_parts();
    let provider = Arc::new(PiecedCsv {
        inner,
        pieces: Arc::new(pieces),
    });
    match SessionContext::new_with_state(state).read_table(provider) {
        Ok(cut) => cut,
        Err(_) => df,
    }
}

/// The first error of reading `df` to its end, in order, and the rows read before it:
/// where a read of a file in pieces failed, said of the whole file (Arrow numbers a
/// CSV row from the start of what it reads, a piece). `None` when it reads cleanly.
pub async fn first_error(df: DataFrame) -> Option<(u64, datafusion::error::DataFusionError)> {
    match df.execute_stream().await {
        Ok(s) => first_error_of(s).await,
        Err(e) => Some((0, e)),
    }
}

/// [`first_error`] of a stream.
pub async fn first_error_of(
    mut stream: datafusion::execution::SendableRecordBatchStream,
) -> Option<(u64, datafusion::error::DataFusionError)> {
    use futures::StreamExt;
    let mut rows = 0u64;
    while let Some(b) = stream.next().await {
        match b {
            Ok(b) => rows += b.num_rows() as u64,
            Err(e) => return Some((rows, e)),
        }
    }
    None
}

/// [`in_pieces`]'s table: the scan of `inner` with its files cut.
#[derive(Debug)]
struct PiecedCsv {
    inner: Arc<dyn datafusion::catalog::TableProvider>,
    pieces: Arc<PiecesByFile>,
}

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for PiecedCsv {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> datafusion::logical_expr::TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&datafusion::prelude::Expr],
    ) -> datafusion::error::Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::prelude::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let plan = self.inner.scan(state, projection, filters, limit).await?;
        cut_csv_scan(plan, &self.pieces)
    }
}

/// `plan`'s file scans with each file of `pieces` replaced by its pieces, one group
/// (partition) each, in the file's order.
fn cut_csv_scan(
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    pieces: &PiecesByFile,
) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
    use datafusion::datasource::listing::FileRange;
    use datafusion::datasource::physical_plan::FileGroup;
    let (plan, _) = regroup_file_scans(plan, |config| {
        let mut groups = Vec::new();
        let mut cut = false;
        for group in &config.file_groups {
            let mut whole = Vec::new();
            for f in group.files() {
                match pieces.get(&f.object_meta.location) {
                    Some(p) if p.len() > 1 => {
                        cut = true;
                        for piece in p.iter() {
                            let mut pf = f.clone();
                            pf.range = Some(FileRange {
                                start: piece.start as i64,
                                end: piece.end as i64,
                            });
                            groups.push(FileGroup::new(vec![pf]));
                        }
                    }
                    _ => whole.push(f.clone()),
                }
            }
            if !whole.is_empty() {
                groups.push(FileGroup::new(whole));
            }
        }
        cut.then_some(groups)
    })?;
    Ok(plan)
}

/// `plan` with the file groups (partitions) of each of its file scans replaced by what
/// `regroup` makes of the scan (`None`: the scan as it was), and whether any was: how
/// the transform reads a group of small files as one partition, a lone row group in row
/// ranges, and a large CSV file in pieces.
pub(crate) fn regroup_file_scans(
    plan: Arc<dyn datafusion::physical_plan::ExecutionPlan>,
    mut regroup: impl FnMut(
        &datafusion::datasource::physical_plan::FileScanConfig,
    ) -> Option<Vec<datafusion::datasource::physical_plan::FileGroup>>,
) -> datafusion::error::Result<(Arc<dyn datafusion::physical_plan::ExecutionPlan>, bool)> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    use datafusion::datasource::physical_plan::{FileScanConfig, FileScanConfigBuilder};
    use datafusion::datasource::source::DataSourceExec;
    let mut replaced = false;
    let plan = plan
        .transform_up(|node| {
            let Some(ds) = node.downcast_ref::<DataSourceExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(config) = ds.data_source().downcast_ref::<FileScanConfig>() else {
                return Ok(Transformed::no(node));
            };
            let Some(groups) = regroup(config) else {
                return Ok(Transformed::no(node));
            };
            replaced = true;
            let config = FileScanConfigBuilder::from(config.clone())
                .with_file_groups(groups)
                .build();
            Ok(Transformed::yes(DataSourceExec::from_data_source(config)))
        })?
        .data;
    Ok((plan, replaced))
}

#[cfg(test)]
mod tests {

    /// A footer whose metadata length the file cannot hold is refused in words before
    /// DataFusion reads it (whose footer reader overflows on it); a good file passes
    /// once and is not read again until it changes.
    #[test]
    fn a_footer_that_lies_about_its_length_is_refused() {
        use datafusion::arrow::array::{Int64Array, RecordBatch};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let batch = RecordBatch::try_from_iter([(
            "id",
            std::sync::Arc::new(Int64Array::from(vec![1, 2, 3])) as _,
        )])
        .unwrap();
        let mut w = parquet::arrow::ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            batch.schema(),
            None,
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        assert_eq!(super::parquet_footer_problem(&path), None);
        assert!(super::footer_passed().lock().unwrap().contains_key(&path));
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        for len in [n as u32 - 11, n as u32, u32::MAX] {
            bytes[n - 8..n - 4].copy_from_slice(&len.to_le_bytes());
            std::fs::write(&path, &bytes).unwrap();
            // Changed since it passed (its modification time): checked again.
            let e = super::parquet_footer_problem(&path).unwrap();
            assert_eq!(
                e,
                format!(
                    "Corrupt footer: it gives the file's metadata as {len} bytes, but the \
                     file has room for {} ({n} bytes in all)",
                    n - 12
                )
            );
        }
        // Not Parquet at all: left to DataFusion's own error.
        std::fs::write(&path, b"id\n1\n").unwrap();
        assert_eq!(super::parquet_footer_problem(&path), None);
    }

    /// Found by an audit (2026-12-03): `../e[1]/export/*.parquet` read `../e1/export`
    /// (the folder name taken as a pattern), silently publishing another export.
    #[test]
    fn a_folder_that_exists_as_written_is_never_a_pattern() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["e[1]/export", "e1/export", "pol"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(dir.path().join("e[1]/export/a.parquet"), b"x").unwrap();
        std::fs::write(dir.path().join("e1/export/b.parquet"), b"x").unwrap();
        let base = dir.path().join("pol");
        let names = |spec: &str| -> Vec<String> {
            super::discover("t", spec, &base)
                .unwrap()
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names("../e[1]/export/*.parquet"), ["a.parquet"]);
        assert_eq!(names("../e[1]/export"), ["a.parquet"]);
        assert_eq!(names("../e?/export/*.parquet"), ["b.parquet"]);
        assert_eq!(names("../e*/export/*.parquet"), ["b.parquet", "a.parquet"]);
    }

    use super::{GroupCost, ParquetLayout};
    use crate::error::Error;
    use std::path::PathBuf;

    #[test]
    fn a_failed_group_is_read_again_file_by_file_to_name_the_first_failing_one() {
        let files: Vec<PathBuf> = ["a", "b", "c", "d"].iter().map(PathBuf::from).collect();
        // Reading fails for any read that includes one of `bad`.
        let read = |bad: &'static [&'static str]| {
            move |fs: &[PathBuf]| {
                let failing = fs.iter().find(|f| bad.iter().any(|b| f.as_os_str() == *b));
                let r = match failing {
                    Some(f) => Err(Error::Failed(format!("cannot read {}", f.display()))),
                    None => Ok(fs.len()),
                };
                async move { r }
            }
        };
        let run = |bad| {
            futures::executor::block_on(super::first_failing_file(&files, read(bad)))
                .map_err(|e| e.to_string())
        };
        assert_eq!(run(&[]), Ok(4));
        assert_eq!(run(&["c", "b"]), Err("cannot read b".to_string()));
        assert_eq!(run(&["d"]), Err("cannot read d".to_string()));
        // The group fails, no file alone does: the group's error.
        let together = |fs: &[PathBuf]| {
            let r = if fs.len() > 1 {
                Err(Error::Failed("the group failed".into()))
            } else {
                Ok(1)
            };
            async move { r }
        };
        let e = futures::executor::block_on(super::first_failing_file(&files, together));
        assert_eq!(
            e.map_err(|e| e.to_string()),
            Err("the group failed".to_string())
        );
        // One file: its own error, read once.
        let one = &files[2..3];
        let e = futures::executor::block_on(super::first_failing_file(one, read(&["c"])));
        assert_eq!(
            e.map_err(|e| e.to_string()),
            Err("cannot read c".to_string())
        );
    }

    fn one_group(rows: u64, bytes: u64, dictionary_bytes: u64, page_bytes: u64) -> ParquetLayout {
        ParquetLayout {
            row_groups: vec![rows],
            costs: vec![GroupCost {
                bytes,
                dictionary_bytes,
                page_bytes,
            }],
        }
    }

    #[test]
    fn a_row_group_is_cut_into_fewer_ranges_when_its_dictionaries_and_pages_are_large() {
        // Small dictionaries and pages (parquet-rs's): cut by rows, up to `most`.
        assert_eq!(one_group(1 << 20, 40 << 20, 0, 0).pieces(0, 1 << 17, 64), 8);
        assert_eq!(
            one_group(1 << 20, 40 << 20, 1 << 10, 1 << 10).pieces(0, 1 << 17, 4),
            4
        );
        // DuckDB's one row group of 20M rows: 886 MB, 45 MB of dictionaries, 348 MB of
        // pages of 3-20M rows; two ranges, not 64.
        let duck = one_group(19_887_780, 886_376_374, 44_514_622, 347_585_100);
        assert_eq!(duck.pieces(0, 1 << 17, 64), 2);
        // Re-reading would cost more than half the row group: one range.
        assert_eq!(one_group(1 << 20, 100, 30, 30).pieces(0, 1 << 17, 64), 1);
        // Too few rows to cut, or no such row group.
        assert_eq!(one_group(1000, 100, 0, 0).pieces(0, 1 << 17, 64), 1);
        assert_eq!(one_group(1 << 20, 100, 0, 0).pieces(1, 1 << 17, 64), 1);
    }

    /// A CSV file with quoted line breaks (LF and CRLF), doubled quotes, a quote inside an
    /// unquoted value, blank lines, CRLF and LF line ends and a last record without a line
    /// break, cut into pieces: every piece starts right after a `\n`, the pieces cover the
    /// file, each piece parsed on its own (as DataFusion reads a byte range: no header
    /// after the first) gives the rows of the whole file in order, and `rows_before`
    /// counts them. Over 200 random files and several piece sizes.
    #[test]
    fn csv_pieces_start_at_records_and_give_every_row_once() {
        use rand::{Rng, SeedableRng};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let records = |bytes: &[u8], header: bool| -> Vec<Vec<String>> {
            csv::ReaderBuilder::new()
                .has_headers(header)
                .flexible(true)
                .from_reader(bytes)
                .records()
                .map(|r| r.unwrap().iter().map(str::to_string).collect())
                .collect()
        };
        let fields = [
            "plain",
            "\"quoted, with a comma\"",
            "\"two\nlines\"",
            "\"crlf\r\ninside\"",
            "\"say \"\"hi\"\"\"",
            "12\" screen",
            "",
            "\"\"",
            "\"ends with a quote \"\"\"",
        ];
        for seed in 0..200u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut text = String::from("a,b,c");
            text.push_str(if rng.random_bool(0.5) { "\r\n" } else { "\n" });
            let n = rng.random_range(1..80);
            for i in 0..n {
                let row: Vec<&str> = (0..3)
                    .map(|_| fields[rng.random_range(0..fields.len())])
                    .collect();
                text.push_str(&row.join(","));
                if i + 1 < n || rng.random_bool(0.5) {
                    text.push_str(match rng.random_range(0..6) {
                        0 => "\r\n",
                        1 => "\n\n",
                        _ => "\n",
                    });
                }
            }
            std::fs::write(&path, &text).unwrap();
            let bytes = text.as_bytes();
            let whole = records(bytes, true);
            for piece_bytes in [1, 17, 64, 300] {
                let pieces = super::csv_pieces(&path, b',', piece_bytes, 64).unwrap();
                assert_eq!(pieces[0].start, 0);
                assert_eq!(pieces.last().unwrap().end, bytes.len() as u64);
                assert!(pieces.len() <= 64);
                let mut rows = Vec::new();
                for (i, p) in pieces.iter().enumerate() {
                    if i > 0 {
                        assert_eq!(p.start, pieces[i - 1].end, "seed {seed}");
                        assert_eq!(bytes[p.start as usize - 1], b'\n', "seed {seed}");
                    }
                    assert_eq!(p.rows_before, rows.len() as u64, "seed {seed} piece {i}");
                    rows.extend(records(&bytes[p.start as usize..p.end as usize], i == 0));
                }
                assert_eq!(rows, whole, "seed {seed}, pieces of {piece_bytes} bytes");
            }
        }
    }

    /// A file no larger than a piece is one piece; the number of pieces is capped (larger
    /// pieces then); a quote left open keeps the rest of the file in the last piece.
    #[test]
    fn csv_pieces_of_small_and_unclosed_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        let text = "a,b\n1,2\n3,4\n";
        std::fs::write(&path, text).unwrap();
        let one = super::csv_pieces(&path, b',', 64, 64).unwrap();
        assert_eq!(
            one,
            vec![super::CsvPiece {
                start: 0,
                end: text.len() as u64,
                rows_before: 0
            }]
        );
        let text: String = "a,b\n".to_string() + &"1,2\n".repeat(1000);
        std::fs::write(&path, &text).unwrap();
        assert_eq!(super::csv_pieces(&path, b',', 1, 4).unwrap().len(), 4);
        let n = super::csv_pieces(&path, b',', 1, 64).unwrap().len();
        assert!((60..=64).contains(&n), "{n}");
        // Semicolons: the delimiter is the table's.
        let text = "a;b\n\"x\n;y\";2\n3;\"open\n".to_string() + &"5;6\n".repeat(50);
        std::fs::write(&path, &text).unwrap();
        let pieces = super::csv_pieces(&path, b';', 4, 64).unwrap();
        // Cuts after the header and the first two records; nothing after the open quote.
        let starts: Vec<u64> = pieces.iter().map(|p| p.start).collect();
        assert_eq!(starts, vec![0, 4, 13], "{pieces:?}");
        assert_eq!(pieces[2].rows_before, 1);
    }
}
