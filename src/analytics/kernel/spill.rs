//! The aggregates kernel's spill files: the records of a part, written past
//! `[analytics] memory_mb` and read back in pass 2, in a compact form.
//!
//! Written whole, a record took 90 bytes: 9 GB at 100M transactions, more than the page
//! cache would hold as dirty pages, so pass 1 ran at the disk's speed. But a record is
//! mostly what the one before it was (the same customer, subscription, currency,
//! country and offer; a month later), so each is written as what changed: a tag byte of
//! "the same as before" and "zero" bits, then the rest as LEB128 varints, times as
//! zigzag differences. The generated 1M-transaction export spills 23 bytes a record
//! sorted by customer and 45 in time order; no record takes more than 110.
//!
//! A file is a sequence of blocks, one per flush of a reading task's buffer (several
//! tasks append to one file, each block whole under the file's lock):
//! `[payload bytes: u32 LE][records: u32 LE][payload]`. Every block starts from an
//! all-zero record, so blocks need no order. Reading checks every length and bound: a
//! file cut short is an error, and a damaged one an error or (where the damage still
//! decodes) other records, never a panic or an allocation the file does not back. (The
//! files live only inside one run's staging folder.)

use std::io::Read;

use super::Rec;

/// Bits of a record's tag byte.
const SAME_CUST: u8 = 1;
const SAME_SUB: u8 = 2;
const SAME_NAMES: u8 = 4;
const SAME_KIND: u8 = 8;
const ZERO_AMOUNT: u8 = 16;
const ZERO_E0: u8 = 32;
const ZERO_UNITS: u8 = 64;
const ALL_TAGS: u8 = 127;

/// The most bytes one record takes: tag, two 16-byte ids, kind and flags, three names,
/// the time, the end, the amount, the units and the month.
const MAX_RECORD_BYTES: usize = 1 + 16 + 16 + 2 + 3 * 5 + 10 + 10 + 19 + 10 + 10;

/// The fewest bytes one record takes: tag, time and month.
const MIN_RECORD_BYTES: usize = 3;

/// Bytes of a block's header.
const HEADER: usize = 8;

