//! `scrub`: removes identifiers from free text (form answers, support notes) while keeping
//! the rest of the text readable.
//!
//! Replaced, in this order, each by a placeholder:
//! - email addresses -> `[EMAIL]`: local parts and domains in any script (`josé@example.com`,
//!   `frank@例え.jp`, a homoglyph domain such as `exаmple.com` with a Cyrillic `а`), quoted
//!   local parts (`"john doe"@example.com`), the full-width and small at signs (`＠`, `﹫`) and
//!   full stop (`．`), and format characters (zero-width space, word joiner, soft hyphen,
//!   BOM: `\p{Cf}`) anywhere inside
//! - IBANs whose ISO 13616 mod-97 checksum holds -> `[IBAN]`; one written in lower case
//!   (or in full-width forms) must also have a known country code and that country's length
//! - IPv6 and IPv4 addresses (that parse as such) -> `[IP]`
//! - card numbers, 13-19 digits with optional spaces or dashes, passing Luhn -> `[CARD]`
//! - any other run of 7 or more digits (spaces, dots, dashes, parentheses and a leading
//!   `+` allowed between them): phone numbers -> `[PHONE]`, and longer digit runs (account
//!   numbers, cards that fail Luhn) -> `[NUMBER]`. ISO dates (`2024-05-01`) are left alone.
//!
//! Digits are those of any script (`\p{Nd}`: full-width `０６１２３４５６７８`, Arabic-Indic
//! `٠٦١٢٣٤٥٦٧٨`, ...), valued by [`digit_value`] for the Luhn and mod-97 checks; spaces
//! are any of `\p{Zs}` (no-break and ideographic spaces too), dashes any of `\p{Pd}`, and
//! format characters may sit between digits.
//!
//! With `names` (columns of the same table, e.g. `first_name` and `last_name`), each row's
//! name is removed from that row's text too -> `[NAME]` ([`scrub_names`]): every word of
//! the name, in any case, with or without accents (`José`, `JOSE`), German umlauts
//! written either way (`Müller`, `Mueller`), full-width letters, possessives (`Anna's`),
//! and a run of them (`Anna Kowalska`) as one placeholder. The particles that join a
//! name's parts (`van der`, `de la`) are not looked for alone; a word of one letter (an
//! initial) is not either.
//!
//! Replacing one identifier can expose another (the passes repeat until nothing more is
//! replaced); a text that has not settled after [`MAX_ROUNDS`] rounds (text built so that
//! each round exposes one more, which would cost time quadratic in its length) is
//! replaced whole by `[REMOVED]`.
//!
//! Scrubbing errs on the side of removing too much: a number that merely looks like a
//! phone goes too, and a name that is also a word (`Will`, `Rose`, `Young`) goes wherever
//! that row's text uses the word. It cannot know every way a person can be described in
//! prose: someone else's name stays, and so does the row's own name in a script written
//! without spaces between words (Chinese, Japanese, Thai), which is why free text is best
//! dropped unless it is needed.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

use super::generalize::udf_struct;
use super::{check_args, first_array, is_string, map_strings};

/// Local part (a quoted one, or letters, digits and marks of any script, format characters
/// and `_.%+'-`), an at sign (ASCII, full-width, small), and a domain: labels of letters,
/// digits, marks and format characters of any script, joined by `.` or a full-width `．`,
/// ending in a top-level label of 2 or more letters (marks and format characters inside).
/// Needs an at sign: text without one is never an email (Japanese prose, `café`).
const EMAIL_RE: &str = concat!(
    r#"(?:"[^"\r\n]{1,64}"|[\p{L}\p{N}\p{M}\p{Cf}_.%+'\-]+)\s?[@＠﹫]\s?"#,
    r"(?:\[[^\]\s]{1,64}\]|",
    r"[\p{L}\p{N}\p{M}\p{Cf}\-]+(?:[.．][\p{L}\p{N}\p{M}\p{Cf}\-]+)*",
    r"[.．]\p{Cf}*\p{L}[\p{L}\p{M}\p{Cf}]*[\p{L}\p{M}])"
);
/// An IBAN in capitals and ASCII digits (spaces between): checked by mod-97 alone.
const IBAN_RE: &str = r"\b[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}\b";
/// An IBAN in any case, full-width letters, digits of any script: what [`IBAN_RE`] does not
/// take is checked by mod-97 and the country's length (see [`iban_ok`]). A pass of its own,
/// after [`IBAN_RE`]'s, so that what that one finds and leaves is as it was.
const IBAN_ANY_RE: &str = r"\b[A-Za-zＡ-Ｚａ-ｚ]{2}\d{2}(?:[ ]?[A-Za-zＡ-Ｚａ-ｚ\d]){11,30}\b";
/// An embedded IPv4 tail (`::ffff:192.0.2.1`) is tried before a last hex group, so the
/// whole address is one match (the other order matched `::ffff:192` and left `.0.2.1`).
const IPV6_RE: &str =
    r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9a-f]{1,4})?";
const IPV4_RE: &str = r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b";
/// `\d` is any script's decimal digit; between digits a space (`\p{Zs}`: ' ', no-break,
/// ideographic), a dash (`\p{Pd}`: '-', en dash, full-width hyphen) or a format character.
const CARD_RE: &str = r"\b(?:\d[\p{Zs}\p{Pd}\p{Cf}.]?){12,18}\d\b";
const DIGITS_RE: &str = r"[+＋]?[(（]?\d(?:[\p{Zs}\p{Pd}\p{Cf}.()/．（）／]{0,3}\d){6,}[)）]?";

/// The seven patterns, in the order the passes of [`scrub`] and [`detect`] run them; their
/// positions here are their positions in [`ANY`].
const PATTERNS: [&str; 7] = [
    EMAIL_RE,
    IBAN_RE,
    IBAN_ANY_RE,
    IPV6_RE,
    IPV4_RE,
    CARD_RE,
    DIGITS_RE,
];
const EMAIL: usize = 0;
const IBAN: usize = 1;
const IBAN_ANY: usize = 2;
const IPV6: usize = 3;
const IPV4: usize = 4;
const CARD: usize = 5;
const DIGITS: usize = 6;

static COMPILED: LazyLock<[Regex; 7]> = LazyLock::new(|| PATTERNS.map(|p| Regex::new(p).unwrap()));
/// All seven patterns in one automaton: which of them match a text anywhere, in one scan.
/// A text none of them matches is left as it is by [`scrub`] and has nothing for
/// [`detect`] (every pass of both only acts on a match of one of them), and a pass whose
/// pattern does not match is skipped (see [`Patterns::live`]). Codes such as payment
/// references (`PAYID-G1ESQAF4ETQI3FNSV82QTG8X`) hold digits but none of these.
static ANY: LazyLock<regex::RegexSet> = LazyLock::new(|| regex::RegexSet::new(PATTERNS).unwrap());
/// [`ANY`] without its word boundaries (`\b`), for text that is not ASCII. The regex
/// crate's fast automaton (the lazy DFA) cannot tell a Unicode word boundary past ASCII,
/// so on such text a set with them runs on the slow engine (the PikeVM: about 55 us for a
/// 60-byte text with an identifier, against under 1 us for ASCII). Without an assertion a
/// pattern matches wherever it did and maybe more, so this set says a pattern may match
/// where [`ANY`] says it does (and sometimes where it does not): a screen, never the
/// judge. A pass it lets through still finds its matches with its exact pattern.
static ANY_LOOSE: LazyLock<regex::RegexSet> =
    LazyLock::new(|| regex::RegexSet::new(PATTERNS.map(|p| p.replace(r"\b", ""))).unwrap());

/// Whether `s` is ASCII without lower-case letters: where [`IBAN_ANY_RE`] matches just
/// what [`IBAN_RE`] does (payment references and other codes in capitals).
fn capitals_only(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii() && !b.is_ascii_lowercase())
}

static ISO_DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$").unwrap());

/// How many rounds of the passes [`scrub`] runs on one text before it gives up on it and
/// writes [`REMOVED`] instead of the text. Replacing one identifier can make another of
/// what was around it (a placeholder gives the code before it a word boundary), so the
/// rounds repeat until one changes nothing: one round for ordinary text (every answer of
/// the generated exports), two or three when a replacement exposes something. Text built
/// so that every round exposes one more (thousands of characters of IPv6 and IBAN
/// fragments, as a fuzzer finds) would take a round per identifier, each reading the whole
/// text again: quadratic time in its length (3.4 KB took 22 ms, where an ordinary answer
/// takes about a microsecond). The bound keeps every text's cost linear in its length, and
/// fails closed: a text that has not settled is not published at all.
pub const MAX_ROUNDS: usize = 8;

/// What [`scrub`] writes for a text that did not settle within [`MAX_ROUNDS`] rounds.
pub const REMOVED: &str = Placeholder::Removed.text();

/// What scrubbing writes in place of what it finds: one capitalized word in brackets.
/// Spelled here only, so that the passes, the detector's splice and the names pass (which
/// leaves placeholders alone) agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    Email,
    Iban,
    Ip,
    Card,
    Phone,
    Number,
    Name,
    Removed,
}

impl Placeholder {
    pub const ALL: [Placeholder; 8] = [
        Placeholder::Email,
        Placeholder::Iban,
        Placeholder::Ip,
        Placeholder::Card,
        Placeholder::Phone,
        Placeholder::Number,
        Placeholder::Name,
        Placeholder::Removed,
    ];

