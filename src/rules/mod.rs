//! The column rules a policy can apply, as pure kernels and as DataFusion scalar UDFs.
//!
//! Every rule that computes something is a [`ScalarUDF`] over Arrow arrays, registered
//! under an `anon_*` name. The run builds its projection from them, the same functions are
//! callable from SQL (`SELECT anon_trunc(ts, 'month') ...`), and because their parameters
//! are literal arguments rather than hidden state (the key aside), a plan that uses them
//! can be shipped to a Ballista cluster with one codec.
//!
//! One file per rule: [`pseudonymize`], [`generalize`], [`mask`], [`scrub`]. `keep`, `drop`
//! and `redact` need no kernel (a column reference, no expression, a literal).

pub mod generalize;
pub mod lanes;
pub mod mask;
pub mod pseudonymize;
pub mod scrub;

use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue, exec_err};
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarUDF, lit};
use datafusion::prelude::{SessionContext, ident};

use crate::key::Key;

/// How a value is normalized before it is pseudonymized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// The bytes as they are.
    None,
    /// Leading and trailing white space removed.
    Trim,
    /// Trimmed and lower-cased, so ` John.Doe@Example.COM` and `john.doe@example.com`
    /// give the same token. Plus-tags and dots are kept: whether they matter is the mail
    /// provider's business, and guessing wrong would merge two people.
    Email,
}

impl Normalize {
    pub const NAMES: [&'static str; 3] = ["none", "trim", "email"];
    pub fn parse(s: &str) -> Option<Normalize> {
        match s {
            "none" => Some(Normalize::None),
            "trim" => Some(Normalize::Trim),
            "email" => Some(Normalize::Email),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Normalize::None => "none",
            Normalize::Trim => "trim",
            Normalize::Email => "email",
        }
    }
}

/// Calendar unit a time is truncated to. Weeks start on Monday (ISO 8601); all
/// arithmetic is in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TruncUnit {
    /// Timestamps only: the date and the hour stay; too fine for a quasi-identifier
    /// (the privacy gate refuses any time of day on a declared quasi-identifier).
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl TruncUnit {
    pub const NAMES: [&'static str; 6] = ["hour", "day", "week", "month", "quarter", "year"];
    pub const ALL: [TruncUnit; 6] = [
        TruncUnit::Hour,
        TruncUnit::Day,
        TruncUnit::Week,
        TruncUnit::Month,
        TruncUnit::Quarter,
        TruncUnit::Year,
    ];
    pub fn parse(s: &str) -> Option<TruncUnit> {
        Self::ALL.into_iter().find(|u| u.as_str() == s)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            TruncUnit::Hour => "hour",
            TruncUnit::Day => "day",
            TruncUnit::Week => "week",
            TruncUnit::Month => "month",
            TruncUnit::Quarter => "quarter",
            TruncUnit::Year => "year",
        }
    }
}

/// What `generalize` does to a column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Generalization {
    /// Timestamps and dates truncated to the start of their day, week, month, ...
    Trunc { unit: TruncUnit },
    /// Birth dates to age bands (`30-39`, `90+`) relative to the run's as-of date.
    AgeBand { width: u32 },
    /// Postal codes (any string) to their first `length` characters.
    Prefix { length: u32 },
    /// IP addresses to their network: IPv4 /`ipv4_prefix`, IPv6 /`ipv6_prefix`.
    Network { ipv4_prefix: u8, ipv6_prefix: u8 },
}

/// One column's rule, validated.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Rule {
    Keep,
    Drop,
    Redact {
        value: String,
    },
    Mask {
        keep_last: u32,
    },
    Pseudonymize {
        normalize: Normalize,
        domain: Option<String>,
    },
    Generalize(Generalization),
    /// `names`: columns of the same table whose values, row by row, are removed from the
    /// text as `[NAME]` (see [`scrub::scrub_names`]).
    Scrub {
        #[serde(skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
    },
}

/// The rule names a policy may use, for "did you mean".
pub const RULE_NAMES: [&str; 7] = [
    "keep",
    "drop",
    "redact",
    "mask",
    "pseudonymize",
    "generalize",
    "scrub",
];

