//! Property tests against naive string-based computations.
use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
struct Case {
    hierarchies: Vec<Hierarchy>,
    rows: Vec<Vec<String>>,
    levels: Vec<usize>,
    k: u64,
    supp: f64,
}

/// A random hierarchy: `n0` level-0 values, each level maps every value of
/// the level below to a random parent among fewer values; optional top '*'.
fn hierarchy_strategy(col: usize) -> impl Strategy<Value = Hierarchy> {
    (1usize..6, 0usize..3, any::<u64>(), any::<bool>()).prop_map(move |(n0, extra, seed, star)| {
        let mut rng = seed | 1;
        let mut next = move |m: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % m as u64) as usize
        };
        let mut rows: Vec<Vec<String>> = (0..n0).map(|i| vec![format!("c{col}v{i}")]).collect();
        let mut parent_ids: Vec<usize> = (0..n0).collect();
        let mut size = n0;
        for l in 1..=extra {
            let new_size = size.div_ceil(2);
            let map: Vec<usize> = (0..size).map(|_| next(new_size)).collect();
            for (r, p) in rows.iter_mut().zip(parent_ids.iter_mut()) {
                *p = map[*p];
                r.push(format!("c{col}l{l}g{p}"));
            }
            size = new_size;
        }
        if star {
            for r in &mut rows {
                r.push("*".into());
            }
        }
        Hierarchy::from_rows(rows).unwrap()
    })
}

fn case_strategy() -> impl Strategy<Value = Case> {
    (1usize..4)
        .prop_flat_map(|d| (0..d).map(hierarchy_strategy).collect::<Vec<_>>())
        .prop_flat_map(|hs| {
            let nrows = 0usize..60;
            let hs2 = hs.clone();
            (
                Just(hs),
                nrows.prop_flat_map(move |n| {
                    let cols: Vec<_> = hs2
                        .iter()
                        .map(|h| proptest::collection::vec(0..h.len(), n))
                        .collect();
                    cols
                }),
                any::<u64>(),
                1u64..6,
                prop_oneof![Just(0.0), Just(0.05), Just(0.1), Just(0.3), Just(1.0)],
            )
        })
        .prop_map(|(hs, cols, seed, k, supp)| {
            let n = cols.first().map_or(0, |c| c.len());
            let rows: Vec<Vec<String>> = (0..n)
                .map(|i| {
                    (0..hs.len())
                        .map(|c| hs[c].value_at(0, cols[c][i] as u32).unwrap().to_owned())
                        .collect()
                })
                .collect();
            let mut s = seed;
            let levels = hs
                .iter()
                .map(|h| {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((s >> 33) % h.height() as u64) as usize
                })
                .collect();
            Case {
                hierarchies: hs,
                rows,
                levels,
                k,
                supp,
            }
        })
}

fn build(case: &Case) -> Dataset {
    let names = (0..case.hierarchies.len())
        .map(|c| format!("q{c}"))
        .collect();
    let mut b =
        DatasetBuilder::new(names, case.hierarchies.iter().cloned().map(Some).collect()).unwrap();
    for r in &case.rows {
        b.push_row(r).unwrap();
    }
    b.finish().unwrap()
}

fn naive_classes(case: &Case, levels: &[usize]) -> HashMap<Vec<String>, u64> {
    let mut m = HashMap::new();
    for r in &case.rows {
        let key: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| {
                case.hierarchies[c]
                    .generalize(v, levels[c])
                    .unwrap()
                    .to_owned()
            })
            .collect();
        *m.entry(key).or_insert(0u64) += 1;
    }
    m
}

fn naive_entropy(case: &Case, levels: &[usize]) -> f64 {
    let mut total = 0.0;
    for (c, h) in case.hierarchies.iter().enumerate() {
        let mut a: HashMap<&str, f64> = HashMap::new();
        let mut b: HashMap<&str, f64> = HashMap::new();
        for r in &case.rows {
            *a.entry(&r[c]).or_default() += 1.0;
            *b.entry(h.generalize(&r[c], levels[c]).unwrap())
                .or_default() += 1.0;
        }
        for (v, &av) in &a {
            total -= av * (av / b[h.generalize(v, levels[c]).unwrap()]).log2();
        }
    }
    total
}

