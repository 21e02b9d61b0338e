//! `pseudonymize`: replaces a value by a keyed, fixed-width token.
//!
//! token = the first 16 bytes of keyed BLAKE3(key_d, normalized value), as 32 lowercase
//! hex characters, where key_d is the run key, or, when the rule names a `domain`, a key
//! derived from the run key and the domain (so tokens of different domains never match).
//! Integers are tokenized through their decimal text, so customer 42 stored as int64 in
//! one table and as "42" in another still joins. The same value and key give the same
//! token in every table and every run; without the key nobody can recompute a token from
//! a guessed email (which a plain hash would allow).
//!
//! Keyed BLAKE3 over HMAC-SHA-256: both are PRFs under a 256-bit key; BLAKE3 needs one
//! compression for values under 64 bytes where HMAC-SHA-256 needs two more after the
//! cached key pads. Measured on 30-byte values, token hex included, on this project's
//! 2-core machine (which has SHA-NI, HMAC's best case): 9.86 M/s vs 8.29 M/s on one core,
//! 1.19x (README, "Performance"; `cargo bench --bench kernels -- pseudonymize`). Columns
//! are hashed through [`for_each_digest_run`], which hashes values of up to 64 bytes 16
//! at a time in vector lanes ([`super::lanes`]): the same tokens, about 3x the crate's
//! one-at-a-time rate.

use datafusion::arrow::array::builder::NullBufferBuilder;
use datafusion::arrow::array::{Array, ArrayRef, StringArray};
use datafusion::arrow::buffer::{Buffer, OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use std::sync::Arc;

use super::lanes::{self, LANES, Lanes, MAX_LEN};
use super::{Normalize, check_args, first_array, is_string, str_arg};
use crate::key::Key;

/// Width of a token in characters.
pub const TOKEN_LEN: usize = 32;

/// Lower-case hex digits of every byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    let digits = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = [digits[i >> 4], digits[i & 15]];
        i += 1;
    }
    t
};

/// The keyed tokenizer for one (key, domain).
#[derive(Clone)]
pub struct Pseudonymizer {
    key: [u8; 32],
    /// The key as BLAKE3's words, for [`super::lanes`].
    words: [u32; 8],
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(..)")
    }
}

impl Drop for Pseudonymizer {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.key);
        zeroize::Zeroize::zeroize(&mut self.words);
    }
}

impl Pseudonymizer {
    pub fn new(key: &Key, domain: Option<&str>) -> Pseudonymizer {
        let key = match domain {
            None => *key.bytes(),
            Some(d) => {
                let mut material = Vec::with_capacity(32 + d.len());
                material.extend_from_slice(key.bytes());
                material.extend_from_slice(d.as_bytes());
                let k = blake3::derive_key("anonymizer 2026-11 pseudonym domain", &material);
                zeroize::Zeroize::zeroize(&mut material);
                k
            }
        };
        Pseudonymizer {
            words: lanes::key_words(&key),
            key,
        }
    }

    /// The token of already-normalized bytes, written as hex into `out`.
    #[inline]
    pub fn token_into(&self, value: &[u8], out: &mut [u8; TOKEN_LEN]) {
        hex_into(self.digest(value), out);
    }

    /// The token of already-normalized bytes before hex encoding: the first 16 bytes of
    /// the keyed hash, big-endian (so [`digest_of_token`] of the token gives it back).
    /// For in-memory lookups, where the token's text would only cost an allocation.
    #[inline]
    pub fn digest(&self, value: &[u8]) -> u128 {
        let h = blake3::keyed_hash(&self.key, value);
        let mut first = [0u8; 16];
        first.copy_from_slice(&h.as_bytes()[..16]);
        u128::from_be_bytes(first)
    }

    /// The digest of a string after normalization.
    pub fn digest_str(&self, value: &str, normalize: Normalize) -> u128 {
        let mut scratch = String::new();
        self.digest(normalized(value, normalize, &mut scratch).as_bytes())
    }

    /// The token of a string after normalization.
    pub fn token_str(&self, value: &str, normalize: Normalize) -> String {
        let mut out = [0u8; TOKEN_LEN];
        hex_into(self.digest_str(value, normalize), &mut out);
        String::from_utf8(out.to_vec()).expect("hex is ascii")
    }

    /// The token of an integer (through its decimal text).
    pub fn token_i64(&self, value: i64) -> String {
        let mut b = itoa::Buffer::new();
        self.token_str(b.format(value), Normalize::None)
    }
}

