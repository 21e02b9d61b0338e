//! Privacy and utility figures of one generalization, as ARX defines them.

/// Figures for one level vector and one k.
///
/// Without suppression ([`super::measures`]), every class counts:
/// * `records`: N, all records.
/// * `classes`: number of equivalence classes (distinct generalized tuples).
/// * `smallest_class`: size of the smallest class (0 if there are no records).
/// * `records_below_k`: records in classes with fewer than k records.
/// * `sample_uniques`: records in classes of size 1.
/// * `aecs`: N / (classes with >= k records, + 1 if some record is in a
///   class < k) — ARX `MetricSDAECS`: records of classes < k are the
///   suppressed records and form one extra class.
/// * `discernibility_monotonic`: sum over all classes of size² (ARX
///   `MetricSDDiscernability`, the `dmStar` of `MetricSDNMDiscernability`).
/// * `discernibility`: sum over classes >= k of size² + N · records_below_k
///   (ARX `MetricSDNMDiscernability`).
/// * `prosecutor_risk_max` = 1 / smallest_class, `prosecutor_risk_avg` =
///   classes / records (the average over records of 1 / size of the record's
///   class). Both 0 when there are no records.
///
/// After suppression (the `measures` of an [`super::Optimum`], or
/// [`super::Generalization::measures_suppressed`]) the records of classes < k
/// are removed: `classes`, `smallest_class`, `sample_uniques` and both risks
/// refer to the remaining records only; `records` stays N,
/// `records_below_k` is the number of suppressed records, and `aecs` and
/// both discernibility figures are unchanged (ARX already treats the records
/// of classes < k as suppressed in them).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Measures {
    /// Number of records (N).
    pub records: u64,
    /// Number of equivalence classes.
    pub classes: u64,
    /// Size of the smallest equivalence class.
    pub smallest_class: u64,
    /// Records in classes smaller than k.
    pub records_below_k: u64,
    /// Records in classes of size 1.
    pub sample_uniques: u64,
    /// Average equivalence class size (ARX definition, see above).
    pub aecs: f64,
    /// Monotonic discernibility: sum of squared class sizes.
    pub discernibility_monotonic: f64,
    /// Non-monotonic discernibility: squared sizes of classes >= k plus N per record in a class < k.
    pub discernibility: f64,
    /// Highest prosecutor re-identification risk, 1 / smallest class.
    pub prosecutor_risk_max: f64,
    /// Average prosecutor risk, classes / records.
    pub prosecutor_risk_avg: f64,
}

pub(crate) fn measures_from_sizes(sizes: &[u64], n: u64, k: u64, suppressed: bool) -> Measures {
    let mut classes_all = 0u64;
    let mut classes_ok = 0u64;
    let mut min_all = u64::MAX;
    let mut min_ok = u64::MAX;
    let mut below = 0u64;
    let mut uniques_all = 0u64;
    let mut uniques_ok = 0u64;
    let mut dm_star: u128 = 0;
    let mut dm_ok: u128 = 0;
    for &s in sizes {
        if s == 0 {
            continue;
        }
        classes_all += 1;
        min_all = min_all.min(s);
        let sq = (s as u128) * (s as u128);
        dm_star += sq;
        if s == 1 {
            uniques_all += 1;
        }
        if s >= k {
            classes_ok += 1;
            min_ok = min_ok.min(s);
            dm_ok += sq;
            if s == 1 {
                uniques_ok += 1;
            }
        } else {
            below += s;
        }
    }
    let groups = classes_ok + u64::from(below > 0);
    let aecs = if groups == 0 {
        0.0
    } else {
        n as f64 / groups as f64
    };
    let dm = (dm_ok + (n as u128) * (below as u128)) as f64;
    let (classes, smallest, uniques, remaining) = if suppressed {
        (classes_ok, min_ok, uniques_ok, n - below)
    } else {
        (classes_all, min_all, uniques_all, n)
    };
    let smallest = if smallest == u64::MAX { 0 } else { smallest };
    Measures {
        records: n,
        classes,
        smallest_class: smallest,
        records_below_k: below,
        sample_uniques: uniques,
        aecs,
        discernibility_monotonic: dm_star as f64,
        discernibility: dm,
        prosecutor_risk_max: if smallest == 0 {
            0.0
        } else {
            1.0 / smallest as f64
        },
        prosecutor_risk_avg: if remaining == 0 {
            0.0
        } else {
            classes as f64 / remaining as f64
        },
    }
}
