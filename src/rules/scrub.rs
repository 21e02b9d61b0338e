//! `scrub`: removes identifiers from free text (form answers, support notes) while keeping
//! the rest of the text readable.
//!
//! Replaced, in this order, each by a placeholder:
//! - email addresses -> `[EMAIL]`
//! - IBANs whose ISO 13616 mod-97 checksum holds -> `[IBAN]`
//! - IPv6 and IPv4 addresses (that parse as such) -> `[IP]`
//! - card numbers, 13-19 digits with optional spaces or dashes, passing Luhn -> `[CARD]`
//! - any other run of 7 or more digits (spaces, dots, dashes, parentheses and a leading
//!   `+` allowed between them): phone numbers -> `[PHONE]`, and longer digit runs (account
//!   numbers, cards that fail Luhn) -> `[NUMBER]`. ISO dates (`2024-05-01`) are left alone.
//!
//! Scrubbing errs on the side of removing too much: a number that merely looks like a
//! phone goes too. It cannot know every way a person can be described in prose (a name in
//! a sentence stays), which is why free text is best dropped unless it is needed.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use regex::Regex;

use super::generalize::udf_struct;
use super::{check_args, first_array, is_string, map_strings};

const EMAIL_RE: &str = r"(?i)[a-z0-9._%+'\-]+\s?@\s?[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}";
const IBAN_RE: &str = r"\b[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]){11,30}\b";
const IPV6_RE: &str =
    r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:[0-9a-f]{1,4}|(?:[0-9]{1,3}\.){3}[0-9]{1,3})?";
const IPV4_RE: &str = r"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b";
const CARD_RE: &str = r"\b(?:[0-9][ \-]?){12,18}[0-9]\b";
const DIGITS_RE: &str = r"\+?\(?[0-9](?:[ .\-()/]{0,3}[0-9]){6,}\)?";

/// The six patterns, in the order the passes of [`scrub`] and [`detect`] run them; their
/// positions here are their positions in [`ANY`].
const PATTERNS: [&str; 6] = [EMAIL_RE, IBAN_RE, IPV6_RE, IPV4_RE, CARD_RE, DIGITS_RE];
const EMAIL: usize = 0;
const IBAN: usize = 1;
const IPV6: usize = 2;
const IPV4: usize = 3;
const CARD: usize = 4;
const DIGITS: usize = 5;

static COMPILED: LazyLock<[Regex; 6]> = LazyLock::new(|| PATTERNS.map(|p| Regex::new(p).unwrap()));
/// All six patterns in one automaton: which of them match a text anywhere, in one scan.
/// A text none of them matches is left as it is by [`scrub`] and has nothing for
/// [`detect`] (every pass of both only acts on a match of one of them), and a pass whose
/// pattern does not match is skipped (see [`Patterns::live`]). Codes such as payment
/// references (`PAYID-G1ESQAF4ETQI3FNSV82QTG8X`) hold digits but none of these.
static ANY: LazyLock<regex::RegexSet> = LazyLock::new(|| regex::RegexSet::new(PATTERNS).unwrap());
static ISO_DATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$").unwrap());

/// The compiled patterns, cloned once per thread. A `Regex` hands out its search caches
/// from a pool whose fast path serves only the thread that first used it; every other
/// thread took a lock to get a cache and again to give it back (`Pool::get_slow`, 2 % of
/// the CPU of a run scrubbing 20M payment references). A clone shares the compiled
/// automata and has a pool of its own.
struct Patterns {
    any: regex::RegexSet,
    each: [Regex; 6],
    iso_date: Regex,
}

thread_local! {
    static LOCAL: Patterns = Patterns {
        any: ANY.clone(),
        each: COMPILED.clone(),
        iso_date: ISO_DATE.clone(),
    };
}