impl Rule {
    pub fn name(&self) -> &'static str {
        match self {
            Rule::Keep => "keep",
            Rule::Drop => "drop",
            Rule::Redact { .. } => "redact",
            Rule::Mask { .. } => "mask",
            Rule::Pseudonymize { .. } => "pseudonymize",
            Rule::Generalize(_) => "generalize",
            Rule::Scrub { .. } => "scrub",
        }
    }

    /// Whether the rule can be applied to a column of this Arrow type; on `Err`, a
    /// sentence naming the types it needs.
    pub fn check_type(&self, dt: &DataType) -> Result<(), &'static str> {
        let ok = match self {
            Rule::Drop | Rule::Redact { .. } => true,
            Rule::Keep => is_flat(dt),
            Rule::Mask { .. } | Rule::Scrub { .. } => is_string(dt),
            Rule::Pseudonymize { .. } => is_string(dt) || is_integer_like(dt),
            Rule::Generalize(Generalization::Trunc {
                unit: TruncUnit::Hour,
            }) => matches!(dt, DataType::Timestamp(..)),
            Rule::Generalize(Generalization::Trunc { .. })
            | Rule::Generalize(Generalization::AgeBand { .. }) => is_temporal(dt),
            Rule::Generalize(Generalization::Prefix { .. })
            | Rule::Generalize(Generalization::Network { .. }) => is_string(dt),
        };
        if ok {
            return Ok(());
        }
        Err(match self {
            Rule::Keep => {
                "a flat column the privacy gate reads (text, a number, a boolean, a date or a time); \
                 a list, struct, map or binary column can only be dropped or redacted"
            }
            Rule::Pseudonymize { .. } => {
                "a string or integer column (or a decimal without a fraction)"
            }
            Rule::Generalize(Generalization::Trunc {
                unit: TruncUnit::Hour,
            }) => "a timestamp column (dates have no hours)",
            Rule::Generalize(Generalization::Trunc { .. })
            | Rule::Generalize(Generalization::AgeBand { .. }) => {
                "a timestamp or date column (for text, parse it first or use `prefix`)"
            }
            _ => "a string column",
        })
    }

    /// The expression that computes this rule's output for `column`, or `None` for
    /// `drop`. `as_of` is needed by age bands.
    pub fn expr(&self, column: &str, udfs: &Udfs, as_of: Option<NaiveDate>) -> Option<Expr> {
        let c = ident(column);
        let e = match self {
            Rule::Keep => c,
            Rule::Drop => return None,
            Rule::Redact { value } => lit(value.clone()),
            Rule::Mask { keep_last } => udfs.mask.call(vec![c, lit(*keep_last as i64)]),
            Rule::Scrub { names } => udfs
                .scrub
                .call(std::iter::once(c).chain(names.iter().map(ident)).collect()),
            Rule::Pseudonymize { normalize, domain } => udfs.pseudonymize.call(vec![
                c,
                lit(normalize.as_str()),
                lit(ScalarValue::Utf8(domain.clone())),
            ]),
            Rule::Generalize(g) => match g {
                Generalization::Trunc { unit } => udfs.trunc.call(vec![c, lit(unit.as_str())]),
                Generalization::AgeBand { width } => {
                    let as_of = as_of.expect("as-of date is resolved before plans are built");
                    udfs.age_band.call(vec![
                        c,
                        lit(ScalarValue::Date32(Some(generalize::date_to_days(as_of)))),
                        lit(*width as i64),
                    ])
                }
                Generalization::Prefix { length } => udfs.prefix.call(vec![c, lit(*length as i64)]),
                Generalization::Network {
                    ipv4_prefix,
                    ipv6_prefix,
                } => udfs
                    .network
                    .call(vec![c, lit(*ipv4_prefix as i64), lit(*ipv6_prefix as i64)]),
            },
        };
        Some(e.alias(column))
    }

    /// Whether the output of this rule needs the run's as-of date.
    pub fn needs_as_of(&self) -> bool {
        matches!(self, Rule::Generalize(Generalization::AgeBand { .. }))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Generalize(g) => match g {
                Generalization::Trunc { unit } => write!(f, "generalize(to = {})", unit.as_str()),
                Generalization::AgeBand { width } => {
                    write!(f, "generalize(to = age_band, width = {width})")
                }
                Generalization::Prefix { length } => {
                    write!(f, "generalize(to = prefix, length = {length})")
                }
                Generalization::Network { .. } => write!(f, "generalize(to = network)"),
            },
            Rule::Scrub { names } if !names.is_empty() => {
                write!(f, "scrub(names = {})", names.join(", "))
            }
            other => f.write_str(other.name()),
        }
    }
}

