//! The crate's top-level error and the process exit codes it maps to.
//!
//! Exit codes are a contract with schedulers: 0 the run succeeded (or the command did
//! its job), 1 a privacy check failed and nothing was published, 2 any other error
//! (bad policy, bad input, missing key, I/O, lock held): nothing was published and the
//! previous `OUT/current` is untouched. A panic (a bug) exits with Rust's 101, through a
//! hook in `main` that blanks quoted values in its message.
//!
//! No message carries a personal value or key material: errors name the file, table,
//! column and row; messages that come from DataFusion or Arrow are passed through
//! [`df_message`], which blanks out quoted values.

use std::path::PathBuf;

use crate::generate::GenerateError;
use crate::key::KeyError;
use crate::policy::PolicyError;
use crate::publish::PublishError;

/// Process exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ExitCode {
    Ok = 0,
    PrivacyCheckFailed = 1,
    Error = 2,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error("table {table}, file {file}: {message}")]
    Transform {
        table: String,
        file: PathBuf,
        message: String,
    },
    /// A privacy check failed: nothing was published (exit code 1). The message is the
    /// report's summary: what failed and where, never a value.
    #[error("{0}")]
    PrivacyCheckFailed(String),
    /// The suppression ledger cannot be read or written (fail closed).
    #[error(transparent)]
    Ledger(#[from] crate::erasure::ledger::LedgerError),
    /// The erasure requests could not be processed.
    #[error("erasure: {0}")]
    Erasure(String),
    /// An aggregate table could not be computed.
    #[error("aggregate table {table}: {message}")]
    Analytics { table: String, message: String },
    /// A bad invocation or request (wrong flags, unknown saved query, bad SQL).
    #[error("{0}")]
    Usage(String),
    /// Something failed while working (I/O outside the output folder, a worker task,
    /// an injected test failure).
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::PrivacyCheckFailed(_) => ExitCode::PrivacyCheckFailed,
            _ => ExitCode::Error,
        }
    }
}

/// A DataFusion/Arrow error as a one-line message without the values it may quote
/// (a CSV parse error, for example, quotes the cell that failed to parse).
pub fn df_message(e: &datafusion::error::DataFusionError) -> String {
    df_message_keeping(e, &|_| false)
}

/// [`df_message`], showing the quoted text for which `keep` is true (`anonymizer query`:
/// what the analyst typed, and the published tables' and columns' names).
pub fn df_message_keeping(
    e: &datafusion::error::DataFusionError,
    keep: &dyn Fn(&str) -> bool,
) -> String {
    use datafusion::sql::sqlparser::parser::ParserError;
    // A read that panicked: the file and the panic's message, both already safe.
    if let Some(p) = read_panicked(e) {
        return p.to_string();
    }
    // A parser error quotes its whole message ("ParserError(\"Expected ...\")"), which
    // redaction would blank entirely: show the message itself, its literals blanked.
    if let datafusion::error::DataFusionError::SQL(p, _) = e.find_root()
        && let ParserError::ParserError(m) | ParserError::TokenizerError(m) = p.as_ref()
    {
        return format!("SQL error: {}", redact_quoted_keeping(m, keep));
    }
    let root = blank_regex_patterns(&e.find_root().to_string());
    // A function name (and the suggestion of a built-in one) is an identifier of the SQL,
    // not a value: shown, or the message says nothing.
    if root.contains("Invalid function '") {
        let one_line: Vec<&str> = root.lines().map(str::trim).collect();
        return redact_unquoted_values(&one_line.join(" "));
    }
    // DataFusion wraps Parquet errors in a second "Parquet error: " prefix. The values
    // Arrow prints unquoted go first: the string of `Cannot cast string '…' to` may hold
    // quotes and spaces, which the quoted text's rules would cut short.
    redact_quoted_keeping(
        &redact_unquoted_values_keeping(
            &explain_parquet(&root.replace("Parquet error: Parquet error: ", "Parquet error: ")),
            keep,
        ),
        keep,
    )
}

