//! The behavioural model: one customer and all of their transactions are
//! generated together from a random stream seeded by (seed, customer id), and
//! appended straight into Arrow builders for a chunk of consecutive customers.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Months};
use datafusion::arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Int64Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::data::{
    AddressStyle, COMPANY_TRADES, COMPANY_WORDS, COUNTRIES, Country, EMAIL_ANSWERS, GLOBAL_DOMAINS,
    NAME_ANSWERS, NAME_GROUPS, PHONE_ANSWERS, PLAIN_ANSWERS, PLUS_TAGS, fold_ascii_lower,
};

const US_PER_SEC: i64 = 1_000_000;
const US_PER_HOUR: i64 = 3_600 * US_PER_SEC;
const US_PER_DAY: i64 = 24 * US_PER_HOUR;
/// Average Gregorian month in microseconds.
const US_PER_MONTH: f64 = 30.436_875 * US_PER_DAY as f64;

/// Growth of sign-up density per month.
pub(super) const MONTHLY_SIGNUP_GROWTH: f64 = 0.035;
/// Share of customers that take a subscription after registering.
const SUBSCRIBE_P: f64 = 0.88;
/// Per payment: refund, chargeback.
const REFUND_P: f64 = 0.02;
const CHARGEBACK_P: f64 = 0.003;
/// After a churn (or refund): share that comes back within 1-6 months.
const COMEBACK_P: f64 = 0.3;
/// On comeback: share that picks a plan afresh (others keep their plan).
const REPLAN_P: f64 = 0.35;
/// Mean Poisson rates (per month) of pass / event / rental purchases. Each
/// customer's own rate is the mean times an Exp(1) factor: most buy rarely, a
/// few buy rentals and events often.
const ONE_OFF_RATE_SUBSCRIBER: f64 = 0.52;
const ONE_OFF_RATE_OTHER: f64 = 1.7;
/// Share of payments made while abroad.
const TRAVEL_P: f64 = 0.03;
/// Monthly churn is clamped into this range.
const CHURN_MIN: f64 = 0.02;
const CHURN_MAX: f64 = 0.10;

/// Which kind of product an offer sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OfferKind {
    Subscription,
    Pass,
    Event,
    Rental,
}

impl OfferKind {
    pub(super) fn name(self) -> &'static str {
        match self {
            OfferKind::Subscription => "subscription",
            OfferKind::Pass => "pass",
            OfferKind::Event => "event",
            OfferKind::Rental => "rental",
        }
    }

    fn letter(self) -> char {
        match self {
            OfferKind::Subscription => 'S',
            OfferKind::Pass => 'P',
            OfferKind::Event => 'E',
            OfferKind::Rental => 'R',
        }
    }
}

/// Billing period of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Period {
    Week,
    Month,
    Year,
}

impl Period {
    pub(super) fn iso(self) -> &'static str {
        match self {
            Period::Week => "P7D",
            Period::Month => "P1M",
            Period::Year => "P1Y",
        }
    }
}

struct OfferTemplate {
    kind: OfferKind,
    period: Option<Period>,
    usd: f64,
    /// Base monthly churn (before the country factor); subscriptions only.
    monthly_churn: f64,
}

/// The same eleven offers exist in every country (priced locally).
const OFFER_TEMPLATES: &[OfferTemplate] = &[
    // 0: monthly standard, 1: monthly premium, 2: annual, 3: weekly
    OfferTemplate {
        kind: OfferKind::Subscription,
        period: Some(Period::Month),
        usd: 9.99,
        monthly_churn: 0.035,
    },
    OfferTemplate {
        kind: OfferKind::Subscription,
        period: Some(Period::Month),
        usd: 14.99,
        monthly_churn: 0.03,
    },
    OfferTemplate {
        kind: OfferKind::Subscription,
        period: Some(Period::Year),
        usd: 99.99,
        monthly_churn: 0.03,
    },
    OfferTemplate {
        kind: OfferKind::Subscription,
        period: Some(Period::Week),
        usd: 2.99,
        monthly_churn: 0.05,
    },
    // 4-5: day pass, week pass
    OfferTemplate {
        kind: OfferKind::Pass,
        period: None,
        usd: 4.99,
        monthly_churn: 0.0,
    },
    OfferTemplate {
        kind: OfferKind::Pass,
        period: None,
        usd: 7.99,
        monthly_churn: 0.0,
    },
    // 6-8: pay-per-view events
    OfferTemplate {
        kind: OfferKind::Event,
        period: None,
        usd: 14.99,
        monthly_churn: 0.0,
    },
    OfferTemplate {
        kind: OfferKind::Event,
        period: None,
        usd: 19.99,
        monthly_churn: 0.0,
    },
    OfferTemplate {
        kind: OfferKind::Event,
        period: None,
        usd: 29.99,
        monthly_churn: 0.0,
    },
    // 9-10: rentals
    OfferTemplate {
        kind: OfferKind::Rental,
        period: None,
        usd: 3.99,
        monthly_churn: 0.0,
    },
    OfferTemplate {
        kind: OfferKind::Rental,
        period: None,
        usd: 5.99,
        monthly_churn: 0.0,
    },
];

/// Plan mix of new subscriptions over templates 0..4
/// (monthly 60% = 45 + 15, annual 20%, weekly 20%).
const PLAN_CUM: [u32; 4] = [45, 60, 80, 100];
/// card, paypal, apple, google, roku.
const METHOD_CUM: [u32; 5] = [55, 75, 87, 95, 100];
const METHODS: [&str; 5] = ["card", "paypal", "apple", "google", "roku"];
const CARD: u8 = 0;
const PAYPAL: u8 = 1;
const APPLE: u8 = 2;
const GOOGLE: u8 = 3;
const BRANDS: [&str; 4] = ["VISA", "MASTERCARD", "AMEX", "DISCOVER"];
const BRAND_CUM: [u32; 4] = [50, 85, 95, 100];
const AMEX: u8 = 2;