/// The rule UDFs of one run (the pseudonymizer carries the key).
#[derive(Debug, Clone)]
pub struct Udfs {
    pub pseudonymize: ScalarUDF,
    pub trunc: ScalarUDF,
    pub age_band: ScalarUDF,
    pub prefix: ScalarUDF,
    pub network: ScalarUDF,
    pub mask: ScalarUDF,
    pub scrub: ScalarUDF,
}

impl Udfs {
    pub fn new(key: &Key) -> Udfs {
        Udfs {
            pseudonymize: ScalarUDF::from(pseudonymize::PseudonymizeUdf::new(key)),
            trunc: ScalarUDF::from(generalize::TruncUdf::new()),
            age_band: ScalarUDF::from(generalize::AgeBandUdf::new()),
            prefix: ScalarUDF::from(generalize::PrefixUdf::new()),
            network: ScalarUDF::from(generalize::NetworkUdf::new()),
            mask: ScalarUDF::from(mask::MaskUdf::new()),
            scrub: ScalarUDF::from(scrub::ScrubUdf::new()),
        }
    }

    pub fn all(&self) -> [&ScalarUDF; 7] {
        [
            &self.pseudonymize,
            &self.trunc,
            &self.age_band,
            &self.prefix,
            &self.network,
            &self.mask,
            &self.scrub,
        ]
    }

    /// Registers every rule under its `anon_*` name so SQL can call it.
    pub fn register(&self, ctx: &SessionContext) {
        for u in self.all() {
            ctx.register_udf(u.clone());
        }
    }
}

/// Whether values of this type are flat: text, numbers, booleans, dates and times (or a
/// dictionary of them). Only such columns may be published unchanged: the privacy gate
/// looks into every one of them, not into lists, structs, maps or bytes, which could hold
/// anything.
pub fn is_flat(dt: &DataType) -> bool {
    match dt {
        DataType::Dictionary(_, v) => is_flat(v),
        t => {
            is_string(t)
                || t.is_numeric()
                || t.is_temporal()
                || matches!(t, DataType::Boolean | DataType::Null)
        }
    }
}

pub(crate) fn is_string(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

/// Whether values of this type are whole numbers: the integer types, and decimals
/// without a fraction (`DECIMAL(p,0)`, what warehouses such as Snowflake export a
/// `NUMBER(38,0)` id as). Ids of these types are tokenized, matched and looked up
/// through their decimal text, so customer 42 exported as int64, as DECIMAL(38,0) or as
/// "42" is one customer with one token.
pub fn is_integer_like(dt: &DataType) -> bool {
    dt.is_integer() || matches!(dt, DataType::Decimal128(_, 0) | DataType::Decimal256(_, 0))
}

pub(crate) fn is_temporal(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
    )
}

/// Calls `f` once per run of equal consecutive values (nulls included), with the run's
/// length, in row order.
pub(crate) fn runs<T: PartialEq + Copy>(
    values: impl Iterator<Item = Option<T>>,
    mut f: impl FnMut(Option<T>, usize),
) {
    let mut run: Option<(Option<T>, usize)> = None;
    for v in values {
        match &mut run {
            Some((p, n)) if *p == v => *n += 1,
            _ => {
                if let Some((p, n)) = run.replace((v, 1)) {
                    f(p, n);
                }
            }
        }
    }
    if let Some((p, n)) = run {
        f(p, n);
    }
}