/// Says what a Parquet reader's terse error means where it is not plain: a page whose
/// CRC-32 (written by parquet-mr, Spark, Hive, pyarrow) does not match its bytes was
/// damaged after it was written, and would otherwise have been read as other values.
pub fn explain_parquet(message: &str) -> String {
    message.replace(
        "Page CRC checksum mismatch",
        "a page's CRC-32 checksum does not match its bytes: the file was damaged after it \
         was written (in a copy, on disk or in transit)",
    )
}

/// Blanks the pattern the regex crate prints in its compile errors (`regex parse error:`,
/// the pattern, a caret line, then `error: ...`): in SQL the pattern may be built from a
/// column (`regexp_like(x, customer_id || '(')`).
fn blank_regex_patterns(s: &str) -> String {
    const MARK: &str = "regex parse error:";
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(MARK) {
        let body = at + MARK.len();
        out.push_str(&rest[..body]);
        out.push_str(" … ");
        rest = match rest[body..].find("error:") {
            Some(end) => &rest[body + end..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Blanks every number in `s` that `keep` does not allow (for a query's execution
/// errors: a number the analyst did not type may come from a row, e.g. `value of 1499
/// is out of range Int8` from `CAST(amount * 100 AS TINYINT)`). A number is a run of
/// digits (with a sign or a decimal point) that is not part of a word (`Int8`,
/// `Decimal128`), and the precision and scale or unit inside a type's parentheses
/// (`Decimal128(38, 10)`, `Timestamp(Nanosecond, None)`) are kept.
pub fn redact_numbers_keeping(s: &str, keep: &dyn Fn(&str) -> bool) -> String {
    const TYPES: [&str; 9] = [
        "Decimal32(",
        "Decimal64(",
        "Decimal128(",
        "Decimal256(",
        "FixedSizeBinary(",
        "FixedSizeList(",
        "Timestamp(",
        "Time32(",
        "Time64(",
    ];
    let b = s.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if (i == 0 || !word(b[i - 1])) && TYPES.iter().any(|t| s[i..].starts_with(t)) {
            let end = s[i..].find(')').map_or(s.len(), |n| i + n + 1);
            out.push_str(&s[i..end]);
            i = end;
            continue;
        }
        let starts_number =
            b[i].is_ascii_digit() || (b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit));
        if starts_number && (i == 0 || !word(b[i - 1])) {
            let mut end = i + 1;
            while end < b.len()
                && (b[end].is_ascii_digit()
                    || (b[end] == b'.' && b.get(end + 1).is_some_and(u8::is_ascii_digit)))
            {
                end += 1;
            }
            if end < b.len() && word(b[end]) {
                // Part of a word (`1st`, a hex token's digits): the word is copied.
                while end < b.len() && word(b[end]) {
                    end += 1;
                }
                out.push_str(&s[i..end]);
            } else if keep(&s[i..end]) || keep(s[i..end].trim_start_matches('-')) {
                out.push_str(&s[i..end]);
            } else {
                out.push('…');
            }
            i = end;
            continue;
        }
        let c = s[i..].chars().next().expect("in bounds");
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// Blanks every run of 32 or more hex digits: the key (64 of them) where an operator put
/// it by mistake (as `key_file`'s value, a line pasted into the policy, which TOML's
/// errors quote), and tokens. The last filter on every error the binary prints.
pub fn blank_hex_runs(s: &str) -> String {
    const LONGEST_SHOWN: usize = 31;
    let mut out = String::with_capacity(s.len());
    let mut run_start: Option<usize> = None;
    let flush = |out: &mut String, run: &str| {
        if run.len() > LONGEST_SHOWN {
            out.push('…');
        } else {
            out.push_str(run);
        }
    };
    for (i, c) in s.char_indices() {
        if c.is_ascii_hexdigit() {
            run_start.get_or_insert(i);
        } else {
            if let Some(st) = run_start.take() {
                flush(&mut out, &s[st..i]);
            }
            out.push(c);
        }
    }
    if let Some(st) = run_start {
        flush(&mut out, &s[st..]);
    }
    out
}

/// Where in a CSV file Arrow's reader failed to parse a value, from its message
/// ("Error parsing column 1 at line 5", "... for column 7 at line 2501": the column's
/// index from 0 in the file, and the row's number from 1 after the header), said the
/// way the file is read: the row, the line counting the header, the column by name and
/// the type it was read as. `None` for any other message.
pub fn csv_parse_position(
    message: &str,
    schema: &datafusion::arrow::datatypes::Schema,
) -> Option<String> {
    const MARK: &str = "column ";
    let number = |s: &str| -> Option<(u64, usize)> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        Some((s[..end].parse().ok()?, end))
    };
    let (column, row) = message.match_indices(MARK).find_map(|(at, _)| {
        let rest = &message[at + MARK.len()..];
        let (column, end) = number(rest)?;
        let (row, _) = number(rest[end..].strip_prefix(" at line ")?)?;
        Some((column, row))
    })?;
    let field = schema.fields().get(usize::try_from(column).ok()?)?;
    Some(format!(
        "row {row} (line {} counting the header, unless a quoted value spans lines), column '{}': \
         a value that is not a valid {}",
        row + 1,
        field.name(),
        field.data_type()
    ))
}

/// The hint under a CSV value that does not parse.
pub const CSV_PARSE_HINT: &str = "correct the value in the export; a column read as text by its rule \
     (pseudonymize, mask, scrub, drop) takes any value";

/// Blanks the values Arrow's cast and arithmetic errors quote without quotes
/// (`Can't cast value 7.7e36 to type Int64`, `Overflowing on NaN`, `Overflow happened
/// on: 9 * 8`, `12345 is too large to store in a Decimal128`): an amount or an id
/// can be personal data.
pub fn redact_unquoted_values(s: &str) -> String {
    redact_unquoted_values_keeping(s, &|_| false)
}

/// [`redact_unquoted_values`], showing the string of `Cannot cast string '…' to value of`
/// (Arrow quotes it) when `keep` allows the whole of it: `CAST('abc' AS INT)` names the
/// `'abc'` the analyst typed.
pub fn redact_unquoted_values_keeping(s: &str, keep: &dyn Fn(&str) -> bool) -> String {
    // Arrow quotes the string it cannot cast, and the string runs to Arrow's own words
    // after it (`' to value of Int32 type`, `' to decimal ...`), whatever quotes it holds:
    // to the last such words of the message, so that a value holding them is taken whole
    // (and, unless kept whole, blanked). Unquoted, the value runs to the next space.
    const CAST_STRING: &str = "Cannot cast string ";
    const CAST_STRING_END: &str = "' to ";
    let mut cast = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(CAST_STRING) {
        let after = &rest[at + CAST_STRING.len()..];
        cast.push_str(&rest[..at + CAST_STRING.len()]);
        if let Some(v) = after.strip_prefix('\'')
            && let Some(n) = v.rfind(CAST_STRING_END)
        {
            if keep(&v[..n]) {
                cast.push_str(after);
            } else {
                cast.push_str("… to ");
                cast.push_str(&v[n + CAST_STRING_END.len()..]);
            }
            rest = "";
            break;
        }
        cast.push('…');
        rest = &after[after.find(char::is_whitespace).unwrap_or(after.len())..];
    }
    cast.push_str(rest);
    let s = cast.as_str();
    // (marker, whether the value runs to the end of the message)
    const AFTER: [(&str, bool); 4] = [
        ("Can't cast value ", false),
        ("Cannot cast value ", false),
        ("Overflowing on ", false),
        ("Overflow happened on: ", true),
    ];
    let mut out = s.to_string();
    for (marker, to_end) in AFTER {
        let mut from = 0;
        while let Some(at) = out[from..].find(marker) {
            let start = from + at + marker.len();
            let end = if to_end {
                out.len()
            } else {
                out[start..]
                    .find(char::is_whitespace)
                    .map_or(out.len(), |n| start + n)
            };
            out.replace_range(start..end, "…");
            from = start + '…'.len_utf8();
        }
    }
    const BEFORE: &str = " is too large to store in a ";
    let mut from = 0;
    while let Some(at) = out[from..].find(BEFORE) {
        let end = from + at;
        let start = out[..end].rfind(char::is_whitespace).map_or(0, |n| n + 1);
        out.replace_range(start..end, "…");
        from = start + '…'.len_utf8() + BEFORE.len();
    }
    out
}

thread_local! {
    static CONTAINED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the current thread is inside [`contained`]: the binary's panic hook then
/// stays silent for a panic in a reader crate ([`reader_crate_path`]: the panic becomes
/// the caller's error about the file), and still reports one in anonymizer's own code
/// (rules run inside the same reads) as the bug it is.
pub fn panic_is_contained() -> bool {
    CONTAINED.with(|c| c.get())
}

/// Runs `f`, turning a panic into an error message (its quoted parts blanked). For the
/// readers of what users give the run that panic on some damage instead of returning an
/// error (parquet-rs and arrow-ipc decoding a damaged footer: `unimplemented!` on an
/// Arrow type tag they do not know, `panic!` on a bit width, an overflow on a metadata
/// length), found by the damaged-Parquet sweep. Only for synchronous, self-contained
/// work on the current thread: what `f` holds is dropped with it.
pub fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let was = CONTAINED.with(|c| c.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED.with(|c| c.set(was));
    r.map_err(|payload| panic_message(payload.as_ref()))
}

/// What a read of a file that panicked says (an input file, or an output file the gate
/// reads back), with the panic's (blanked) message.
pub fn reader_panicked(panic: &str) -> String {
    format!("the file reader panicked on it ({panic})")
}

/// [`reader_panicked`] with [`DAMAGED_HINT`] under it: the message of a read of an input
/// file that panicked, for an error that names the file (or, where the read is of
/// several files at once, the table).
pub fn damaged_read(panic: &str) -> String {
    format!("{}\n  {DAMAGED_HINT}", reader_panicked(panic))
}

/// A read whose file reader panicked: the file(s) being read, where known, and the
/// panic's message (quoted parts and hex runs blanked). A [`crate::contain::ContainedScan`]
/// returns it as its partition's error; [`next_contained`] as its `Err`.
#[derive(Debug, Clone)]
pub struct ReadPanicked {
    /// The file, or the first file of a partition and how many follow it.
    pub files: Option<String>,
    /// The panic's message, blanked.
    pub panic: String,
}

impl std::fmt::Display for ReadPanicked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.files {
            Some(files) => write!(f, "{files}: {}", reader_panicked(&self.panic)),
            None => write!(f, "a file reader panicked ({})", self.panic),
        }
    }
}

impl std::error::Error for ReadPanicked {}

impl ReadPanicked {
    /// The message, with [`DAMAGED_HINT`] under it.
    pub fn damaged(&self) -> String {
        format!("{self}\n  {DAMAGED_HINT}")
    }
}

/// The [`ReadPanicked`] a DataFusion error carries, if a read panicked.
pub fn read_panicked(e: &datafusion::error::DataFusionError) -> Option<&ReadPanicked> {
    match e.find_root() {
        datafusion::error::DataFusionError::External(inner) => inner.downcast_ref(),
        _ => None,
    }
}

/// The next item of `stream`; a read that panicked (a decoder's panic on a damaged page,
/// while polling here or in a [`crate::contain::ContainedScan`] below) as `Err`: for the
/// readers that drive a DataFusion stream themselves and word the error of the file.
pub async fn next_contained<S>(
    stream: &mut S,
) -> Result<
    Option<datafusion::error::Result<datafusion::arrow::record_batch::RecordBatch>>,
    ReadPanicked,
>
where
    S: futures::Stream<
            Item = datafusion::error::Result<datafusion::arrow::record_batch::RecordBatch>,
        > + Unpin,
{
    use futures::StreamExt;
    match contained_async(stream.next()).await {
        Ok(Some(Err(e))) => match read_panicked(&e) {
            Some(p) => Err(p.clone()),
            None => Ok(Some(Err(e))),
        },
        Ok(item) => Ok(item),
        Err(panic) => Err(ReadPanicked { files: None, panic }),
    }
}

/// [`df_message`] of an error reading a file the caller names: a read that panicked
/// says so without repeating the file.
pub fn file_read_message(e: &datafusion::error::DataFusionError) -> String {
    match read_panicked(e) {
        Some(p) => reader_panicked(&p.panic),
        None => df_message(e),
    }
}

/// What a footer whose decoding panicked says (the input's footer check, the gate's
/// footers).
pub fn footer_panicked(panic: &str) -> String {
    format!("Corrupt footer: its metadata cannot be decoded ({panic})")
}

/// The hint under an error about a file that is likely damaged.
pub const DAMAGED_HINT: &str =
    "is it a complete file? Re-export it, or remove it from the input folder";

/// Polls `fut`, turning a panic into the payload's message (blanked as [`contained`]'s):
/// for reads of input files through DataFusion, whose decoders may panic on a damaged
/// page. Each poll is contained on the thread that makes it (the hook stays silent for a
/// panic there); a panic in a task DataFusion spawned on another thread has been printed
/// by the hook ([`panic_report`]) before it reaches this poll. The caller's error names
/// the file.
pub async fn contained_async<T>(fut: impl std::future::Future<Output = T>) -> Result<T, String> {
    struct Contained<F>(std::pin::Pin<Box<F>>);
    impl<F: std::future::Future> std::future::Future for Contained<F> {
        type Output = Result<F::Output, String>;
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            let inner = &mut self.0;
            match contained(|| inner.as_mut().poll(cx)) {
                Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
                Ok(std::task::Poll::Ready(v)) => std::task::Poll::Ready(Ok(v)),
                Err(panic) => std::task::Poll::Ready(Err(panic)),
            }
        }
    }
    Contained(Box::pin(fut)).await
}

/// A panic's message as its payload holds it (a `&str` or a `String`), not yet blanked.
pub fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    blank_hex_runs(&redact_quoted(&payload_text(payload)))
}

/// The path of `file` from its crate's folder (`parquet-59.3.2/src/...`) when it is a
/// source file of a crate that decodes the input (parquet, arrow, csv, the
/// decompressors), as a panic's location gives it.
pub fn reader_crate_path(file: &str) -> Option<&str> {
    let crate_dir = file.split("/registry/src/").nth(1)?.split_once('/')?.1;
    let name = crate_dir.split('/').next()?;
    // `csv-` covers csv-core too.
    ["parquet-", "arrow-", "csv-", "zstd-", "snap-", "flate2-"]
        .iter()
        .any(|p| name.starts_with(p))
        .then_some(crate_dir)
}

/// What the binary's panic hook prints for a panic at `at` (file, line) with `payload`
/// (quoted parts and hex runs blanked). A panic in anonymizer's own code is a bug. One in
/// the crates that decode the input (parquet, arrow, csv) is, in practice, a damaged file
/// they failed to refuse cleanly (the damaged-Parquet sweep found debug-build overflows in
/// parquet-rs's page decoders): the command's own error, which follows, says which read
/// failed (the file, or the table where DataFusion read several files at once).
pub fn panic_report(at: Option<(&str, u32)>, payload: &str) -> String {
    let message = blank_hex_runs(&redact_quoted(payload));
    let reader = at.and_then(|(file, _)| reader_crate_path(file));
    match (reader, at) {
        (Some(path), Some((_, line))) => format!(
            "error: a file reader panicked at {path}:{line}: {message}\n  a damaged file \
             can do this; the error that follows says which read failed. If none follows, \
             this is a bug: please report it"
        ),
        _ => {
            let at = at.map(|(f, l)| format!(" at {f}:{l}")).unwrap_or_default();
            format!(
                "error: internal error{at}: {message}\n  this is a bug in anonymizer; nothing \
                 was published. Please report it"
            )
        }
    }
}

/// Replaces everything between matching single or double quotes by `…`.
///
/// A quoted value may hold the quote character itself (`'o'brien@example.com'`, `'I don't
/// live at ...'`), so a quote only closes a value when what follows it ends a word (the
/// end, white space, or `,.;:)]}`), and a value printed as `Row data: '...'` (Arrow's CSV
/// errors: a whole row of the export) is blanked to the end of its line.
pub fn redact_quoted(s: &str) -> String {
    redact_quoted_keeping(s, &|_| false)
}

/// [`redact_quoted`], showing the quoted text for which `keep` is true.
pub fn redact_quoted_keeping(s: &str, keep: &dyn Fn(&str) -> bool) -> String {
    // A row printed as `Row data: '[...]'` may span lines (a quoted value of the export
    // holding a line break): blanked to the last `]'` after it, else to the end.
    if let Some(at) = s.find("Row data:") {
        let rest = &s[at..];
        let end = rest.rfind("]'").map_or(rest.len(), |i| i + 2);
        let parts = [
            redact_quoted_lines(&s[..at], keep),
            "Row data: '…'".to_string(),
            redact_quoted_lines(&rest[end..], keep),
        ];
        return parts
            .iter()
            .filter(|p| !p.is_empty())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" ");
    }
    redact_quoted_lines(s, keep)
}