fn zigzag64(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag64(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn zigzag128(v: i128) -> u128 {
    ((v << 1) ^ (v >> 127)) as u128
}

fn unzigzag128(u: u128) -> i128 {
    ((u >> 1) as i128) ^ -((u & 1) as i128)
}

/// A record being written, in a stack buffer (no capacity check per byte).
struct Out {
    buf: [u8; MAX_RECORD_BYTES],
    len: usize,
}

impl Out {
    fn byte(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }

    fn varint(&mut self, mut v: u128) {
        while v >= 0x80 {
            self.byte(v as u8 | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }
}

/// Appends one block of `recs` to `out`.
pub(super) fn encode_block(recs: &[Rec], out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    let mut prev = Rec::default();
    let mut o = Out {
        buf: [0; MAX_RECORD_BYTES],
        len: 0,
    };
    for r in recs {
        o.len = 1;
        let mut tag = 0;
        if r.cust == prev.cust {
            tag |= SAME_CUST;
        } else {
            o.bytes(&r.cust.to_le_bytes());
        }
        if r.sub == prev.sub {
            tag |= SAME_SUB;
        } else {
            o.bytes(&r.sub.to_le_bytes());
        }
        if (r.kind, r.flags) == (prev.kind, prev.flags) {
            tag |= SAME_KIND;
        } else {
            o.bytes(&[r.kind, r.flags]);
        }
        if (r.currency, r.country, r.offer) == (prev.currency, prev.country, prev.offer) {
            tag |= SAME_NAMES;
        } else {
            o.varint(r.currency.into());
            o.varint(r.country.into());
            o.varint(r.offer.into());
        }
        o.varint(zigzag64(r.t.wrapping_sub(prev.t)).into());
        if r.e0 == 0 {
            tag |= ZERO_E0;
        } else {
            o.varint(zigzag64(r.e0.wrapping_sub(r.t)).into());
        }
        if r.amount == 0 {
            tag |= ZERO_AMOUNT;
        } else {
            o.varint(zigzag128(r.amount));
        }
        if r.units == 0 {
            tag |= ZERO_UNITS;
        } else {
            o.varint(zigzag64(r.units).into());
        }
        o.varint(zigzag64(i64::from(r.month) - i64::from(prev.month)).into());
        o.buf[0] = tag;
        out.extend_from_slice(&o.buf[..o.len]);
        prev = *r;
    }
    let payload = (out.len() - start - HEADER) as u32;
    out[start..start + 4].copy_from_slice(&payload.to_le_bytes());
    out[start + 4..start + HEADER].copy_from_slice(&(recs.len() as u32).to_le_bytes());
}

/// A block's payload being read.
struct In<'a> {
    b: &'a [u8],
    pos: usize,
}

impl In<'_> {
    fn byte(&mut self) -> Option<u8> {
        let v = *self.b.get(self.pos)?;
        self.pos += 1;
        Some(v)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let v = self.b.get(self.pos..self.pos + N)?.try_into().ok()?;
        self.pos += N;
        Some(v)
    }

    /// A varint of at most `bits` bits.
    fn varint(&mut self, bits: u32) -> Option<u128> {
        let mut v = 0u128;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            let low = u128::from(b & 0x7f);
            if bits - shift < 7 && low >> (bits - shift) != 0 {
                return None;
            }
            v |= low << shift;
            if b < 0x80 {
                return Some(v);
            }
            shift += 7;
            if shift >= bits {
                return None;
            }
        }
    }

    fn u32(&mut self) -> Option<u32> {
        self.varint(32).map(|v| v as u32)
    }

    fn i64(&mut self) -> Option<i64> {
        self.varint(64).map(|v| unzigzag64(v as u64))
    }
}

/// Decodes a block's payload of `count` records onto `recs`; `None`: the payload is not
/// `count` whole records.
fn decode_block(payload: &[u8], count: usize, recs: &mut Vec<Rec>) -> Option<()> {
    let mut i = In { b: payload, pos: 0 };
    let mut prev = Rec::default();
    for _ in 0..count {
        let tag = i.byte()?;
        if tag & !ALL_TAGS != 0 {
            return None;
        }
        let mut r = prev;
        if tag & SAME_CUST == 0 {
            r.cust = u128::from_le_bytes(i.array()?);
        }
        if tag & SAME_SUB == 0 {
            r.sub = u128::from_le_bytes(i.array()?);
        }
        if tag & SAME_KIND == 0 {
            [r.kind, r.flags] = i.array()?;
        }
        if tag & SAME_NAMES == 0 {
            r.currency = i.u32()?;
            r.country = i.u32()?;
            r.offer = i.u32()?;
        }
        r.t = prev.t.wrapping_add(i.i64()?);
        r.e0 = if tag & ZERO_E0 != 0 {
            0
        } else {
            r.t.wrapping_add(i.i64()?)
        };
        r.amount = if tag & ZERO_AMOUNT != 0 {
            0
        } else {
            unzigzag128(i.varint(128)?)
        };
        r.units = if tag & ZERO_UNITS != 0 { 0 } else { i.i64()? };
        r.month = i32::try_from(i64::from(prev.month).checked_add(i.i64()?)?).ok()?;
        recs.push(r);
        prev = r;
    }
    (i.pos == payload.len()).then_some(())
}

/// Reads as many bytes as there are, up to `buf.len()`; the count read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut have = 0;
    while have < buf.len() {
        match r.read(&mut buf[have..]) {
            Ok(0) => break,
            Ok(n) => have += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(have)
}

/// A spill file's blocks, read one at a time.
pub(super) struct Blocks<R> {
    r: R,
    name: String,
    payload: Vec<u8>,
}

impl<R: Read> Blocks<R> {
    /// The blocks of `r`, the spill file `name` (for errors).
    pub(super) fn new(r: R, name: String) -> Self {
        Blocks {
            r,
            name,
            payload: Vec::new(),
        }
    }

    /// Appends the next block's records to `recs`; `false` at the end of the file.
    pub(super) fn next_into(&mut self, recs: &mut Vec<Rec>) -> Result<bool, String> {
        let name = &self.name;
        let io = |e: std::io::Error| format!("cannot read back {name}: {e}");
        let damaged = |what: &str| format!("{name} is damaged ({what}); run again");
        let mut header = [0u8; HEADER];
        match read_up_to(&mut self.r, &mut header).map_err(io)? {
            0 => return Ok(false),
            HEADER => {}
            _ => return Err(damaged("it ends inside a block header")),
        }
        let bytes = u32::from_le_bytes(header[..4].try_into().expect("4")) as usize;
        let count = u32::from_le_bytes(header[4..].try_into().expect("4")) as usize;
        if bytes > count.saturating_mul(MAX_RECORD_BYTES)
            || bytes < count.saturating_mul(MIN_RECORD_BYTES)
        {
            return Err(damaged("a block's length does not fit its records"));
        }
        // Read before reserving: a damaged length allocates no more than the file holds.
        self.payload.clear();
        (&mut self.r)
            .take(bytes as u64)
            .read_to_end(&mut self.payload)
            .map_err(io)?;
        if self.payload.len() != bytes {
            return Err(damaged("it ends inside a block"));
        }
        recs.reserve(count);
        decode_block(&self.payload, count, recs)
            .ok_or_else(|| damaged("a block's records do not decode"))?;
        Ok(true)
    }
}

/// Reads every block of `r` (the spill file `name`) onto `recs`.
#[cfg(test)]
fn read_blocks(r: impl Read, name: &str, recs: &mut Vec<Rec>) -> Result<(), String> {
    let mut blocks = Blocks::new(r, name.to_string());
    while blocks.next_into(recs)? {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{K_CHARGEBACK, K_CUSTOMER, NO_MONTH, NO_NAME};
    use super::*;
    use proptest::prelude::*;

    fn any_rec() -> impl Strategy<Value = Rec> {
        // Few distinct values of each field, so that "the same as before" happens; the
        // extremes of every type among them.
        let wide = prop_oneof![Just(0u128), Just(1), Just(u128::MAX), any::<u128>()];
        let i64s = prop_oneof![
            Just(0i64),
            Just(i64::MIN),
            Just(i64::MAX),
            -3_000_000_000_000i64..3_000_000_000_000,
            any::<i64>()
        ];
        let names = prop_oneof![Just(0u32), Just(NO_NAME), 0u32..300];
        (
            (wide.clone(), wide, any::<i128>(), proptest::bool::ANY),
            (i64s.clone(), i64s.clone(), i64s),
            (
                prop_oneof![
                    Just(NO_MONTH),
                    Just(i32::MAX),
                    any::<i32>(),
                    24_000i32..24_400
                ],
                names.clone(),
                names.clone(),
                names,
            ),
            (0u8..=K_CUSTOMER, any::<u8>()),
        )
            .prop_map(
                |(
                    (cust, sub, amount, small),
                    (t, e0, units),
                    (month, currency, country, offer),
                    (kind, flags),
                )| Rec {
                    cust,
                    sub,
                    amount: if small { amount % 100_000 } else { amount },
                    t,
                    e0,
                    units,
                    month,
                    currency,
                    country,
                    offer,
                    kind,
                    flags,
                },
            )
    }

    /// A customer's renewals: what an export sorted by customer spills.
    fn renewals(n: usize) -> Vec<Rec> {
        (0..n as i64)
            .map(|i| {
                let t = 1_700_000_000_000_000 + i * 2_592_000_000_000;
                Rec {
                    cust: 0x1234_5678_9abc_def0_1234_5678_9abc_def0,
                    sub: 0x0fed_cba9_8765_4321_0fed_cba9_8765_4321,
                    amount: 999,
                    t,
                    e0: t + 2_592_000_000_000,
                    units: 9_990_000,
                    month: 24_300 + i as i32,
                    currency: 1,
                    country: 7,
                    offer: 2,
                    kind: 1,
                    flags: 31,
                }
            })
            .collect()
    }

    proptest! {
        /// Any records, in any order and blocks, read back as written.
        #[test]
        fn records_survive_the_spill(
            blocks in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![any_rec(), any_rec().prop_map(|r| Rec { sub: 0, ..r })],
                    0..20,
                ),
                0..5,
            ),
            repeat in proptest::collection::vec(proptest::bool::ANY, 20),
        ) {
            // Repeat some records whole, as a customer's runs do.
            let blocks: Vec<Vec<Rec>> = blocks
                .into_iter()
                .map(|b| {
                    let mut out: Vec<Rec> = Vec::new();
                    for (i, r) in b.into_iter().enumerate() {
                        let r = match out.last() {
                            Some(p) if repeat[i] => Rec { t: r.t, ..*p },
                            _ => r,
                        };
                        out.push(r);
                    }
                    out
                })
                .collect();
            let mut bytes = Vec::new();
            for b in &blocks {
                encode_block(b, &mut bytes);
            }
            let mut got = Vec::new();
            read_blocks(&bytes[..], "part-00000", &mut got).unwrap();
            let want: Vec<Rec> = blocks.concat();
            prop_assert_eq!(got, want);
        }

        /// A damaged file (cut short, or any byte changed) is an error or other records,
        /// never a panic.
        #[test]
        fn a_damaged_spill_is_an_error_not_a_panic(
            recs in proptest::collection::vec(any_rec(), 1..10),
            cut in 0usize..2000,
            flip in 0usize..2000,
            to in any::<u8>(),
        ) {
            let mut bytes = Vec::new();
            encode_block(&recs, &mut bytes);
            let mut changed = bytes.clone();
            let at = flip % changed.len();
            changed[at] = to;
            let _ = read_blocks(&changed[..], "part-00000", &mut Vec::new());
            // Cut anywhere but at the start (an empty file is no blocks).
            let cut = 1 + cut % (bytes.len() - 1);
            let e = read_blocks(&bytes[..cut], "part-00000", &mut Vec::new()).unwrap_err();
            prop_assert!(e.contains("part-00000 is damaged"), "{}", e);
        }
    }

    #[test]
    fn the_extremes_survive_the_spill() {
        let r = Rec {
            cust: u128::MAX - 7,
            sub: 42,
            amount: -123_456_789_012_345_678_901_234,
            t: -5,
            e0: i64::MAX,
            units: i64::MIN,
            month: NO_MONTH,
            currency: 3,
            country: u32::MAX,
            offer: 9,
            kind: K_CHARGEBACK,
            flags: 255,
        };
        let all = [
            r,
            Rec::default(),
            Rec {
                month: i32::MAX,
                amount: i128::MIN,
                ..r
            },
            r,
        ];
        let mut bytes = Vec::new();
        encode_block(&all, &mut bytes);
        assert!(bytes.len() <= HEADER + all.len() * MAX_RECORD_BYTES);
        let mut got = Vec::new();
        read_blocks(&bytes[..], "p", &mut got).unwrap();
        assert_eq!(got, all);
    }

    #[test]
    fn a_sorted_customers_renewals_spill_in_about_23_bytes_each() {
        let recs = renewals(1000);
        let mut bytes = Vec::new();
        encode_block(&recs, &mut bytes);
        let per = (bytes.len() - HEADER) as f64 / recs.len() as f64;
        assert!(per <= 23.0, "{per} bytes a record");
        let mut got = Vec::new();
        read_blocks(&bytes[..], "p", &mut got).unwrap();
        assert_eq!(got, recs);
    }
}