/// The text of a column, one call per run of equal consecutive values (`None` for a run
/// of nulls), with the run's length, in row order: strings as they are; integers printed
/// as Arrow's cast to text prints them, without building a string column and compared
/// before printing (unsigned 64-bit values past `i64::MAX` too); other types cast to
/// text. Exports sorted by customer repeat an id or email on every transaction, so the
/// callers (tokens, the aggregates' ids, the gate's lookups) work once per run.
pub(crate) fn for_each_text_run(
    array: &ArrayRef,
    mut f: impl FnMut(Option<&str>, usize),
) -> DfResult<()> {
    use datafusion::arrow::datatypes::{Decimal128Type, Int64Type, UInt64Type};
    let mut digits = itoa::Buffer::new();
    match array.data_type() {
        DataType::Utf8 => runs(array.as_string::<i32>().iter(), f),
        DataType::LargeUtf8 => runs(array.as_string::<i64>().iter(), f),
        DataType::Utf8View => view_runs(array.as_string_view(), f),
        DataType::UInt64 => runs(array.as_primitive::<UInt64Type>().iter(), |v, n| {
            f(v.map(|v| digits.format(v)), n)
        }),
        DataType::Decimal128(_, 0) => {
            runs(array.as_primitive::<Decimal128Type>().iter(), |v, n| {
                f(v.map(|v| digits.format(v)), n)
            })
        }
        t if t.is_integer() => {
            // Every other integer type fits in an i64.
            let ints = cast(array, &DataType::Int64)?;
            runs(ints.as_primitive::<Int64Type>().iter(), |v, n| {
                f(v.map(|v| digits.format(v)), n)
            });
        }
        _ => {
            let text = cast(array, &DataType::Utf8)?;
            runs(text.as_string::<i32>().iter(), f);
        }
    }
    Ok(())
}

/// [`runs`] of a Utf8View column, told apart by the 16-byte views first: equal views are
/// equal values (the same inline bytes, or the same bytes of the same buffer), and a
/// different length or 4-byte prefix is a different value; only views that agree on
/// both are compared byte by byte. (Distinct tokens, 32 bytes each, then cost no byte
/// comparison; an inline value with non-zero padding, which Arrow's writers never make,
/// would only split a run.)
fn view_runs(
    a: &datafusion::arrow::array::StringViewArray,
    mut f: impl FnMut(Option<&str>, usize),
) {
    let views = a.views();
    let same = |i: usize, j: usize| match (a.is_valid(i), a.is_valid(j)) {
        (true, true) => {
            let (x, y) = (views[i], views[j]);
            x == y || (x as u64 == y as u64 && x as u32 > 12 && a.value(i) == a.value(j))
        }
        (false, false) => true,
        _ => false,
    };
    let value = |i: usize| a.is_valid(i).then(|| a.value(i));
    let mut start = 0;
    for i in 1..a.len() {
        if !same(i, start) {
            f(value(start), i - start);
            start = i;
        }
    }
    if start < a.len() {
        f(value(start), a.len() - start);
    }
}

/// `str::trim`, without looking at the characters when both ends are visible ASCII (what
/// nearly every exported value is): for the per-value paths of normalization, ids, the
/// network and prefix rules and the gate.
#[inline]
pub(crate) fn trimmed(v: &str) -> &str {
    match (v.as_bytes().first(), v.as_bytes().last()) {
        (Some(f), Some(l)) if f.is_ascii_graphic() && l.is_ascii_graphic() => v,
        _ => v.trim(),
    }
}

/// Maps a string array to a Utf8 array: `f` writes the output for one non-null input
/// into the buffer and returns `false` to emit null instead. Nulls stay null. `f` must be
/// a function of its input alone: it is called once per run of equal values
/// ([`for_each_text_run`]; an export sorted by customer repeats a customer's address).
pub(crate) fn map_strings(
    array: &ArrayRef,
    bytes_hint: usize,
    mut f: impl FnMut(&str, &mut String) -> bool,
) -> DfResult<ArrayRef> {
    let t = array.data_type();
    let string = match t {
        DataType::Dictionary(_, v) => is_string(v),
        t => is_string(t),
    };
    if !string {
        return exec_err!("expected a string column, got {t}");
    }
    let mut out = StringBuilder::with_capacity(array.len(), bytes_hint);
    let mut buf = String::new();
    for_each_text_run(array, |v, n| {
        let mapped = v.is_some_and(|s| {
            buf.clear();
            f(s, &mut buf)
        });
        for _ in 0..n {
            if mapped {
                out.append_value(&buf);
            } else {
                out.append_null();
            }
        }
    })?;
    Ok(Arc::new(out.finish()) as ArrayRef)
}