fn all_nodes(heights: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for &h in heights {
        out = out
            .into_iter()
            .flat_map(|p| (0..h).map(move |l| [p.clone(), vec![l]].concat()))
            .collect();
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn measures_match_naive(case in case_strategy()) {
        let data = build(&case);
        let n = case.rows.len() as u64;
        let classes = naive_classes(&case, &case.levels);
        let sizes: Vec<u64> = classes.values().copied().collect();
        let k = case.k;
        let m = measures(&data, &case.levels, k).unwrap();
        prop_assert_eq!(m.records, n);
        prop_assert_eq!(m.classes, sizes.len() as u64);
        prop_assert_eq!(m.smallest_class, sizes.iter().copied().min().unwrap_or(0));
        let below: u64 = sizes.iter().filter(|&&s| s < k).sum();
        prop_assert_eq!(m.records_below_k, below);
        prop_assert_eq!(m.sample_uniques, sizes.iter().filter(|&&s| s == 1).count() as u64);
        let ok = sizes.iter().filter(|&&s| s >= k).count() as u64 + u64::from(below > 0);
        if n > 0 {
            prop_assert_eq!(m.aecs, n as f64 / ok as f64);
            prop_assert_eq!(m.prosecutor_risk_avg, sizes.len() as f64 / n as f64);
        }
        prop_assert_eq!(m.discernibility_monotonic, sizes.iter().map(|&s| (s * s) as f64).sum::<f64>());
        prop_assert_eq!(m.discernibility,
            sizes.iter().filter(|&&s| s >= k).map(|&s| (s * s) as f64).sum::<f64>() + (n * below) as f64);
        let e = entropy_loss(&data, &case.levels).unwrap();
        let ne = naive_entropy(&case, &case.levels);
        prop_assert!((e - ne).abs() <= 1e-9 * (1.0 + ne.abs()), "{} vs {}", e, ne);
        // per-row API
        let g = data.generalization(&case.levels, k).unwrap();
        let supp = g.suppressed_rows();
        prop_assert_eq!(supp.len() as u64, below);
        for (i, r) in case.rows.iter().enumerate() {
            let key: Vec<String> = (0..r.len()).map(|c| g.value(i, c).to_owned()).collect();
            prop_assert_eq!(g.class_size(i), classes[&key]);
            prop_assert_eq!(g.is_suppressed(i), classes[&key] < k);
            prop_assert_eq!(supp.binary_search(&i).is_ok(), classes[&key] < k);
        }
    }

    #[test]
    fn optimize_matches_exhaustive(case in case_strategy()) {
        let data = build(&case);
        let n = case.rows.len() as u64;
        let limit = (case.supp * n as f64).floor() as u64;
        let heights = data.heights();
        let mut best: Option<(f64, usize, Vec<usize>)> = None;
        for node in all_nodes(&heights) {
            let below: u64 = naive_classes(&case, &node).values().filter(|&&s| s < case.k).sum();
            if below > limit { continue; }
            let loss = entropy_loss(&data, &node).unwrap();
            let key = (loss, node.iter().sum::<usize>(), node.clone());
            let better = match &best {
                None => true,
                Some(b) => key.0.total_cmp(&b.0).then(key.1.cmp(&b.1)).then(key.2.cmp(&b.2)).is_lt(),
            };
            if better { best = Some(key); }
        }
        let got = optimize(&data, case.k, case.supp).unwrap();
        match (best, got) {
            (None, None) => {}
            (Some(b), Some(o)) => {
                prop_assert_eq!(&o.levels, &b.2);
                prop_assert_eq!(o.info_loss, b.0);
                prop_assert!(o.suppressed <= limit);
                let below: u64 = naive_classes(&case, &o.levels).values().filter(|&&s| s < case.k).sum();
                prop_assert_eq!(o.suppressed, below);
                prop_assert!(o.nodes_checked as u128 <= o.lattice_size);
                prop_assert_eq!(o.lattice_size, heights.iter().product::<usize>() as u128);
            }
            (b, o) => prop_assert!(false, "oracle {:?} vs optimize {:?}", b, o),
        }
    }
}

#[test]
fn unknown_value_names_column_and_row() {
    let h = Hierarchy::parse("a;*\nb;*", ';').unwrap();
    let mut b = DatasetBuilder::new(vec!["x".into(), "y".into()], vec![Some(h), None]).unwrap();
    b.push_row(&["a", "z"]).unwrap();
    let e = b.push_row(&["c", "z"]).unwrap_err();
    assert_eq!(
        e,
        KanonError::UnknownValue {
            column: "x".into(),
            row: 2,
            value: "c".into()
        }
    );
    assert!(e.to_string().contains("row 2"));
    assert!(matches!(
        b.push_row(&["a"]).unwrap_err(),
        KanonError::RowArity { row: 2, .. }
    ));
    let d = b.finish().unwrap();
    assert_eq!(d.num_rows(), 1);
    assert_eq!(d.heights(), vec![2, 2]);
    assert!(optimize(&d, 0, 0.0).is_err());
    assert!(optimize(&d, 1, 1.5).is_err());
    // k > N with no suppression: nothing satisfies.
    assert_eq!(optimize(&d, 2, 0.0).unwrap(), None);
    let o = optimize(&d, 2, 1.0).unwrap().unwrap();
    assert_eq!(o.levels, vec![0, 0]);
    assert_eq!(o.suppressed, 1);
}

/// Deterministic generator for the larger tests below.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, m: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % m as u64) as usize
    }
}