/// [`redact_quoted_keeping`] of text without a row: line by line, the lines joined by a
/// space.
fn redact_quoted_lines(s: &str, keep: &dyn Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for (n, line) in s.lines().map(str::trim).enumerate() {
        if n > 0 {
            out.push(' ');
        }
        redact_quoted_line(line, keep, &mut out);
    }
    out.trim().to_string()
}

fn redact_quoted_line(line: &str, keep: &dyn Fn(&str) -> bool, out: &mut String) {
    let closes = |rest: &str| {
        rest.chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || ",.;:)]}".contains(c))
    };
    let mut i = 0;
    while i < line.len() {
        let c = line[i..].chars().next().expect("in bounds");
        if c == '\'' || c == '"' {
            let body = i + 1;
            let end = line[body..]
                .match_indices(c)
                .map(|(k, _)| body + k)
                .find(|&k| closes(&line[k + 1..]));
            if let Some(end) = end {
                out.push(c);
                match &line[body..end] {
                    shown if !shown.is_empty() && keep(shown) => out.push_str(shown),
                    _ => out.push('…'),
                }
                out.push(c);
                i = end + 1;
                continue;
            }
        }
        out.push(c);
        i += c.len_utf8();
    }
}

#[cfg(test)]
mod tests {

    /// A panic in `contained` is an error with its quoted parts blanked; the flag that
    /// silences the binary's hook is set only inside.
    #[test]
    fn a_contained_panic_is_an_error_without_values() {
        assert!(!super::panic_is_contained());
        let e = super::contained(|| -> u8 {
            assert!(super::panic_is_contained());
            panic!("bad value 'anna@example.com' in page")
        })
        .unwrap_err();
        assert_eq!(e, "bad value '…' in page");
        assert!(!super::panic_is_contained());
        assert_eq!(super::contained(|| 7), Ok(7));
        let e = futures::executor::block_on(super::contained_async(async {
            if super::panic_is_contained() {
                panic!("in the poll")
            }
        }))
        .unwrap_err();
        assert_eq!(e, "in the poll");
    }