const PURCHASE: u8 = 0;
const RENEWAL: u8 = 1;
const REFUND: u8 = 2;
const CHARGEBACK: u8 = 3;
const TX_TYPES: [&str; 4] = ["purchase", "renewal", "refund", "chargeback"];

const ALNUM: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const UPPER_ALNUM: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// One sellable offer of the fixed catalogue.
pub(super) struct Offer {
    pub id: String,
    pub kind: OfferKind,
    pub period: Option<Period>,
    pub price_cents: i64,
    /// Churn probability at each renewal.
    pub churn_per_period: f64,
    /// Index into [`COUNTRIES`].
    pub country: usize,
}

/// Offers of all countries, country-major.
pub(super) struct Catalogue {
    pub offers: Vec<Offer>,
}

impl Catalogue {
    pub(super) fn new() -> Self {
        let mut offers = Vec::with_capacity(COUNTRIES.len() * OFFER_TEMPLATES.len());
        for (ci, country) in COUNTRIES.iter().enumerate() {
            for (ti, t) in OFFER_TEMPLATES.iter().enumerate() {
                let digits = mix64(0x0FFE_2C00_0000 ^ ((ci as u64) << 8 | ti as u64)) % 900_000_000
                    + 100_000_000;
                let monthly = (t.monthly_churn * country.churn_factor).clamp(CHURN_MIN, CHURN_MAX);
                let churn_per_period = match t.period {
                    None => 0.0,
                    Some(Period::Month) => monthly,
                    Some(Period::Week) => 1.0 - (1.0 - monthly).powf(7.0 / 30.436_875),
                    Some(Period::Year) => 1.0 - (1.0 - monthly).powi(12),
                };
                offers.push(Offer {
                    id: format!("{}{digits}_{}", t.kind.letter(), country.code),
                    kind: t.kind,
                    period: t.period,
                    price_cents: local_price_cents(t.usd, country),
                    churn_per_period,
                    country: ci,
                });
            }
        }
        Catalogue { offers }
    }

    fn index(country: usize, template: usize) -> usize {
        country * OFFER_TEMPLATES.len() + template
    }
}

/// Local price point: x.99 in most currencies, whole tens of yen in JPY.
fn local_price_cents(usd: f64, country: &Country) -> i64 {
    let local = usd * country.fx;
    if country.whole_units {
        ((local / 10.0).round() as i64) * 10 * 100
    } else {
        (local.ceil() as i64) * 100 - 1
    }
}

/// Everything shared by all chunks of one `generate` run.
pub(super) struct Ctx {
    pub seed: u64,
    pub start_us: i64,
    pub end_us: i64,
    growth_k: f64,
    expm1_k: f64,
    country_cum: Vec<u32>,
    catalogue: Catalogue,
    tag_tx: u64,
    tag_sub: u64,
    tag_ext: u64,
    customers_schema: SchemaRef,
    transactions_schema: SchemaRef,
}

impl Ctx {
    pub(super) fn new(seed: u64, start_us: i64, end_us: i64, months: u32) -> Self {
        let growth_k = (1.0 + MONTHLY_SIGNUP_GROWTH).ln() * f64::from(months);
        let mut acc = 0;
        let country_cum = COUNTRIES
            .iter()
            .map(|c| {
                acc += c.weight;
                acc
            })
            .collect();
        Ctx {
            seed,
            start_us,
            end_us,
            growth_k,
            expm1_k: growth_k.exp_m1(),
            country_cum,
            catalogue: Catalogue::new(),
            tag_tx: mix64(seed ^ 0x7458_0000_0000_0001),
            tag_sub: mix64(seed ^ 0x5355_4200_0000_0002),
            tag_ext: mix64(seed ^ 0x4558_5400_0000_0003),
            customers_schema: super::customers_schema(),
            transactions_schema: super::transactions_schema(),
        }
    }
}

// ---------------------------------------------------------------------------
// Unique, random-looking codes
// ---------------------------------------------------------------------------

const MASK39: u64 = (1 << 39) - 1;
const C1: u64 = 0x9E37_79B9_7F4A_7C15;
const C2: u64 = 0xBF58_476D_1CE4_E5B9;
const C3: u64 = 0x94D0_49BB_1331_11EB;

/// Bijection on 64-bit integers (splitmix64 finalizer).
pub(super) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(C2);
    z = (z ^ (z >> 27)).wrapping_mul(C3);
    z ^ (z >> 31)
}

/// Bijection on `0..2^39` (fits in 12 decimal digits).
fn mix39(mut x: u64) -> u64 {
    x = x.wrapping_mul(C1) & MASK39;
    x ^= x >> 19;
    x = x.wrapping_mul(C2) & MASK39;
    x ^= x >> 21;
    x = x.wrapping_mul(C3) & MASK39;
    x ^ (x >> 17)
}

/// A code unique per (tag, customer number, n): 12 digits for realistic sizes,
/// 20 digits (with a distinct prefix) beyond them.
enum Code {
    Short(u64),
    Wide(u64),
}

fn unique_code(tag: u64, id: u64, n: u64) -> Code {
    if id < (1 << 26) && n < (1 << 13) {
        Code::Short(mix39(((id << 13) | n) ^ (tag & MASK39)))
    } else {
        Code::Wide(mix64(((id << 16) | n) ^ tag))
    }
}

/// Cheap appends for the per-transaction hot path (`core::fmt` is slow for
/// padded integers and hex).
trait Put {
    fn put(&mut self, s: &str);

    fn put_ascii(&mut self, bytes: &[u8]) {
        if let Ok(s) = std::str::from_utf8(bytes) {
            self.put(s);
        }
    }

    /// Decimal, zero-padded to at least `width` digits (at most 20).
    fn put_dec(&mut self, mut v: u64, width: usize) {
        let mut buf = [b'0'; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        let start = i.min(buf.len() - width.min(buf.len()));
        self.put_ascii(&buf[start..]);
    }

    /// Lower-case hex, zero-padded to at least `width` digits (at most 16).
    fn put_hex(&mut self, mut v: u64, width: usize) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [b'0'; 16];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = HEX[(v & 15) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        let start = i.min(buf.len() - width.min(buf.len()));
        self.put_ascii(&buf[start..]);
    }
}

impl Put for StringBuilder {
    fn put(&mut self, s: &str) {
        // Writing into a StringBuilder cannot fail.
        let _ = self.write_str(s);
    }
}

impl Put for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
}