/// Applies `normalize` to `value`, using `scratch` only when a copy is needed.
#[inline]
pub fn normalized<'a>(value: &'a str, normalize: Normalize, scratch: &'a mut String) -> &'a str {
    match normalize {
        Normalize::None => value,
        Normalize::Trim => super::trimmed(value),
        Normalize::Email => {
            let t = super::trimmed(value);
            // Without early exit, so that the bytes are tested with vector instructions.
            if t.bytes()
                .fold(false, |a, b| a | b.is_ascii_uppercase() | !b.is_ascii())
            {
                scratch.clear();
                if t.is_ascii() {
                    scratch.push_str(t);
                    scratch.make_ascii_lowercase();
                } else {
                    // Canonically equivalent spellings (a precomposed `é` or `e` and a
                    // combining accent) are one address: lower-cased, then composed (NFC).
                    use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};
                    let lower = t.to_lowercase();
                    // Most text is composed already: checked without a copy.
                    if is_nfc_quick(lower.chars()) == IsNormalized::Yes {
                        scratch.push_str(&lower);
                    } else {
                        scratch.extend(lower.nfc());
                    }
                    ascii_domain(scratch);
                }
                scratch
            } else {
                t
            }
        }
    }
}

/// An internationalized domain (`bücher.de`) and its ASCII form (`xn--bcher-kva.de`)
/// are two spellings of one domain: the part of a lower-cased, composed email after its
/// last `@` is put in the ASCII (punycode) form (IDNA, UTS #46), so both spellings give
/// one token and one erasure match. Domains already in ASCII are left as they are (the
/// caller has lower-cased them), and one that IDNA rejects is kept as it is.
fn ascii_domain(email: &mut String) {
    const MAX_DOMAIN_BYTES: usize = 4 * 253;
    let Some(at) = email.rfind('@') else {
        return;
    };
    let domain = &email[at + 1..];
    // A domain name has at most 253 characters (4 bytes each at most): longer text after
    // an `@` (free text the gate normalizes too) is no domain, and punycode's cost grows
    // faster than its length.
    if domain.is_ascii() || domain.len() > MAX_DOMAIN_BYTES {
        return;
    }
    if let Ok(ascii) = idna::domain_to_ascii(domain)
        && !ascii.is_empty()
    {
        email.truncate(at + 1);
        email.push_str(&ascii);
    }
}

/// A digest as its token: 32 lower-case hex characters.
#[inline]
fn hex_into(digest: u128, out: &mut [u8; TOKEN_LEN]) {
    // A byte -> two hex digits table: no per-nibble branches or bounds checks.
    for (i, b) in digest.to_be_bytes().iter().enumerate() {
        let [hi, lo] = HEX_PAIRS[*b as usize];
        out[2 * i] = hi;
        out[2 * i + 1] = lo;
    }
}

