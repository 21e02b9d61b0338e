//! Property tests for the rule kernels, checked against independent computations.

use anonymizer::rules::generalize::{
    age_band_label, age_years, date_to_days, ip_network, trunc_days, trunc_ticks,
};
use anonymizer::rules::mask::{MASK, mask};
use anonymizer::rules::pseudonymize::Pseudonymizer;
use anonymizer::rules::scrub::{luhn_ok, scrub};
use anonymizer::rules::{Normalize, TruncUnit, Udfs, apply, strings};
use chrono::{Datelike, NaiveDate};
use datafusion::arrow::array::AsArray;
use datafusion::common::ScalarValue;
use proptest::prelude::*;

use crate::common::*;

fn unit() -> impl Strategy<Value = TruncUnit> {
    prop::sample::select(TruncUnit::ALL.to_vec())
}

/// Days between year 1 and year 9999.
fn day() -> impl Strategy<Value = i64> {
    -719_162i64..2_932_896
}

proptest! {
    #[test]
    fn trunc_is_idempotent_monotone_and_lands_on_a_boundary(a in day(), b in day(), u in unit()) {
        let ta = trunc_days(a, u).unwrap();
        prop_assert_eq!(trunc_days(ta, u).unwrap(), ta);
        prop_assert!(ta <= a);
        let (lo, hi) = (a.min(b), a.max(b));
        prop_assert!(trunc_days(lo, u).unwrap() <= trunc_days(hi, u).unwrap());
        // Independent check with chrono.
        let d = NaiveDate::from_num_days_from_ce_opt((a + 719_163) as i32).unwrap();
        let t = NaiveDate::from_num_days_from_ce_opt((ta + 719_163) as i32).unwrap();
        match u {
            TruncUnit::Hour | TruncUnit::Day => prop_assert_eq!(t, d),
            TruncUnit::Week => {
                prop_assert_eq!(t.weekday(), chrono::Weekday::Mon);
                prop_assert!((d - t).num_days() < 7);
            }
            TruncUnit::Month => prop_assert_eq!((t.year(), t.month(), t.day()), (d.year(), d.month(), 1)),
            TruncUnit::Quarter => prop_assert_eq!((t.year(), t.month(), t.day()), (d.year(), (d.month() - 1) / 3 * 3 + 1, 1)),
            TruncUnit::Year => prop_assert_eq!((t.year(), t.month(), t.day()), (d.year(), 1, 1)),
        }
    }

    #[test]
    fn trunc_of_timestamps_matches_trunc_of_their_day(us in -62_000_000_000_000_000i64..253_000_000_000_000_000, u in unit()) {
        let tpd = 86_400_000_000i64;
        let t = trunc_ticks(us, tpd, u).unwrap();
        if u == TruncUnit::Hour {
            prop_assert_eq!(t, us.div_euclid(3_600_000_000) * 3_600_000_000);
        } else {
            prop_assert_eq!(t, trunc_days(us.div_euclid(tpd), u).unwrap() * tpd);
        }
        prop_assert_eq!(trunc_ticks(t, tpd, u).unwrap(), t);
    }

    #[test]
    fn age_bands_contain_the_age(birth in 0i64..20_000, asof in 0i64..25_000, width in 1u32..20) {
        let b = NaiveDate::from_num_days_from_ce_opt(700_000 + birth as i32).unwrap();
        let a = NaiveDate::from_num_days_from_ce_opt(700_000 + asof as i32).unwrap();
        match age_years(b, a) {
            None => prop_assert!(b > a),
            Some(age) => {
                // Independent: count whole years by stepping anniversaries.
                let mut n = 0u32;
                while b.with_year(b.year() + n as i32 + 1).unwrap_or_else(|| NaiveDate::from_ymd_opt(b.year() + n as i32 + 1, 3, 1).unwrap()) <= a {
                    n += 1;
                }
                prop_assert_eq!(age, n);
                let mut s = String::new();
                age_band_label(age, width, &mut s);
                if age >= 90 {
                    prop_assert_eq!(s, "90+");
                } else {
                    let (lo, hi) = match s.split_once('-') {
                        Some((l, h)) => (l.parse::<u32>().unwrap(), h.parse::<u32>().unwrap()),
                        None => { let v = s.parse::<u32>().unwrap(); (v, v) }
                    };
                    prop_assert!(lo <= age && age <= hi && hi - lo < width);
                }
            }
        }
    }

    #[test]
    fn ip_networks_contain_the_address(a in any::<u32>(), b in any::<u128>(), p4 in 0u8..=32, p6 in 0u8..=128) {
        let v4 = std::net::Ipv4Addr::from(a);
        let n = ip_network(&v4.to_string(), p4, p6).unwrap();
        let (net, bits) = n.split_once('/').unwrap();
        prop_assert_eq!(bits.parse::<u8>().unwrap(), p4);
        let net: std::net::Ipv4Addr = net.parse().unwrap();
        let mask = if p4 == 0 { 0 } else { u32::MAX << (32 - p4 as u32) };
        prop_assert_eq!(u32::from(net), a & mask);
        let v6 = std::net::Ipv6Addr::from(b);
        let n6 = ip_network(&v6.to_string(), p4, p6).unwrap();
        let net6: std::net::Ipv6Addr = n6.split_once('/').unwrap().0.parse().unwrap();
        let mask6 = if p6 == 0 { 0 } else { u128::MAX << (128 - p6 as u32) };
        prop_assert_eq!(u128::from(net6), b & mask6);
    }

    #[test]
    fn mask_keeps_only_the_tail(s in "\\PC{0,40}", k in 0usize..8) {
        let mut out = String::new();
        mask(&s, k, &mut out);
        prop_assert!(out.starts_with(MASK));
        let tail = &out[MASK.len()..];
        let n = s.chars().count();
        if n > k {
            prop_assert_eq!(tail.chars().count(), k);
            prop_assert!(s.ends_with(tail));
        } else {
            prop_assert_eq!(tail, "");
        }
    }

    #[test]
    fn tokens_are_fixed_width_normalized_and_keyed(local in "[a-zA-Z0-9._]{1,20}", domain in "[a-z]{1,10}\\.(com|org|de)", pad in " {0,3}") {
        let p = Pseudonymizer::new(&key(), None);
        let email = format!("{local}@{domain}");
        let messy = format!("{pad}{}{pad}", email.to_uppercase());
        let t = p.token_str(&email, Normalize::Email);
        prop_assert_eq!(t.len(), 32);
        prop_assert!(t.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        prop_assert_eq!(&t, &p.token_str(&messy, Normalize::Email));
        prop_assert_ne!(&t, &Pseudonymizer::new(&other_key(), None).token_str(&email, Normalize::Email));
        prop_assert_ne!(&t, &Pseudonymizer::new(&key(), Some("customer")).token_str(&email, Normalize::Email));
        // Not a plain hash: without the key, sha256/blake3 of the value does not give it.
        prop_assert!(!blake3::hash(email.to_lowercase().as_bytes()).to_hex().starts_with(&t));
    }

    #[test]
    fn scrub_removes_every_planted_identifier(
        words in prop::collection::vec("[a-z]{1,8}", 0..12),
        user in "[a-z][a-z0-9.]{0,10}[a-z0-9]",
        host in "[a-z]{2,10}",
        phone in prop::collection::vec(0u32..10, 9..12),
        card_body in prop::collection::vec(0u32..10, 15),
        ip in any::<u32>(),
        ip6 in any::<u128>(),
        order in Just((0..5).collect::<Vec<usize>>()).prop_shuffle(),
    ) {
        let email = format!("{user}@{host}.com");
        let phone_s = format!("+{} {}", phone[0] + 1, phone[1..].iter().map(|d| d.to_string()).collect::<String>());
        // Complete a 16-digit card with its Luhn check digit.
        let body: String = card_body.iter().map(|d| d.to_string()).collect();
        let check = (0..10).find(|c| luhn_ok(&format!("{body}{c}"))).unwrap();
        let card = format!("{}{check}", body);
        let card_spaced = format!("{} {} {} {}", &card[..4], &card[4..8], &card[8..12], &card[12..]);
        let ip4 = std::net::Ipv4Addr::from(ip).to_string();
        let ip6s = std::net::Ipv6Addr::from(ip6).to_string();
        let planted = [email.clone(), phone_s.clone(), card_spaced.clone(), ip4.clone(), ip6s.clone()];
        let mut text = words.join(" ");
        for i in order {
            text.push(' ');
            text.push_str(&planted[i]);
            text.push_str(", ");
        }
        let mut out = String::new();
        scrub(&text, &mut out);
        for p in &planted {
            prop_assert!(!out.contains(p.as_str()), "{} survived in {}", p, out);
        }
        let out_digits: String = out.chars().filter(|c| c.is_ascii_digit()).collect();
        prop_assert!(!out_digits.contains(&card), "card digits survived: {}", out);
        prop_assert!(!out.contains(&phone_s[phone_s.len() - 7..]), "phone digits survived: {}", out);
        for w in &words {
            prop_assert!(out.contains(w.as_str()));
        }
    }
}

#[test]
fn udfs_apply_the_kernels_to_arrow_arrays() {
    let u = Udfs::new(&key());
    let out = apply(
        &u.pseudonymize,
        strings([Some(" A@B.com"), None, Some("a@b.com")]),
        vec![ScalarValue::from("email"), ScalarValue::Utf8(None)],
    )
    .unwrap();
    let s = out.as_string::<i32>();
    assert_eq!(s.value(0), s.value(2));
    assert!(out.is_null(1));
    let out = apply(
        &u.mask,
        strings([Some("+44 20 7946 0958")]),
        vec![ScalarValue::Int64(Some(2))],
    )
    .unwrap();
    assert_eq!(out.as_string::<i32>().value(0), "****58");
    let out = apply(&u.scrub, strings([Some("mail a@b.com")]), vec![]).unwrap();
    assert_eq!(out.as_string::<i32>().value(0), "mail [EMAIL]");
    let d = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let births = std::sync::Arc::new(datafusion::arrow::array::Date32Array::from(vec![
        Some(date_to_days(NaiveDate::from_ymd_opt(1990, 6, 2).unwrap())),
        None,
    ]));
    let out = apply(
        &u.age_band,
        births,
        vec![
            ScalarValue::Date32(Some(date_to_days(d))),
            ScalarValue::Int64(Some(10)),
        ],
    )
    .unwrap();
    assert_eq!(out.as_string::<i32>().value(0), "30-39");
    assert!(out.is_null(1));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// redact keeps nothing of the value, not even whether it was null.
    #[test]
    fn redact_is_the_constant_in_every_row(values in prop::collection::vec(prop::option::of("\\PC{0,20}"), 1..50), constant in "[a-z\\[\\]]{0,10}") {
        use anonymizer::rules::Rule;
        use datafusion::arrow::array::{RecordBatch, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
        let schema = Arc::new(Schema::new(vec![Field::new("secret", DataType::Utf8, true)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(values.clone()))]).unwrap();
        let ctx = anonymizer::run::session();
        let df = ctx.read_batch(batch).unwrap();
        let rule = Rule::Redact { value: constant.clone() };
        let e = rule.expr("secret", &Udfs::new(&key()), None).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let out = rt.block_on(df.select(vec![e]).unwrap().collect()).unwrap();
        let got = column_strings(&out, "secret");
        prop_assert_eq!(got.len(), values.len());
        prop_assert!(got.iter().all(|g| g.as_deref() == Some(constant.as_str())));
    }
}

/// Names with accents, umlauts and apostrophes, and how a text may spell them.
const PEOPLE: [(&str, &str, [&str; 2]); 6] = [
    ("José", "García", ["JOSE", "garcia"]),
    ("Jürgen", "Müller", ["Juergen", "MUELLER"]),
    ("Anna", "Kowalska", ["anna", "KOWALSKA"]),
    ("Siobhán", "O'Brien", ["siobhan", "O’Brien"]),
    ("Łukasz", "Nowak", ["Lukasz", "nowak"]),
    ("Ngozi", "Okafor", ["NGOZI", "okafor"]),
];

proptest! {
    /// Every spelling of the row's name planted among other words is gone, each run of
    /// them is one `[NAME]`, and the other words stay: checked against the planted
    /// spellings, not the kernel's folding.
    #[test]
    fn scrub_removes_the_rows_name_however_it_is_spelt(
        person in 0..PEOPLE.len(),
        words in prop::collection::vec("[a-z]{3,8}", 1..10),
        plants in prop::collection::vec((0usize..4, 0usize..10), 1..4),
    ) {
        use anonymizer::rules::scrub::{NameWords, scrub_with_names};
        let (first, last, spelt) = PEOPLE[person];
        let forms = [first, last, spelt[0], spelt[1]];
        // Words that happen to be one of the name's are not "other words".
        let words: Vec<String> = words
            .into_iter()
            .filter(|w| forms.iter().all(|f| !f.to_lowercase().contains(w.as_str())))
            .collect();
        prop_assume!(!words.is_empty());
        let mut text: Vec<String> = words.clone();
        for (form, at) in &plants {
            text.insert(at % (text.len() + 1), forms[*form].to_string());
            text.insert(at % (text.len() + 1), "said".to_string());
        }
        let text = text.join(" ");
        let mut names = NameWords::default();
        names.add(first);
        names.add(last);
        let mut out = String::new();
        scrub_with_names(&text, &mut names, &mut out);
        for f in forms {
            let f = f.to_lowercase();
            let survivor = out
                .split(|c: char| !c.is_alphabetic() && c != '\'' && c != '’')
                .any(|w| w.to_lowercase() == f);
            prop_assert!(!survivor, "{} survived in {}", f, out);
        }
        prop_assert!(out.contains("[NAME]"));
        prop_assert!(!out.contains("[NAME] [NAME]"), "a run is one placeholder: {}", out);
        for w in &words {
            prop_assert!(out.contains(w.as_str()), "{} lost in {}", w, out);
        }
    }
}
