//! Criterion benchmarks of the rule kernels, with throughput in elements.
//!
//! `pseudonymize/*` also measures the alternative the design rejected (HMAC-SHA-256) on
//! the same inputs, so the choice of keyed BLAKE3 stays a measured one:
//! `cargo bench --bench kernels -- pseudonymize`.

use std::hint::black_box;
use std::sync::Arc;

use anonymizer::key::{Key, KeySource};
use anonymizer::rules::generalize::{age_band_label, ip_network_into, prefix, trunc_array};
use anonymizer::rules::mask::mask;
use anonymizer::rules::pseudonymize::{Pseudonymizer, tokenize_array};
use anonymizer::rules::scrub::scrub;
use anonymizer::rules::{Normalize, TruncUnit};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const N: usize = 100_000;

fn key() -> Key {
    Key::from_hex(
        &"5a"
            .repeat(31)
            .chars()
            .chain("3c".chars())
            .collect::<String>(),
        KeySource::Provided,
    )
    .unwrap()
}

/// 30-byte distinct strings, like normalized emails.
fn emails() -> Vec<String> {
    (0..N)
        .map(|i| format!("user{i:08}@example-mails.com")[..30].to_string())
        .collect()
}

fn pseudonymize(c: &mut Criterion) {
    let mut g = c.benchmark_group("pseudonymize");
    g.throughput(Throughput::Elements(N as u64));
    let k = key();
    let p = Pseudonymizer::new(&k, None);
    let values = emails();
    let arr: ArrayRef = Arc::new(StringArray::from(values.clone()));
    g.bench_function("blake3_keyed_30B_array", |b| {
        b.iter(|| tokenize_array(&p, black_box(&arr), Normalize::None).unwrap())
    });
    let ints: ArrayRef = Arc::new(Int64Array::from_iter_values(0..N as i64));
    g.bench_function("blake3_keyed_int64_array", |b| {
        b.iter(|| tokenize_array(&p, black_box(&ints), Normalize::None).unwrap())
    });
    g.bench_function("blake3_keyed_30B_raw", |b| {
        let mut out = [0u8; 32];
        b.iter(|| {
            for v in &values {
                p.token_into(black_box(v.as_bytes()), &mut out);
            }
        })
    });
    // The same hashes 16 at a time (what the array kernel uses for values of <= 64 bytes).
    let words = anonymizer::rules::lanes::key_words(k.bytes());
    g.bench_function("blake3_lanes_30B_raw", |b| {
        let mut lanes = anonymizer::rules::lanes::Lanes::default();
        let mut out = [0u128; anonymizer::rules::lanes::LANES];
        b.iter(|| {
            for chunk in values.chunks(anonymizer::rules::lanes::LANES) {
                for v in chunk {
                    lanes.push(black_box(v.as_bytes()));
                }
                lanes.finish(&words, &mut out);
                black_box(&out);
            }
        })
    });
    let mac = Hmac::<Sha256>::new_from_slice(k.bytes()).unwrap();
    g.bench_function("hmac_sha256_30B_raw", |b| {
        let mut out = [0u8; 32];
        b.iter(|| {
            for v in &values {
                let mut m = mac.clone();
                m.update(black_box(v.as_bytes()));
                let tag = m.finalize().into_bytes();
                hex::encode_to_slice(&tag[..16], &mut out).unwrap();
            }
        })
    });
    g.finish();
}

fn generalize(c: &mut Criterion) {
    let mut g = c.benchmark_group("generalize");
    g.throughput(Throughput::Elements(N as u64));
    let ts: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from_iter_values(
            (0..N as i64).map(|i| 1_700_000_000_000_000 + i * 7_919_000_000),
        )
        .with_timezone("UTC"),
    );
    for unit in [TruncUnit::Day, TruncUnit::Month] {
        g.bench_function(format!("trunc_timestamp_{}", unit.as_str()), |b| {
            b.iter(|| trunc_array(black_box(&ts), unit).unwrap())
        });
    }
    // Distinct addresses, as an export's IP column holds them.
    let v4: Vec<String> = (0..N as u32)
        .map(|i| std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761)).to_string())
        .collect();
    let v6: Vec<String> = (0..N as u128)
        .map(|i| {
            std::net::Ipv6Addr::from(
                0x2400_0000_0000_0000_0000_0000_0000_0000
                    | i.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) >> 8,
            )
            .to_string()
        })
        .collect();
    let mut out = String::new();
    for (name, ips) in [("network_ipv4", &v4), ("network_ipv6", &v6)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                for ip in ips {
                    out.clear();
                    ip_network_into(black_box(ip), 24, 48, &mut out);
                }
            })
        });
    }
    // What the IPv6 path did before it was written by hand: std's parse and Display.
    g.bench_function("network_ipv6_std", |b| {
        use std::fmt::Write;
        b.iter(|| {
            for ip in &v6 {
                out.clear();
                if let Ok(a) = black_box(ip).trim().parse::<std::net::Ipv6Addr>() {
                    let masked = std::net::Ipv6Addr::from(u128::from(a) & (u128::MAX << 80));
                    let _ = write!(out, "{masked}/48");
                }
            }
        })
    });
    let postcodes: Vec<String> = (0..N).map(|i| format!("{:05} ", i * 7 % 100_000)).collect();
    g.bench_function("prefix_2", |b| {
        b.iter(|| {
            for p in &postcodes {
                out.clear();
                prefix(black_box(p), 2, &mut out);
            }
        })
    });
    g.bench_function("age_band_label_10", |b| {
        b.iter(|| {
            for age in 0..N as u32 {
                out.clear();
                age_band_label(black_box(age % 100), 10, &mut out);
            }
        })
    });
    g.finish();
}