/// Whether `s` has a token's shape: 32 lower-case hex characters.
#[inline]
pub fn is_token(s: &str) -> bool {
    // Without early exit, so that the 32 bytes are checked with vector instructions
    // (the gate checks every value of a token column).
    s.len() == TOKEN_LEN
        && s.bytes()
            .fold(true, |ok, b| ok & matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The digest a token is the text of; `None` for anything without a token's shape.
pub fn digest_of_token(token: &str) -> Option<u128> {
    is_token(token).then(|| u128::from_str_radix(token, 16).expect("32 hex digits"))
}

/// Calls `f` with the digest of each run of equal values of `array` (strings of any Arrow
/// string type, normalized; or integers, through their decimal text), and the run's
/// length, in row order; `None` for a run of nulls. Runs of equal values (common in
/// exports sorted by customer) are hashed once, values of up to 64 bytes
/// [`LANES`] at a time ([`super::lanes`]), and nothing is allocated per value. `f` sees
/// the runs in order, a few runs after they were read.
pub fn for_each_digest_run(
    p: &Pseudonymizer,
    array: &ArrayRef,
    normalize: Normalize,
    mut f: impl FnMut(Option<u128>, usize),
) -> DfResult<()> {
    let integer = super::is_integer_like(array.data_type());
    if !(integer || is_string(array.data_type())) {
        return exec_err!(
            "needs a string or integer column, got {}",
            array.data_type()
        );
    }
    // Integers are tokenized as printed, without normalization.
    let normalize = if integer { Normalize::None } else { normalize };
    let mut scratch = String::new();
    let mut runs = DigestRuns::new(p);
    crate::rules::for_each_text_run(array, |v, n| {
        let v = v.map(|s| normalized(s, normalize, &mut scratch).as_bytes());
        runs.push(v, n, &mut f)
    })?;
    runs.flush(&mut f);
    Ok(())
}

/// Runs waiting for their digests, in order: values of at most a block go to the lanes,
/// longer ones are hashed by the `blake3` crate at once.
struct DigestRuns<'p> {
    p: &'p Pseudonymizer,
    lanes: Lanes,
    queue: Vec<(Slot, usize)>,
    digests: [u128; LANES],
}

enum Slot {
    Null,
    Lane(usize),
    Done(u128),
}

impl<'p> DigestRuns<'p> {
    /// Runs queued at most (nulls and long values take no lane).
    const QUEUE: usize = 4 * LANES;

    fn new(p: &'p Pseudonymizer) -> Self {
        DigestRuns {
            p,
            lanes: Lanes::default(),
            queue: Vec::with_capacity(Self::QUEUE),
            digests: [0; LANES],
        }
    }

    #[inline]
    fn push(&mut self, v: Option<&[u8]>, n: usize, f: &mut impl FnMut(Option<u128>, usize)) {
        let slot = match v {
            None => Slot::Null,
            Some(v) if v.len() <= MAX_LEN => Slot::Lane(self.lanes.push(v)),
            Some(v) => Slot::Done(self.p.digest(v)),
        };
        self.queue.push((slot, n));
        if self.lanes.is_full() || self.queue.len() == Self::QUEUE {
            self.flush(f);
        }
    }

    fn flush(&mut self, f: &mut impl FnMut(Option<u128>, usize)) {
        if !self.lanes.is_empty() {
            self.lanes.finish(&self.p.words, &mut self.digests);
        }
        for (slot, n) in self.queue.drain(..) {
            let d = match slot {
                Slot::Null => None,
                Slot::Lane(l) => Some(self.digests[l]),
                Slot::Done(d) => Some(d),
            };
            f(d, n);
        }
    }
}

/// Tokenizes a whole array (strings of any Arrow string type, or integers), through
/// [`for_each_digest_run`].
pub fn tokenize_array(
    p: &Pseudonymizer,
    array: &ArrayRef,
    normalize: Normalize,
) -> DfResult<ArrayRef> {
    let (t, n) = (array.data_type(), array.len());
    if !(super::is_integer_like(t) || is_string(t)) {
        return exec_err!("anon_pseudonymize needs a string or integer column, got {t}");
    }
    // The tokens are written straight into the array's value buffer (no builder: a
    // token is copied once, not hexed into a scratch and appended), with offsets of one
    // token each.
    if n.checked_mul(TOKEN_LEN)
        .is_none_or(|b| b > i32::MAX as usize)
    {
        return exec_err!("anon_pseudonymize: {n} rows in one batch is too many tokens");
    }
    let mut values: Vec<u8> = Vec::with_capacity(n * TOKEN_LEN);
    let mut offsets: Vec<i32> = Vec::with_capacity(n + 1);
    offsets.push(0);
    let mut nulls = NullBufferBuilder::new(n);
    for_each_digest_run(p, array, normalize, |d, k| {
        let end = values.len();
        match d {
            None => {
                offsets.extend(std::iter::repeat_n(end as i32, k));
                nulls.append_n_nulls(k);
            }
            Some(d) => {
                values.resize(end + TOKEN_LEN, 0);
                hex_into(d, (&mut values[end..]).try_into().expect("a token's room"));
                for _ in 1..k {
                    values.extend_from_within(end..end + TOKEN_LEN);
                }
                offsets.extend((1..=k).map(|j| (end + j * TOKEN_LEN) as i32));
                nulls.append_n_non_nulls(k);
            }
        }
    })?;
    if offsets.len() != n + 1 {
        return exec_err!(
            "anon_pseudonymize: {} tokens for {n} rows",
            offsets.len() - 1
        );
    }
    // SAFETY: the offsets start at 0 and grow by 0 or TOKEN_LEN up to `values.len()`
    // (which fits in i32, checked above), and every value is hex digits (ASCII).
    let out = unsafe {
        StringArray::new_unchecked(
            OffsetBuffer::new_unchecked(ScalarBuffer::from(offsets)),
            Buffer::from_vec(values),
            nulls.finish(),
        )
    };
    Ok(Arc::new(out))
}

/// `anon_pseudonymize(value [, normalize ['none'|'trim'|'email'] [, domain]])` -> Utf8.
#[derive(PartialEq, Eq, Hash)]
pub struct PseudonymizeUdf {
    key: Key,
    signature: Signature,
}

impl std::fmt::Debug for PseudonymizeUdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PseudonymizeUdf({})", self.key.id())
    }
}

