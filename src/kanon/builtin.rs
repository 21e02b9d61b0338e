//! Built-in generalization hierarchies for quasi-identifiers the policy already
//! generalizes, so k-anonymity works without hierarchy files: each rule's published values
//! get coarser the same way the rule made them (a month becomes a quarter, a 10-year age
//! band a 20-year one, a 2-character postal prefix a 1-character one, a /24 network a /16,
//! a country its region), and the last level is always `*`.
//!
//! A hierarchy here is a function of the published (level-0) text; [`rows`] turns the
//! distinct values of a column into ARX-format rows (one per value, one column per level)
//! for [`super::Hierarchy::from_rows`]. Every row of one column has the same height,
//! whatever the value, so the lattice is the same for every run.
//!
//! Level-0 text of non-string columns ([`canonical`]): dates and timestamps at midnight as
//! `YYYY-MM-DD`, other timestamps as `YYYY-MM-DDTHH:MM:SS` (UTC); numbers and booleans as
//! Arrow prints them; a null is `*` (it says nothing, like a suppressed value).

use chrono::{Datelike, NaiveDate, NaiveDateTime};

use crate::policy::Role;
use crate::rules::generalize::{AGE_TOP, ip_network};
use crate::rules::{Generalization, Rule, TruncUnit};

/// The value every hierarchy ends in, and the text of a null.
pub const TOP: &str = "*";

/// What a column's built-in hierarchy is, from the rule that published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Builtin {
    /// Dates and timestamps: the coarser calendar units above `from`, then `*`.
    Time { from: Option<TruncUnit> },
    /// Age bands of `width` years: doubled widths until one band covers every age.
    AgeBand { width: u32 },
    /// Postal prefixes of `length` characters: one character fewer per level.
    Prefix { length: u32 },
    /// IP networks: /p, /16, /8 for IPv4; /p, /32, /16 for IPv6.
    Network { ipv4_prefix: u8, ipv6_prefix: u8 },
    /// ISO 3166 alpha-2 country codes: the UN M49 region, then `*`.
    Country,
    /// Anything else: the value, then `*`.
    Flat,
}

impl Builtin {
    /// The hierarchy for a column published by `rule`; `role` and the column's name say
    /// whether a kept column holds countries; `temporal` whether it holds dates/times.
    pub fn for_column(rule: &Rule, role: Option<Role>, name: &str, temporal: bool) -> Builtin {
        match rule {
            Rule::Generalize(Generalization::Trunc { unit }) => Builtin::Time { from: Some(*unit) },
            Rule::Generalize(Generalization::AgeBand { width }) => {
                Builtin::AgeBand { width: *width }
            }
            Rule::Generalize(Generalization::Prefix { length }) => {
                Builtin::Prefix { length: *length }
            }
            Rule::Generalize(Generalization::Network {
                ipv4_prefix,
                ipv6_prefix,
            }) => Builtin::Network {
                ipv4_prefix: *ipv4_prefix,
                ipv6_prefix: *ipv6_prefix,
            },
            Rule::Keep if temporal => Builtin::Time { from: None },
            Rule::Keep if role == Some(Role::Country) || name.eq_ignore_ascii_case("country") => {
                Builtin::Country
            }
            _ => Builtin::Flat,
        }
    }