    /// `[EMAIL]`, `[IBAN]`, ...
    pub const fn text(self) -> &'static str {
        match self {
            Placeholder::Email => "[EMAIL]",
            Placeholder::Iban => "[IBAN]",
            Placeholder::Ip => "[IP]",
            Placeholder::Card => "[CARD]",
            Placeholder::Phone => "[PHONE]",
            Placeholder::Number => "[NUMBER]",
            Placeholder::Name => "[NAME]",
            Placeholder::Removed => "[REMOVED]",
        }
    }

    /// The word between the brackets.
    pub(crate) fn word(self) -> &'static str {
        let t = self.text();
        &t[1..t.len() - 1]
    }

    /// The placeholder of a kind the gate's detector reports (`email`, `iban`, `ip`,
    /// `card`, `phone`).
    fn of_kind(kind: &str) -> Placeholder {
        match kind {
            "email" => Placeholder::Email,
            "iban" => Placeholder::Iban,
            "ip" => Placeholder::Ip,
            "card" => Placeholder::Card,
            _ => Placeholder::Phone,
        }
    }
}

/// The compiled patterns, cloned once per thread. A `Regex` hands out its search caches
/// from a pool whose fast path serves only the thread that first used it; every other
/// thread took a lock to get a cache and again to give it back (`Pool::get_slow`, 2 % of
/// the CPU of a run scrubbing 20M payment references). A clone shares the compiled
/// automata and has a pool of its own.
struct Patterns {
    any: regex::RegexSet,
    any_loose: regex::RegexSet,
    each: [Regex; 7],
    iso_date: Regex,
}

thread_local! {
    static LOCAL: Patterns = Patterns {
        any: ANY.clone(),
        any_loose: ANY_LOOSE.clone(),
        each: COMPILED.clone(),
        iso_date: ISO_DATE.clone(),
    };
}

/// The first code point (the zero) of every run of ten decimal digits (`\p{Nd}`, what `\d`
/// matches in these patterns) in Unicode 16, as the `regex` crate knows it: Unicode assigns
/// decimal digits only in runs of ten, 0 to 9 in order, so a digit's value is how far it is
/// from the zero before it. (A test checks this table against `\d` over every character.)
const DIGIT_ZEROS: [u32; 76] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x10D40, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0,
    0x11650, 0x116C0, 0x116D0, 0x116DA, 0x11730, 0x118E0, 0x11950, 0x11BF0, 0x11C50, 0x11D50,
    0x11DA0, 0x11F50, 0x16130, 0x16A60, 0x16AC0, 0x16B50, 0x16D70, 0x1CCF0, 0x1D7CE, 0x1D7D8,
    0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E5F1, 0x1E950, 0x1FBF0,
];

/// The value of a decimal digit of any script (`'7'`, full-width `'７'`, Arabic-Indic
/// `'٧'`), `None` for anything else. (`char::to_digit` knows ASCII only.)
pub fn digit_value(c: char) -> Option<u32> {
    let c = c as u32;
    if c < 0x80 {
        return (c as u8).is_ascii_digit().then(|| c - 0x30);
    }
    let i = DIGIT_ZEROS.partition_point(|&z| z <= c);
    let v = c - DIGIT_ZEROS[i.checked_sub(1)?];
    (v < 10).then_some(v)
}

/// Whether a digit string passes the Luhn check.
pub fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for c in digits.chars().rev() {
        let Some(mut d) = digit_value(c) else {
            return false;
        };
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// Each country's IBAN length (SWIFT's IBAN registry): what an IBAN written in lower case
/// or full-width forms must have, so that a lower-case code or hex id (a 32-hex token starts
/// with two letters and two digits one time in 18 and passes mod-97 one time in 97) is not
/// taken for one.
#[rustfmt::skip]
const IBAN_LENGTHS: [(&[u8; 2], usize); 89] = [
    (b"AD", 24), (b"AE", 23), (b"AL", 28), (b"AT", 20), (b"AZ", 28), (b"BA", 20), (b"BE", 16),
    (b"BG", 22), (b"BH", 22), (b"BI", 27), (b"BR", 29), (b"BY", 28), (b"CH", 21), (b"CR", 22),
    (b"CY", 28), (b"CZ", 24), (b"DE", 22), (b"DJ", 27), (b"DK", 18), (b"DO", 28), (b"EE", 20),
    (b"EG", 29), (b"ES", 24), (b"FI", 18), (b"FK", 18), (b"FO", 18), (b"FR", 27), (b"GB", 22),
    (b"GE", 22), (b"GI", 23), (b"GL", 18), (b"GR", 27), (b"GT", 28), (b"HN", 28), (b"HR", 21),
    (b"HU", 28), (b"IE", 22), (b"IL", 23), (b"IQ", 23), (b"IS", 26), (b"IT", 27), (b"JO", 30),
    (b"KW", 30), (b"KZ", 20), (b"LB", 28), (b"LC", 32), (b"LI", 21), (b"LT", 20), (b"LU", 20),
    (b"LV", 21), (b"LY", 25), (b"MC", 27), (b"MD", 24), (b"ME", 22), (b"MK", 19), (b"MN", 20),
    (b"MR", 27), (b"MT", 31), (b"MU", 30), (b"NI", 28), (b"NL", 18), (b"NO", 15), (b"OM", 23),
    (b"PK", 24), (b"PL", 28), (b"PS", 29), (b"PT", 25), (b"QA", 29), (b"RO", 24), (b"RS", 22),
    (b"RU", 33), (b"SA", 24), (b"SC", 31), (b"SD", 18), (b"SE", 24), (b"SI", 19), (b"SK", 24),
    (b"SM", 27), (b"SO", 23), (b"ST", 25), (b"SV", 28), (b"TL", 23), (b"TN", 24), (b"TR", 26),
    (b"UA", 29), (b"VA", 22), (b"VG", 24), (b"XK", 20), (b"YE", 30),
];

/// The value of an IBAN character (0-9, A-Z = 10-35) written in any case, full-width, or
/// as a digit of any script.
fn iban_value(c: char) -> Option<u32> {
    match c {
        'A'..='Z' => Some(c as u32 - 'A' as u32 + 10),
        'a'..='z' => Some(c as u32 - 'a' as u32 + 10),
        'Ａ'..='Ｚ' => Some(c as u32 - 'Ａ' as u32 + 10),
        'ａ'..='ｚ' => Some(c as u32 - 'ａ' as u32 + 10),
        _ => digit_value(c),
    }
}

/// Whether `s` (spaces allowed) is an IBAN with a valid mod-97 checksum. Written in
/// capitals and ASCII digits, the checksum is the test (as printed IBANs are); written any
/// other way (lower case, full-width forms, other scripts' digits), the country code must
/// be one with IBANs and the length that country's too.
pub fn iban_ok(s: &str) -> bool {
    let mut compact = [0u8; 34];
    let (mut n, mut plain) = (0, true);
    for c in s.chars().filter(|&c| c != ' ') {
        let Some(v) = iban_value(c) else {
            return false;
        };
        if n == compact.len() {
            return false;
        }
        plain &= c.is_ascii_uppercase() || c.is_ascii_digit();
        compact[n] = v as u8;
        n += 1;
    }
    if n < 15 || compact[..2].iter().any(|&v| v < 10) || compact[2..4].iter().any(|&v| v >= 10) {
        return false;
    }
    if !plain {
        let country = [compact[0] - 10 + b'A', compact[1] - 10 + b'A'];
        if !IBAN_LENGTHS.contains(&(&country, n)) {
            return false;
        }
    }
    let (head, tail) = compact[..n].split_at(4);
    let mut rem: u32 = 0;
    for &v in tail.iter().chain(head) {
        let v = v as u32;
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// The decimal digits of `s` (of any script), as ASCII digits.
fn digits_of(s: &str) -> String {
    s.chars()
        .filter_map(digit_value)
        .map(|d| char::from(b'0' + d as u8))
        .collect()
}

/// The length of the longest prefix of an IBAN-shaped match that is a valid IBAN: the
/// whole match, or a prefix that ends before one of its spaces. A printed IBAN followed
/// by more capitals or digits ("GB82 WEST 1234 5698 7654 32 ABC") is one regex match whose
/// whole fails the checksum. (Prefixes end only at spaces, as the groups of a printed
/// IBAN do: a code without spaces is checked whole, so a product code is not taken for an
/// IBAN by one chance in 97 per character.)
fn iban_prefix(m: &str) -> Option<usize> {
    if iban_ok(m) {
        return Some(m.len());
    }
    m.match_indices(' ')
        .map(|(i, _)| i)
        .rev()
        .find(|&end| end >= 15 && iban_ok(&m[..end]))
}

/// Scrubs `text` into `out`. Returns how many identifiers were replaced.
///
/// Replacing can make a new identifier appear (removing a phone number from the tail of
/// an IBAN-shaped code can leave a valid IBAN; a placeholder before a code gives it a word
/// boundary), so the passes repeat until nothing more is replaced: what comes out holds
/// nothing a pass (or the privacy gate's [`detect`]) would find.
pub fn scrub(text: &str, out: &mut String) -> usize {
    LOCAL.with(|p| match p.live(text) {
        None => {
            out.push_str(text);
            0
        }
        Some(live) => p.scrub_passes(text, live, out),
    })
}

/// A detector kind ([`detect`]) as a noun with its article, for messages: `an email
/// address`, `an IBAN`, `an IP address`, `a card number`, `a phone number`.
pub fn kind_phrase(kind: &str) -> &'static str {
    match kind {
        "email" => "an email address",
        "iban" => "an IBAN",
        "ip" => "an IP address",
        "card" => "a card number",
        "phone" => "a phone number",
        _ => "an identifier",
    }
}

/// The kinds of identifier found in `text` (email, iban, ip, card, phone), by the same
/// patterns and checksums `scrub` replaces, one entry per match; for the verify gate.
pub fn detect(text: &str) -> Vec<&'static str> {
    detect_ranges(text).into_iter().map(|(_, _, k)| k).collect()
}

/// What [`detect`] finds, as (start, end, kind) byte ranges of `text`, pass by pass.
fn detect_ranges(text: &str) -> Vec<(usize, usize, &'static str)> {
    LOCAL.with(|p| match p.live(text) {
        None => Vec::new(),
        Some(live) => p.detect_passes(text, &live),
    })
}

/// `s` with the detector's ranges `found` (byte offsets, any order; a range overlapping
/// an earlier one is skipped) replaced by their kinds' placeholders, and how many were.
fn splice_detected<'a>(
    s: Cow<'a, str>,
    mut found: Vec<(usize, usize, &'static str)>,
) -> (Cow<'a, str>, usize) {
    if found.is_empty() {
        return (s, 0);
    }
    found.sort_by_key(|r| r.0);
    let mut next = String::with_capacity(s.len());
    let (mut last, mut count) = (0, 0);
    for (a, b, kind) in found {
        if a < last {
            continue;
        }
        next.push_str(&s[last..a]);
        next.push_str(Placeholder::of_kind(kind).text());
        last = b;
        count += 1;
    }
    next.push_str(&s[last..]);
    (Cow::Owned(next), count)
}

/// One detector pass over `rest`: each match of `re` that `judge` counts (`Some(true)`)
/// goes to `found` as `kind`; every match it does not reject (`None`) is blanked (with `_`,
/// one per byte, over whole characters: offsets stay, and no later pattern takes it in), so
/// that later passes do not see it again.
fn detect_pass(
    re: &Regex,
    pass: usize,
    kind: &'static str,
    judge: &dyn Fn(&str, usize, usize) -> Option<bool>,
    rest: &mut String,
    found: &mut Vec<(usize, usize, &'static str)>,
) {
    let mut blank = Vec::new();
    for_each_match(re, pass, rest, |m| {
        let Some(count) = judge(rest, m.start, m.end) else {
            return;
        };
        if count {
            found.push((m.start, m.end, kind));
        }
        blank.push(m);
    });
    if !blank.is_empty() {
        let mut bytes = std::mem::take(rest).into_bytes();
        for r in blank {
            bytes[r].fill(b'_');
        }
        *rest = String::from_utf8(bytes).expect("ASCII over whole characters");
    }
}

/// `f` over the byte ranges of `re`'s matches in `s` (`re` is pattern `pass`), in order.
///
/// The patterns of IBANs in capitals and of IPv4 addresses match ASCII characters only,
/// and their word boundaries (`\b`) sit beside what they match; on text past ASCII the
/// regex crate's fast engine (the lazy DFA) cannot tell a Unicode word boundary and the
/// whole search ran on the slow one (about 40 ns a byte; 2 ns in ASCII). Such text is
/// searched in its [`ascii_shadow`] instead: every character past ASCII is bytes that
/// neither pattern takes in, with the same side of a word boundary, so the matches are
/// the same, at the same offsets.
fn for_each_match(re: &Regex, pass: usize, s: &str, mut f: impl FnMut(std::ops::Range<usize>)) {
    if matches!(pass, IBAN | IPV4) && !s.is_ascii() {
        let shadow = ascii_shadow(s);
        for m in re.find_iter(&shadow) {
            f(m.range());
        }
        return;
    }
    for m in re.find_iter(s) {
        f(m.range());
    }
}

/// `s` with each character past ASCII replaced by as many bytes as it takes of `_` when it
/// is a word character for the regex crate's Unicode `\b` (letters, marks, digits of any
/// script, connector punctuation) and of `#` otherwise: ASCII of the same length, the
/// same word boundaries, and nothing [`IBAN_RE`] or [`IPV4_RE`] matches in place of those
/// characters (neither matches them in `s` either).
fn ascii_shadow(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let b = if regex_syntax::is_word_character(c) {
                '_'
            } else {
                '#'
            };
            out.extend(std::iter::repeat_n(b, c.len_utf8()));
        }
    }
    out
}