fn write_code(b: &mut StringBuilder, prefix: &str, code: Code) {
    b.put(prefix);
    match code {
        Code::Short(v) => b.put_dec(v, 12),
        Code::Wide(v) => {
            b.put("X");
            b.put_dec(v, 20);
        }
    }
    b.append_value("");
}

/// Appends `n` (<= 24) characters of `v` in base `alphabet.len()`; injective
/// when `alphabet.len()^n >= 2^64`.
fn push_radix(b: &mut StringBuilder, mut v: u64, n: usize, alphabet: &[u8]) {
    let base = alphabet.len() as u64;
    let mut buf = [0u8; 24];
    for c in &mut buf[..n] {
        *c = alphabet[(v % base) as usize];
        v /= base;
    }
    b.put_ascii(&buf[..n]);
}

/// Appends `n` (<= 24) random characters of `alphabet`.
fn push_random_chars(rng: &mut ChaCha8Rng, b: &mut StringBuilder, n: usize, alphabet: &[u8]) {
    let base = alphabet.len() as u64;
    let per_word = if base <= 36 { 12 } else { 10 };
    let mut v = 0u64;
    let mut buf = [0u8; 24];
    for (i, c) in buf[..n].iter_mut().enumerate() {
        if i % per_word == 0 {
            v = rng.random();
        }
        *c = alphabet[(v % base) as usize];
        v /= base;
    }
    b.put_ascii(&buf[..n]);
}

// ---------------------------------------------------------------------------
// Small random helpers
// ---------------------------------------------------------------------------

fn pick_cum(rng: &mut ChaCha8Rng, cum: &[u32]) -> usize {
    let total = cum[cum.len() - 1];
    let r = rng.random_range(0..total);
    cum.partition_point(|&c| c <= r)
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Fills a template: `#` digit, `N` digit 2-9, `@` letter A-Z.
fn fill_template(rng: &mut ChaCha8Rng, template: &str, out: &mut impl fmt::Write) {
    for c in template.chars() {
        let c = match c {
            '#' => char::from(b'0' + rng.random_range(0..10u8)),
            'N' => char::from(b'2' + rng.random_range(0..8u8)),
            '@' => char::from(b'A' + rng.random_range(0..26u8)),
            other => other,
        };
        let _ = out.write_char(c);
    }
}

/// An IP address, IPv6 rendered either fully or compressed.
#[derive(Debug, Clone, Copy)]
enum Ip {
    V4([u8; 4]),
    V6 { seg: [u16; 8], full: bool },
}

impl Ip {
    fn write_to(&self, f: &mut impl Put) {
        match *self {
            Ip::V4(octets) => {
                for (i, o) in octets.iter().enumerate() {
                    if i > 0 {
                        f.put(".");
                    }
                    f.put_dec(u64::from(*o), 1);
                }
            }
            Ip::V6 { seg, full: true } => {
                for (i, s) in seg.iter().enumerate() {
                    if i > 0 {
                        f.put(":");
                    }
                    f.put_hex(u64::from(*s), 4);
                }
            }
            Ip::V6 { seg, full: false } => {
                // Longest run (>= 2) of zero groups becomes "::".
                let (mut best_start, mut best_len) = (8, 0);
                let mut i = 0;
                while i < 8 {
                    if seg[i] == 0 {
                        let start = i;
                        while i < 8 && seg[i] == 0 {
                            i += 1;
                        }
                        if i - start > best_len {
                            (best_start, best_len) = (start, i - start);
                        }
                    } else {
                        i += 1;
                    }
                }
                if best_len < 2 {
                    best_start = 8;
                    best_len = 0;
                }
                let mut i = 0;
                while i < 8 {
                    if i == best_start {
                        f.put("::");
                        i += best_len;
                        continue;
                    }
                    if i > 0 && i != best_start + best_len {
                        f.put(":");
                    }
                    f.put_hex(u64::from(seg[i]), 1);
                    i += 1;
                }
            }
        }
    }
}

impl fmt::Display for Ip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(39);
        self.write_to(&mut s);
        f.write_str(&s)
    }
}

const V6_PREFIXES: [u16; 7] = [0x2a02, 0x2600, 0x2001, 0x2a01, 0x2804, 0x2400, 0x2607];

fn random_ip(rng: &mut ChaCha8Rng, v4_share: f64) -> Ip {
    if rng.random_bool(v4_share) {
        let a = loop {
            let a = rng.random_range(1..=223u8);
            if !matches!(a, 10 | 100 | 127 | 169 | 172 | 192) {
                break a;
            }
        };
        let [_, b, c, d] = rng.random::<u32>().to_be_bytes();
        Ip::V4([a, b, c, d.max(1)])
    } else {
        let mut seg = [0u16; 8];
        seg[0] = V6_PREFIXES[rng.random_range(0..V6_PREFIXES.len())];
        for s in &mut seg[1..4] {
            *s = rng.random();
        }
        if rng.random_bool(0.5) {
            // Small interface id: 2a02:c7f:1a2b:9e00::1f
            seg[7] = rng.random_range(1..0x100);
        } else {
            for s in &mut seg[4..8] {
                *s = rng.random();
            }
        }
        Ip::V6 {
            seg,
            full: rng.random_bool(0.3),
        }
    }
}

// ---------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------

struct CustomerCols {
    id: Int64Builder,
    email: StringBuilder,
    first: StringBuilder,
    last: StringBuilder,
    company: StringBuilder,
    phone: StringBuilder,
    address: StringBuilder,
    city: StringBuilder,
    postal: StringBuilder,
    country: StringBuilder,
    locale: StringBuilder,
    birth: Date32Builder,
    registered: TimestampMicrosecondBuilder,
    ip: StringBuilder,
    answers: StringBuilder,
    opt_in: BooleanBuilder,
}

