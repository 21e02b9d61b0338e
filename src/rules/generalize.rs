//! `generalize`: coarsens a quasi-identifier so that fewer people share each value.
//!
//! - [`TruncUdf`] `anon_trunc(t, unit)`: timestamps and dates to the start of their day,
//!   ISO week, month, quarter or year (UTC). Same type out as in, so analytics can still
//!   compare and bucket them. Idempotent and monotone (property-tested).
//! - [`AgeBandUdf`] `anon_age_band(birth_date, as_of, width)`: full years at the run's
//!   as-of date, in bands of `width` years, top-coded at `90+`.
//! - [`PrefixUdf`] `anon_prefix(s, n)`: the first n characters (postal codes), trimmed and
//!   upper-cased.
//! - [`NetworkUdf`] `anon_ip_network(ip, v4_bits, v6_bits)`: an IP address to its network
//!   in CIDR form (`203.0.113.0/24`, `2001:db8:85a3::/48`); anything that does not parse
//!   as an IP becomes null rather than leaking through.

use std::net::Ipv6Addr;
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray, StringBuilder};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Date64Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use datafusion::common::{DataFusionError, Result as DfResult, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::{
    TruncUnit, check_args, first_array, int_arg, is_string, is_temporal, map_strings, str_arg,
};

/// Days from 0001-01-01 (CE day 1) to 1970-01-01.
const CE_TO_EPOCH_DAYS: i64 = 719_163;

pub fn date_to_days(d: NaiveDate) -> i32 {
    (d.num_days_from_ce() as i64 - CE_TO_EPOCH_DAYS) as i32
}

pub fn days_to_date(days: i64) -> Option<NaiveDate> {
    let ce = i32::try_from(days + CE_TO_EPOCH_DAYS).ok()?;
    NaiveDate::from_num_days_from_ce_opt(ce)
}

/// Truncates a day number (days since 1970-01-01) to the first day of its unit.
/// `None` outside chrono's calendar range (about ±262,000 years).
pub fn trunc_days(days: i64, unit: TruncUnit) -> Option<i64> {
    match unit {
        TruncUnit::Hour | TruncUnit::Day => Some(days),
        // 1970-01-01 was a Thursday: Monday-based weekday index is (days + 3) mod 7.
        TruncUnit::Week => Some(days - (days + 3).rem_euclid(7)),
        _ => {
            let d = days_to_date(days)?;
            let month = match unit {
                TruncUnit::Month => d.month(),
                TruncUnit::Quarter => (d.month() - 1) / 3 * 3 + 1,
                _ => 1,
            };
            let first = NaiveDate::from_ymd_opt(d.year(), month, 1)?;
            Some(date_to_days(first) as i64)
        }
    }
}

/// Truncates a tick count (`ticks_per_day` ticks per day since the epoch).
pub fn trunc_ticks(v: i64, ticks_per_day: i64, unit: TruncUnit) -> Option<i64> {
    if unit == TruncUnit::Hour {
        let per_hour = ticks_per_day / 24;
        return v.div_euclid(per_hour).checked_mul(per_hour);
    }
    let day = v.div_euclid(ticks_per_day);
    trunc_days(day, unit)?.checked_mul(ticks_per_day)
}

fn ticks_per_day(unit: &TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => 86_400,
        TimeUnit::Millisecond => 86_400_000,
        TimeUnit::Microsecond => 86_400_000_000,
        TimeUnit::Nanosecond => 86_400_000_000_000,
    }
}

fn out_of_range() -> DataFusionError {
    DataFusionError::Execution(
        "anon_trunc: a date is outside the supported calendar range (about ±262,000 years); \
         check the column for corrupt values"
            .into(),
    )
}

fn trunc_prim<T: ArrowPrimitiveType>(
    a: &PrimitiveArray<T>,
    f: impl Fn(T::Native) -> Option<T::Native>,
) -> DfResult<PrimitiveArray<T>> {
    a.try_unary::<_, T, DataFusionError>(|v| f(v).ok_or_else(out_of_range))
}