fn mask_text(c: &mut Criterion) {
    let mut g = c.benchmark_group("mask");
    g.throughput(Throughput::Elements(N as u64));
    let phones: Vec<String> = (0..N).map(|i| format!("+44 7700 9{i:05}")).collect();
    let mut out = String::new();
    g.bench_function("keep_last_2", |b| {
        b.iter(|| {
            for p in &phones {
                out.clear();
                mask(black_box(p), 2, &mut out);
            }
        })
    });
    g.finish();
}

/// `scrub` over every text of `texts` (one output buffer, reused), in texts per second.
fn scrub_each(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, texts: &[String]) {
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function(name, |b| {
        let mut out = String::new();
        b.iter(|| {
            for t in texts {
                out.clear();
                scrub(black_box(t), &mut out);
            }
        })
    });
}

/// The privacy gate's detectors (`detect`) over every text of `texts`, in texts per second.
fn detect_each(g: &mut BenchmarkGroup<'_, WallTime>, name: &str, texts: &[String]) {
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            for t in texts {
                black_box(anonymizer::rules::scrub::detect(black_box(t)));
            }
        })
    });
}

fn scrub_text(c: &mut Criterion) {
    let mut g = c.benchmark_group("scrub");
    let texts: Vec<String> = (0..10_000)
        .map(|i| match i % 4 {
            0 => format!("Found you through a friend, my mail is user{i}@example.com"),
            1 => format!(
                "Please call me on +44 20 7946 {:04} about the family plan",
                i % 10_000
            ),
            2 => "Loved the documentaries, want more sports".to_string(),
            _ => format!(
                "Paid with 4111 1111 1111 1111 from 192.168.{}.{}",
                i % 255,
                i % 200
            ),
        })
        .collect();
    scrub_each(&mut g, "free_text_mixed", &texts);
    // The same texts with each row's name (`names`), and a quarter of them signed with
    // it: the name's words are folded and looked up in every text, and a text that had a
    // name is scrubbed again.
    let people = [
        ("Anna", "Kowalska"),
        ("José", "García"),
        ("Jürgen", "Müller"),
        ("Siobhán", "O'Brien"),
    ];
    let signed: Vec<String> = texts
        .iter()
        .enumerate()
        .map(|(i, t)| match i % 4 {
            2 => format!(
                "{t}. Best regards, {} {}",
                people[i / 4 % 4].0,
                people[i / 4 % 4].1
            ),
            _ => t.clone(),
        })
        .collect();
    // The cost of the names alone is the difference from this: the same signed texts
    // (some not ASCII) scrubbed without names.
    scrub_each(&mut g, "free_text_signed", &signed);
    g.bench_function("free_text_signed_with_names", |b| {
        use anonymizer::rules::scrub::{NameWords, scrub_with_names};
        let (mut out, mut words) = (String::new(), NameWords::default());
        b.iter(|| {
            for (i, t) in signed.iter().enumerate() {
                let (first, last) = people[i / 4 % 4];
                words.clear();
                words.add(first);
                words.add(last);
                out.clear();
                scrub_with_names(black_box(t), &mut words, &mut out);
            }
        })
    });
    // The mixed texts' kinds in other languages: every text holds letters past ASCII, and
    // three of four an identifier (so the patterns run over text that is not ASCII).
    let accented: Vec<String> = (0..10_000)
        .map(|i| match i % 4 {
            0 => format!("Über einen Freund gefunden, meine Adresse ist jürgen{i}@example.de"),
            1 => format!(
                "Llámeme al +34 91 794 {:04} sobre el plan familiar, ¡gracias!",
                i % 10_000
            ),
            2 => "Très bien, j'adore les documentaires, plus de sport s'il vous plaît".to_string(),
            _ => format!(
                "Zapłaciłem kartą 4111 1111 1111 1111 z 192.168.{}.{}",
                i % 255,
                i % 200
            ),
        })
        .collect();
    scrub_each(&mut g, "free_text_not_ascii", &accented);
    // The privacy gate's detectors on the same texts (as on a column kept by mistake).
    detect_each(&mut g, "detect_not_ascii", &accented);
    // Payment references (capitals and digits, as the generated export's
    // external_payment_id): digits, but nothing to replace.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let codes: Vec<String> = (0..10_000)
        .map(|_| {
            let tail: String = (0..22)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[(x % 36) as usize] as char
                })
                .collect();
            format!("PAYID-{tail}")
        })
        .collect();
    scrub_each(&mut g, "payment_codes", &codes);
    // Hostile text (the `scrub` fuzz target's slow unit, distilled): every `[IP]` written
    // exposes one more address before it, a round of the passes each. In bytes per second
    // at three lengths: the same rate at each means a text's cost is linear in its length
    // (the rounds are bounded, `scrub::MAX_ROUNDS`); unbounded, it fell with the length.
    let link = "31db8::18::CB82WEST B8 2T BA30db8::18::CB82WEST B8 2T 2T ";
    for links in [16, 64, 256] {
        let text = format!("Über {}BA2 T B8280:", link.repeat(links));
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function(format!("hostile_cascade_{}_bytes", text.len()), |b| {
            let mut out = String::new();
            b.iter(|| {
                out.clear();
                scrub(black_box(&text), &mut out);
            })
        });
    }
    // The privacy gate's detectors on the same codes.
    detect_each(&mut g, "detect_payment_codes", &codes);
    // The generated export's external payment ids, the five methods' formats in about
    // its proportions (20M transactions: 54 % card, 21 % PayPal, 12 % Apple, 8 % Google,
    // 5 % Roku): `pi_` and letters and digits, `PAYID-` and capitals and digits, `APL`
    // and 20 digits (scrubbed to `APL[NUMBER]`), `GPA.` and five groups of four digits
    // (`GPA.[NUMBER]`), `roku_` and hex.
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let refs: Vec<String> = (0..10_000usize)
        .map(|i| {
            let r = next();
            let d = format!("{r:020}");
            match i % 100 {
                0..=55 => {
                    let tail: String = (0..24)
                        .map(|_| ALNUM[(next() % 62) as usize] as char)
                        .collect();
                    format!("pi_{tail}")
                }
                56..=76 => codes[i].clone(),
                77..=88 => format!("APL{d}"),
                89..=95 => format!(
                    "GPA.{}-{}-{}-{}-{}",
                    &d[..4],
                    &d[4..8],
                    &d[8..12],
                    &d[12..16],
                    &d[16..]
                ),
                _ => format!("roku_{r:016x}{:016x}", next()),
            }
        })
        .collect();
    scrub_each(&mut g, "payment_refs", &refs);
    let scrubbed: Vec<String> = refs
        .iter()
        .map(|t| {
            let mut o = String::new();
            scrub(t, &mut o);
            o
        })
        .collect();
    detect_each(&mut g, "detect_scrubbed_payment_refs", &scrubbed);
    g.finish();
}