fn sb(rows: usize, avg: usize) -> StringBuilder {
    StringBuilder::with_capacity(rows, rows * avg)
}

impl CustomerCols {
    fn new(n: usize) -> Self {
        CustomerCols {
            id: Int64Builder::with_capacity(n),
            email: sb(n, 30),
            first: sb(n, 8),
            last: sb(n, 9),
            company: sb(n, 4),
            phone: sb(n, 14),
            address: sb(n, 20),
            city: sb(n, 9),
            postal: sb(n, 6),
            country: sb(n, 2),
            locale: sb(n, 5),
            birth: Date32Builder::with_capacity(n),
            registered: TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
            ip: sb(n, 18),
            answers: sb(n, 20),
            opt_in: BooleanBuilder::with_capacity(n),
        }
    }

    fn finish(mut self, schema: SchemaRef) -> Result<RecordBatch, ArrowError> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.email.finish()),
            Arc::new(self.first.finish()),
            Arc::new(self.last.finish()),
            Arc::new(self.company.finish()),
            Arc::new(self.phone.finish()),
            Arc::new(self.address.finish()),
            Arc::new(self.city.finish()),
            Arc::new(self.postal.finish()),
            Arc::new(self.country.finish()),
            Arc::new(self.locale.finish()),
            Arc::new(self.birth.finish()),
            Arc::new(self.registered.finish()),
            Arc::new(self.ip.finish()),
            Arc::new(self.answers.finish()),
            Arc::new(self.opt_in.finish()),
        ];
        RecordBatch::try_new(schema, cols)
    }
}

struct TxCols {
    tx_id: StringBuilder,
    at: TimestampMicrosecondBuilder,
    customer_id: Int64Builder,
    email: StringBuilder,
    offer_id: StringBuilder,
    offer_type: StringBuilder,
    offer_period: StringBuilder,
    sub_id: StringBuilder,
    tx_type: StringBuilder,
    amount: Decimal128Builder,
    currency: StringBuilder,
    country: StringBuilder,
    ip: StringBuilder,
    method: StringBuilder,
    details: StringBuilder,
    ext_id: StringBuilder,
}

impl TxCols {
    fn new(n: usize) -> Result<Self, ArrowError> {
        Ok(TxCols {
            tx_id: sb(n, 13),
            at: TimestampMicrosecondBuilder::with_capacity(n).with_timezone("UTC"),
            customer_id: Int64Builder::with_capacity(n),
            email: sb(n, 30),
            offer_id: sb(n, 13),
            offer_type: sb(n, 12),
            offer_period: sb(n, 3),
            sub_id: sb(n, 15),
            tx_type: sb(n, 8),
            amount: Decimal128Builder::with_capacity(n).with_precision_and_scale(12, 2)?,
            currency: sb(n, 3),
            country: sb(n, 2),
            ip: sb(n, 18),
            method: sb(n, 5),
            details: sb(n, 44),
            ext_id: sb(n, 27),
        })
    }

    fn finish(mut self, schema: SchemaRef) -> Result<RecordBatch, ArrowError> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.tx_id.finish()),
            Arc::new(self.at.finish()),
            Arc::new(self.customer_id.finish()),
            Arc::new(self.email.finish()),
            Arc::new(self.offer_id.finish()),
            Arc::new(self.offer_type.finish()),
            Arc::new(self.offer_period.finish()),
            Arc::new(self.sub_id.finish()),
            Arc::new(self.tx_type.finish()),
            Arc::new(self.amount.finish()),
            Arc::new(self.currency.finish()),
            Arc::new(self.country.finish()),
            Arc::new(self.ip.finish()),
            Arc::new(self.method.finish()),
            Arc::new(self.details.finish()),
            Arc::new(self.ext_id.finish()),
        ];
        RecordBatch::try_new(schema, cols)
    }
}

// ---------------------------------------------------------------------------
// Customers and their transactions
// ---------------------------------------------------------------------------

/// A payment card; it is replaced by a new one (new last digits, expiry four
/// years later) whenever a payment happens after its expiry month.
#[derive(Clone, Copy)]
struct Card {
    brand: u8,
    seed: u64,
    /// Expiry as a month index (year * 12 + month0).
    first_expiry: i32,
}

impl Card {
    fn at(&self, t_us: i64) -> (u16, u32, i32) {
        let tm = month_index(t_us);
        let k = if tm > self.first_expiry {
            (tm - self.first_expiry + 47) / 48
        } else {
            0
        };
        let exp = self.first_expiry + 48 * k;
        let last4 = (mix64(self.seed.wrapping_add(k as u64)) % 10_000) as u16;
        (
            last4,
            (exp.rem_euclid(12) + 1) as u32,
            exp.div_euclid(12).rem_euclid(100),
        )
    }
}

fn month_index(t_us: i64) -> i32 {
    DateTime::from_timestamp_micros(t_us)
        .map(|d| d.year() * 12 + d.month0() as i32)
        .unwrap_or(0)
}

/// Per-chunk scratch buffers reused across customers.
#[derive(Default)]
struct Scratch {
    /// E-mail as stored in customers (may have odd case / spaces).
    email: String,
    /// Trimmed, lower-case e-mail.
    norm: String,
    /// Upper-case `norm`.
    upper: String,
    /// Card holder name in capitals ("ÉLODIE MARTIN").
    holder: String,
    paypal: String,
    phone: String,
    tmp: String,
    events: Vec<Ev>,
}

/// One transaction before it is rendered.
#[derive(Clone, Copy)]
struct Ev {
    at: i64,
    /// Time of the payment this row refers to (itself, or the refunded one).
    pay_at: i64,
    ip: Ip,
    offer: u16,
    /// Subscription number of this customer (1-based), 0 for none.
    sub: u16,
    ttype: u8,
    country: u8,
    method: u8,
}

/// Per-customer facts the transactions need.
struct Profile {
    id: u64,
    seq: u64,
    country: usize,
    home_ip: Ip,
    method: u8,
    card: Card,
    apple_ref: u64,
    google_ref: u64,
    roku_ref: u128,
}