/// The first argument as an array of the batch's length.
pub(crate) fn first_array(args: &[ColumnarValue], rows: usize) -> DfResult<ArrayRef> {
    match args.first() {
        Some(v) => v.to_array(rows),
        None => exec_err!("missing the column argument"),
    }
}

/// A literal integer argument (e.g. `keep_last`), with a range check.
pub(crate) fn int_arg(
    fname: &str,
    args: &[ColumnarValue],
    i: usize,
    default: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
) -> DfResult<i64> {
    let v = match args.get(i) {
        None => default,
        Some(ColumnarValue::Scalar(s)) => match s {
            ScalarValue::Int8(v) => v.map(i64::from),
            ScalarValue::Int16(v) => v.map(i64::from),
            ScalarValue::Int32(v) => v.map(i64::from),
            ScalarValue::Int64(v) => *v,
            ScalarValue::UInt8(v) => v.map(i64::from),
            ScalarValue::UInt16(v) => v.map(i64::from),
            ScalarValue::UInt32(v) => v.map(i64::from),
            ScalarValue::UInt64(v) => v.and_then(|x| i64::try_from(x).ok()),
            _ => return exec_err!("{fname}: argument {} must be an integer literal", i + 1),
        },
        Some(ColumnarValue::Array(_)) => {
            return exec_err!(
                "{fname}: argument {} must be a literal, not a column",
                i + 1
            );
        }
    };
    match v {
        Some(v) if range.contains(&v) => Ok(v),
        Some(v) => exec_err!(
            "{fname}: argument {} is {v}, must be in {}..={}",
            i + 1,
            range.start(),
            range.end()
        ),
        None => exec_err!("{fname}: argument {} is required", i + 1),
    }
}

/// A literal string argument; `Ok(None)` when absent or SQL NULL.
pub(crate) fn str_arg(fname: &str, args: &[ColumnarValue], i: usize) -> DfResult<Option<String>> {
    match args.get(i) {
        None => Ok(None),
        Some(ColumnarValue::Scalar(s)) => match s {
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
                Ok(v.clone())
            }
            ScalarValue::Null => Ok(None),
            _ => exec_err!("{fname}: argument {} must be a string literal", i + 1),
        },
        Some(ColumnarValue::Array(_)) => {
            exec_err!(
                "{fname}: argument {} must be a literal, not a column",
                i + 1
            )
        }
    }
}

/// Checks argument count and that the first argument has an accepted type; used by the
/// UDFs' `return_type`.
pub(crate) fn check_args(
    fname: &str,
    arg_types: &[DataType],
    counts: std::ops::RangeInclusive<usize>,
    accepts: impl Fn(&DataType) -> bool,
    needs: &str,
) -> DfResult<()> {
    if !counts.contains(&arg_types.len()) {
        return Err(DataFusionError::Plan(format!(
            "{fname} takes {} to {} arguments, got {}",
            counts.start(),
            counts.end(),
            arg_types.len()
        )));
    }
    if !accepts(&arg_types[0]) {
        return Err(DataFusionError::Plan(format!(
            "{fname} needs {needs}, got {}",
            arg_types[0]
        )));
    }
    Ok(())
}

/// Convenience for tests and benches: apply a UDF to one array with literal arguments.
pub fn apply(udf: &ScalarUDF, input: ArrayRef, literals: Vec<ScalarValue>) -> DfResult<ArrayRef> {
    use datafusion::arrow::datatypes::Field;
    use datafusion::logical_expr::ScalarFunctionArgs;
    let rows = input.len();
    let mut args = vec![ColumnarValue::Array(input)];
    args.extend(literals.into_iter().map(ColumnarValue::Scalar));
    let arg_fields: Vec<_> = args
        .iter()
        .enumerate()
        .map(|(i, a)| Arc::new(Field::new(format!("a{i}"), a.data_type(), true)))
        .collect();
    let types: Vec<DataType> = args.iter().map(|a| a.data_type()).collect();
    let ret = udf.return_type(&types)?;
    let out = udf.invoke_with_args(ScalarFunctionArgs {
        args,
        arg_fields,
        number_rows: rows,
        return_field: Arc::new(Field::new("out", ret, true)),
        config_options: Arc::new(Default::default()),
    })?;
    out.to_array(rows)
}

