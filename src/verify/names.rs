//! The privacy gate's check of the `scrub` rule's `names`: no published row's scrubbed
//! text may still hold a word of that row's own name.
//!
//! Why a check of its own: the gate's other checks look for whole values (an input value
//! in the output) and for the patterns of identifiers (emails, phones, cards), and a name
//! inside prose is neither. The scrubber's names pass is the guard; this is the second
//! line, so that a bug in its matching, or a change that loses a row's names on the way,
//! is caught before anything is published, not by a reader.
//!
//! Rows are paired through a token: the table's pseudonymized customer key (else its first
//! pseudonymized column), computed from the input with the run's key and looked up in the
//! staged output. The gate keeps no row order (erasure removes rows; files are read in
//! parallel), and a token is what both sides share. Only the input rows whose text holds a
//! word of the row's name are held, with those words (8 % of the customers of
//! `anonymizer generate`'s export), and a fingerprint of each token's name, to tell
//! tokens whose rows have several: the check reads the input's key, text and name columns
//! once, then the output's token and text columns.
//!
//! Words are read independently of the scrubber's matching, and more simply, with its
//! character classes and letter folding (shared: [`crate::rules::scrub::push_folded`],
//! so that the two cannot drift apart): a word is a run of
//! letters, combining marks and zero-width format characters (an apostrophe ends it: the
//! scrubber reads `Anna's` as one word and matches it by its parts), folded by
//! compatibility decomposition, marks and format characters removed, in lower case, with
//! the letters no decomposition takes apart spelled as the scrubber spells them (`ß` ->
//! `ss`, `ł` -> `l`, ...). Only words of three letters or more, as written and as folded
//! (a Hangul syllable is one letter that decomposes into three), are looked for, and not
//! the particles that join a name's parts (`van`, `der`, `del`). Wherever this reading
//! sees a word of the row's name, the scrubber sees it too (it also matches umlauts
//! spelled out, initials and two-letter names): so a text the scrubber cleaned always
//! passes here (two property tests, one over any printable Unicode, which found the
//! letter counts above; and the `scrub` fuzz target), and a name the scrubber missed is
//! caught unless it is one this reading does not see either.
//!
//! A table with a `names` rule but no pseudonymized column cannot be paired: the check
//! says so in its figures (`columns_not_paired`) and in the log; it is not a failure,
//! since the policy is valid, but the rule is then the only guard. Texts published without
//! the pairing column beside them (a copy edited by hand) fail it: their rows cannot be
//! checked.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use rayon::prelude::*;

use super::Check;
use crate::error::Error;
use crate::key::Key;
use crate::policy::{Policy, Role, TablePolicy};
use crate::rules::Rule;
use crate::rules::pseudonymize::{Pseudonymizer, digest_of_token, for_each_digest_run};
use crate::rules::scrub::{PARTICLES, Placeholder, apostrophe, format_char, push_folded};

/// The check's name in `risk_report.json`.
pub const CHECK: &str = "scrubbed_text_without_own_names";

/// The scrubber's word characters (letters, marks, zero-width format characters), but an
/// apostrophe ends a word here.
fn in_word(c: char) -> bool {
    !apostrophe(c)
        && (c.is_alphabetic()
            || unicode_normalization::char::is_combining_mark(c)
            || format_char(c))
}