/// Whether `text` holds an at sign (`@`, full-width `＠`, small `﹫`), a ':' or a decimal
/// digit of any script, which every pattern needs: `None` when it holds none (no pattern
/// can match, and the text is left as it is without asking them), else whether `text` is
/// ASCII (`Some(true)`) or not (`Some(false)`: [`Patterns::live`] screens it with
/// [`ANY_LOOSE`]). ASCII text is told by its bytes, other text then character by
/// character, so that prose in other languages (`Grüße, José García`) is not sent to the
/// patterns for its letters.
fn trigger(text: &str) -> Option<bool> {
    let mut ascii = true;
    let mut found = false;
    for &b in text.as_bytes() {
        found |= b == b'@' || b == b':' || b.is_ascii_digit();
        ascii &= b.is_ascii();
    }
    if ascii {
        return found.then_some(true);
    }
    let other = |c: char| !c.is_ascii() && (matches!(c, '＠' | '﹫') || digit_value(c).is_some());
    (found || text.chars().any(other)).then_some(false)
}

impl Patterns {
    /// Which patterns may match `text` (every one that does; for text past ASCII maybe
    /// more, below); `None` when none does (told by [`trigger`]:
    /// no at sign, ':' or digit of any script; else by the set's `is_match`, which stops
    /// at the first match and is cheaper than asking which ones: most texts without a
    /// match are codes that hold digits).
    ///
    /// For text that is not ASCII the answer comes from [`ANY_LOOSE`]: it may name a
    /// pattern that does not match, which costs its pass a search that finds nothing.
    fn live(&self, text: &str) -> Option<regex::SetMatches> {
        let set = if trigger(text)? {
            &self.any
        } else {
            &self.any_loose
        };
        if !set.is_match(text) {
            return None;
        }
        Some(set.matches(text))
    }

    /// [`scrub`] after its first filter: rounds of [`Patterns::scrub_once`] and the
    /// detector's replacements until one changes nothing. `live`: the patterns that
    /// may match `text` ([`Patterns::live`]).
    fn scrub_passes(&self, text: &str, live: regex::SetMatches, out: &mut String) -> usize {
        let mut s = Cow::Borrowed(text);
        let mut live = Some(live);
        let mut count = 0;
        // Every replacement removes an at sign, ':' or digit, so this ends; it ends when a
        // round changes nothing (or nothing matches), so scrubbing scrubbed text changes
        // nothing. Past `MAX_ROUNDS` the text is removed whole (see there).
        for _ in 0..MAX_ROUNDS {
            let Some(m) = live else {
                out.push_str(&s);
                return count;
            };
            let (next, n, after) = self.scrub_once(s, m);
            let (next, k) = match &after {
                Some(m) => self.replace_detected(next, m),
                None => (next, 0),
            };
            s = next;
            count += n + k;
            if n + k == 0 {
                out.push_str(&s);
                return count;
            }
            // What matches the text is known from the passes unless the detector's
            // replacements changed it since.
            live = if k == 0 { after } else { self.live(&s) };
        }
        // Settled all the same when no pattern matches what is left (the set of them with
        // its word boundaries, not the screen `live` may come from).
        if trigger(&s).is_none() || !self.any.is_match(&s) {
            out.push_str(&s);
            return count;
        }
        out.push_str(REMOVED);
        count + 1
    }