/// Truncates any timestamp or date array, keeping its type (and time zone).
pub fn trunc_array(array: &ArrayRef, unit: TruncUnit) -> DfResult<ArrayRef> {
    Ok(match array.data_type() {
        DataType::Date32 => Arc::new(trunc_prim(array.as_primitive::<Date32Type>(), |d| {
            trunc_days(d as i64, unit).and_then(|x| i32::try_from(x).ok())
        })?),
        DataType::Date64 => Arc::new(trunc_prim(array.as_primitive::<Date64Type>(), |v| {
            trunc_ticks(v, 86_400_000, unit)
        })?),
        DataType::Timestamp(tu, tz) => {
            let tpd = ticks_per_day(tu);
            let f = |v| trunc_ticks(v, tpd, unit);
            match tu {
                TimeUnit::Second => Arc::new(
                    trunc_prim::<TimestampSecondType>(array.as_primitive(), f)?
                        .with_timezone_opt(tz.clone()),
                ) as ArrayRef,
                TimeUnit::Millisecond => Arc::new(
                    trunc_prim::<TimestampMillisecondType>(array.as_primitive(), f)?
                        .with_timezone_opt(tz.clone()),
                ),
                TimeUnit::Microsecond => Arc::new(
                    trunc_prim::<TimestampMicrosecondType>(array.as_primitive(), f)?
                        .with_timezone_opt(tz.clone()),
                ),
                TimeUnit::Nanosecond => Arc::new(
                    trunc_prim::<TimestampNanosecondType>(array.as_primitive(), f)?
                        .with_timezone_opt(tz.clone()),
                ),
            }
        }
        other => return exec_err!("anon_trunc needs a timestamp or date column, got {other}"),
    })
}

/// Day numbers (days since the epoch, floor) of any timestamp or date array.
fn day_numbers(array: &ArrayRef) -> DfResult<Vec<Option<i64>>> {
    let ticks_per = match array.data_type() {
        DataType::Date32 => 1,
        DataType::Date64 => 86_400_000,
        DataType::Timestamp(tu, _) => ticks_per_day(tu),
        other => return exec_err!("anon_age_band needs a date or timestamp column, got {other}"),
    };
    // Dates and timestamps are plain integers underneath; the cast only relabels them.
    let ticks = datafusion::arrow::compute::cast(array, &DataType::Int64)?;
    Ok(ticks
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.map(|v| v.div_euclid(ticks_per)))
        .collect())
}

/// Full years between `birth` and `as_of`; `None` when born after `as_of`.
pub fn age_years(birth: NaiveDate, as_of: NaiveDate) -> Option<u32> {
    if birth > as_of {
        return None;
    }
    let mut years = as_of.year() - birth.year();
    if (as_of.month(), as_of.day()) < (birth.month(), birth.day()) {
        years -= 1;
    }
    u32::try_from(years).ok()
}

/// Ages at and above this are one band, `90+` (few people are that old, so exact ages
/// there single people out).
pub const AGE_TOP: u32 = 90;

/// The band label for an age: `30-39` for width 10, `90+` at the top.
pub fn age_band_label(age: u32, width: u32, out: &mut String) {
    use std::fmt::Write;
    if age >= AGE_TOP {
        let _ = write!(out, "{AGE_TOP}+");
        return;
    }
    let lo = age / width * width;
    let hi = (lo + width - 1).min(AGE_TOP - 1);
    if lo == hi {
        let _ = write!(out, "{lo}");
    } else {
        let _ = write!(out, "{lo}-{hi}");
    }
}

/// The first `n` characters of `s`, trimmed and upper-cased.
pub fn prefix(s: &str, n: usize, out: &mut String) {
    for c in super::trimmed(s).chars().take(n) {
        out.extend(c.to_uppercase());
    }
}

/// The network of an IP address in CIDR form, or `None` when `s` is not an IP address.
pub fn ip_network(s: &str, v4_bits: u8, v6_bits: u8) -> Option<String> {
    let mut out = String::new();
    ip_network_into(s, v4_bits, v6_bits, &mut out).then_some(out)
}

/// [`ip_network`] appended to `out`; `false` (and `out` as it was) when `s` is not an
/// IP address. IPv4 (the common case: one per transaction) is parsed and printed by hand
/// ([`dotted_quad`] accepts exactly what `Ipv4Addr::from_str` accepts; a property test
/// holds it to that); so is IPv6 in its plain forms ([`colon_hex`], [`push_ipv6`]).
pub fn ip_network_into(s: &str, v4_bits: u8, v6_bits: u8, out: &mut String) -> bool {
    let s = super::trimmed(s);
    let v4 = |bits: u32, out: &mut String| {
        let mask = if v4_bits == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(v4_bits.min(32)))
        };
        for (i, o) in (bits & mask).to_be_bytes().into_iter().enumerate() {
            if i > 0 {
                out.push('.');
            }
            push_small(out, o);
        }
        out.push('/');
        push_small(out, v4_bits);
    };
    if let Some(bits) = dotted_quad(s.as_bytes()) {
        v4(bits, out);
        return true;
    }
    let Some(a) = ipv6(s) else {
        return false;
    };
    let mask = if v6_bits == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(v6_bits.min(128)))
    };
    push_ipv6(out, a & mask);
    out.push('/');
    push_small(out, v6_bits);
    true
}