/// `cols` columns with `n0` values each and 3 levels (value, value/10, *).
fn wide_case(cols: usize, n0: usize, rows: usize, seed: u64, k: u64, supp: f64) -> Case {
    let hierarchies: Vec<Hierarchy> = (0..cols)
        .map(|c| {
            Hierarchy::from_rows(
                (0..n0)
                    .map(|v| vec![format!("{c}:{v}"), format!("{c}:{}x", v / 10), "*".into()])
                    .collect(),
            )
            .unwrap()
        })
        .collect();
    let mut rng = Lcg(seed);
    let rows = (0..rows)
        .map(|_| {
            (0..cols)
                .map(|c| {
                    // skewed: squares favour small values
                    let v = rng.next(n0) * rng.next(n0) / n0;
                    format!("{c}:{v}")
                })
                .collect()
        })
        .collect();
    Case {
        hierarchies,
        rows,
        levels: vec![0; cols],
        k,
        supp,
    }
}

fn check_measures_naive(case: &Case, data: &Dataset, levels: &[usize]) {
    let classes = naive_classes(case, levels);
    let mut sizes: Vec<u64> = classes.values().copied().collect();
    sizes.sort_unstable();
    let g = data.generalization(levels, case.k).unwrap();
    let m = measures(data, levels, case.k).unwrap();
    assert_eq!(m.classes, sizes.len() as u64, "{levels:?}");
    assert_eq!(g.num_classes(), sizes.len());
    let below: u64 = sizes.iter().filter(|&&s| s < case.k).sum();
    assert_eq!(m.records_below_k, below);
    assert_eq!(
        m.discernibility_monotonic,
        sizes.iter().map(|&s| (s * s) as f64).sum::<f64>()
    );
    for (i, r) in case.rows.iter().enumerate().step_by(97) {
        let key: Vec<String> = (0..r.len()).map(|c| g.value(i, c).to_owned()).collect();
        assert_eq!(g.class_size(i), classes[&key]);
    }
}