/// Generates customers number `first..=last` (1-based; their customer ids are
/// [`super::CUSTOMER_ID_BASE`] + number) and their transactions.
pub(super) fn generate_chunk(
    ctx: &Ctx,
    first: u64,
    last: u64,
) -> Result<(RecordBatch, RecordBatch), ArrowError> {
    let n = (last - first + 1) as usize;
    let mut cc = CustomerCols::new(n);
    let mut tc = TxCols::new(n * 28)?;
    let mut s = Scratch::default();
    for seq in first..=last {
        gen_customer(ctx, seq, &mut cc, &mut tc, &mut s);
    }
    Ok((
        cc.finish(ctx.customers_schema.clone())?,
        tc.finish(ctx.transactions_schema.clone())?,
    ))
}

/// `seq` is the customer's number (1-based); it keeps derived codes short.
fn gen_customer(ctx: &Ctx, seq: u64, cc: &mut CustomerCols, tc: &mut TxCols, s: &mut Scratch) {
    let id = super::CUSTOMER_ID_BASE + seq;
    let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed ^ id.wrapping_mul(C1));
    let rng = &mut rng;

    let country_idx = pick_cum(rng, &ctx.country_cum);
    let country = &COUNTRIES[country_idx];
    let group = if rng.random_bool(0.8) {
        country.names
    } else {
        rng.random_range(0..NAME_GROUPS.len())
    };
    let first = *pick(rng, NAME_GROUPS[group].first);
    let last_group = if rng.random_bool(0.9) {
        group
    } else {
        rng.random_range(0..NAME_GROUPS.len())
    };
    let last = *pick(rng, NAME_GROUPS[last_group].last);

    // Registration: density grows exponentially over the period (inverse CDF).
    let span = (ctx.end_us - ctx.start_us) as f64;
    let x = (rng.random::<f64>() * ctx.expm1_k).ln_1p() / ctx.growth_k;
    let reg = (ctx.start_us + (x * span) as i64).min(ctx.end_us - 1);

    let company = if rng.random_bool(0.10) {
        Some((
            *pick(rng, COMPANY_WORDS),
            *pick(rng, COMPANY_TRADES),
            *pick(rng, country.company_suffixes),
        ))
    } else {
        None
    };

    build_email(rng, seq, country, first, last, company, s);

    // customer_id, email, names, company
    cc.id.append_value(id as i64);
    cc.email.append_value(&s.email);
    cc.first.append_value(first);
    cc.last.append_value(last);
    match company {
        Some((w, t, suffix)) => {
            let _ = write!(cc.company, "{w} {t} {suffix}");
            cc.company.append_value("");
        }
        None => cc.company.append_null(),
    }

    // phone
    s.phone.clear();
    let template = *pick(rng, country.phones);
    fill_template(rng, template, &mut s.phone);
    if rng.random_bool(0.8) {
        cc.phone.append_value(&s.phone);
    } else {
        cc.phone.append_null();
    }

    // address, city, postal code
    let (city, postal) = *pick(rng, country.cities);
    let street = *pick(rng, country.streets);
    let a = &mut cc.address;
    let _ = match country.address {
        AddressStyle::NumberFirst => {
            let num = rng.random_range(1..=480u32);
            if rng.random_bool(0.08) {
                write!(a, "{num} {street}, Apt {}", rng.random_range(1..=40u32))
            } else {
                write!(a, "{num} {street}")
            }
        }
        AddressStyle::NumberLast => {
            let num = rng.random_range(1..=160u32);
            if rng.random_bool(0.06) {
                write!(a, "{street} {num}{}", pick(rng, &["a", "b", "c"]))
            } else {
                write!(a, "{street} {num}")
            }
        }
        AddressStyle::NumberLastComma => {
            let num = rng.random_range(10..=2500u32);
            if rng.random_bool(0.15) {
                write!(
                    a,
                    "{street}, {num} - apto {}",
                    rng.random_range(11..=190u32)
                )
            } else {
                write!(a, "{street}, {num}")
            }
        }
        AddressStyle::Japanese => write!(
            a,
            "{}-{}-{} {street}",
            rng.random_range(1..=9u32),
            rng.random_range(1..=30u32),
            rng.random_range(1..=20u32)
        ),
    };
    a.append_value("");
    cc.city.append_value(city);
    fill_template(rng, postal, &mut cc.postal);
    cc.postal.append_value("");
    cc.country.append_value(country.code);
    cc.locale.append_value(if rng.random_bool(0.85) {
        country.locales[0]
    } else {
        *pick(rng, country.locales)
    });

    // birth date: ages 18..85 at registration, skewed young
    if rng.random_bool(0.7) {
        let age = 18 + (67.0 * rng.random::<f64>().powf(1.5)) as i64;
        let reg_days = reg.div_euclid(US_PER_DAY);
        let birth = reg_days - age * 365 - age / 4 - rng.random_range(0..365i64);
        cc.birth.append_value(birth as i32);
    } else {
        cc.birth.append_null();
    }
    cc.registered.append_value(reg);

    let home_ip = random_ip(rng, 0.75);
    home_ip.write_to(&mut cc.ip);
    cc.ip.append_value("");

    // custom answers
    if rng.random_bool(0.4) {
        let r = rng.random::<f64>();
        let template = if r < 0.15 {
            *pick(rng, EMAIL_ANSWERS)
        } else if r < 0.25 {
            *pick(rng, PHONE_ANSWERS)
        } else if r < 0.33 {
            *pick(rng, NAME_ANSWERS)
        } else {
            *pick(rng, PLAIN_ANSWERS)
        };
        let fields = Answer {
            city,
            email: &s.norm,
            phone: &s.phone,
            first,
            last,
        };
        render_answer(template, &mut cc.answers, &fields);
        cc.answers.append_value("");
    } else {
        cc.answers.append_null();
    }
    cc.opt_in.append_value(rng.random_bool(0.45));

    // payment profile
    let method = pick_cum(rng, &METHOD_CUM) as u8;
    let card = Card {
        brand: pick_cum(rng, &BRAND_CUM) as u8,
        seed: rng.random(),
        first_expiry: month_index(reg) + rng.random_range(6..60),
    };
    s.paypal.clear();
    if rng.random_bool(0.7) {
        s.paypal.push_str(&s.norm);
    } else {
        fold_ascii_lower(first, &mut s.paypal);
        s.paypal.push('.');
        fold_ascii_lower(last, &mut s.paypal);
        let _ = write!(
            s.paypal,
            ".pay{}@{}",
            rng.random_range(1..1000u32),
            pick(rng, GLOBAL_DOMAINS)
        );
    }
    let profile = Profile {
        id,
        seq,
        country: country_idx,
        home_ip,
        method,
        card,
        apple_ref: rng.random_range(100_000_000_000_000..1_000_000_000_000_000),
        google_ref: rng.random_range(10_000_000_000_000_000..100_000_000_000_000_000),
        roku_ref: rng.random(),
    };

    s.upper.clear();
    s.upper.push_str(&s.norm);
    s.upper.make_ascii_uppercase();
    s.holder.clear();
    s.holder.extend(first.chars().flat_map(char::to_uppercase));
    s.holder.push(' ');
    s.holder.extend(last.chars().flat_map(char::to_uppercase));

    gen_events(ctx, rng, &profile, reg, &mut s.events);
    for (idx, ev) in s.events.iter().enumerate() {
        write_tx(ctx, rng, &profile, idx as u64, ev, tc, s);
    }
}