    /// One round of the passes, in order (emails, IBANs in capitals, other IBANs, IPv6,
    /// IPv4, cards, other digits), each replacing what its pattern matches and its check
    /// accepts. A pass whose pattern does not match the text as it stands is skipped (it
    /// would change nothing); which patterns match is asked again after a pass that
    /// changed the text ([`Patterns::live`]: which may match).
    /// Returns the text, how many were replaced, and which patterns may match the result.
    fn scrub_once<'a>(
        &self,
        mut s: Cow<'a, str>,
        live: regex::SetMatches,
    ) -> (Cow<'a, str>, usize, Option<regex::SetMatches>) {
        let mut live = Some(live);
        let mut count = 0;
        let mut ibans_replaced = false;
        for pass in [EMAIL, IBAN, IBAN_ANY, IPV6, IPV4, CARD, DIGITS] {
            let Some(m) = &live else { break };
            if !m.matched(pass) {
                continue;
            }
            // In text that holds no lower case nor anything past ASCII, the pattern of
            // any IBAN finds what the capitals' found, and its check takes no more: when
            // that pass left the text as it was, this one would too.
            if pass == IBAN_ANY && !ibans_replaced && capitals_only(&s) {
                continue;
            }
            if let Some((next, n)) = self.replace(pass, &s) {
                ibans_replaced |= pass == IBAN;
                s = Cow::Owned(next);
                count += n;
                live = self.live(&s);
            }
        }
        (s, count, live)
    }

    /// `s` with the matches of pattern `pass` that its check accepts replaced by their
    /// placeholder; `None` when none is.
    fn replace(&self, pass: usize, s: &str) -> Option<(String, usize)> {
        let mut out = String::new();
        let (mut last, mut n) = (0, 0);
        for_each_match(&self.each[pass], pass, s, |m| {
            let Some(with) = self.placeholder(pass, &s[m.clone()]) else {
                return;
            };
            if n == 0 {
                out.reserve(s.len());
            }
            out.push_str(&s[last..m.start]);
            out.push_str(&with);
            last = m.end;
            n += 1;
        });
        (n > 0).then(|| {
            out.push_str(&s[last..]);
            (out, n)
        })
    }

    /// What a match `m` of pattern `pass` becomes, or `None` to leave it.
    fn placeholder(&self, pass: usize, m: &str) -> Option<Cow<'static, str>> {
        let fixed = |p: Placeholder| Some(Cow::Borrowed(p.text()));
        match pass {
            EMAIL => fixed(Placeholder::Email),
            IBAN | IBAN_ANY => iban_prefix(m)
                .map(|end| Cow::Owned(format!("{}{}", Placeholder::Iban.text(), &m[end..]))),
            IPV6 => {
                let t = m.trim_end_matches(':');
                if t.parse::<Ipv6Addr>().is_ok() || m.parse::<Ipv6Addr>().is_ok() {
                    fixed(Placeholder::Ip)
                } else {
                    None
                }
            }
            IPV4 => m
                .parse::<Ipv4Addr>()
                .is_ok()
                .then_some(Cow::Borrowed(Placeholder::Ip.text())),
            CARD => luhn_ok(&digits_of(m)).then_some(Cow::Borrowed(Placeholder::Card.text())),
            _ if self.iso_date.is_match(m) => None,
            _ => fixed(if digits_of(m).len() <= 15 {
                Placeholder::Phone
            } else {
                Placeholder::Number
            }),
        }
    }

    /// Replaces what the gate's detector finds (its blanking of lookalikes can expose
    /// something the passes of [`Patterns::scrub_once`], which leave lookalikes in place,
    /// do not see). `live`: the patterns that may match `s` ([`Patterns::live`]).
    fn replace_detected<'a>(
        &self,
        s: Cow<'a, str>,
        live: &regex::SetMatches,
    ) -> (Cow<'a, str>, usize) {
        let found = self.detect_passes(&s, live);
        splice_detected(s, found)
    }

    /// [`detect_ranges`] after its first filter. `live`: the patterns that may match
    /// `text` ([`Patterns::live`]).
    /// A pass whose pattern does not match `text` is skipped: blanking (below) writes
    /// `_`, which no pattern takes in but the emails' (the first pass), and which only takes word
    /// boundaries away, so a pattern that matches nowhere in `text` matches nowhere after.
    fn detect_passes(
        &self,
        text: &str,
        live: &regex::SetMatches,
    ) -> Vec<(usize, usize, &'static str)> {
        let mut found = Vec::new();
        let mut rest = text.to_string();
        let capitals = capitals_only(text);
        // Each pass blanks what it found so that later passes do not count it again.
        // `judge` sees the text and the match's range: `Some(true)` counts and blanks it,
        // `Some(false)` only blanks it (a lookalike no later pass should read as
        // something else), `None` leaves it. Blanking writes one `_` per byte: positions
        // stay those of `text`, and a word character (not a space) never joins the digits
        // on either side into a phone number.
        let mut pass =
            |i: usize, kind: &'static str, judge: &dyn Fn(&str, usize, usize) -> Option<bool>| {
                if live.matched(i) {
                    detect_pass(&self.each[i], i, kind, judge, &mut rest, &mut found);
                }
            };
        pass(EMAIL, "email", &|_, _, _| Some(true));
        // An IBAN-shaped code with a wrong checksum is no IBAN, and its digits are no
        // phone.
        pass(IBAN, "iban", &|t, a, b| {
            Some(iban_prefix(&t[a..b]).is_some())
        });
        // Lower case or full-width: a valid one counts; a lookalike is left as it is, for
        // the later passes to see what they saw before this pass was there. (In text of
        // capitals only, the capitals' pass has blanked all this pattern matches.)
        if !capitals {
            pass(IBAN_ANY, "iban", &|t, a, b| {
                iban_prefix(&t[a..b]).is_some().then_some(true)
            });
        }
        pass(IPV6, "ip", &|t, a, b| {
            let m = &t[a..b];
            (m.contains(':')
                && (m.trim_end_matches(':').parse::<Ipv6Addr>().is_ok()
                    || m.parse::<Ipv6Addr>().is_ok()))
            .then_some(!network_follows(t, b, 64))
        });
        // A network (`203.0.113.0/24`) is what the `network` rule publishes, not an
        // address.
        pass(IPV4, "ip", &|t, a, b| {
            t[a..b]
                .parse::<Ipv4Addr>()
                .is_ok()
                .then_some(!network_follows(t, b, 24))
        });
        // More digits than any phone number has (E.164: 15) and no Luhn: no card, no
        // phone.
        pass(CARD, "card", &|t, a, b| {
            let digits = digits_of(&t[a..b]);
            if luhn_ok(&digits) {
                Some(true)
            } else {
                (digits.len() > 15).then_some(false)
            }
        });
        if !live.matched(DIGITS) {
            return found;
        }
        // A digit run glued to letters is a code (an offer id like S123456789_DE), not a
        // phone.
        let glued = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        for m in self.each[DIGITS].find_iter(&rest) {
            let before = rest[..m.start()].bytes().next_back();
            let after = rest[m.end()..].bytes().next();
            if !self.iso_date.is_match(m.as_str())
                && !glued(before)
                && !glued(after)
                && m.as_str().chars().filter_map(digit_value).count() <= 15
            {
                found.push((m.start(), m.end(), "phone"));
            }
        }
        found
    }
}

/// Whether `/N` with N <= `max` follows position `at` of `t` (a CIDR prefix length).
fn network_follows(t: &str, at: usize, max: u8) -> bool {
    let Some(rest) = t[at..].strip_prefix('/') else {
        return false;
    };
    let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
    !n.is_empty() && n.len() <= 3 && n.parse::<u8>().is_ok_and(|n| n <= max)
}

/// How many name columns one `scrub` rule may read beside its text.
pub const MAX_NAME_COLUMNS: usize = 16;

/// Words that join the parts of a name (`van der Berg`, `de la Cruz`, `bin Said`), folded:
/// everyday words in many languages, so in a name of several words they are not looked
/// for alone. A name that is only such a word (a first name `Lo`) is.
pub(crate) const PARTICLES: [&str; 32] = [
    "al", "bin", "da", "das", "de", "degli", "dei", "del", "della", "den", "der", "di", "do",
    "dos", "du", "el", "ibn", "la", "las", "le", "les", "lo", "los", "st", "ten", "ter", "van",
    "vom", "von", "y", "zu", "zur",
];

/// One row's name, as the folded words [`scrub_names`] looks for in its text. Reused
/// from row to row ([`NameWords::clear`]) so that a column costs no allocation per row.
#[derive(Debug, Default)]
pub struct NameWords {
    /// A set, not a list: a name column may hold a long text by mistake.
    words: ahash::AHashSet<String>,
    /// The lengths (bit `len.min(63)`) and the first letters (bit `letter - 'a'`, bit 26
    /// for anything else) of the words: most words of a text are told apart from the
    /// name's by these alone, without folding and hashing them.
    lengths: u64,
    firsts: u32,
    fold: String,
}

/// The bit of [`NameWords::firsts`] for a folded word's first byte.
fn first_bit(b: u8) -> u32 {
    1 << if b.is_ascii_lowercase() { b - b'a' } else { 26 }
}

impl NameWords {
    pub fn clear(&mut self) {
        self.words.clear();
        self.lengths = 0;
        self.firsts = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Adds the words of one name value (`Anna-Maria`, `van der Berg`, `O'Brien`): each
    /// word of two letters or more, folded ([`fold`]) and, when it has umlauts, with them
    /// spelled out too (`müller` and `mueller`); of a word with an apostrophe, its parts of
    /// three letters or more too (`o'brien` and `brien`).
    pub fn add(&mut self, name: &str) {
        let several = word_ranges(name).nth(1).is_some();
        for w in word_ranges(name).map(|(a, b)| &name[a..b]) {
            if w.chars().filter(|c| c.is_alphabetic()).count() < 2 {
                continue;
            }
            self.fold.clear();
            fold(w, false, &mut self.fold);
            if several && PARTICLES.contains(&self.fold.as_str()) {
                continue;
            }
            let plain = self.fold.clone();
            if plain.contains('\'') {
                for part in plain.split('\'') {
                    if part.chars().count() >= 3 {
                        self.push(part.to_string());
                    }
                }
            }
            if has_umlaut(w) {
                self.fold.clear();
                fold(w, true, &mut self.fold);
                let umlauts = self.fold.clone();
                self.push(umlauts);
            }
            self.push(plain);
        }
    }

    fn push(&mut self, w: String) {
        self.lengths |= 1 << w.len().min(63);
        self.firsts |= w.bytes().next().map_or(0, first_bit);
        self.words.insert(w);
    }

    /// Whether the text's word `w` is one of the name's: folded both ways, whole or (with
    /// an apostrophe: `Anna's`, `d'Anna`) by one of its parts.
    fn matches(&mut self, w: &str) -> bool {
        // An ASCII word without an apostrophe folds to itself in lower case.
        if w.is_ascii() && !w.contains('\'') {
            let first = w.as_bytes()[0].to_ascii_lowercase();
            if self.lengths & 1 << w.len().min(63) == 0 || self.firsts & first_bit(first) == 0 {
                return false;
            }
        }
        for umlauts in [false, true]
            .into_iter()
            .take(1 + usize::from(has_umlaut(w)))
        {
            self.fold.clear();
            fold(w, umlauts, &mut self.fold);
            let f = self.fold.as_str();
            if self.words.contains(f)
                || (f.contains('\'') && f.split('\'').any(|p| self.words.contains(p)))
            {
                return true;
            }
        }
        false
    }
}

/// Whether `w` has a second folding, its precomposed umlauts spelled out ([`fold`]).
fn has_umlaut(w: &str) -> bool {
    !w.is_ascii() && w.contains(['ä', 'ö', 'ü', 'Ä', 'Ö', 'Ü'])
}

/// Whether `c` belongs inside a word of a name or of text: a letter, a combining mark, or
/// a format character (a zero-width space in `An\u{200B}na` must not split it).
fn word_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    c.is_alphabetic() || unicode_normalization::char::is_combining_mark(c) || format_char(c)
}