/// Whether a digit string passes the Luhn check.
pub fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for c in digits.bytes().rev() {
        if !c.is_ascii_digit() {
            return false;
        }
        let mut d = (c - b'0') as u32;
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

/// Whether `s` (spaces allowed) is an IBAN with a valid mod-97 checksum.
pub fn iban_ok(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|b| *b != b' ').collect();
    if compact.len() < 15 || compact.len() > 34 {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for &b in tail.iter().chain(head) {
        let v = match b {
            b'0'..=b'9' => (b - b'0') as u32,
            b'A'..=b'Z' => (b - b'A') as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn digits_of(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
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
        next.push_str(match kind {
            "email" => "[EMAIL]",
            "iban" => "[IBAN]",
            "ip" => "[IP]",
            "card" => "[CARD]",
            _ => "[PHONE]",
        });
        last = b;
        count += 1;
    }
    next.push_str(&s[last..]);
    (Cow::Owned(next), count)
}

/// One detector pass over `rest`: each match of `re` that `judge` counts (`Some(true)`)
/// goes to `found` as `kind`; every match it does not reject (`None`) is blanked with `x`
/// (ASCII matches, so offsets stay), so that later passes do not see it again.
fn detect_pass(
    re: &Regex,
    kind: &'static str,
    judge: &dyn Fn(&str, usize, usize) -> Option<bool>,
    rest: &mut String,
    found: &mut Vec<(usize, usize, &'static str)>,
) {
    let mut blank = Vec::new();
    for m in re.find_iter(rest) {
        let Some(count) = judge(rest, m.start(), m.end()) else {
            continue;
        };
        if count {
            found.push((m.start(), m.end(), kind));
        }
        blank.push(m.range());
    }
    if !blank.is_empty() {
        let mut bytes = std::mem::take(rest).into_bytes();
        for r in blank {
            bytes[r].fill(b'x');
        }
        *rest = String::from_utf8(bytes).expect("ASCII over whole characters");
    }
}

/// Whether `text` holds an '@', a ':' or a digit: every pattern needs one.
fn has_trigger_byte(text: &str) -> bool {
    text.bytes()
        .any(|b| b == b'@' || b == b':' || b.is_ascii_digit())
}

impl Patterns {
    /// Which patterns match `text`; `None` when none does (told by its bytes: no '@',
    /// ':' or digit; else by the set's `is_match`, which stops at the first match and is
    /// cheaper than asking which ones: most texts without a match are codes that hold
    /// digits).
    fn live(&self, text: &str) -> Option<regex::SetMatches> {
        if !has_trigger_byte(text) || !self.any.is_match(text) {
            return None;
        }
        Some(self.any.matches(text))
    }

    /// [`scrub`] after its first filter: rounds of [`Patterns::scrub_once`] and the
    /// detector's replacements until one changes nothing. `live`: the patterns that
    /// match `text`.
    fn scrub_passes(&self, text: &str, live: regex::SetMatches, out: &mut String) -> usize {
        let mut s = Cow::Borrowed(text);
        let mut live = Some(live);
        let mut count = 0;
        // Every replacement removes an '@', ':' or digit, so this ends; it ends when a
        // round changes nothing (or nothing matches), so scrubbing scrubbed text changes
        // nothing.
        while let Some(m) = live {
            let (next, n, after) = self.scrub_once(s, m);
            let (next, k) = match &after {
                Some(m) => self.replace_detected(next, m),
                None => (next, 0),
            };
            s = next;
            count += n + k;
            if n + k == 0 {
                break;
            }
            // What matches the text is known from the passes unless the detector's
            // replacements changed it since.
            live = if k == 0 { after } else { self.live(&s) };
        }
        out.push_str(&s);
        count
    }

    /// One round of the passes, in order (emails, IBANs, IPv6, IPv4, cards, other
    /// digits), each replacing what its pattern matches and its check accepts. A pass
    /// whose pattern does not match the text as it stands is skipped (it would change
    /// nothing); which patterns match is asked again after a pass that changed the text.
    /// Returns the text, how many were replaced, and which patterns match the result.
    fn scrub_once<'a>(
        &self,
        mut s: Cow<'a, str>,
        live: regex::SetMatches,
    ) -> (Cow<'a, str>, usize, Option<regex::SetMatches>) {
        let mut live = Some(live);
        let mut count = 0;
        for pass in [EMAIL, IBAN, IPV6, IPV4, CARD, DIGITS] {
            let Some(m) = &live else { break };
            if !m.matched(pass) {
                continue;
            }
            if let Some((next, n)) = self.replace(pass, &s) {
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
        for m in self.each[pass].find_iter(s) {
            let Some(with) = self.placeholder(pass, m.as_str()) else {
                continue;
            };
            if n == 0 {
                out.reserve(s.len());
            }
            out.push_str(&s[last..m.start()]);
            out.push_str(&with);
            last = m.end();
            n += 1;
        }
        (n > 0).then(|| {
            out.push_str(&s[last..]);
            (out, n)
        })
    }

    /// What a match `m` of pattern `pass` becomes, or `None` to leave it.
    fn placeholder(&self, pass: usize, m: &str) -> Option<Cow<'static, str>> {
        let fixed = |p: &'static str| Some(Cow::Borrowed(p));
        match pass {
            EMAIL => fixed("[EMAIL]"),
            IBAN => iban_prefix(m).map(|end| Cow::Owned(format!("[IBAN]{}", &m[end..]))),
            IPV6 => {
                let t = m.trim_end_matches(':');
                if t.parse::<Ipv6Addr>().is_ok() || m.parse::<Ipv6Addr>().is_ok() {
                    fixed("[IP]")
                } else {
                    None
                }
            }
            IPV4 => m
                .parse::<Ipv4Addr>()
                .is_ok()
                .then_some(Cow::Borrowed("[IP]")),
            CARD => luhn_ok(&digits_of(m)).then_some(Cow::Borrowed("[CARD]")),
            _ if self.iso_date.is_match(m) => None,
            _ => fixed(if digits_of(m).len() <= 15 {
                "[PHONE]"
            } else {
                "[NUMBER]"
            }),
        }
    }

    /// Replaces what the gate's detector finds (its blanking of lookalikes can expose
    /// something the passes of [`Patterns::scrub_once`], which leave lookalikes in place,
    /// do not see). `live`: the patterns that match `s`.
    fn replace_detected<'a>(
        &self,
        s: Cow<'a, str>,
        live: &regex::SetMatches,
    ) -> (Cow<'a, str>, usize) {
        let found = self.detect_passes(&s, live);
        splice_detected(s, found)
    }

    /// [`detect_ranges`] after its first filter. `live`: the patterns that match `text`.
    /// A pass whose pattern does not match `text` is skipped: blanking (below) writes
    /// `x`, which no pattern after the emails' takes in, and which only takes word
    /// boundaries away, so a pattern that matches nowhere in `text` matches nowhere after.
    fn detect_passes(
        &self,
        text: &str,
        live: &regex::SetMatches,
    ) -> Vec<(usize, usize, &'static str)> {
        let mut found = Vec::new();
        let mut rest = text.to_string();
        // Each pass blanks what it found so that later passes do not count it again.
        // `judge` sees the text and the match's range: `Some(true)` counts and blanks it,
        // `Some(false)` only blanks it (a lookalike no later pass should read as
        // something else), `None` leaves it. Blanking writes one `x` per byte: positions
        // stay those of `text`, and a letter (not a space) never joins the digits on
        // either side into a phone number.
        let mut pass =
            |i: usize, kind: &'static str, judge: &dyn Fn(&str, usize, usize) -> Option<bool>| {
                if live.matched(i) {
                    detect_pass(&self.each[i], kind, judge, &mut rest, &mut found);
                }
            };
        pass(EMAIL, "email", &|_, _, _| Some(true));
        // An IBAN-shaped code with a wrong checksum is no IBAN, and its digits are no
        // phone.
        pass(IBAN, "iban", &|t, a, b| {
            Some(iban_prefix(&t[a..b]).is_some())
        });
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
                && m.as_str().bytes().filter(u8::is_ascii_digit).count() <= 15
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

udf_struct!(ScrubUdf);

impl ScalarUDFImpl for ScrubUdf {
    fn name(&self) -> &str {
        "anon_scrub"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        check_args(self.name(), arg_types, 1..=1, is_string, "a string column")?;
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let a = first_array(&args.args, args.number_rows)?;
        let out = map_strings(&a, a.len() * 32, |s, buf| {
            scrub(s, buf);
            true
        })?;
        Ok(ColumnarValue::Array(out))
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
        use super::super::{ANY, ISO_DATE, digits_of, iban_prefix, luhn_ok, network_follows};
        use super::super::{CARD_RE, DIGITS_RE, EMAIL_RE, IBAN_RE, IPV4_RE, IPV6_RE};
        use regex::{Captures, Regex};
        use std::net::{Ipv4Addr, Ipv6Addr};
        use std::sync::LazyLock;

        static EMAIL: LazyLock<Regex> = LazyLock::new(|| Regex::new(EMAIL_RE).unwrap());
        static IBAN: LazyLock<Regex> = LazyLock::new(|| Regex::new(IBAN_RE).unwrap());
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

        pub(super) fn has_trigger_byte(text: &str) -> bool {
            text.bytes()
                .any(|b| b == b'@' || b == b':' || b.is_ascii_digit())
        }

        pub(super) fn scrub_passes(text: &str, out: &mut String) -> usize {
            let mut s = std::borrow::Cow::Borrowed(text);
            let mut count = 0;
            // Every replacement removes an '@', ':' or digit, so this ends; it ends when a round
            // changes nothing, so scrubbing scrubbed text changes nothing.
            loop {
                let (next, n) = scrub_once(&s);
                let (next, m) = replace_detected(next);
                count += n + m;
                if n + m == 0 {
                    break;
                }
                s = std::borrow::Cow::Owned(next.into_owned());
            }
            out.push_str(&s);
            count
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
            // Fast path: text without '@', ':' or digits holds nothing we look for.
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
            if s.contains('@') {
                s = pass(s, &EMAIL, &|_| fixed("[EMAIL]"));
            }
            s = pass(s, &IBAN, &|m| {
                iban_prefix(m).map(|end| std::borrow::Cow::Owned(format!("[IBAN]{}", &m[end..])))
            });
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
            // else), `None` leaves it. Blanking writes one `x` per byte: positions stay those of
            // `text`, and a letter (not a space) never joins the digits on either side into a
            // phone number.
            // Which passes run is what the fast path changed; one pass is shared.
            let mut pass =
                |re: &Regex,
                 kind: &'static str,
                 judge: &dyn Fn(&str, usize, usize) -> Option<bool>| {
                    super::super::detect_pass(re, kind, judge, &mut rest, &mut found);
                };
            pass(&EMAIL, "email", &|_, _, _| Some(true));
            // An IBAN-shaped code with a wrong checksum is no IBAN, and its digits are no phone.
            pass(&IBAN, "iban", &|t, a, b| {
                Some(iban_prefix(&t[a..b]).is_some())
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
                    && m.as_str().bytes().filter(u8::is_ascii_digit).count() <= 15
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
                ])
                .prop_map(String::from),
            ],
            0..5,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// The fast paths change nothing (the set of patterns that match, the passes
        /// skipped when theirs does not, replacing only what a check accepts, the
        /// thread's own patterns): scrub and detect give what the plain passes give (the
        /// reference, with and without its own first filter).
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

    #[test]
    fn checksums() {
        assert!(luhn_ok("4111111111111111"));
        assert!(!luhn_ok("4111111111111112"));
        assert!(iban_ok("GB82 WEST 1234 5698 7654 32"));
        assert!(!iban_ok("GB83 WEST 1234 5698 7654 32"));
    }
}