/// Calls `f` with each word of `text` as this check reads it (module docs): folded, three
/// letters or more. Placeholders (`[NAME]`, `[EMAIL]`, ...) are not words.
pub(crate) fn each_word(text: &str, mut f: impl FnMut(&str)) {
    use unicode_normalization::UnicodeNormalization;
    let mut word = String::new();
    // The word's letters as written, marks not counted (`각` is one, though it decomposes
    // into three): a word needs three, as written and as folded.
    let mut letters = 0;
    let mut start = None;
    let mut end_word =
        |start: &mut Option<usize>, end: usize, word: &mut String, letters: &mut usize| {
            if let Some(s) = start.take() {
                let bracketed = text[..s].ends_with('[') && text[end..].starts_with(']');
                let placeholder =
                    bracketed && Placeholder::ALL.iter().any(|p| p.word() == &text[s..end]);
                if !placeholder
                    && *letters >= 3
                    && word.chars().count() >= 3
                    && !PARTICLES.contains(&word.as_str())
                {
                    f(word);
                }
            }
            word.clear();
            *letters = 0;
        };
    for (i, c) in text.char_indices() {
        // ASCII: a letter is itself in lower case; anything else ends a word.
        if c.is_ascii() {
            if c.is_ascii_alphabetic() {
                start.get_or_insert(i);
                word.push(c.to_ascii_lowercase());
                letters += 1;
            } else {
                end_word(&mut start, i, &mut word, &mut letters);
            }
            continue;
        }
        if !in_word(c) {
            end_word(&mut start, i, &mut word, &mut letters);
            continue;
        }
        start.get_or_insert(i);
        letters +=
            usize::from(c.is_alphabetic() && !unicode_normalization::char::is_combining_mark(c));
        for d in std::iter::once(c).nfkd() {
            if !d.is_alphabetic()
                || apostrophe(d)
                || unicode_normalization::char::is_combining_mark(d)
            {
                continue;
            }
            // The letters no decomposition takes apart, folded as the scrubber folds them.
            push_folded(d, &mut word);
        }
    }
    end_word(&mut start, text.len(), &mut word, &mut letters);
}

/// The words of a row's name values, as [`each_word`] reads them, into `out` (cleared).
fn name_words<'a>(names: impl Iterator<Item = &'a str>, out: &mut Vec<String>) {
    out.clear();
    for n in names {
        each_word(n, |w| {
            if !out.iter().any(|o| o == w) {
                out.push(w.to_string());
            }
        });
    }
}

/// The words of `text` that `is_name` says are the name's.
pub(crate) fn named_words(text: &str, is_name: impl Fn(&str) -> bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    each_word(text, |w| {
        if is_name(w) {
            out.insert(w.to_string());
        }
    });
    out
}

/// The words of a row's name (`names`, its name columns' values) that its input text
/// holds and its output text still holds: what the check fails a row for. (The fuzz
/// target and the property test hold the scrubber to it.)
pub(crate) fn left_named(names: &[&str], input: &str, output: &str) -> BTreeSet<String> {
    let mut name = Vec::new();
    name_words(names.iter().copied(), &mut name);
    let held = named_words(input, |w| name.iter().any(|n| n == w));
    named_words(output, |w| held.contains(w))
}

/// The value of a text column (`Utf8`, `LargeUtf8` or `Utf8View`) at `row`.
fn text_at(a: &dyn Array, row: usize) -> Option<&str> {
    if a.is_null(row) {
        return None;
    }
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Some(a.as_string::<i64>().value(row)),
        DataType::Utf8View => Some(a.as_string_view().value(row)),
        _ => None,
    }
}

/// `a` as a text column [`text_at`] reads: cast unless it is one.
fn text_column(a: &ArrayRef) -> Result<ArrayRef, String> {
    match a.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(a.clone()),
        _ => cast(a, &DataType::Utf8).map_err(|e| e.to_string()),
    }
}

/// The name words a token's input texts hold (the rows that share a token, a customer's
/// rows of an event table, pool theirs). `mixed`: the token's rows with text do not all
/// have the same name, so which name would its texts be held to? It is not checked
/// (`tokens_with_several_names`).
#[derive(Debug, Default, Clone)]
struct Held {
    words: BTreeSet<String>,
    mixed: bool,
}

/// One reading task's part of the input scan of a column.
/// Maps keyed by a token's digest (uniformly distributed: any fast hasher will do).
type ByToken<V> = HashMap<u128, V, ahash::RandomState>;

#[derive(Default)]
struct Scan {
    held: ByToken<BTreeSet<String>>,
    /// Every token with a text: a fingerprint of its name's words, or `None` once two of
    /// its rows have told different names.
    names: ByToken<Option<u64>>,
    named: u64,
}