/// The zero-width format characters read inside a word (`An\u{200B}na`) and folded away.
pub(crate) fn format_char(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'
    )
}

pub(crate) fn apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{02BC}' | '\u{FF07}')
}

/// Byte ranges of the words of `s`: runs of [`word_char`]s, an apostrophe between two
/// letters included (`O'Brien`, `Anna's`).
fn word_ranges(s: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut it = s.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, _) = it.by_ref().find(|&(_, c)| word_char(c))?;
        let mut end = s.len();
        while let Some(&(i, c)) = it.peek() {
            let inside = word_char(c)
                || apostrophe(c) && s[i + c.len_utf8()..].chars().next().is_some_and(word_char);
            if inside {
                it.next();
            } else {
                end = i;
                break;
            }
        }
        Some((start, end))
    })
}

/// `w` lower-cased, without accents (compatibility-decomposed, marks and format characters
/// removed, `ß` -> `ss`, `ł` -> `l`, `ø` -> `o`, ...), apostrophes as `'`; with `umlauts`,
/// `ä`, `ö`, `ü` spelled `ae`, `oe`, `ue` first.
fn fold(w: &str, umlauts: bool, out: &mut String) {
    use unicode_normalization::UnicodeNormalization;
    if w.is_ascii() {
        // What the general path gives ASCII, without decomposing it.
        for b in w.bytes() {
            if b.is_ascii_alphabetic() || b == b'\'' {
                out.push(b.to_ascii_lowercase() as char);
            }
        }
        return;
    }
    let spelled = w.chars().flat_map(|c| {
        let two = match c {
            'ä' | 'Ä' if umlauts => Some(['a', 'e']),
            'ö' | 'Ö' if umlauts => Some(['o', 'e']),
            'ü' | 'Ü' if umlauts => Some(['u', 'e']),
            _ => None,
        };
        match two {
            Some([a, b]) => [Some(a), Some(b)],
            None => [Some(c), None],
        }
        .into_iter()
        .flatten()
    });
    for c in spelled.nfkd() {
        if unicode_normalization::char::is_combining_mark(c) || !word_char(c) && !apostrophe(c) {
            continue;
        }
        match c {
            c if apostrophe(c) => out.push('\''),
            c if format_char(c) => {}
            c => push_folded(c, out),
        }
    }
}

/// A letter as [`fold`] writes it, after decomposition: the letters no decomposition takes
/// apart spelled in ASCII (`ß` -> `ss`, `ł` -> `l`, `ø` -> `o`, ...), any other in lower
/// case. The privacy gate's check of names folds with it too, so that the two agree.
pub(crate) fn push_folded(c: char, out: &mut String) {
    match c {
        'ß' | 'ẞ' => out.push_str("ss"),
        'ł' | 'Ł' => out.push('l'),
        'ø' | 'Ø' => out.push('o'),
        'đ' | 'Đ' => out.push('d'),
        'æ' | 'Æ' => out.push_str("ae"),
        'œ' | 'Œ' => out.push_str("oe"),
        'ı' => out.push('i'),
        c => out.extend(c.to_lowercase()),
    }
}

/// Copies `text` into `out` with every word of the row's name ([`NameWords`]) replaced by
/// `[NAME]`; words of a name separated only by spaces or hyphens (`Anna Kowalska`,
/// `Anna-Maria`) become one `[NAME]`. Placeholders already in the text are left alone.
/// Returns how many `[NAME]`s were written.
pub fn scrub_names(text: &str, names: &mut NameWords, out: &mut String) -> usize {
    let (mut last, mut count) = (0, 0);
    // Where the last `[NAME]`'s word ended in `text`, for joining a run of them.
    let mut after_name = None;
    for (a, b) in word_ranges(text) {
        let w = &text[a..b];
        // A placeholder already written (a name that is also such a word, `Card` or
        // `Ip`, must not turn it into `[[NAME]]`).
        if text[..a].ends_with('[')
            && text[b..].starts_with(']')
            && Placeholder::ALL.iter().any(|p| p.word() == w)
        {
            continue;
        }
        if !names.matches(w) {
            continue;
        }
        let gap = &text[last..a];
        let joins = after_name == Some(last)
            && gap
                .chars()
                .all(|c| c.is_whitespace() || c == '-' || c == '\u{2010}');
        if !joins {
            out.push_str(gap);
            out.push_str(Placeholder::Name.text());
            count += 1;
        }
        last = b;
        after_name = Some(b);
    }
    out.push_str(&text[last..]);
    count
}

/// [`scrub`], then [`scrub_names`] when the row has a name: what the `scrub` rule with
/// `names` writes for one row. Removing a name can make an identifier of what was around
/// it (letters glued to hex digits and colons hid an IPv6 address from the patterns), so
/// the two repeat until the names pass replaces nothing. Each round that goes on has
/// removed a word of the name, and scrubbing writes no letters but its placeholders, so
/// this ends; as in [`scrub`], a text that has not settled after [`MAX_ROUNDS`] rounds is
/// replaced whole by [`REMOVED`].
pub fn scrub_with_names(text: &str, names: &mut NameWords, out: &mut String) -> usize {
    if names.is_empty() {
        return scrub(text, out);
    }
    let (mut patterns, mut named) = (String::with_capacity(text.len()), String::new());
    let mut total = scrub(text, &mut patterns);
    for _ in 0..=MAX_ROUNDS {
        named.clear();
        let n = scrub_names(&patterns, names, &mut named);
        if n == 0 {
            out.push_str(&patterns);
            return total;
        }
        total += n;
        patterns.clear();
        // `scrub`'s own first filter copies a text no pattern can match.
        total += scrub(&named, &mut patterns);
    }
    out.push_str(REMOVED);
    total + 1
}

udf_struct!(ScrubUdf);