/// What `Ipv6Addr::from_str` makes of `s`, as bits: the plain colon-hex forms by hand
/// ([`colon_hex`]), the rest (an IPv4 tail) through `std::net`.
pub(crate) fn ipv6(s: &str) -> Option<u128> {
    colon_hex(s.as_bytes()).or_else(|| s.parse::<Ipv6Addr>().ok().map(u128::from))
}

/// An IPv6 address in plain colon-hex form (groups of 1 to 4 hex digits of either case,
/// at most one `::`), as bits; `None` for anything else, including the forms with an
/// IPv4 tail that `Ipv6Addr::from_str` also accepts. What it accepts, `from_str` accepts
/// with the same value (a property test holds it to that). With [`push_ipv6`], the
/// `network` rule's IPv6 path is 2.9x std's parse and print
/// (`cargo bench --bench kernels -- generalize/network`).
pub(crate) fn colon_hex(b: &[u8]) -> Option<u128> {
    let mut groups = [0u16; 8];
    let mut n = 0;
    // Where the `::` stands: how many groups precede it.
    let mut gap = None;
    let mut i = 0;
    if b.starts_with(b"::") {
        gap = Some(0);
        i = 2;
    }
    while i < b.len() {
        let start = i;
        let mut v = 0u16;
        while i < b.len() && i - start < 4 {
            let d = HEX_VALUE[usize::from(b[i])];
            if d > 15 {
                break;
            }
            v = v << 4 | u16::from(d);
            i += 1;
        }
        if i == start || n == 8 {
            return None;
        }
        groups[n] = v;
        n += 1;
        if i == b.len() {
            break;
        }
        if b[i] != b':' {
            return None;
        }
        i += 1;
        if b.get(i) == Some(&b':') {
            if gap.is_some() {
                return None;
            }
            gap = Some(n);
            i += 1;
        } else if i == b.len() {
            return None;
        }
    }
    let mut bits = [0u16; 8];
    match gap {
        None if n == 8 => bits = groups,
        Some(g) if n <= 7 => {
            bits[..g].copy_from_slice(&groups[..g]);
            bits[8 - (n - g)..].copy_from_slice(&groups[g..n]);
        }
        _ => return None,
    }
    Some(bits.iter().fold(0u128, |a, g| a << 16 | u128::from(*g)))
}

/// The value of each hex digit (either case); 255 for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [255u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Appends the address as `Ipv6Addr`'s `Display` writes it (RFC 5952: lower-case hex
/// without leading zeros, the first longest run of two or more zero groups as `::`); an
/// IPv4-mapped address goes through `Display` itself. A property test holds it to that.
pub(crate) fn push_ipv6(out: &mut String, a: u128) {
    let addr = Ipv6Addr::from(a);
    if addr.to_ipv4_mapped().is_some() {
        use std::fmt::Write;
        let _ = write!(out, "{addr}");
        return;
    }
    let g = addr.segments();
    let (mut best, mut best_len, mut run, mut run_len) = (0, 0, 0, 0);
    for (i, v) in g.iter().enumerate() {
        if *v == 0 {
            if run_len == 0 {
                run = i;
            }
            run_len += 1;
            if run_len > best_len {
                (best, best_len) = (run, run_len);
            }
        } else {
            run_len = 0;
        }
    }
    // At most 8 groups of 4 digits and 7 colons: 39 bytes, written here, then appended.
    let mut buf = [0u8; 40];
    let mut n = 0;
    if best_len > 1 {
        put_groups(&mut buf, &mut n, &g[..best]);
        buf[n..n + 2].copy_from_slice(b"::");
        n += 2;
        put_groups(&mut buf, &mut n, &g[best + best_len..]);
    } else {
        put_groups(&mut buf, &mut n, &g);
    }
    out.push_str(std::str::from_utf8(&buf[..n]).expect("hex digits and colons"));
}