    /// A short name for reports (`builtin:time`).
    pub fn kind(&self) -> &'static str {
        match self {
            Builtin::Time { .. } => "time",
            Builtin::AgeBand { .. } => "age_band",
            Builtin::Prefix { .. } => "prefix",
            Builtin::Network { .. } => "network",
            Builtin::Country => "country_region",
            Builtin::Flat => "flat",
        }
    }

    /// Names of the levels, for reports (`month`, `quarter`, ..., `*`).
    pub fn level_names(&self) -> Vec<String> {
        match self {
            Builtin::Time { from } => {
                let mut v = vec![from.map_or("as published".to_string(), |u| u.as_str().into())];
                v.extend(coarser_units(*from).iter().map(|u| u.as_str().to_string()));
                v.push(TOP.into());
                v
            }
            Builtin::AgeBand { width } => {
                let mut v: Vec<String> = band_widths(*width)
                    .iter()
                    .map(|w| format!("{w}-year bands"))
                    .collect();
                v.push(TOP.into());
                v
            }
            Builtin::Prefix { length } => {
                let mut v: Vec<String> = (1..=(*length).max(1))
                    .rev()
                    .map(|n| format!("{n} character(s)"))
                    .collect();
                v.push(TOP.into());
                v
            }
            Builtin::Network {
                ipv4_prefix,
                ipv6_prefix,
            } => {
                let (a, b) = network_levels(*ipv4_prefix, *ipv6_prefix);
                let mut v: Vec<String> = a
                    .iter()
                    .zip(&b)
                    .map(|(x, y)| format!("IPv4 /{x}, IPv6 /{y}"))
                    .collect();
                v.push(TOP.into());
                v
            }
            Builtin::Country => vec!["country".into(), "region".into(), TOP.into()],
            Builtin::Flat => vec!["value".into(), TOP.into()],
        }
    }

    /// Number of levels, level 0 and `*` included.
    pub fn height(&self) -> usize {
        self.level_names().len()
    }

    /// One value's generalizations, level 0 (the value) to `*`.
    pub fn row(&self, value: &str) -> Vec<String> {
        let h = self.height();
        if value == TOP {
            return vec![TOP.to_string(); h];
        }
        let mut row = vec![value.to_string()];
        match self {
            Builtin::Time { from } => {
                let when = parse_time(value);
                for u in coarser_units(*from) {
                    row.push(match when {
                        Some(t) => trunc_text(t, u),
                        None => TOP.to_string(),
                    });
                }
            }
            Builtin::AgeBand { width } => {
                let lo = band_low(value);
                for w in band_widths(*width).into_iter().skip(1) {
                    row.push(match lo {
                        Some(lo) => band_label(lo, w),
                        None => TOP.to_string(),
                    });
                }
            }
            Builtin::Prefix { length } => {
                for n in (1..(*length).max(1)).rev() {
                    row.push(value.chars().take(n as usize).collect());
                }
            }
            Builtin::Network {
                ipv4_prefix,
                ipv6_prefix,
            } => {
                let (a, b) = network_levels(*ipv4_prefix, *ipv6_prefix);
                let addr = value.split('/').next().unwrap_or(value);
                for (x, y) in a.iter().zip(&b).skip(1) {
                    row.push(ip_network(addr, *x, *y).unwrap_or_else(|| TOP.to_string()));
                }
            }
            Builtin::Country => row.push(region(value).to_string()),
            Builtin::Flat => {}
        }
        row.push(TOP.to_string());
        debug_assert_eq!(row.len(), h);
        row
    }
}

/// ARX-format rows for the distinct values of a column (sorted, so the hierarchy is the
/// same whatever order the data came in).
pub fn rows<'a>(b: &Builtin, values: impl IntoIterator<Item = &'a str>) -> Vec<Vec<String>> {
    let mut v: Vec<&str> = values.into_iter().collect();
    v.sort_unstable();
    v.dedup();
    v.into_iter().map(|x| b.row(x)).collect()
}

/// Day, month, quarter, year: those strictly coarser than `from` (all of them for a value
/// kept whole, whose finest level is its day).
fn coarser_units(from: Option<TruncUnit>) -> Vec<TruncUnit> {
    let chain = [
        TruncUnit::Day,
        TruncUnit::Month,
        TruncUnit::Quarter,
        TruncUnit::Year,
    ];
    match from {
        None => chain.to_vec(),
        Some(f) => chain.into_iter().filter(|u| *u > f).collect(),
    }
}

/// A value's text ([`super::read::canonical`]) as a time: a date at midnight, or a time
/// with or without a fraction of a second.
pub(super) fn parse_time(s: &str) -> Option<NaiveDateTime> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0);
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok()
}

/// The start of `t`'s unit as `YYYY-MM-DD` (week and hour never appear here).
fn trunc_text(t: NaiveDateTime, u: TruncUnit) -> String {
    let d = t.date();
    let (m, day) = match u {
        TruncUnit::Month => (d.month(), 1),
        TruncUnit::Quarter => ((d.month() - 1) / 3 * 3 + 1, 1),
        TruncUnit::Year => (1, 1),
        _ => (d.month(), d.day()),
    };
    format!("{:04}-{m:02}-{day:02}", d.year())
}

/// Band widths from `width` doubling until one band starts at 0 and reaches the top.
fn band_widths(width: u32) -> Vec<u32> {
    let mut v = vec![width.max(1)];
    while *v.last().unwrap() < AGE_TOP {
        let next = v.last().unwrap() * 2;
        v.push(next);
    }
    v
}

/// The lower bound of a band label (`30-39`, `30`, `90+`).
fn band_low(label: &str) -> Option<u32> {
    label
        .trim_end_matches('+')
        .split('-')
        .next()
        .and_then(|x| x.parse().ok())
}

/// The band of width `w` holding age `lo`: `0-39`, or `80+` when it reaches the top.
fn band_label(lo: u32, w: u32) -> String {
    let start = lo / w * w;
    if start + w > AGE_TOP {
        format!("{start}+")
    } else {
        format!("{start}-{}", start + w - 1)
    }
}

/// The prefix lengths of the network levels (same count for both families).
fn network_levels(v4: u8, v6: u8) -> (Vec<u8>, Vec<u8>) {
    (
        vec![v4, v4.min(16), v4.min(8)],
        vec![v6, v6.min(32), v6.min(16)],
    )
}

