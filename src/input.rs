//! Where a table's files are, what format and schema they have, and how to open one file
//! as a DataFrame. Only footers (Parquet) or a sample (CSV schema inference) are read
//! here: the policy is validated against these schemas before any row is processed.

use std::path::{Path, PathBuf};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext};

use crate::policy::Format;

/// Rows per record batch in a run: DataFusion's sessions (its default is 8,192) and
/// the reads the project makes with parquet-rs itself (the gate, k-anonymity, rewrites;
/// parquet-rs's default is 1,024). Per-batch work is a few percent of a run at smaller
/// sizes (BENCHMARKS.md, run I). DataFusion keeps a file of no more rows than this in
/// one piece.
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

/// The files named by a table's `input`: one file, every Parquet/CSV file directly in a
/// folder (names starting with `.` or `_` skipped), or a glob. Sorted, so file order
/// (and hence output file numbering) never depends on the file system.
pub fn discover(table: &str, spec: &str, base: &Path) -> Result<Vec<PathBuf>, InputError> {
    let full = base.join(spec);
    let mut files = Vec::new();
    let looked;
    if spec.contains(['*', '?', '[']) {
        let pattern = full.to_string_lossy().into_owned();
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

fn path_str(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// What a Parquet file's footer says about reading it in pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParquetLayout {
    /// The rows of each row group.
    pub row_groups: Vec<u64>,
    /// Every column chunk has an offset index (the page locations parquet-rs writes by
    /// default): a row range of a row group is then read from its own pages. A writer
    /// that records none (DuckDB's, pyarrow's by default) may also write pages too large
    /// for a range to skip, and then every range decompresses the pages before it.
    pub pages_indexed: bool,
}

/// The layout of a Parquet file, from its footer; the error says why the footer cannot
/// be read (callers that only plan with it take `.ok()`: the error comes again, located,
/// when the rows are read).
pub fn parquet_layout(path: &Path) -> Result<ParquetLayout, String> {
    use parquet::file::reader::FileReader;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file)
        .map_err(|e| e.to_string())?;
    let groups = reader.metadata().row_groups();
    Ok(ParquetLayout {
        row_groups: groups
            .iter()
            .map(|g| u64::try_from(g.num_rows()).unwrap_or(0))
            .collect(),
        pages_indexed: groups
            .iter()
            .flat_map(|g| g.columns())
            .all(|c| c.offset_index_offset().is_some()),
    })
}

/// The rows of each row group of a Parquet file ([`parquet_layout`]).
pub fn parquet_row_groups(path: &Path) -> Result<Vec<u64>, String> {
    parquet_layout(path).map(|l| l.row_groups)
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
    let res = match format {
        Format::Parquet => {
            let o = ParquetReadOptions {
                file_extension: &ext,
                ..Default::default()
            };
            ctx.read_parquet(p, o).await
        }
        Format::Csv => {
            let mut o = CsvReadOptions::new()
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
            let mut first: Option<SchemaRef> = None;
            for f in files {
                let df = open(ctx, table, f, format, delimiter, None).await?;
                let s: SchemaRef = df.schema().inner().clone();
                match &first {
                    None => first = Some(s),
                    Some(f0) => {
                        if let Some(difference) = schema_difference(f0, &s) {
                            return Err(InputError::SchemaMismatch {
                                table: table.into(),
                                path: f.clone(),
                                first: files[0].clone(),
                                difference,
                            });
                        }
                    }
                }
            }
            Ok(first.expect("discover returns at least one file"))
        }
        Format::Csv => {
            let paths: Vec<String> = files.iter().map(|p| path_str(p)).collect();
            let ext = ext_of(&files[0]);
            let o = CsvReadOptions::new()
                .has_header(true)
                .delimiter(delimiter)
                .file_extension(&ext);
            let df = ctx
                .read_csv(paths, o)
                .await
                .map_err(|e| InputError::Unreadable {
                    table: table.into(),
                    path: files[0].clone(),
                    format,
                    message: crate::error::df_message(&e),
                })?;
            Ok(df.schema().inner().clone())
        }
    }
}

fn schema_difference(a: &SchemaRef, b: &SchemaRef) -> Option<String> {
    for f in a.fields() {
        match b.field_with_name(f.name()) {
            Err(_) => return Some(format!("column '{}' is missing", f.name())),
            Ok(g) if g.data_type() != f.data_type() => {
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