fn build_email(
    rng: &mut ChaCha8Rng,
    seq: u64,
    country: &Country,
    first: &str,
    last: &str,
    company: Option<(&str, &str, &str)>,
    s: &mut Scratch,
) {
    let norm = &mut s.norm;
    norm.clear();
    match rng.random_range(0..100u32) {
        0..35 => {
            fold_ascii_lower(first, norm);
            norm.push('.');
            fold_ascii_lower(last, norm);
        }
        35..50 => {
            fold_ascii_lower(first, norm);
            fold_ascii_lower(last, norm);
        }
        50..62 => {
            s.tmp.clear();
            fold_ascii_lower(first, &mut s.tmp);
            norm.push_str(s.tmp.get(..1).unwrap_or("x"));
            norm.push('.');
            fold_ascii_lower(last, norm);
        }
        62..72 => {
            fold_ascii_lower(first, norm);
            norm.push('_');
            fold_ascii_lower(last, norm);
        }
        72..82 => {
            fold_ascii_lower(last, norm);
            norm.push('.');
            fold_ascii_lower(first, norm);
        }
        _ => fold_ascii_lower(first, norm),
    }
    // The trailing number encodes the customer number, which makes every
    // address unique (even after trim + lowercase) without any shared state.
    let n = seq * 97 + rng.random_range(0..97u64);
    let sep = match rng.random_range(0..100u32) {
        0..70 => "",
        70..85 => ".",
        _ => "_",
    };
    let _ = write!(norm, "{sep}{n}");
    if rng.random_bool(0.08) {
        norm.push('+');
        let tag = *pick(rng, PLUS_TAGS);
        norm.push_str(tag);
    }
    norm.push('@');
    match company {
        Some((word, trade, _)) if rng.random_bool(0.4) => {
            fold_ascii_lower(word, norm);
            fold_ascii_lower(trade, norm);
            norm.push_str(".com");
        }
        _ => {
            let domain = if rng.random_bool(0.65) {
                *pick(rng, GLOBAL_DOMAINS)
            } else {
                *pick(rng, country.domains)
            };
            norm.push_str(domain);
        }
    }

    // The stored form: sometimes capitalised or shouted, sometimes padded.
    let email = &mut s.email;
    email.clear();
    let spaces = rng.random_range(0..100u32);
    if spaces < 3 || spaces == 6 {
        email.push(' ');
    }
    match rng.random_range(0..100u32) {
        0..80 => email.push_str(norm),
        80..92 => {
            let mut up = true;
            for c in norm.chars() {
                email.push(if up { c.to_ascii_uppercase() } else { c });
                up = matches!(c, '.' | '_' | '@' | '+');
            }
        }
        92..95 => email.extend(norm.chars().map(|c| c.to_ascii_uppercase())),
        _ => {
            let mut chars = norm.chars();
            if let Some(c) = chars.next() {
                email.push(c.to_ascii_uppercase());
            }
            email.push_str(chars.as_str());
        }
    }
    if (3..7).contains(&spaces) {
        email.push(' ');
    }
}

/// What an answer's template may embed.
struct Answer<'a> {
    city: &'a str,
    email: &'a str,
    phone: &'a str,
    first: &'a str,
    last: &'a str,
}

fn render_answer(template: &str, out: &mut StringBuilder, a: &Answer) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let _ = out.write_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            let _ = out.write_str(&rest[open..]);
            return;
        };
        let value = match &after[..close] {
            "city" => a.city,
            "email" => a.email,
            "phone" => a.phone,
            "first" => a.first,
            "last" => a.last,
            _ => "",
        };
        let _ = out.write_str(value);
        rest = &after[close + 1..];
    }
    let _ = out.write_str(rest);
}

fn add_period(start: i64, period: Period, k: u32) -> Option<i64> {
    let months = match period {
        Period::Week => return Some(start + i64::from(k) * 7 * US_PER_DAY),
        Period::Month => k,
        Period::Year => k.checked_mul(12)?,
    };
    DateTime::from_timestamp_micros(start)?
        .checked_add_months(Months::new(months))
        .map(|d| d.timestamp_micros())
}

fn alternative_method(rng: &mut ChaCha8Rng, primary: u8) -> u8 {
    if primary != CARD {
        CARD
    } else if rng.random_bool(0.7) {
        PAYPAL
    } else if rng.random_bool(0.5) {
        APPLE
    } else {
        GOOGLE
    }
}

fn tx_country(rng: &mut ChaCha8Rng, home: usize) -> usize {
    if rng.random_bool(TRAVEL_P) {
        let other = rng.random_range(0..COUNTRIES.len() - 1);
        if other >= home { other + 1 } else { other }
    } else {
        home
    }
}