impl ScalarUDFImpl for ScrubUdf {
    fn name(&self) -> &str {
        "anon_scrub"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    /// `anon_scrub(text [, name, ...])`: the text, then up to [`MAX_NAME_COLUMNS`]
    /// columns holding the row's name.
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        check_args(
            self.name(),
            arg_types,
            1..=1 + MAX_NAME_COLUMNS,
            is_string,
            "a string column",
        )?;
        if let Some(t) = arg_types[1..]
            .iter()
            .find(|t| !is_string(t) && **t != DataType::Null)
        {
            return Err(DataFusionError::Plan(format!(
                "{} takes the row's name as string columns, got {t}",
                self.name()
            )));
        }
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let a = first_array(&args.args, rows)?;
        if args.args.len() == 1 {
            let out = map_strings(&a, a.len() * 32, |s, buf| {
                scrub(s, buf);
                true
            })?;
            return Ok(ColumnarValue::Array(out));
        }
        let text = cast(&a, &DataType::Utf8)?;
        let text = text.as_string::<i32>();
        let names = args.args[1..]
            .iter()
            .map(|v| Ok(cast(&v.to_array(rows)?, &DataType::Utf8)?))
            .collect::<DfResult<Vec<ArrayRef>>>()?;
        let names: Vec<&StringArray> = names.iter().map(|n| n.as_string::<i32>()).collect();
        let mut out = StringBuilder::with_capacity(rows, text.value_data().len() + rows * 8);
        let (mut words, mut buf) = (NameWords::default(), String::new());
        for i in 0..rows {
            if text.is_null(i) {
                out.append_null();
                continue;
            }
            words.clear();
            for n in &names {
                if n.is_valid(i) {
                    words.add(n.value(i));
                }
            }
            buf.clear();
            scrub_with_names(text.value(i), &mut words, &mut buf);
            out.append_value(&buf);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sc(s: &str) -> String {
        let mut o = String::new();
        scrub(s, &mut o);
        o
    }

    fn named(text: &str, names: &[&str]) -> String {
        let mut w = NameWords::default();
        for n in names {
            w.add(n);
        }
        let mut o = String::new();
        scrub_with_names(text, &mut w, &mut o);
        o
    }

    #[test]
    fn the_rows_own_name_becomes_one_placeholder() {
        for (text, want) in [
            (
                "Hi, this is Anna Kowalska. Please add sports",
                "Hi, this is [NAME]. Please add sports",
            ),
            ("Thanks, anna", "Thanks, [NAME]"),
            ("KOWALSKA family", "[NAME] family"),
            ("Anna's TV logs out", "[NAME] TV logs out"),
            ("Annabel is not Anna", "Annabel is not [NAME]"),
            ("mail anna@x.org, Anna", "mail [EMAIL], [NAME]"),
            ("no name here", "no name here"),
        ] {
            assert_eq!(named(text, &["Anna", "Kowalska"]), want, "{text}");
        }
    }

    #[test]
    fn names_match_across_accents_umlauts_and_widths() {
        assert_eq!(named("Gruss, Jose", &["José", "Müller"]), "Gruss, [NAME]");
        assert_eq!(named("JOSÉ MUELLER", &["Jose", "Müller"]), "[NAME]");
        assert_eq!(named("von Muller", &["José", "Müller"]), "von [NAME]");
        assert_eq!(named("Herr Müller", &["Mueller"]), "Herr [NAME]");
        assert_eq!(named("Ｍüｌｌｅｒ here", &["Müller"]), "[NAME] here");
        assert_eq!(named("Łukasz and Lukasz", &["Łukasz"]), "[NAME] and [NAME]");
        assert_eq!(named("Strauss", &["Strauß"]), "[NAME]");
        assert_eq!(named("An\u{200B}na", &["Anna"]), "[NAME]");
        assert_eq!(
            named("O’Brien and Brien", &["O'Brien"]),
            "[NAME] and [NAME]"
        );
        assert_eq!(
            named("Anna-Maria Nowak", &["Anna-Maria", "Nowak"]),
            "[NAME]"
        );
        assert_eq!(
            named("Familie van den Berg", &["Van den Berg"]),
            "Familie van den [NAME]"
        );
    }

    #[test]
    fn particles_initials_and_placeholders_stay() {
        // In a name of several words the particles are not looked for alone.
        assert_eq!(
            named("de la Cruz: the app de la casa", &["de la Cruz"]),
            "de la [NAME]: the app de la casa"
        );
        assert_eq!(named("J. Smith", &["J", "Smith"]), "J. [NAME]");
        // A one-word name that is a particle is still a name.
        assert_eq!(named("Lo here", &["Lo"]), "[NAME] here");
        // A name that spells a placeholder does not break the placeholder.
        assert_eq!(
            named("call +44 20 7946 0958, Phone", &["Phone"]),
            "call [PHONE], [NAME]"
        );
        assert_eq!(named("text", &[]), "text");
        assert_eq!(named("", &["Anna"]), "");
    }

    #[test]
    fn scrubbed_names_leave_nothing_the_detectors_find() {
        let out = named(
            "Anna Kowalska, 4111 1111 1111 1111, anna.k@example.com",
            &["Anna", "Kowalska"],
        );
        assert_eq!(out, "[NAME], [CARD], [EMAIL]");
        assert!(detect(&out).is_empty());
    }

    /// Found by an audit (2026-12-03): an IPv4 tail of an IPv6 address was left
    /// (`[IP].168.1.10`), an email with an address literal kept its local part, and a card
    /// written with dots was not a card to the detectors.
    #[test]
    fn ipv4_tails_address_literals_and_dotted_cards() {
        for (text, want) in [
            ("from ::ffff:192.168.1.10 today", "from [IP] today"),
            ("64:ff9b::192.0.2.33", "[IP]"),
            ("2001:db8:0:0:0:0:192.168.1.10", "[IP]"),
            ("ffff::10.20.30.40", "[IP]"),
            ("mail john.smith@[10.1.2.3] now", "mail [EMAIL] now"),
            ("user@[IPv6:2001:db8::1]", "[EMAIL]"),
            ("card 4111.1111.1111.1111", "card [CARD]"),
        ] {
            assert_eq!(sc(text), want, "{text}");
            assert!(!detect(text).is_empty(), "{text}");
            assert!(detect(&sc(text)).is_empty(), "{text}");
        }
        assert_eq!(detect("card 4111.1111.1111.1111"), vec!["card"]);
    }

    #[test]
    fn scrubs_each_kind() {
        assert_eq!(
            sc("mail me: John.Doe+x@Example.co.uk!"),
            "mail me: [EMAIL]!"
        );
        assert_eq!(sc("call +44 20 7946 0958 today"), "call [PHONE] today");
        assert_eq!(sc("card 4111 1111 1111 1111 ok"), "card [CARD] ok");
        assert_eq!(sc("iban DE89 3704 0044 0532 0130 00."), "iban [IBAN].");
        assert_eq!(
            sc("from 192.168.1.20 and 2001:db8::1"),
            "from [IP] and [IP]"
        );
        assert_eq!(
            sc("joined 2024-05-01, loved it"),
            "joined 2024-05-01, loved it"
        );
        assert_eq!(sc("no identifiers here"), "no identifiers here");
    }

    #[test]
    fn detect_agrees_with_scrub() {
        assert_eq!(
            detect("mail a.b@x.org or call +44 20 7946 0958"),
            vec!["email", "phone"]
        );
        assert_eq!(
            detect("card 4111 1111 1111 1111, ip 10.0.0.1"),
            vec!["ip", "card"]
        );
        assert_eq!(
            detect("IBAN GB82 WEST 1234 5698 7654 32 on 2024-05-01"),
            vec!["iban"]
        );
        assert!(detect("nothing here, 2024-05-01, 12:30").is_empty());
        assert!(detect("offer S123456789_DE, code A1234567").is_empty());
        // Lookalikes are not reported (16 digits are too many for a phone, no Luhn: no
        // card; a wrong IBAN checksum; a network), though scrub still replaces the digits.
        assert!(detect("card 4111 1111 1111 1112").is_empty());
        assert_ne!(sc("card 4111 1111 1111 1112"), "card 4111 1111 1111 1112");
        assert!(detect("GB83 WEST 1234 5698 7654 32").is_empty());
        assert!(detect("from 203.0.113.0/24 and 2001:db8::/48").is_empty());
        assert_eq!(detect("from 203.0.113.7/32"), vec!["ip"]);
        assert_eq!(detect("call +49 1512 3456789"), vec!["phone"]);
    }

    #[test]
    fn a_printed_iban_followed_by_capitals_is_found() {
        assert_eq!(
            sc("pay to GB82 WEST 1234 5698 7654 32 ASAP"),
            "pay to [IBAN] ASAP"
        );
        assert_eq!(
            detect("pay to GB82 WEST 1234 5698 7654 32 ASAP"),
            vec!["iban"]
        );
        // Without spaces a code is checked whole only.
        assert!(!sc("code GB82WEST12345698765432ABC").contains("[IBAN]"));
    }

    #[test]
    fn detect_reports_byte_ranges_of_the_text() {
        let t = "mail ana@example.com or call +44 20 7946 0958";
        let r = detect_ranges(t);
        assert_eq!(r.len(), 2);
        assert_eq!(&t[r[0].0..r[0].1], "ana@example.com");
        assert_eq!(r[1].2, "phone");
        assert!(t[r[1].0..r[1].1].contains("7946"));
    }

    /// Text where every round exposes one more identifier (found by the `scrub` fuzz
    /// target as a slow unit: 3.4 KB took 256 rounds): each `[IP]` gives the IBAN-shaped
    /// capitals before it a word boundary, the detector blanks them as a lookalike, and
    /// that ends the IPv6 candidate before them at `::`. Up to `MAX_ROUNDS` rounds the
    /// text is scrubbed as before; past them it is removed whole, clean and idempotent.
    #[test]
    fn a_text_that_does_not_settle_is_removed_whole() {
        let link = "31db8::18::CB82WEST B8 2T BA30db8::18::CB82WEST B8 2T 2T ";
        let seed = "BA2 T B8280:";
        // Two links: four addresses, one round each (and one that changes nothing).
        let short = format!("{}{seed}", link.repeat(2));
        let once = sc(&short);
        assert_eq!(once.matches("[IP]").count(), 4, "{once}");
        assert!(!once.contains(REMOVED));
        // Four links and more: past the bound.
        for n in [4, 50] {
            let long = format!("{}{seed}", link.repeat(n));
            let (mut out, mut by_reference) = (String::new(), String::new());
            let count = scrub(&long, &mut out);
            assert_eq!(out, REMOVED, "{n} links");
            assert_eq!(count, reference::scrub(&long, &mut by_reference));
            assert_eq!(by_reference, REMOVED);
        }
        assert!(detect(REMOVED).is_empty());
        assert_eq!(sc(REMOVED), REMOVED);
        // With the row's name: the placeholder stays whole, even for a name that spells it.
        let long = format!("Anna {}{seed}", link.repeat(4));
        assert_eq!(named(&long, &["Anna"]), REMOVED);
        assert_eq!(named("[REMOVED] Removed", &["Removed"]), "[REMOVED] [NAME]");
    }

    /// Found by the `scrub` fuzz target: a phone number cut from the tail of an
    /// IBAN-shaped code left a valid IBAN; and blanking a lookalike with a space joined
    /// the digits on both sides into a phone. Scrubbed text must hold nothing `detect`
    /// finds, and scrubbing must be idempotent.
    #[test]
    fn scrubbing_reaches_a_fixpoint_that_detect_finds_clean() {
        for t in [
            "1113 GB82WE82WEST123(331",
            "IBAN123 GB82 WEST 123 GB82 WEST 123 GB83 WEST 1234 611, x",
            "5551234567GB82WEST12345698765432",
            // Blanking the IBAN lookalike ended an IPv6 candidate at "::8::".
            "::8::CB82WETBB82WB8W",
            "josé@example.com frank@例え.jp eve@exаmple.com \"john doe\"@example.com",
            "li\u{200b}@example.com dave＠example.com ０６１２３４５６７８ ٠٦١٢٣٤٥٦٧٨",
            "de89370400440532013000 and DE89370400440532013000 and de89 3704 0044 0532 0130 00x",
            "４１１１ １１１１ １１１１ １１１１ ＤＥ８９３７０４００４４０５３２０１３０００",
            "ab12 0612345678901 gb82 west 1234 5698 7654 32 ASAP",
        ] {
            let once = sc(t);
            assert!(
                detect(&once).is_empty(),
                "{t:?} -> {once:?}: {:?}",
                detect(&once)
            );
            assert_eq!(sc(&once), once, "{t:?}");
        }
    }

    /// The scrubber and detector as they were before their fast paths (every pass run,
    /// through `Regex::replace_all`, with the shared patterns): what the fast paths must
    /// agree with.
    mod reference {
        use super::super::network_follows;
        use super::super::{ANY, ISO_DATE, digit_value, digits_of, iban_prefix, luhn_ok};
        use super::super::{CARD_RE, DIGITS_RE, EMAIL_RE, IBAN_ANY_RE, IBAN_RE, IPV4_RE, IPV6_RE};
        use regex::{Captures, Regex};
        use std::net::{Ipv4Addr, Ipv6Addr};
        use std::sync::LazyLock;

        static EMAIL: LazyLock<Regex> = LazyLock::new(|| Regex::new(EMAIL_RE).unwrap());
        static IBAN: LazyLock<Regex> = LazyLock::new(|| Regex::new(IBAN_RE).unwrap());
        static IBAN_ANY: LazyLock<Regex> = LazyLock::new(|| Regex::new(IBAN_ANY_RE).unwrap());
        static IPV6: LazyLock<Regex> = LazyLock::new(|| Regex::new(IPV6_RE).unwrap());
        static IPV4: LazyLock<Regex> = LazyLock::new(|| Regex::new(IPV4_RE).unwrap());
        static CARD: LazyLock<Regex> = LazyLock::new(|| Regex::new(CARD_RE).unwrap());
        static DIGITS: LazyLock<Regex> = LazyLock::new(|| Regex::new(DIGITS_RE).unwrap());

        pub(super) fn scrub(text: &str, out: &mut String) -> usize {
            if !may_hold_identifier(text) {
                out.push_str(text);
                return 0;
            }
            scrub_passes(text, out)
        }

        pub(super) fn may_hold_identifier(text: &str) -> bool {
            has_trigger_byte(text) && ANY.is_match(text)
        }

        /// An at sign, a ':' or a digit, of any script.
        pub(super) fn has_trigger_byte(text: &str) -> bool {
            text.chars()
                .any(|c| matches!(c, '@' | '＠' | '﹫' | ':') || digit_value(c).is_some())
        }

        pub(super) fn scrub_passes(text: &str, out: &mut String) -> usize {
            let mut s = std::borrow::Cow::Borrowed(text);
            let mut count = 0;
            // Every replacement removes an at sign, ':' or digit, so this ends; it ends when a
            // round changes nothing, so scrubbing scrubbed text changes nothing; past
            // MAX_ROUNDS rounds that each changed something, a text any pattern still
            // matches is removed whole.
            for _ in 0..super::super::MAX_ROUNDS {
                let (next, n) = scrub_once(&s);
                let (next, m) = replace_detected(next);
                count += n + m;
                if n + m == 0 {
                    out.push_str(&s);
                    return count;
                }
                s = std::borrow::Cow::Owned(next.into_owned());
            }
            if !may_hold_identifier(&s) {
                out.push_str(&s);
                return count;
            }
            out.push_str(super::super::REMOVED);
            count + 1
        }

        pub(super) fn replace_detected(
            s: std::borrow::Cow<'_, str>,
        ) -> (std::borrow::Cow<'_, str>, usize) {
            // Which ranges are found is what the fast paths changed; the splice is shared.
            let found = detect_ranges(&s);
            super::super::splice_detected(s, found)
        }

        pub(super) fn scrub_once(text: &str) -> (std::borrow::Cow<'_, str>, usize) {
            let mut count = 0usize;
            // Fast path: text without an at sign, ':' or digits holds nothing we look for.
            if !has_trigger_byte(text) {
                return (std::borrow::Cow::Borrowed(text), 0);
            }
            let mut s = std::borrow::Cow::Borrowed(text);
            let mut pass =
                |s: std::borrow::Cow<'_, str>,
                 re: &Regex,
                 f: &dyn Fn(&str) -> Option<std::borrow::Cow<'static, str>>| {
                    let mut n = 0usize;
                    let r = re.replace_all(&s, |c: &Captures<'_>| {
                        let m = c.get(0).unwrap().as_str();
                        match f(m) {
                            Some(p) => {
                                n += 1;
                                p.into_owned()
                            }
                            None => m.to_string(),
                        }
                    });
                    let r = r.into_owned();
                    count += n;
                    std::borrow::Cow::<str>::Owned(r)
                };
            let fixed = |p: &'static str| Some(std::borrow::Cow::Borrowed(p));
            if s.contains(['@', '＠', '﹫']) {
                s = pass(s, &EMAIL, &|_| fixed("[EMAIL]"));
            }
            for re in [&IBAN, &IBAN_ANY] {
                s = pass(s, re, &|m| {
                    iban_prefix(m)
                        .map(|end| std::borrow::Cow::Owned(format!("[IBAN]{}", &m[end..])))
                });
            }
            if s.contains(':') {
                s = pass(s, &IPV6, &|m| {
                    let t = m.trim_end_matches(':');
                    if t.parse::<Ipv6Addr>().is_ok() || m.parse::<Ipv6Addr>().is_ok() {
                        fixed("[IP]")
                    } else {
                        None
                    }
                });
            }
            s = pass(s, &IPV4, &|m| {
                if m.parse::<Ipv4Addr>().is_ok() {
                    fixed("[IP]")
                } else {
                    None
                }
            });
            s = pass(s, &CARD, &|m| {
                if luhn_ok(&digits_of(m)) {
                    fixed("[CARD]")
                } else {
                    None
                }
            });
            s = pass(s, &DIGITS, &|m| {
                if ISO_DATE.is_match(m) {
                    return None;
                }
                fixed(if digits_of(m).len() <= 15 {
                    "[PHONE]"
                } else {
                    "[NUMBER]"
                })
            });
            (s, count)
        }

        pub(super) fn detect_ranges(text: &str) -> Vec<(usize, usize, &'static str)> {
            if !may_hold_identifier(text) {
                return Vec::new();
            }
            detect_passes(text)
        }

        pub(super) fn detect_passes(text: &str) -> Vec<(usize, usize, &'static str)> {
            let mut found = Vec::new();
            let mut rest = text.to_string();
            // Each pass blanks what it found so that later passes do not count it again. `judge`
            // sees the text and the match's range: `Some(true)` counts and blanks it,
            // `Some(false)` only blanks it (a lookalike no later pass should read as something
            // else), `None` leaves it. Blanking writes one `_` per byte: positions stay those of
            // `text`, and a letter (not a space) never joins the digits on either side into a
            // phone number.
            // Which passes run is what the fast path changed; one pass is shared (given no
            // pattern's index, it searches the text itself, never its ASCII shadow).
            let mut pass =
                |re: &Regex,
                 kind: &'static str,
                 judge: &dyn Fn(&str, usize, usize) -> Option<bool>| {
                    super::super::detect_pass(re, usize::MAX, kind, judge, &mut rest, &mut found);
                };
            pass(&EMAIL, "email", &|_, _, _| Some(true));
            // An IBAN-shaped code with a wrong checksum is no IBAN, and its digits are no phone.
            pass(&IBAN, "iban", &|t, a, b| {
                Some(iban_prefix(&t[a..b]).is_some())
            });
            // Lower case or full-width: only a valid one counts (and is blanked).
            pass(&IBAN_ANY, "iban", &|t, a, b| {
                iban_prefix(&t[a..b]).is_some().then_some(true)
            });
            pass(&IPV6, "ip", &|t, a, b| {
                let m = &t[a..b];
                (m.contains(':')
                    && (m.trim_end_matches(':').parse::<Ipv6Addr>().is_ok()
                        || m.parse::<Ipv6Addr>().is_ok()))
                .then_some(!network_follows(t, b, 64))
            });
            // A network (`203.0.113.0/24`) is what the `network` rule publishes, not an address.
            pass(&IPV4, "ip", &|t, a, b| {
                t[a..b]
                    .parse::<Ipv4Addr>()
                    .is_ok()
                    .then_some(!network_follows(t, b, 24))
            });
            // More digits than any phone number has (E.164: 15) and no Luhn: no card, no phone.
            pass(&CARD, "card", &|t, a, b| {
                let digits = digits_of(&t[a..b]);
                if luhn_ok(&digits) {
                    Some(true)
                } else {
                    (digits.len() > 15).then_some(false)
                }
            });
            // A digit run glued to letters is a code (an offer id like S123456789_DE), not a phone.
            let glued = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
            for m in DIGITS.find_iter(&rest) {
                let before = rest[..m.start()].bytes().next_back();
                let after = rest[m.end()..].bytes().next();
                if !ISO_DATE.is_match(m.as_str())
                    && !glued(before)
                    && !glued(after)
                    && m.as_str()
                        .chars()
                        .filter(|&c| digit_value(c).is_some())
                        .count()
                        <= 15
                {
                    found.push((m.start(), m.end(), "phone"));
                }
            }
            found
        }
    }