/// Builds a Utf8 array from optional strings (tests and benches).
pub fn strings<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, StringArray, StringViewArray};
    use proptest::prelude::*;

    /// Values that are equal or differ in every way a view tells apart: inline (<= 12
    /// bytes) or not, same length and 4-byte prefix with a later difference, empty.
    fn value() -> impl Strategy<Value = Option<String>> {
        prop::sample::select(vec![
            None,
            Some(String::new()),
            Some("EUR".to_string()),
            Some("twelve bytes".to_string()),
            Some("twelve byteZ".to_string()),
            Some("0123456789abcdef0123456789abcdef".to_string()),
            Some("0123456789abcdef0123456789abcdeF".to_string()),
            Some("0123zzzzzzzzzzzzzzzzzzzzzzzzzzzz".to_string()),
        ])
    }

    fn maximal_runs(v: &[Option<String>]) -> Vec<(Option<String>, usize)> {
        let mut out: Vec<(Option<String>, usize)> = vec![];
        for x in v {
            match out.last_mut() {
                Some((p, n)) if p == x => *n += 1,
                _ => out.push((x.clone(), 1)),
            }
        }
        out
    }

    fn runs_of(a: &ArrayRef) -> Vec<(Option<String>, usize)> {
        let mut out = vec![];
        super::for_each_text_run(a, |v, n| out.push((v.map(str::to_string), n))).unwrap();
        out
    }

    proptest! {
        /// A Utf8View column's runs are the maximal runs of equal values, as for Utf8,
        /// also when equal values live in different buffers (two arrays concatenated).
        #[test]
        fn view_runs_are_the_maximal_runs(
            a in prop::collection::vec(value(), 0..40),
            b in prop::collection::vec(value(), 0..40),
        ) {
            let all: Vec<Option<String>> = a.iter().chain(&b).cloned().collect();
            let views: Vec<ArrayRef> = [&a, &b]
                .iter()
                .map(|v| Arc::new(StringViewArray::from_iter(v.iter().cloned())) as ArrayRef)
                .collect();
            let refs: Vec<&dyn datafusion::arrow::array::Array> =
                views.iter().map(|v| v.as_ref()).collect();
            let joined = datafusion::arrow::compute::concat(&refs).unwrap();
            let utf8: ArrayRef = Arc::new(StringArray::from_iter(all.iter().cloned()));
            prop_assert_eq!(runs_of(&joined), maximal_runs(&all));
            prop_assert_eq!(runs_of(&utf8), maximal_runs(&all));
        }

        /// The fast trim is `str::trim`, for any text and white space of either kind.
        #[test]
        fn trimmed_is_trim(s in "[ \\t\\n\\u{a0}\\u{2003}]{0,2}\\PC{0,8}[ \\r\\u{3000}]{0,2}") {
            prop_assert_eq!(super::trimmed(&s), s.trim());
        }

        /// map_strings, which maps each run once, gives every row what mapping that
        /// row's value alone gives, for every string layout (nulls stay null; `false`
        /// from the mapping is null).
        #[test]
        fn map_strings_maps_every_row(v in prop::collection::vec(value(), 0..60)) {
            use datafusion::arrow::array::{AsArray, DictionaryArray};
            use datafusion::arrow::datatypes::Int32Type;
            let f = |s: &str, buf: &mut String| {
                buf.push_str(&s.to_uppercase());
                buf.push('!');
                s != "EUR"
            };
            let want: Vec<Option<String>> = v
                .iter()
                .map(|x| {
                    let mut buf = String::new();
                    x.as_deref().and_then(|s| f(s, &mut buf).then_some(buf))
                })
                .collect();
            let layouts: Vec<ArrayRef> = vec![
                Arc::new(StringArray::from_iter(v.iter().cloned())),
                Arc::new(StringViewArray::from_iter(v.iter().cloned())),
                Arc::new(v.iter().map(|x| x.as_deref()).collect::<DictionaryArray<Int32Type>>()),
            ];
            for a in &layouts {
                let got = super::map_strings(a, 0, f).unwrap();
                let got: Vec<Option<String>> =
                    got.as_string::<i32>().iter().map(|x| x.map(str::to_string)).collect();
                prop_assert_eq!(&got, &want, "{}", a.data_type());
            }
        }
    }
}