    /// The hook's words: a panic in a crate that decodes the input points at the file
    /// the run's error names; one in anonymizer's own code is a bug.
    #[test]
    fn a_panic_in_a_reader_crate_is_reported_as_damage_not_as_our_bug() {
        let reader = super::panic_report(
            Some((
                "/root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/parquet-59.3.2/src/util/bit_util.rs",
                868,
            )),
            "attempt to shift left with overflow",
        );
        assert!(
            reader.starts_with(
                "error: a file reader panicked at parquet-59.3.2/src/util/bit_util.rs:868: \
                 attempt to shift left with overflow\n  a damaged file can do this"
            ),
            "{reader}"
        );
        let ours = super::panic_report(Some(("src/run.rs", 12)), "value 'x@y.com'");
        assert_eq!(
            ours,
            "error: internal error at src/run.rs:12: value '…'\n  this is a bug in anonymizer; \
             nothing was published. Please report it"
        );
    }
    #[test]
    fn long_hex_runs_are_blanked() {
        let key = "cf6c10d282ed88902d532043d8c27967959f7a6b21231d8f54fbee34df81166d";
        assert_eq!(
            super::blank_hex_runs(&format!("cannot read key file ./{key}: No such file")),
            "cannot read key file ./…: No such file"
        );
        assert_eq!(
            super::blank_hex_runs(
                "line 118, column 65: deadbeef 2025-12-01 sha 0123456789abcdef0123456789abcdef"
            ),
            "line 118, column 65: deadbeef 2025-12-01 sha …"
        );
    }