impl PseudonymizeUdf {
    pub fn new(key: &Key) -> Self {
        PseudonymizeUdf {
            key: key.clone(),
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PseudonymizeUdf {
    fn name(&self) -> &str {
        "anon_pseudonymize"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> DfResult<DataType> {
        check_args(
            self.name(),
            arg_types,
            1..=3,
            |t| is_string(t) || super::is_integer_like(t),
            "a string or integer column",
        )?;
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let array = first_array(&args.args, args.number_rows)?;
        let normalize = match str_arg(self.name(), &args.args, 1)? {
            None => Normalize::None,
            Some(s) => match Normalize::parse(&s) {
                Some(n) => n,
                None => return exec_err!("anon_pseudonymize: unknown normalization '{s}'"),
            },
        };
        let domain = str_arg(self.name(), &args.args, 2)?;
        let p = Pseudonymizer::new(&self.key, domain.as_deref());
        Ok(ColumnarValue::Array(tokenize_array(&p, &array, normalize)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_the_hex_of_the_keyed_hash_first_16_bytes() {
        let key = Key::from_hex(
            "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0",
            crate::key::KeySource::Provided,
        )
        .unwrap();
        let p = Pseudonymizer::new(&key, None);
        for v in [
            "",
            "a",
            "customer-000042",
            "jane.doe@example.com",
            "\u{e9}t\u{e9}",
        ] {
            let mut out = [0u8; TOKEN_LEN];
            p.token_into(v.as_bytes(), &mut out);
            let want = hex::encode(&blake3::keyed_hash(&p.key, v.as_bytes()).as_bytes()[..16]);
            assert_eq!(std::str::from_utf8(&out).unwrap(), want, "{v}");
            // The digest is what the token spells, and the token gives it back.
            let d = p.digest(v.as_bytes());
            assert_eq!(format!("{d:032x}"), want, "{v}");
            assert_eq!(digest_of_token(&want), Some(d), "{v}");
        }
        // Only a token's own spelling is read back: 32 lower-case hex digits.
        let t = "0123456789abcdef0123456789abcdef";
        assert_eq!(digest_of_token(t), Some(0x0123456789abcdef0123456789abcdef));
        for not in [
            "0123456789ABCDEF0123456789abcdef",
            "+123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef 123456789abcdef",
            "",
        ] {
            assert_eq!(digest_of_token(not), None, "{not}");
        }
        assert_eq!(
            HEX_PAIRS.iter().flatten().copied().collect::<Vec<u8>>(),
            (0..=255u8)
                .flat_map(|b| hex::encode([b]).into_bytes())
                .collect::<Vec<u8>>()
        );
    }

    /// Canonically equivalent spellings of an email (precomposed or with combining
    /// accents, any case) are one token, and one erasure match.
    #[test]
    fn email_spellings_that_unicode_calls_equivalent_are_one_token() {
        let key = Key::from_hex(
            "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0",
            crate::key::KeySource::Provided,
        )
        .unwrap();
        let p = Pseudonymizer::new(&key, None);
        let nfc = "jos\u{e9}@example.com";
        let want = p.token_str(nfc, Normalize::Email);
        for v in [
            "jose\u{301}@example.com",
            " JOSE\u{301}@Example.com",
            "JOS\u{c9}@EXAMPLE.COM\t",
        ] {
            assert_eq!(p.token_str(v, Normalize::Email), want, "{v:?}");
            assert_eq!(crate::erasure::requests::normalize_email(v), nfc, "{v:?}");
        }
        // Not a different letter, though, and not for other normalizations.
        assert_ne!(p.token_str("jose@example.com", Normalize::Email), want);
        // An internationalized domain and its punycode are one domain, in any case;
        // the local part is not punycode (it stays as written, composed).
        for (unicode, ascii) in [
            ("j\u{fc}rgen@b\u{fc}cher.de", "j\u{fc}rgen@xn--bcher-kva.de"),
            (" Frank@\u{4f8b}\u{3048}.JP", "frank@xn--r8jz45g.jp"),
            (
                "a@\u{43f}\u{440}\u{438}\u{43c}\u{435}\u{440}.\u{440}\u{444}",
                "a@xn--e1afmkfd.xn--p1ai",
            ),
            ("x@BU\u{308}CHER.de", "x@xn--bcher-kva.de"),
        ] {
            assert_eq!(
                p.token_str(unicode, Normalize::Email),
                p.token_str(ascii, Normalize::Email),
                "{unicode:?}"
            );
            assert_eq!(crate::erasure::requests::normalize_email(unicode), ascii);
            assert_eq!(
                crate::erasure::requests::normalize_email(&ascii.to_uppercase()),
                ascii.to_lowercase()
            );
        }
        // Text after an `@` longer than any domain is no domain: left as it is.
        let long = format!("a@{}.de", "\u{fc}".repeat(600));
        let mut scratch = String::new();
        assert_eq!(normalized(&long, Normalize::Email, &mut scratch), long);
        // A domain IDNA refuses stays as written (lower-cased, composed).
        let mut scratch = String::new();
        assert_eq!(
            normalized("A@Ex\u{fffd}ample.com", Normalize::Email, &mut scratch),
            "a@ex\u{fffd}ample.com"
        );
        assert_ne!(
            p.token_str("jose\u{301}", Normalize::Trim),
            p.token_str("jos\u{e9}", Normalize::Trim)
        );
    }

    /// Whole numbers are tokenized through their decimal text whatever their type:
    /// int64, DECIMAL(38,0) (past i64's range too) and DECIMAL(76,0) give the tokens of
    /// the same digits as text; a decimal with a fraction is refused.
    #[test]
    fn decimals_without_a_fraction_are_tokenized_as_their_digits() {
        use datafusion::arrow::array::{Decimal128Array, Decimal256Array, Int64Array};
        use datafusion::arrow::datatypes::i256;
        let key = Key::from_hex(
            "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0",
            crate::key::KeySource::Provided,
        )
        .unwrap();
        let p = Pseudonymizer::new(&key, None);
        let big = 10i128.pow(30) + 7;
        let values = [Some(42i128), None, Some(-9), Some(big), Some(big), Some(0)];
        let text: Vec<Option<String>> = values
            .iter()
            .map(|v| v.map(|v| p.token_str(&v.to_string(), Normalize::None)))
            .collect();
        let tokens = |a: ArrayRef| -> Vec<Option<String>> {
            let t = tokenize_array(&p, &a, Normalize::Email).unwrap();
            let t = t.as_any().downcast_ref::<StringArray>().unwrap();
            t.iter().map(|v| v.map(str::to_owned)).collect()
        };
        let d128: ArrayRef = Arc::new(
            values
                .iter()
                .copied()
                .collect::<Decimal128Array>()
                .with_precision_and_scale(38, 0)
                .unwrap(),
        );
        assert_eq!(tokens(d128), text);
        let d256: ArrayRef = Arc::new(
            values
                .iter()
                .map(|v| v.map(i256::from_i128))
                .collect::<Decimal256Array>()
                .with_precision_and_scale(76, 0)
                .unwrap(),
        );
        assert_eq!(tokens(d256), text);
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![42, -9, 0]));
        assert_eq!(
            tokens(ints),
            vec![text[0].clone(), text[2].clone(), text[5].clone()]
        );
        assert_eq!(text[0], Some(p.token_i64(42)));
        let cents: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(4200i128)])
                .with_precision_and_scale(12, 2)
                .unwrap(),
        );
        assert!(tokenize_array(&p, &cents, Normalize::None).is_err());
    }

    proptest::proptest! {
        /// Email normalization is `trim`, `to_lowercase` then NFC, and `Trim` is `trim`,
        /// for any text (ASCII and not, whitespace of either kind at either end).
        #[test]
        fn normalization_is_trim_lowercase_nfc(
            pre in "[ \t\n\u{a0}\u{2003}]{0,2}",
            body in "[a-zA-Z0-9@._ \u{c9}\u{df}\u{130}\u{3a3}-]{0,12}|\\PC{0,12}",
            post in "[ \t\r\u{a0}\u{3000}]{0,2}",
        ) {
            let v = format!("{pre}{body}{post}");
            let mut scratch = String::new();
            let mut want: String =
                unicode_normalization::UnicodeNormalization::nfc(v.trim().to_lowercase().as_str())
                    .collect();
            // ... and a domain (after the last `@`) outside ASCII in its IDNA ASCII form.
            if let Some(at) = want.rfind('@')
                && !want[at + 1..].is_ascii()
                && let Ok(a) = idna::domain_to_ascii(&want[at + 1..])
                && !a.is_empty()
            {
                want = format!("{}{a}", &want[..=at]);
            }
            let once = normalized(&v, Normalize::Email, &mut scratch).to_string();
            proptest::prop_assert_eq!(&once, &want);
            // Normalizing twice changes nothing (requests are stored normalized).
            let mut again = String::new();
            proptest::prop_assert_eq!(normalized(&once, Normalize::Email, &mut again), once.as_str());
            proptest::prop_assert_eq!(normalized(&v, Normalize::Trim, &mut scratch), v.trim());
            proptest::prop_assert_eq!(normalized(&v, Normalize::None, &mut scratch), v.as_str());
        }

        /// The array kernel (runs hashed once, integers printed without a cast) gives every
        /// row the token of its value's text, normalized for strings; nulls stay null.
        #[test]
        fn array_tokens_equal_each_value_tokenized(
            ints in proptest::collection::vec(proptest::option::of(0u64..4), 0..40),
            big in proptest::bool::ANY,
        ) {
            use datafusion::arrow::array::{AsArray, Int32Array, StringArray, UInt64Array};
            let key = Key::from_hex(
                "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0",
                crate::key::KeySource::Provided,
            )
            .unwrap();
            let p = Pseudonymizer::new(&key, None);
            // u64 values past i64::MAX too: they are tokenized as printed, never nulled.
            let u: Vec<Option<u64>> = ints
                .iter()
                .map(|v| v.map(|v| if big { u64::MAX - v } else { v }))
                .collect();
            let s: Vec<Option<String>> = ints
                .iter()
                .map(|v| v.map(|v| [" A@x.io", "a@x.io", "b@x.io ", "B@X.IO"][v as usize].to_string()))
                .collect();
            let cases: Vec<(ArrayRef, Vec<Option<String>>, Normalize)> = vec![
                (
                    Arc::new(UInt64Array::from(u.clone())),
                    u.iter().map(|v| v.map(|v| v.to_string())).collect(),
                    Normalize::None,
                ),
                (
                    Arc::new(Int32Array::from(
                        ints.iter().map(|v| v.map(|v| v as i32 - 2)).collect::<Vec<_>>(),
                    )),
                    ints.iter().map(|v| v.map(|v| (v as i32 - 2).to_string())).collect(),
                    Normalize::None,
                ),
                (Arc::new(s.iter().cloned().collect::<StringArray>()), s.clone(), Normalize::Email),
            ];
            for (array, texts, normalize) in cases {
                let got = tokenize_array(&p, &array, normalize).unwrap();
                let got: Vec<Option<&str>> = got.as_string::<i32>().iter().collect();
                let want: Vec<Option<String>> = texts
                    .iter()
                    .map(|t| t.as_ref().map(|t| p.token_str(t, normalize)))
                    .collect();
                proptest::prop_assert_eq!(
                    got,
                    want.iter().map(|w| w.as_deref()).collect::<Vec<_>>()
                );
            }
        }

        /// Batched in lanes, queued behind nulls and long values, flushed when the lanes
        /// or the queue fill: every row still gets its own value's token, in order.
        /// Lengths straddle the 64-byte block; runs repeat values; up to 300 rows cross
        /// many flushes.
        #[test]
        fn lanes_and_long_values_keep_row_order(
            rows in proptest::collection::vec(
                proptest::option::of((0usize..8, 0usize..100)),
                0..300,
            ),
        ) {
            use datafusion::arrow::array::{AsArray, StringArray};
            let key = Key::from_hex(
                "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0",
                crate::key::KeySource::Provided,
            )
            .unwrap();
            let p = Pseudonymizer::new(&key, Some("lanes"));
            let texts: Vec<Option<String>> = rows
                .iter()
                .map(|r| r.map(|(v, len)| format!("{v}{}", "x".repeat(len))))
                .collect();
            let array: ArrayRef = Arc::new(texts.iter().cloned().collect::<StringArray>());
            let got = tokenize_array(&p, &array, Normalize::None).unwrap();
            let got: Vec<Option<&str>> = got.as_string::<i32>().iter().collect();
            let want: Vec<Option<String>> = texts
                .iter()
                .map(|t| t.as_ref().map(|t| p.token_str(t, Normalize::None)))
                .collect();
            proptest::prop_assert_eq!(
                got,
                want.iter().map(|w| w.as_deref()).collect::<Vec<_>>()
            );
        }
    }
}