impl Scan {
    fn name(&mut self, d: u128, fingerprint: u64) {
        self.names
            .entry(d)
            .and_modify(|f| {
                if *f != Some(fingerprint) {
                    *f = None;
                }
            })
            .or_insert(Some(fingerprint));
    }

    fn merge(&mut self, o: Scan) {
        for (d, words) in o.held {
            self.held.entry(d).or_default().extend(words);
        }
        for (d, f) in o.names {
            match f {
                Some(f) => self.name(d, f),
                None => {
                    self.names.insert(d, None);
                }
            }
        }
        self.named += o.named;
    }
}

/// A fingerprint of a name's words (sorted), to tell whether two rows have one name.
fn fingerprint(words: &[String]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    words.hash(&mut h);
    h.finish()
}

/// One scrubbed column whose rule has `names`, and its input rows that name themselves.
#[derive(Debug)]
struct Column {
    table: String,
    column: String,
    names: Vec<String>,
    /// The pseudonymized column its rows are paired by.
    by: String,
    rows: ByToken<Held>,
    named: u64,
}

/// What the check needs from the input, read with the key ([`named_rows`]).
#[derive(Debug, Default)]
pub struct NamedRows {
    columns: Vec<Column>,
    /// `table.column` of scrubbed columns with `names` in tables without a token column.
    not_paired: Vec<String>,
}

/// Whether any `scrub` rule of `policy` has `names`.
pub fn any(policy: &Policy) -> bool {
    policy
        .tables
        .iter()
        .flat_map(|t| &t.columns)
        .any(|c| matches!(&c.rule, Rule::Scrub { names } if !names.is_empty()))
}

/// The check, not made: why (`anonymizer verify` without a policy or a key).
pub fn skipped(why: &str) -> Check {
    let mut check = Check::new(CHECK);
    check.findings.push(why.to_string());
    check
}

/// The column a table's rows are paired by: its pseudonymized customer key, else its
/// first pseudonymized column.
fn pairing(table: &TablePolicy) -> Option<(&str, &Rule)> {
    let token = |c: &str| {
        table
            .rule_of(c)
            .filter(|r| matches!(r, Rule::Pseudonymize { .. }))
    };
    if let Some(c) = table.role(Role::CustomerKey)
        && let Some(r) = token(c)
    {
        return Some((c, r));
    }
    table
        .columns
        .iter()
        .find(|c| matches!(c.rule, Rule::Pseudonymize { .. }))
        .map(|c| (c.name.as_str(), &c.rule))
}

/// Reads, for every scrubbed column whose rule has `names`, the input rows whose text
/// holds a word of the row's own name, by the token their row is published under.
pub async fn named_rows(
    ctx: &SessionContext,
    policy: &Policy,
    key: &Key,
) -> Result<NamedRows, Error> {
    let t0 = std::time::Instant::now();
    let mut out = NamedRows::default();
    for table in &policy.tables {
        for c in &table.columns {
            let Rule::Scrub { names } = &c.rule else {
                continue;
            };
            if names.is_empty() {
                continue;
            }
            let Some((by, Rule::Pseudonymize { normalize, domain })) = pairing(table) else {
                out.not_paired.push(format!("{}.{}", table.name, c.name));
                continue;
            };
            let p = Pseudonymizer::new(key, domain.as_deref());
            let normalize = *normalize;
            let mut read: Vec<&str> = vec![by, &c.name];
            read.extend(names.iter().map(String::as_str));
            let context = |e: String| {
                Error::Failed(format!(
                    "privacy checks: table {}, columns {}: {e}",
                    table.name,
                    read.join(", ")
                ))
            };
            let parts = crate::run::scan_chunks(
                ctx,
                table,
                &read,
                Scan::default,
                |scan, b| {
                    let mut digests = Vec::with_capacity(b.num_rows());
                    for_each_digest_run(&p, b.column(0), normalize, |d, n| {
                        digests.extend(std::iter::repeat_n(d, n))
                    })
                    .map_err(|e| context(e.to_string()))?;
                    let cols = b
                        .columns()
                        .iter()
                        .skip(1)
                        .map(text_column)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(context)?;
                    let mut name = Vec::new();
                    for (row, d) in digests.into_iter().enumerate() {
                        let (Some(d), Some(text)) = (d, text_at(&cols[0], row)) else {
                            continue;
                        };
                        name_words(cols[1..].iter().filter_map(|a| text_at(a, row)), &mut name);
                        name.sort();
                        scan.name(d, fingerprint(&name));
                        if name.is_empty() {
                            continue;
                        }
                        let words = named_words(text, |w| {
                            name.binary_search_by(|n| n.as_str().cmp(w)).is_ok()
                        });
                        if !words.is_empty() {
                            scan.named += 1;
                            scan.held.entry(d).or_default().extend(words);
                        }
                    }
                    Ok(())
                },
                |file, e| {
                    Error::Failed(format!(
                        "privacy checks: table {}, file {}: cannot read {}: {e}",
                        table.name,
                        file.display(),
                        read.join(", ")
                    ))
                },
            )
            .await?;
            let mut scan = Scan::default();
            for part in parts {
                scan.merge(part);
            }
            let rows = scan
                .held
                .into_iter()
                .map(|(d, words)| {
                    let mixed = scan.names.get(&d).is_some_and(Option::is_none);
                    (d, Held { words, mixed })
                })
                .collect();
            let named = scan.named;
            out.columns.push(Column {
                table: table.name.clone(),
                column: c.name.clone(),
                names: names.clone(),
                by: by.to_string(),
                rows,
                named,
            });
        }
    }
    tracing::debug!(
        ms = t0.elapsed().as_millis() as u64,
        "verify: named rows read"
    );
    Ok(out)
}