#[allow(clippy::too_many_arguments)]
fn payment(
    rng: &mut ChaCha8Rng,
    p: &Profile,
    at: i64,
    ttype: u8,
    offer: usize,
    sub: u16,
    method: u8,
    country: usize,
) -> Ev {
    let ip = if country == p.country && rng.random_bool(0.65) {
        p.home_ip
    } else {
        random_ip(rng, 0.75)
    };
    Ev {
        at,
        pay_at: at,
        ip,
        offer: offer as u16,
        sub,
        ttype,
        country: country as u8,
        method,
    }
}

/// What happened after a payment.
enum AfterPayment {
    Continue,
    /// Refunded at the given time (the subscription ends there).
    Refunded(i64),
    ChargedBack,
}

/// Maybe adds a refund or chargeback for the payment `ev`.
fn refund_or_chargeback(
    rng: &mut ChaCha8Rng,
    ev: &Ev,
    end: i64,
    events: &mut Vec<Ev>,
) -> AfterPayment {
    let u = rng.random::<f64>();
    if u < REFUND_P {
        let at = ev.at + rng.random_range(US_PER_DAY..14 * US_PER_DAY);
        if at < end {
            events.push(Ev {
                at,
                ttype: REFUND,
                ..*ev
            });
            return AfterPayment::Refunded(at);
        }
    } else if u < REFUND_P + CHARGEBACK_P {
        let at = ev.at + rng.random_range(30 * US_PER_DAY..60 * US_PER_DAY);
        if at < end {
            events.push(Ev {
                at,
                ttype: CHARGEBACK,
                ..*ev
            });
        }
        return AfterPayment::ChargedBack;
    }
    AfterPayment::Continue
}

fn gen_events(ctx: &Ctx, rng: &mut ChaCha8Rng, p: &Profile, reg: i64, events: &mut Vec<Ev>) {
    events.clear();
    let end = ctx.end_us;
    let subscriber = rng.random_bool(SUBSCRIBE_P);
    if subscriber {
        let delay = if rng.random_bool(0.7) {
            rng.random_range(30 * US_PER_SEC..US_PER_HOUR)
        } else {
            rng.random_range(US_PER_HOUR..14 * US_PER_DAY)
        };
        let mut start = reg + delay;
        let mut plan = pick_cum(rng, &PLAN_CUM);
        let mut sub: u16 = 0;
        while start < end && sub < u16::MAX {
            sub += 1;
            let offer_idx = Catalogue::index(p.country, plan);
            let offer = &ctx.catalogue.offers[offer_idx];
            let period = offer.period.unwrap_or(Period::Month);
            let method = if rng.random_bool(0.9) {
                p.method
            } else {
                alternative_method(rng, p.method)
            };
            // When the subscription ended in a way that allows a comeback.
            let mut ended: Option<i64> = None;
            let mut k: u32 = 0;
            loop {
                let due = if k == 0 {
                    start
                } else {
                    match add_period(start, period, k) {
                        Some(t) => t + rng.random_range(0..600 * US_PER_SEC),
                        None => break,
                    }
                };
                if due >= end {
                    break;
                }
                let country = tx_country(rng, p.country);
                let ttype = if k == 0 { PURCHASE } else { RENEWAL };
                let ev = payment(rng, p, due, ttype, offer_idx, sub, method, country);
                events.push(ev);
                match refund_or_chargeback(rng, &ev, end, events) {
                    AfterPayment::Continue => {}
                    AfterPayment::Refunded(at) => {
                        ended = Some(at);
                        break;
                    }
                    AfterPayment::ChargedBack => break,
                }
                if rng.random_bool(offer.churn_per_period) {
                    ended = add_period(start, period, k + 1);
                    break;
                }
                k += 1;
            }
            let Some(ended) = ended else { break };
            if !rng.random_bool(COMEBACK_P) {
                break;
            }
            start = ended + rng.random_range(30 * US_PER_DAY..183 * US_PER_DAY);
            if rng.random_bool(REPLAN_P) {
                plan = pick_cum(rng, &PLAN_CUM);
            }
        }
    }

    // Passes, events and rentals: a Poisson process over the customer's life.
    let mean_rate = if subscriber {
        ONE_OFF_RATE_SUBSCRIBER
    } else {
        ONE_OFF_RATE_OTHER
    };
    let rate = mean_rate * (-(1.0 - rng.random::<f64>()).ln()).max(1e-6);
    let mut t = reg;
    loop {
        let gap = -(1.0 - rng.random::<f64>()).ln() / rate * US_PER_MONTH;
        if gap >= (end - t) as f64 {
            break;
        }
        t += gap as i64;
        if t >= end {
            break;
        }
        let country = tx_country(rng, p.country);
        let template = match rng.random_range(0..100u32) {
            0..40 => 4 + rng.random_range(0..2),
            40..65 => 6 + rng.random_range(0..3),
            _ => 9 + rng.random_range(0..2),
        };
        let method = if rng.random_bool(0.95) {
            p.method
        } else {
            alternative_method(rng, p.method)
        };
        let offer = Catalogue::index(country, template);
        let ev = payment(rng, p, t, PURCHASE, offer, 0, method, country);
        events.push(ev);
        let _ = refund_or_chargeback(rng, &ev, end, events);
    }

    events.sort_by_key(|e| e.at);
    events.truncate(usize::from(u16::MAX));
}