/// Exercises the sharded (multi-threaded) group-by paths: >= 200k distinct tuples.
#[test]
fn large_dataset_parallel_paths() {
    let case = wide_case(3, 120, 400_000, 7, 3, 0.02);
    let data = build(&case);
    assert!(data.num_distinct() > 200_000, "{}", data.num_distinct());
    for levels in [
        [0, 0, 0],
        [1, 0, 0],
        [1, 1, 0],
        [0, 1, 2],
        [2, 2, 2],
        [1, 1, 1],
    ] {
        check_measures_naive(&case, &data, &levels);
    }
    // optimize vs exhaustive search over the 27 nodes
    let n = case.rows.len() as u64;
    let limit = (case.supp * n as f64).floor() as u64;
    let mut best: Option<(f64, usize, Vec<usize>)> = None;
    for node in all_nodes(&data.heights()) {
        if measures(&data, &node, case.k).unwrap().records_below_k > limit {
            continue;
        }
        let key = (
            entropy_loss(&data, &node).unwrap(),
            node.iter().sum::<usize>(),
            node.clone(),
        );
        if best.as_ref().is_none_or(|b| {
            key.0
                .total_cmp(&b.0)
                .then(key.1.cmp(&b.1))
                .then(key.2.cmp(&b.2))
                .is_lt()
        }) {
            best = Some(key);
        }
    }
    let o = optimize(&data, case.k, case.supp).unwrap().unwrap();
    assert_eq!(o.levels, best.unwrap().2);
    assert!(o.suppressed <= limit);
}

/// 128-bit keys (9 columns x 9 bits) and wide keys (16 columns x 9 bits).
#[test]
fn u128_and_wide_keys() {
    for (cols, rows) in [(9, 3000), (16, 1500)] {
        let case = wide_case(cols, 300, rows, cols as u64, 2, 0.1);
        let data = build(&case);
        let mut rng = Lcg(99);
        for _ in 0..6 {
            let levels: Vec<usize> = (0..cols).map(|_| rng.next(3)).collect();
            check_measures_naive(&case, &data, &levels);
        }
        check_measures_naive(&case, &data, &vec![0; cols]);
        check_measures_naive(&case, &data, &vec![2; cols]);
    }
    // optimize with 128-bit keys: 6 columns of 2^11 values (66 bits), 3^6 nodes.
    let case = wide_case(6, 2048, 3000, 5, 2, 0.05);
    let data = build(&case);
    let limit = (case.supp * 3000.0f64).floor() as u64;
    let mut best: Option<(f64, usize, Vec<usize>)> = None;
    for node in all_nodes(&data.heights()) {
        let key = (
            entropy_loss(&data, &node).unwrap(),
            node.iter().sum::<usize>(),
            node.clone(),
        );
        if best.as_ref().is_some_and(|b| {
            key.0
                .total_cmp(&b.0)
                .then(key.1.cmp(&b.1))
                .then(key.2.cmp(&b.2))
                .is_ge()
        }) {
            continue;
        }
        if measures(&data, &node, case.k).unwrap().records_below_k <= limit {
            best = Some(key);
        }
    }
    let o = optimize(&data, case.k, case.supp).unwrap().unwrap();
    assert_eq!(o.levels, best.unwrap().2);
    assert!(o.suppressed <= limit);
    // optimize with wide keys: 16 columns whose values repeat in 40 profiles.
    let hierarchies: Vec<Hierarchy> = (0..16)
        .map(|c| {
            Hierarchy::from_rows(
                (0..300)
                    .map(|v| vec![format!("{c}:{v}"), format!("{c}:{}x", v / 100), "*".into()])
                    .collect(),
            )
            .unwrap()
        })
        .collect();
    let mut rng = Lcg(3);
    let rows: Vec<Vec<String>> = (0..400)
        .map(|_| {
            let p = rng.next(40);
            (0..16)
                .map(|c| format!("{c}:{}", (p * 7 + c * 13) % 300))
                .collect()
        })
        .collect();
    let case = Case {
        hierarchies,
        rows,
        levels: vec![0; 16],
        k: 3,
        supp: 0.0,
    };
    let data = build(&case);
    check_measures_naive(&case, &data, &[0; 16]);
    let o = optimize(&data, 3, 0.0).unwrap().unwrap();
    assert_eq!(measures(&data, &o.levels, 3).unwrap().records_below_k, 0);
}