/// The privacy gate's per-check fingerprints: SipHash-1-3-128 (what it uses) against keyed
/// BLAKE3 (what it used), on the same 30-byte values.
fn fingerprint(c: &mut Criterion) {
    let mut g = c.benchmark_group("fingerprint");
    g.throughput(Throughput::Elements(N as u64));
    let values = emails();
    let fp = anonymizer::verify::Fingerprinter::new();
    g.bench_function("siphash13_128_30B", |b| {
        b.iter(|| {
            values.iter().fold(0u128, |acc, v| {
                acc ^ fp.hash_normalized(black_box(v.as_bytes()))
            })
        })
    });
    let key = [7u8; 32];
    g.bench_function("blake3_keyed_30B", |b| {
        b.iter(|| {
            values.iter().fold(0u8, |acc, v| {
                acc ^ blake3::keyed_hash(&key, black_box(v.as_bytes())).as_bytes()[0]
            })
        })
    });
    g.finish();
}

/// Cutting a large CSV file into pieces (`input::csv_pieces`): one pass of csv-core over
/// the file, in bytes per second, on a 64 MiB file of transactions-like rows (a quarter
/// of them with a quoted note holding a comma or a line break), cut into 1 MiB pieces.
fn csv_cut(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    let mut text = String::from("id,at,customer,email,amount,note\n");
    let mut i = 0u64;
    while text.len() < 64 << 20 {
        let note = match i % 4 {
            0 => "\"late, but fine\nthanks\"",
            1 => "\"said \"\"ok\"\"\"",
            _ => "plain",
        };
        text.push_str(&format!(
            "T{i:012},2025-03-{:02} 10:00:00,C{},user{}@example.com,{}.99,{note}\n",
            1 + i % 28,
            i % 50_000,
            i % 50_000,
            i % 100
        ));
        i += 1;
    }
    std::fs::write(&path, &text).unwrap();
    let mut g = c.benchmark_group("input");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.sample_size(10);
    g.bench_function("csv_cut_64MiB", |b| {
        b.iter(|| anonymizer::input::csv_pieces(black_box(&path), b',', 1 << 20, 64).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    pseudonymize,
    generalize,
    mask_text,
    scrub_text,
    fingerprint,
    csv_cut
);
criterion_main!(benches);