    use proptest::strategy::Strategy as _;

    /// Texts of identifiers, codes like the export's payment references, and the
    /// characters the patterns look for (digits, capitals, separators, '@', ':', '.',
    /// and a few past ASCII), glued together.
    fn glued_texts() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::collection::vec(
            proptest::prop_oneof![
                "[0-9A-Fa-z .:@+()/_-]{0,12}",
                "[0-9A-Z .()/-]{0,16}",
                "[0-9a-zA-Z_éß٣\u{a0}\u{3000}.-]{0,8}",
                "[0-9a-f０-９٠-٩ａ-ｚＡ-Ｚ@＠﹫．.\u{200b}\u{ad} 例え\"-]{0,10}",
                proptest::sample::select(vec![
                    "user@example.com",
                    "+44 20 7946 0958",
                    "4111 1111 1111 1111",
                    "192.168.1.1",
                    "203.0.113.0/24",
                    "2001:db8::1",
                    "fe80::1/64",
                    "GB82 WEST 1234 5698 7654 32",
                    "DE89370400440532013000",
                    "PAYID-G1ESQAF4ETQI3FNSV82QTG8X",
                    "2024-01-31",
                    "S123456789_DE",
                    "APL09156043969890884760",
                    "GPA.0915-6043-9698-9088-4760",
                    "pi_3CNGNC9R90FW013574LFO",
                    "roku_00ff3a9e71c2b4d5",
                    "josé@example.com",
                    "frank@例え.jp",
                    "eve@exаmple.com",
                    "\"john doe\"@example.com",
                    "li\u{200b}@example.com",
                    "dave＠example.com",
                    "０６１２３４５６７８",
                    "٠٦١٢٣٤٥٦٧٨",
                    "４１１１ １１１１ １１１１ １１１１",
                    "de89370400440532013000",
                    "de89 3704 0044 0532 0130 00",
                    "9f86d081884c7d659a2feaa0c55ad015",
                    "Grüße",
                    "kartą",
                    "über",
                ])
                .prop_map(String::from),
            ],
            0..5,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// The fast paths change nothing (the set of patterns that match, or for text past
        /// ASCII the set without word boundaries, the passes skipped when theirs does not,
        /// replacing only what a check accepts, the thread's own patterns): scrub and
        /// detect give what the plain passes give (the reference, with and without its
        /// own first filter).
        #[test]
        fn the_fast_paths_change_nothing(text in glued_texts()) {
            let (mut a, mut b, mut c) = (String::new(), String::new(), String::new());
            let n = scrub(&text, &mut a);
            proptest::prop_assert_eq!((n, &a), (reference::scrub(&text, &mut b), &b));
            proptest::prop_assert_eq!((n, &a), (reference::scrub_passes(&text, &mut c), &c));
            let found = detect_ranges(&text);
            proptest::prop_assert_eq!(&found, &reference::detect_ranges(&text));
            proptest::prop_assert_eq!(&found, &reference::detect_passes(&text));
        }
    }