    #[test]
    fn numbers_not_typed_are_blanked_but_not_types_or_words() {
        let typed = |n: &str| n == "100";
        assert_eq!(
            super::redact_numbers_keeping(
                "value of 1499 is out of range Int8; -3.25 and 100 in Decimal128(38, 10) at Timestamp(ns) 1st",
                &typed
            ),
            "value of … is out of range Int8; … and 100 in Decimal128(38, 10) at Timestamp(ns) 1st"
        );
        assert_eq!(
            super::redact_numbers_keeping("negative count not allowed: -100", &typed),
            "negative count not allowed: -100"
        );
    }

    #[test]
    fn regex_patterns_are_blanked() {
        assert_eq!(
            super::blank_regex_patterns(
                "Syntax(\n~~~\nregex parse error:\n    667d31283d8539fad5af09168c855d4e(\n    ^\nerror: unclosed group\n~~~\n)"
            ),
            "Syntax(\n~~~\nregex parse error: … error: unclosed group\n~~~\n)"
        );
        assert_eq!(
            super::blank_regex_patterns("regex parse error: abc"),
            "regex parse error: … "
        );
    }

    #[test]
    fn quoted_text_is_shown_where_kept() {
        assert_eq!(
            super::redact_quoted_keeping("table 'custommers' not found near 'x@y.z'", &|q| {
                q == "custommers"
            }),
            "table 'custommers' not found near '…'"
        );
    }