/// Groups in lower-case hex without leading zeros, colon-separated, at `buf[*n..]`.
fn put_groups(buf: &mut [u8; 40], n: &mut usize, groups: &[u16]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, v) in groups.iter().enumerate() {
        if i > 0 {
            buf[*n] = b':';
            *n += 1;
        }
        let digits = (4 - v.leading_zeros() as usize / 4).max(1);
        for k in (0..digits).rev() {
            buf[*n] = HEX[usize::from(v >> (4 * k) & 15)];
            *n += 1;
        }
    }
}

/// `a.b.c.d` with each part 0..=255 in decimal without leading zeros (what
/// `Ipv4Addr::from_str` accepts), as bits; `None` for anything else.
pub(crate) fn dotted_quad(b: &[u8]) -> Option<u32> {
    let mut bits = 0u32;
    let mut parts = 0;
    let mut i = 0;
    while parts < 4 {
        if parts > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let start = i;
        let mut v = 0u32;
        while i < b.len() && b[i].is_ascii_digit() && i - start < 3 {
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        let len = i - start;
        if len == 0 || v > 255 || (len > 1 && b[start] == b'0') {
            return None;
        }
        bits = bits << 8 | v;
        parts += 1;
    }
    (i == b.len()).then_some(bits)
}

/// Appends `v` in decimal.
fn push_small(out: &mut String, v: u8) {
    if v >= 100 {
        out.push(char::from(b'0' + v / 100));
    }
    if v >= 10 {
        out.push(char::from(b'0' + v / 10 % 10));
    }
    out.push(char::from(b'0' + v % 10));
}

macro_rules! udf_struct {
    ($name:ident) => {
        #[derive(Debug, PartialEq, Eq, Hash)]
        pub struct $name {
            signature: Signature,
        }
        impl $name {
            pub fn new() -> Self {
                Self {
                    signature: Signature::variadic_any(Volatility::Immutable),
                }
            }
        }
        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}
pub(crate) use udf_struct;

udf_struct!(TruncUdf);
udf_struct!(AgeBandUdf);
udf_struct!(PrefixUdf);
udf_struct!(NetworkUdf);

impl ScalarUDFImpl for TruncUdf {
    fn name(&self) -> &str {
        "anon_trunc"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        check_args(
            self.name(),
            arg_types,
            2..=2,
            is_temporal,
            "a timestamp or date column",
        )?;
        Ok(arg_types[0].clone())
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = first_array(&args.args, args.number_rows)?;
        let unit = str_arg(self.name(), &args.args, 1)?.unwrap_or_default();
        let Some(unit) = TruncUnit::parse(&unit) else {
            return exec_err!(
                "anon_trunc: unknown unit '{unit}', expected one of {}",
                TruncUnit::NAMES.join(", ")
            );
        };
        Ok(ColumnarValue::Array(trunc_array(&a, unit)?))
    }
}

impl ScalarUDFImpl for AgeBandUdf {
    fn name(&self) -> &str {
        "anon_age_band"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        check_args(
            self.name(),
            arg_types,
            2..=3,
            is_temporal,
            "a date or timestamp column",
        )?;
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = first_array(&args.args, args.number_rows)?;
        let as_of = match args.args.get(1) {
            Some(ColumnarValue::Scalar(s)) => match s.cast_to(&DataType::Date32)? {
                datafusion::common::ScalarValue::Date32(Some(d)) => days_to_date(d as i64),
                _ => None,
            },
            _ => None,
        };
        let Some(as_of) = as_of else {
            return exec_err!("anon_age_band: argument 2 must be a date literal (the as-of date)");
        };
        let width = int_arg(self.name(), &args.args, 2, Some(10), 1..=100)? as u32;
        let days = day_numbers(&a)?;
        let mut out = StringBuilder::with_capacity(days.len(), days.len() * 5);
        let mut buf = String::new();
        for d in days {
            match d.and_then(days_to_date).and_then(|b| age_years(b, as_of)) {
                Some(age) => {
                    buf.clear();
                    age_band_label(age, width, &mut buf);
                    out.append_value(&buf);
                }
                None => out.append_null(),
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

impl ScalarUDFImpl for PrefixUdf {
    fn name(&self) -> &str {
        "anon_prefix"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        check_args(self.name(), arg_types, 2..=2, is_string, "a string column")?;
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = first_array(&args.args, args.number_rows)?;
        let n = int_arg(self.name(), &args.args, 1, None, 0..=64)? as usize;
        let out = map_strings(&a, a.len() * n, |s, buf| {
            prefix(s, n, buf);
            true
        })?;
        Ok(ColumnarValue::Array(out))
    }
}

impl ScalarUDFImpl for NetworkUdf {
    fn name(&self) -> &str {
        "anon_ip_network"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        check_args(self.name(), arg_types, 1..=3, is_string, "a string column")?;
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = first_array(&args.args, args.number_rows)?;
        let v4 = int_arg(self.name(), &args.args, 1, Some(24), 0..=32)? as u8;
        let v6 = int_arg(self.name(), &args.args, 2, Some(48), 0..=128)? as u8;
        let out = map_strings(&a, a.len() * 16, |s, buf| ip_network_into(s, v4, v6, buf))?;
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn d(y: i32, m: u32, day: u32) -> i64 {
        date_to_days(NaiveDate::from_ymd_opt(y, m, day).unwrap()) as i64
    }

    #[test]
    fn trunc_units() {
        let x = d(2024, 8, 15); // a Thursday
        assert_eq!(trunc_days(x, TruncUnit::Day), Some(x));
        assert_eq!(trunc_days(x, TruncUnit::Week), Some(d(2024, 8, 12)));
        assert_eq!(trunc_days(x, TruncUnit::Month), Some(d(2024, 8, 1)));
        assert_eq!(trunc_days(x, TruncUnit::Quarter), Some(d(2024, 7, 1)));
        assert_eq!(trunc_days(x, TruncUnit::Year), Some(d(2024, 1, 1)));
        assert_eq!(
            trunc_days(d(1969, 12, 31), TruncUnit::Week),
            Some(d(1969, 12, 29))
        );
        assert_eq!(trunc_ticks(-1, 86_400, TruncUnit::Day), Some(-86_400));
        assert_eq!(trunc_ticks(-1, 86_400, TruncUnit::Hour), Some(-3_600));
        assert_eq!(trunc_ticks(7_299, 86_400, TruncUnit::Hour), Some(7_200));
        assert_eq!(trunc_days(d(1, 1, 1), TruncUnit::Year), Some(d(1, 1, 1)));
        assert_eq!(
            trunc_days(d(9999, 12, 31), TruncUnit::Quarter),
            Some(d(9999, 10, 1))
        );
    }

    #[test]
    fn ages_and_bands() {
        let asof = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let b = NaiveDate::from_ymd_opt(1990, 3, 2).unwrap();
        assert_eq!(age_years(b, asof), Some(35));
        assert_eq!(
            age_years(NaiveDate::from_ymd_opt(2000, 2, 29).unwrap(), asof),
            Some(26)
        );
        assert_eq!(
            age_years(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(), asof),
            None
        );
        let mut s = String::new();
        age_band_label(35, 10, &mut s);
        assert_eq!(s, "30-39");
        s.clear();
        age_band_label(93, 10, &mut s);
        assert_eq!(s, "90+");
        s.clear();
        age_band_label(88, 5, &mut s);
        assert_eq!(s, "85-89");
    }

    /// The definition: `std::net` parses, the mask applies, `Display` prints.
    fn reference_network(s: &str, v4_bits: u8, v6_bits: u8) -> Option<String> {
        let mask4 = |b: u8| {
            if b == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(b))
            }
        };
        let mask6 = |b: u8| {
            if b == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(b))
            }
        };
        Some(match s.trim().parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => format!(
                "{}/{v4_bits}",
                Ipv4Addr::from(u32::from(a) & mask4(v4_bits))
            ),
            IpAddr::V6(a) => format!(
                "{}/{v6_bits}",
                Ipv6Addr::from(u128::from(a) & mask6(v6_bits))
            ),
        })
    }

    proptest::proptest! {
        #[test]
        fn the_fast_network_path_equals_std(
            octets in proptest::collection::vec(0u32..300, 3..6),
            zeros in proptest::collection::vec(0usize..3, 6),
            junk in "[ 0-9.:a-f/]{0,24}",
            v6 in proptest::prelude::any::<u128>(),
            v4 in proptest::prelude::any::<u32>(),
            v4_bits in 0u8..=32,
            v6_bits in 0u8..=128,
            pad in proptest::bool::ANY,
        ) {
            // Dotted quads and near misses: 3 to 5 parts, values up to 299, leading zeros.
            let quad = octets
                .iter()
                .zip(&zeros)
                .map(|(o, z)| format!("{}{o}", "0".repeat(*z % 2 * (*z))))
                .collect::<Vec<_>>()
                .join(".");
            let quad = if pad { format!(" {quad}\t") } else { quad };
            let v6 = std::net::Ipv6Addr::from(v6).to_string();
            let v4 = format!("{}", Ipv4Addr::from(v4));
            for s in [quad.as_str(), junk.as_str(), v6.as_str(), v4.as_str(), "::ffff:1.2.3.4", "1.2.3.4."] {
                proptest::prop_assert_eq!(
                    dotted_quad(s.trim().as_bytes()),
                    s.trim().parse::<Ipv4Addr>().ok().map(u32::from),
                    "{:?}", s
                );
                proptest::prop_assert_eq!(
                    ip_network(s, v4_bits, v6_bits),
                    reference_network(s, v4_bits, v6_bits),
                    "{:?}", s
                );
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn ipv6_by_hand_equals_std(
            groups in proptest::collection::vec("[0-9a-fA-F]{1,5}", 0..10),
            gap in 0usize..12,
            junk in "[0-9a-fA-F:.]{0,40}",
            bits in proptest::prelude::any::<u128>(),
            zeros in proptest::prelude::any::<u8>(),
        ) {
            // Colon-hex forms and near misses: 0 to 9 groups of 1 to 5 digits of either
            // case, with or without a `::` anywhere; and strings of the same characters.
            let mut parts = groups.clone();
            if gap <= parts.len() {
                parts.insert(gap, String::new());
                if gap == 0 || gap == parts.len() - 1 {
                    parts.insert(gap, String::new());
                }
            }
            let form = parts.join(":");
            // Addresses with runs of zero groups, as std prints them and fully written.
            let g: Vec<u16> = (0..8)
                .map(|i| if zeros >> i & 1 == 1 { 0 } else { (bits >> (16 * i)) as u16 })
                .collect();
            let addr = std::net::Ipv6Addr::from(g.iter().fold(0u128, |a, v| a << 16 | u128::from(*v)));
            let printed = addr.to_string();
            let full = g.iter().map(|v| format!("{v:04X}")).collect::<Vec<_>>().join(":");
            for s in [form.as_str(), junk.as_str(), printed.as_str(), full.as_str()] {
                let by_std = s.parse::<Ipv6Addr>().ok().map(u128::from);
                let by_hand = colon_hex(s.as_bytes());
                if s.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    proptest::prop_assert_eq!(by_hand, by_std, "{:?}", s);
                } else if by_hand.is_some() {
                    proptest::prop_assert_eq!(by_hand, by_std, "{:?}", s);
                }
                proptest::prop_assert_eq!(ipv6(s), by_std, "{:?}", s);
            }
            let mut out = String::new();
            push_ipv6(&mut out, u128::from(addr));
            proptest::prop_assert_eq!(&out, &printed);
        }
    }

    #[test]
    fn ipv6_edge_forms() {
        for s in [
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3::4:5:6:7",
        ] {
            assert_eq!(
                colon_hex(s.as_bytes()),
                s.parse::<Ipv6Addr>().ok().map(u128::from),
                "{s}"
            );
            assert!(colon_hex(s.as_bytes()).is_some(), "{s}");
        }
        for s in [
            ":",
            ":::",
            "1:::2",
            "1::2::3",
            ":1::",
            "1:2:3:4:5:6:7:8::",
            "12345::",
            "1:",
            "::ffff:1.2.3.4",
        ] {
            assert_eq!(colon_hex(s.as_bytes()), None, "{s}");
        }
        for a in [0u128, 1, u128::MAX, 0xffff_0102_0304, 1 << 112] {
            let mut out = String::new();
            push_ipv6(&mut out, a);
            assert_eq!(out, Ipv6Addr::from(a).to_string());
        }
    }

    #[test]
    fn networks() {
        assert_eq!(
            ip_network(" 203.0.113.77 ", 24, 48).as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            ip_network("2001:db8:85a3:8d3:1319:8a2e:370:7348", 24, 48).as_deref(),
            Some("2001:db8:85a3::/48")
        );
        assert_eq!(ip_network("not an ip", 24, 48), None);
        for bad in [
            "01.2.3.4",
            "1.2.3.04",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
        ] {
            assert_eq!(ip_network(bad, 24, 48), None, "{bad}");
        }
        assert_eq!(ip_network("10.1.2.3", 0, 48).as_deref(), Some("0.0.0.0/0"));
        let mut s = String::new();
        prefix(" sw1a 1aa", 2, &mut s);
        assert_eq!(s, "SW");
    }
}