/// Where the first row that failed is: a file and a row of it (from 1).
struct First {
    file: String,
    row: usize,
}

/// What [`check_file`] found in one file.
struct FileCounts {
    checked: u64,
    failed: u64,
    /// The first failing row (from 1).
    first: Option<usize>,
    /// Texts without the pairing column beside them.
    unpaired: bool,
}

/// The rows of one output file of `c`'s table paired with a held input row, and those
/// whose text still holds a word of the row's name.
fn check_file(f: &Path, cols: &[String; 2], c: &Column) -> Result<FileCounts, Error> {
    let mut n = FileCounts {
        checked: 0,
        failed: 0,
        first: None,
        unpaired: false,
    };
    let mut row = 0usize;
    super::read_batches(f, Some(cols), &mut |b: &RecordBatch| {
        let Some(text) = b.column_by_name(&c.column) else {
            row += b.num_rows();
            return Ok(());
        };
        let Some(by) = b.column_by_name(&c.by) else {
            n.unpaired |= text.null_count() < text.len();
            row += b.num_rows();
            return Ok(());
        };
        let by = text_column(by).map_err(|e| super::read_error(f, &e))?;
        let text = text_column(text).map_err(|e| super::read_error(f, &e))?;
        for r in 0..b.num_rows() {
            let Some(t) = text_at(&text, r) else { continue };
            let held = text_at(&by, r)
                .and_then(digest_of_token)
                .and_then(|d| c.rows.get(&d))
                .filter(|h| !h.mixed);
            if let Some(h) = held {
                n.checked += 1;
                if !named_words(t, |w| h.words.contains(w)).is_empty() {
                    n.failed += 1;
                    n.first.get_or_insert(row + r + 1);
                }
            }
        }
        row += b.num_rows();
        Ok(())
    })?;
    Ok(n)
}