    #[test]
    fn quoted_values_are_blanked() {
        assert_eq!(
            super::redact_quoted("Error parsing 'john@x.com' as Int64 at line 3"),
            "Error parsing '…' as Int64 at line 3"
        );
        assert_eq!(super::redact_quoted("it's fine"), "it's fine");
        // Quotes inside the value (an apostrophe in a name or an email) do not end it.
        assert_eq!(
            super::redact_quoted(
                "Cannot cast string 'I don't live at 13 Lake Shore Drive, ask O'Brien' to value of Int32 type"
            ),
            "Cannot cast string '…' to value of Int32 type"
        );
        // Arrow's CSV errors print the whole row: blanked to the end of the line.
        assert_eq!(
            super::redact_quoted(
                "Error while parsing value 'n/a' as type 'Float64' for column 7 at line 5001. Row data: '[o'brien.john@example.com,S2,renewal,n/a,203.0.113.77,VISA **** 4955 JOHN O'BRIEN]'\nnext line 'x'"
            ),
            "Error while parsing value '…' as type '…' for column 7 at line 5001. Row data: '…' next line '…'"
        );
        assert_eq!(super::redact_quoted("a 'b'c' d \"e\" f"), "a '…' d \"…\" f");
        // Found 2026-12-04: a row whose quoted value holds a line break (a note over two
        // lines) went on past the line, and its end was printed.
        assert_eq!(
            super::redact_quoted(
                "Error while parsing value '7x9' as type 'Int64' for column 4 at line 2501. Row data: '[2500,17850,said \"fine\", thanks\r\nbye Anna Kowalska,7x9]'"
            ),
            "Error while parsing value '…' as type '…' for column 4 at line 2501. Row data: '…'"
        );
        assert_eq!(
            super::redact_quoted("Row data: '[a,b\nc O'Brien,d"),
            "Row data: '…'"
        );
    }