fn write_tx(
    ctx: &Ctx,
    rng: &mut ChaCha8Rng,
    p: &Profile,
    idx: u64,
    ev: &Ev,
    tc: &mut TxCols,
    s: &Scratch,
) {
    let offer = &ctx.catalogue.offers[usize::from(ev.offer)];
    write_code(&mut tc.tx_id, "T", unique_code(ctx.tag_tx, p.seq, idx));
    tc.at.append_value(ev.at);
    tc.customer_id.append_value(p.id as i64);

    // customer_email: usually verbatim, sometimes normalised, shouted or padded.
    match rng.random_range(0..100u32) {
        0..85 => tc.email.append_value(&s.email),
        85..92 => tc.email.append_value(&s.norm),
        92..96 => {
            tc.email.append_value(&s.upper);
        }
        96..98 => {
            tc.email.put(" ");
            tc.email.put(&s.norm);
            tc.email.append_value("");
        }
        _ => {
            tc.email.put(&s.norm);
            tc.email.put(" ");
            tc.email.append_value("");
        }
    }

    tc.offer_id.append_value(&offer.id);
    tc.offer_type.append_value(offer.kind.name());
    tc.offer_period.append_option(offer.period.map(Period::iso));
    if ev.sub > 0 {
        write_code(
            &mut tc.sub_id,
            "SUB",
            unique_code(ctx.tag_sub, p.seq, u64::from(ev.sub)),
        );
    } else {
        tc.sub_id.append_null();
    }
    tc.tx_type.append_value(TX_TYPES[usize::from(ev.ttype)]);
    tc.amount.append_value(i128::from(offer.price_cents));
    tc.currency.append_value(COUNTRIES[offer.country].currency);
    tc.country
        .append_value(COUNTRIES[usize::from(ev.country)].code);
    ev.ip.write_to(&mut tc.ip);
    tc.ip.append_value("");
    tc.method.append_value(METHODS[usize::from(ev.method)]);

    // payment_details
    let d = &mut tc.details;
    match ev.method {
        CARD => {
            let (last4, mm, yy) = p.card.at(ev.pay_at);
            let mask = if p.card.brand == AMEX {
                "**** ****** *"
            } else {
                "**** **** **** "
            };
            d.put(BRANDS[usize::from(p.card.brand)]);
            d.put(" ");
            d.put(mask);
            d.put_dec(u64::from(last4), 4);
            d.put(" exp ");
            d.put_dec(u64::from(mm), 2);
            d.put("/");
            d.put_dec(yy as u64, 2);
            d.put(" ");
            d.put(&s.holder);
        }
        PAYPAL => {
            let _ = d.write_str(&s.paypal);
        }
        APPLE => {
            d.put("apple:");
            d.put_dec(p.apple_ref, 15);
        }
        GOOGLE => {
            let g = p.google_ref;
            d.put("google:GPA.");
            d.put_dec(g / 10_000_000_000_000, 4);
            d.put("-");
            d.put_dec(g / 1_000_000_000 % 10_000, 4);
            d.put("-");
            d.put_dec(g / 100_000 % 10_000, 4);
            d.put("-");
            d.put_dec(g % 100_000, 5);
        }
        _ => {
            d.put("roku:");
            d.put_hex((p.roku_ref >> 64) as u64, 16);
            d.put_hex(p.roku_ref as u64, 16);
        }
    }
    d.append_value("");

    // external_payment_id: a unique part derived from (customer, row) plus noise.
    let u = mix64(((p.seq << 16) | idx) ^ ctx.tag_ext);
    let e = &mut tc.ext_id;
    match ev.method {
        CARD => {
            e.put(match ev.ttype {
                REFUND => "re_",
                CHARGEBACK => "dp_",
                _ => "pi_",
            });
            push_radix(e, u, 11, ALNUM);
            push_random_chars(rng, e, 13, ALNUM);
        }
        PAYPAL => {
            e.put("PAYID-");
            push_radix(e, u, 13, UPPER_ALNUM);
            push_random_chars(rng, e, 11, UPPER_ALNUM);
        }
        APPLE => {
            e.put("APL");
            e.put_dec(u, 20);
        }
        GOOGLE => {
            e.put("GPA.");
            e.put_dec(u / 10_000_000_000_000_000, 4);
            for div in [1_000_000_000_000, 100_000_000, 10_000, 1] {
                e.put("-");
                e.put_dec(u / div % 10_000, 4);
            }
        }
        _ => {
            e.put("roku_");
            e.put_hex(u, 16);
            e.put_hex(rng.random(), 16);
        }
    }
    e.append_value("");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_compression() {
        let ip = Ip::V6 {
            seg: [0x2a02, 0xc7f, 0x1a2b, 0x9e00, 0, 0, 0, 0x1f],
            full: false,
        };
        assert_eq!(ip.to_string(), "2a02:c7f:1a2b:9e00::1f");
        let ip = Ip::V6 {
            seg: [0x2a02, 0xc7f, 0x1a2b, 0x9e00, 0, 0, 0, 0x1f],
            full: true,
        };
        assert_eq!(ip.to_string(), "2a02:0c7f:1a2b:9e00:0000:0000:0000:001f");
        let ip = Ip::V6 {
            seg: [0x2001, 0, 1, 2, 3, 4, 5, 6],
            full: false,
        };
        assert_eq!(ip.to_string(), "2001:0:1:2:3:4:5:6");
    }

    #[test]
    fn mix39_is_a_bijection_on_a_sample() {
        let mut seen = std::collections::HashSet::new();
        for k in 0..200_000u64 {
            let v = mix39(k);
            assert!(v <= MASK39);
            assert!(seen.insert(v));
        }
    }

    #[test]
    fn catalogue_ids_unique_and_prices_sane() {
        let cat = Catalogue::new();
        let mut ids = std::collections::HashSet::new();
        for o in &cat.offers {
            assert!(ids.insert(o.id.clone()), "duplicate offer id {}", o.id);
            assert_eq!(o.id.len(), 13, "{}", o.id);
            assert!(o.price_cents > 0);
            if o.kind == OfferKind::Subscription {
                let monthly = match o.period.unwrap() {
                    Period::Month => o.churn_per_period,
                    Period::Week => 1.0 - (1.0 - o.churn_per_period).powf(30.436_875 / 7.0),
                    Period::Year => 1.0 - (1.0 - o.churn_per_period).powf(1.0 / 12.0),
                };
                assert!((0.0199..=0.1001).contains(&monthly), "{} {monthly}", o.id);
            }
        }
        let us = &cat.offers[Catalogue::index(0, 0)];
        assert_eq!(us.price_cents, 999);
        let jp = &cat.offers[Catalogue::index(COUNTRIES.len() - 1, 0)];
        assert_eq!(jp.price_cents % 100, 0);
    }
}