/// UN M49 region of an ISO 3166-1 alpha-2 code (`Unknown` for anything else).
pub fn region(code: &str) -> &'static str {
    const REGIONS: [(&str, &str); 5] = [
        (
            "Africa",
            "DZ AO BJ BW BF BI CV CM CF TD KM CG CD CI DJ EG GQ ER SZ ET GA GM GH GN GW KE LS LR \
             LY MG MW ML MR MU YT MA MZ NA NE NG RE RW SH ST SN SC SL SO ZA SS SD TZ TG TN UG EH \
             ZM ZW IO TF",
        ),
        (
            "Americas",
            "AI AG AR AW BS BB BZ BM BO BQ BV BR CA KY CL CO CR CU CW DM DO EC SV FK GF GL GD GP \
             GT GY HT HN JM MQ MX MS NI PA PY PE PR BL KN LC MF PM VC SX GS SR TT TC US UM VG VI \
             UY VE",
        ),
        (
            "Asia",
            "AF AM AZ BH BD BT BN KH CN CY GE HK IN ID IR IQ IL JP JO KZ KW KG LA LB MO MY MV MN \
             MM NP KP OM PK PS PH QA SA SG KR LK SY TW TJ TH TL TR TM AE UZ VN YE",
        ),
        (
            "Europe",
            "AX AL AD AT BY BE BA BG HR CZ DK EE FO FI FR DE GI GR GG VA HU IS IE IM IT JE XK LV \
             LI LT LU MT MD MC ME NL MK NO PL PT RO RU SM RS SK SI ES SJ SE CH UA GB",
        ),
        (
            "Oceania",
            "AS AU CX CC CK FJ PF GU HM KI MH FM NR NC NZ NU NF MP PW PG PN WS SB TK TO TV VU WF",
        ),
    ];
    let c = code.trim().to_ascii_uppercase();
    REGIONS
        .iter()
        .find(|(_, codes)| codes.split_whitespace().any(|x| x == c))
        .map_or("Unknown", |(r, _)| r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_times_text_parses_with_or_without_a_fraction_of_a_second() {
        let day = NaiveDate::from_ymd_opt(2025, 1, 5).unwrap();
        assert_eq!(parse_time("2025-01-05"), day.and_hms_opt(0, 0, 0));
        assert_eq!(parse_time("2025-01-05T10:00:01"), day.and_hms_opt(10, 0, 1));
        assert_eq!(
            parse_time("2025-01-05T00:00:00.25"),
            day.and_hms_milli_opt(0, 0, 0, 250)
        );
    }

    #[test]
    fn each_builtin_generalizes_to_the_top() {
        let month = Builtin::Time {
            from: Some(TruncUnit::Month),
        };
        assert_eq!(
            month.row("2024-08-01"),
            ["2024-08-01", "2024-07-01", "2024-01-01", "*"]
        );
        let kept = Builtin::Time { from: None };
        assert_eq!(
            kept.row("2024-08-17T10:30:00"),
            [
                "2024-08-17T10:30:00",
                "2024-08-17",
                "2024-08-01",
                "2024-07-01",
                "2024-01-01",
                "*"
            ]
        );
        let age = Builtin::AgeBand { width: 10 };
        assert_eq!(
            age.row("30-39"),
            ["30-39", "20-39", "0-39", "0-79", "0+", "*"]
        );
        assert_eq!(age.row("90+"), ["90+", "80+", "80+", "80+", "0+", "*"]);
        assert_eq!(age.row("*"), ["*"; 6]);
        let postal = Builtin::Prefix { length: 3 };
        assert_eq!(postal.row("SW1"), ["SW1", "SW", "S", "*"]);
        let net = Builtin::Network {
            ipv4_prefix: 24,
            ipv6_prefix: 48,
        };
        assert_eq!(
            net.row("203.0.113.0/24"),
            ["203.0.113.0/24", "203.0.0.0/16", "203.0.0.0/8", "*"]
        );
        assert_eq!(
            net.row("2001:db8:85a3::/48"),
            ["2001:db8:85a3::/48", "2001:db8::/32", "2001::/16", "*"]
        );
        assert_eq!(Builtin::Country.row("DE"), ["DE", "Europe", "*"]);
        assert_eq!(Builtin::Country.row("ZZ"), ["ZZ", "Unknown", "*"]);
        assert_eq!(Builtin::Flat.row("card"), ["card", "*"]);
        for b in [
            month,
            kept,
            age,
            postal,
            net,
            Builtin::Country,
            Builtin::Flat,
        ] {
            assert_eq!(b.level_names().len(), b.row("x").len(), "{b:?}");
        }
    }

    #[test]
    fn every_generated_country_has_a_region() {
        for c in [
            "US", "GB", "DE", "FR", "NL", "ES", "IT", "PL", "SE", "BR", "MX", "IN", "JP", "AU",
        ] {
            assert_ne!(region(c), "Unknown", "{c}");
        }
    }
}