    /// Text past ASCII is screened without word boundaries (`ANY_LOOSE`), but what is
    /// replaced is still what the exact patterns match: a letter past ASCII is a word
    /// character, so a code glued to one is no IBAN, address or card.
    #[test]
    fn word_boundaries_past_ascii_still_hold() {
        for (text, want) in [
            (
                "Zapłaciłem kartą 4111 1111 1111 1111 z 192.168.1.2",
                "Zapłaciłem kartą [CARD] z [IP]",
            ),
            ("Grüße, Jürgen", "Grüße, Jürgen"),
            (
                "IBAN: DE89370400440532013000 (Müller)",
                "IBAN: [IBAN] (Müller)",
            ),
            ("éDE89370400440532013000", "éDE[NUMBER]"),
            ("ü192.168.1.2", "ü[PHONE]"),
            ("192.168.1.2ü", "[PHONE]ü"),
            (
                "４１１１ １１１１ １１１１ １１１１ überwiesen",
                "[CARD] überwiesen",
            ),
        ] {
            let (mut a, mut b) = (String::new(), String::new());
            reference::scrub(text, &mut b);
            assert_eq!(sc(text), want, "{text}");
            scrub(text, &mut a);
            assert_eq!(a, b, "{text}");
            assert_eq!(
                detect_ranges(text),
                reference::detect_ranges(text),
                "{text}"
            );
        }
    }

    /// Addresses past ASCII: local parts and domains in any script, a homoglyph domain
    /// (Cyrillic `а`), a quoted local part, format characters inside, full-width forms.
    #[test]
    fn unicode_emails_are_scrubbed_and_detected() {
        for addr in [
            "josé@example.com",
            "jose\u{301}@example.com",
            "frank@例え.jp",
            "frank@例え.日本",
            "eve@exаmple.com",
            "\"john doe\"@example.com",
            "li\u{200b}@example.com",
            "li\u{ad}sa@exam\u{ad}ple.com",
            "li\u{2060}sa@example.c\u{2060}om",
            "\u{feff}lisa@example.com",
            "lisa@\u{200b}example.\u{200b}com",
            "dave＠example.com",
            "dave﹫example.com",
            "ｄａｖｅ＠ｅｘａｍｐｌｅ．ｃｏｍ",
            "john_doe@example.com",
            "अनु@उदाहरण.भारत",
        ] {
            let t = format!("write to {addr} please");
            assert_eq!(sc(&t), "write to [EMAIL] please", "{addr:?}");
            assert_eq!(detect(&t), vec!["email"], "{addr:?}");
            let r = detect_ranges(&t);
            assert_eq!(&t[r[0].0..r[0].1], addr);
        }
    }

    /// Digits of any script: full-width and Arabic-Indic phone numbers, a full-width
    /// card, separators past ASCII (no-break space, full-width hyphen).
    #[test]
    fn digits_of_any_script_are_scrubbed_and_detected() {
        for (t, want, kind) in [
            ("tel ０６１２３４５６７８ ok", "tel [PHONE] ok", "phone"),
            ("tel ٠٦١٢٣٤٥٦٧٨ ok", "tel [PHONE] ok", "phone"),
            ("tel ०६१२३४५६७८ ok", "tel [PHONE] ok", "phone"),
            (
                "電話０３－１２３４－５６７８まで",
                "電話[PHONE]まで",
                "phone",
            ),
            (
                "call +44\u{a0}20\u{a0}7946\u{a0}0958 ok",
                "call [PHONE] ok",
                "phone",
            ),
            (
                "call 06\u{200b}12\u{200b}34\u{200b}56\u{200b}78",
                "call [PHONE]",
                "phone",
            ),
            (
                "card ４１１１ １１１１ １１１１ １１１１ ok",
                "card [CARD] ok",
                "card",
            ),
            (
                "card 4111\u{a0}1111\u{a0}1111\u{a0}1111 ok",
                "card [CARD] ok",
                "card",
            ),
        ] {
            assert_eq!(sc(t), want, "{t:?}");
            assert_eq!(detect(t), vec![kind], "{t:?}");
        }
        assert_eq!(digits_of("４１１１-٠٦"), "411106");
        assert!(luhn_ok("４１１１１１１１１１１１１１１１"));
        assert!(!luhn_ok("４１１１１１１１１１１１１１１２"));
    }

    /// The table of zeros gives every character `\d` matches its value, and nothing else
    /// one.
    #[test]
    fn digit_values_follow_the_patterns_digits() {
        let all: String = (0..=0x10FFFFu32).filter_map(char::from_u32).collect();
        let by_pattern: Vec<char> = Regex::new(r"\d")
            .unwrap()
            .find_iter(&all)
            .flat_map(|m| m.as_str().chars())
            .collect();
        let by_table: Vec<char> = all.chars().filter(|&c| digit_value(c).is_some()).collect();
        assert_eq!(by_pattern, by_table);
        // Runs of ten, 0 to 9 in order.
        for (i, &c) in by_table.iter().enumerate() {
            assert_eq!(digit_value(c), Some(i as u32 % 10), "{c:?}");
        }
        assert_eq!(digit_value('７'), Some(7));
        assert_eq!(digit_value('٣'), Some(3));
        assert_eq!(digit_value('a'), None);
        assert_eq!(digit_value('²'), None);
    }

    /// An IBAN in lower case (or full-width) is found and replaced when its checksum holds
    /// and its country has IBANs of its length; a lower-case code or hex id is not.
    #[test]
    fn lower_case_ibans_are_found() {
        for iban in [
            "de89370400440532013000",
            "de89 3704 0044 0532 0130 00",
            "De89 3704 0044 0532 0130 00",
            "gb82 west 1234 5698 7654 32",
            "ＤＥ８９３７０４００４４０５３２０１３０００",
        ] {
            let t = format!("pay to {iban}, thanks");
            assert_eq!(detect(&t), vec!["iban"], "{iban:?}");
            assert_eq!(sc(&t), "pay to [IBAN], thanks", "{iban:?}");
        }
        // Lower case: a wrong checksum, a wrong length, no such country.
        assert!(detect("ref de88370400440532013000").is_empty());
        assert!(detect("ref de8937040044053201300").is_empty());
        assert!(!iban_ok("zz89370400440532013000"));
        // In capitals the checksum alone decides, as before.
        assert!(iban_ok("DE89370400440532013000"));
    }

    /// Text with nothing to find stays as it is and clean: accents, Japanese prose and
    /// full-width figures without an at sign, and 32-hex tokens, alone or in text
    /// (including ones that start like a lower-case IBAN).
    #[test]
    fn unicode_prose_and_tokens_stay_clean() {
        for t in [
            "café crème, naïve façade",
            "今日は良い天気ですね。明日も晴れるでしょう。",
            "２０２４年５月１日に届きました",
            "Ünïcödé ünd ßtraße №５",
            "mail at example.com",
            "@例え 会議",
        ] {
            assert_eq!(sc(t), t, "{t:?}");
            assert!(detect(t).is_empty(), "{t:?}: {:?}", detect(t));
        }
        // (Scrubbing takes their runs of digits: `de[NUMBER]deadbeef0a`.)
        for t in [
            "de89370400440532013000deadbeef0a",
            "token de12345678901234567890abcdef01 done",
        ] {
            assert!(detect(t).is_empty(), "{t:?}: {:?}", detect(t));
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..200_000 {
            let mut token: String = (0..32)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    char::from_digit((x % 16) as u32, 16).unwrap()
                })
                .collect();
            if i % 2 == 0 {
                // Start like a lower-case IBAN of a country whose letters are hex digits.
                let cc = ["ad", "ae", "ba", "be", "de", "ee"][i % 6];
                token.replace_range(..4, &format!("{cc}{:02}", (x >> 8) % 100));
            }
            assert!(detect(&token).is_empty(), "{token}");
            let t = format!("ref {token} ok");
            assert!(detect(&t).is_empty(), "{t}");
        }
    }

    #[test]
    fn checksums() {
        assert!(luhn_ok("4111111111111111"));
        assert!(!luhn_ok("4111111111111112"));
        assert!(iban_ok("GB82 WEST 1234 5698 7654 32"));
        assert!(!iban_ok("GB83 WEST 1234 5698 7654 32"));
    }
}