    #[test]
    fn unquoted_values_of_cast_and_overflow_errors_are_blanked() {
        let r = super::redact_unquoted_values;
        assert_eq!(
            r("Cast error: Can't cast value 7.731773177317731e36 to type Int64"),
            "Cast error: Can't cast value … to type Int64"
        );
        assert_eq!(
            r("Cannot cast to Decimal128(38, 4). Overflowing on 7.7317731e300"),
            "Cannot cast to Decimal128(38, 4). Overflowing on …"
        );
        assert_eq!(r("Overflowing on NaN"), "Overflowing on …");
        assert_eq!(
            r("Arithmetic overflow: Overflow happened on: 9223372036854775807 + 1"),
            "Arithmetic overflow: Overflow happened on: …"
        );
        assert_eq!(
            r(
                "Invalid argument error: 773177317731773177317731 is too large to store in a Decimal128 of precision 20"
            ),
            "Invalid argument error: … is too large to store in a Decimal128 of precision 20"
        );
        assert_eq!(r("at line 12, column 3"), "at line 12, column 3");
        // Arrow quotes the string it cannot cast, spaces and quotes included: shown only
        // when the whole string may be.
        let e = "Cast error: Cannot cast string 'o'brien x' to value of Int32 type";
        assert_eq!(
            r(e),
            "Cast error: Cannot cast string … to value of Int32 type"
        );
        let k = super::redact_unquoted_values_keeping;
        assert_eq!(k(e, &|v| v == "o'brien x"), e);
        // Whatever words follow the string; a value holding them is taken whole.
        assert_eq!(
            r("Cannot cast string 'a b' to decimal type of precision 10"),
            "Cannot cast string … to decimal type of precision 10"
        );
        let twice = "Cannot cast string 'x' to y' to value of Int32 type";
        assert_eq!(
            k(twice, &|v| v == "x"),
            "Cannot cast string … to value of Int32 type"
        );
        assert_eq!(k(twice, &|v| v == "x' to y"), twice);
        assert_eq!(
            k(e, &|v| v == "o'brien"),
            "Cast error: Cannot cast string … to value of Int32 type"
        );
    }

    #[test]
    fn sql_parser_errors_say_what_was_expected_without_literals() {
        use datafusion::error::DataFusionError;
        use datafusion::sql::sqlparser::parser::ParserError;
        let e = DataFusionError::SQL(
            Box::new(ParserError::ParserError(
                "Expected: end of statement, found: 'jane@example.com' at Line: 1, Column: 30"
                    .into(),
            )),
            None,
        );
        assert_eq!(
            super::df_message(&e),
            "SQL error: Expected: end of statement, found: '…' at Line: 1, Column: 30"
        );
    }
}