/// Checks the staged (or published) tables in `dir` against the input rows that named
/// themselves: every output row paired with one must hold none of its name's words.
pub fn check(dir: &Path, named: &NamedRows) -> Result<Check, Error> {
    let t0 = std::time::Instant::now();
    let mut check = Check::new(CHECK);
    let mut figure = |k: &str, n: u64| *check.figures.entry(k.to_string()).or_default() += n;
    figure("columns_checked", 0);
    figure("columns_not_paired", named.not_paired.len() as u64);
    for c in &named.not_paired {
        tracing::warn!(
            column = %c,
            "scrubbed column with names in a table without a pseudonymized column: the gate cannot pair its rows, so it does not re-check their names"
        );
    }
    let mut findings = Vec::new();
    let (mut checked, mut still, mut mixed, mut named_rows) = (0u64, 0u64, 0u64, 0u64);
    for c in &named.columns {
        figure("columns_checked", 1);
        named_rows += c.named;
        mixed += c.rows.values().filter(|h| h.mixed).count() as u64;
        let files = crate::fsutil::sorted_children(&dir.join(&c.table), |p| {
            p.extension().is_some_and(|x| x == "parquet")
        })
        .unwrap_or_default();
        let cols = [c.by.clone(), c.column.clone()];
        // Each file on its own thread; their counts and first failures, in file order.
        let per_file = files
            .par_iter()
            .map(|f| {
                crate::error::contained(|| check_file(f, &cols, c))
                    .map_err(|panic| super::read_error(f, &crate::error::reader_panicked(&panic)))?
            })
            .collect::<Result<Vec<FileCounts>, Error>>()?;
        let (mut failed, mut first, mut unpaired) = (0u64, None, false);
        for (f, n) in files.iter().zip(per_file) {
            checked += n.checked;
            failed += n.failed;
            unpaired |= n.unpaired;
            if first.is_none() {
                first = n.first.map(|row| First {
                    file: crate::fsutil::name_of(f),
                    row,
                });
            }
        }
        if unpaired {
            findings.push(format!(
                "table {}: column {} is published without column {}, so its rows cannot be paired with the input to check them for their own names",
                c.table, c.column, c.by
            ));
        }
        still += failed;
        if let Some(First { file, row }) = first {
            findings.push(format!(
                "table {}, column {}: {failed} row(s) whose scrubbed text still holds a word of the row's own name (from {}), the first in file {file}, row {row}: \
                 the scrub rule's names pass should have replaced it by [NAME]. Please report it as a bug; until it is fixed, drop the column (rule = \"drop\")",
                c.table,
                c.column,
                c.names.join(", "),
            ));
        }
    }
    figure("input_rows_naming_themselves", named_rows);
    figure("output_rows_checked", checked);
    figure("tokens_with_several_names", mixed);
    figure("rows_still_named", still);
    check.passed = findings.is_empty();
    check.findings = findings;
    tracing::debug!(
        ms = t0.elapsed().as_millis() as u64,
        "verify: names checked"
    );
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use unicode_normalization::UnicodeNormalization;

    fn words(t: &str) -> Vec<String> {
        let mut v = vec![];
        each_word(t, |w| v.push(w.to_string()));
        v
    }

    #[test]
    fn words_are_folded_runs_of_letters_of_three_or_more() {
        assert_eq!(words("Hi, I'm Anna-Maria!"), ["anna", "maria"]);
        assert_eq!(
            words("JOSÉ Jose\u{0301} Ｊｏｓｅ"),
            ["jose", "jose", "jose"]
        );
        assert_eq!(words("An\u{200B}na's"), ["anna"]);
        assert_eq!(words("Familie van den Berg"), ["familie", "berg"]);
        // Placeholders are not words; the same letters outside brackets are.
        assert_eq!(words("[NAME] wrote [EMAIL], NAME"), ["wrote", "name"]);
        assert_eq!(
            words("Müller 42 Łukasz Straße"),
            ["muller", "lukasz", "strasse"]
        );
        // Letters as written: a Hangul syllable is one, though it decomposes into three.
        assert_eq!(words("각 각각각"), ["각각각".nfkd().collect::<String>()]);
    }

    /// Pieces of names and texts chosen to meet the readings' edges: accents composed and
    /// not, umlauts, `ß`, full-width and compatibility letters, apostrophes of four
    /// kinds, zero-width characters, particles, placeholders, a letter that decomposes
    /// into an apostrophe and one (`İ`) into a mark.
    const NAME_PARTS: [&str; 16] = [
        "Anna",
        "Müller",
        "José",
        "O'Brien",
        "van",
        "der",
        "Berg",
        "Łukasz",
        "Straße",
        "Dʼanna",
        "Zoë",
        "İlker",
        "Ｋｉｍ",
        "ŉeal",
        "Li",
        "del",
    ];
    const TEXT_PARTS: [&str; 24] = [
        " ",
        ", ",
        "-",
        "'",
        "’",
        "ʼ",
        "＇",
        "\u{200B}",
        "\u{0301}",
        "[NAME]",
        "[",
        "]",
        "s",
        "Mueller",
        "MULLER",
        "ANNA",
        "anna's",
        "Jose\u{0301}",
        "ｋｉｍ",
        "℡",
        "ﷺ",
        "42",
        "strasse",
        "hello",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// Whatever the scrubber's names pass leaves, this check does not read as the
        /// row's name: a text scrubbed with its row's names always passes.
        #[test]
        fn scrubbed_text_always_passes(
            name in proptest::collection::vec(
                proptest::collection::vec(proptest::sample::select(&NAME_PARTS[..]), 1..4),
                1..3,
            ),
            text in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(&TEXT_PARTS[..]),
                    proptest::sample::select(&NAME_PARTS[..]),
                ],
                0..16,
            ),
            joins in proptest::collection::vec(proptest::sample::select(&["", " ", "-"][..]), 16),
        ) {
            let values: Vec<String> = name.iter().map(|w| w.join(" ")).collect();
            let mut text_s = String::new();
            for (i, p) in text.iter().enumerate() {
                text_s.push_str(p);
                text_s.push_str(joins[i % joins.len()]);
            }
            let mut words = crate::rules::scrub::NameWords::default();
            for v in &values {
                words.add(v);
            }
            let mut out = String::new();
            crate::rules::scrub::scrub_with_names(&text_s, &mut words, &mut out);
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let left = left_named(&values, &text_s, &out);
            proptest::prop_assert!(left.is_empty(), "{text_s:?} -> {out:?} still holds {left:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
        /// The same over any printable Unicode: a name of any characters, and a text
        /// that holds it, upper-cased, between any characters.
        #[test]
        fn scrubbed_text_always_passes_whatever_the_characters(
            name in "\\PC{1,12}( \\PC{1,12})?",
            before in "\\PC{0,12}",
            between in "\\PC{0,6}",
            after in "\\PC{0,12}",
        ) {
            let text = format!("{before}{name}{between}{}{after}", name.to_uppercase());
            let mut words = crate::rules::scrub::NameWords::default();
            words.add(&name);
            let mut out = String::new();
            crate::rules::scrub::scrub_with_names(&text, &mut words, &mut out);
            let left = left_named(&[name.as_str()], &text, &out);
            proptest::prop_assert!(left.is_empty(), "{text:?} -> {out:?} still holds {left:?}");
        }
    }

    #[test]
    fn a_token_whose_rows_tell_two_names_is_not_held_to_either() {
        let (anna, bob) = (fingerprint(&["anna".into()]), fingerprint(&["bob".into()]));
        let mut a = Scan::default();
        a.name(1, anna);
        a.name(2, anna);
        a.name(2, anna);
        let mut b = Scan::default();
        b.name(1, bob);
        b.name(3, bob);
        a.merge(b);
        assert_eq!(a.names[&1], None);
        assert_eq!(a.names[&2], Some(anna));
        assert_eq!(a.names[&3], Some(bob));
        // Once mixed, always mixed, whatever the order of the parts.
        let mut c = Scan::default();
        c.name(1, anna);
        c.merge(a);
        assert_eq!(c.names[&1], None);
    }

    #[test]
    fn a_text_holds_the_words_of_its_name() {
        let mut name = Vec::new();
        name_words(["Anna", "van der Berg"].into_iter(), &mut name);
        assert_eq!(name, ["anna", "berg"]);
        let held = |t: &str| named_words(t, |w| name.iter().any(|n| n == w));
        assert_eq!(
            held("Regards, ANNA Berg; van"),
            BTreeSet::from(["anna".to_string(), "berg".to_string()])
        );
        assert!(held("Regards, [NAME]").is_empty());
        assert!(held("Annabel").is_empty());
    }
}
