//! Optimal generalization search (k-anonymity with a suppression limit,
//! minimising ARX's precomputed non-uniform entropy).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashSet};

use super::dataset::{ClassList, Dataset};
use super::error::KanonError;
use super::measures::{Measures, measures_from_sizes};

/// The optimal generalization found by [`optimize`].
#[derive(Debug, Clone, PartialEq)]
pub struct Optimum {
    /// Generalization level per quasi-identifier.
    pub levels: Vec<usize>,
    /// ARX's precomputed non-uniform entropy of `levels` (see [`entropy_loss`]).
    pub info_loss: f64,
    /// Records to suppress (those in classes smaller than k); never more than
    /// `floor(max_suppression * N)`.
    pub suppressed: u64,
    /// Measures after suppressing those records (see [`Measures`]).
    pub measures: Measures,
    /// Number of lattice nodes whose equivalence classes were computed.
    pub nodes_checked: usize,
    /// Number of nodes in the generalization lattice (product of heights).
    pub lattice_size: u128,
}

/// Equivalence-class figures of `data` at `levels` for a given k, without
/// suppression (see [`Measures`] for the definitions).
pub fn measures(data: &Dataset, levels: &[usize], k: u64) -> Result<Measures, KanonError> {
    data.check_levels(levels)?;
    let g = data.group_tuples(levels, false);
    super::grouping::release_pools();
    Ok(measures_from_sizes(&g.weights, data.num_rows(), k, false))
}

/// ARX's precomputed non-uniform entropy of a level vector
/// (`MetricMDNUEntropyPrecomputed`, monotonic variant, sum aggregate, all
/// attribute weights 1): for each quasi-identifier, with `a` = number of
/// records having level-0 value `v` and `b` = number of records whose value
/// generalizes to the same level-`l` value as `v`, the column contributes
/// `-Σ_v a · log2(a / b)`; the loss is the sum over columns. It is computed on
/// all records and does not depend on suppression (ARX's monotonic variant);
/// it is 0 at the bottom node and grows with generalization.
pub fn entropy_loss(data: &Dataset, levels: &[usize]) -> Result<f64, KanonError> {
    data.check_levels(levels)?;
    Ok(data.loss_unchecked(levels))
}

/// Finds the generalization (one level per quasi-identifier) that makes
/// `data` k-anonymous after suppressing at most `floor(max_suppression · N)`
/// records (the records of classes smaller than k) and has the smallest
/// [`entropy_loss`] — ARX's "PrecomputedEntropyMetric, monotonic" search.
///
/// Ties: smallest loss (exact `f64` comparison; each column's entropy is
/// computed once and columns are summed in order), then the smallest sum of
/// levels (ARX's `trackOptimum` rule), then the lexicographically smallest
/// level vector (ARX keeps the first one its traversal meets; we make it
/// deterministic).
///
/// Search: both the criterion (records in classes < k never increase when
/// generalizing) and the loss are monotone, so nodes are visited best-first
/// in the order above, starting at the bottom; the first anonymous node is
/// the optimum. A visited node that turns out not anonymous is the start of a
/// climb to a maximal non-anonymous node (raise columns round-robin while the
/// result stays non-anonymous); every node below a non-anonymous node is then
/// known non-anonymous without a check, and every node above an anonymous
/// one anonymous. Classes of a node are
/// rolled up from the cached classes of the smallest checked node below it
/// (least recently used class lists are dropped beyond a memory budget).
///
/// Returns `Ok(None)` if even the top node (everything `*`) does not satisfy
/// the criterion (e.g. k > N with too little suppression allowed).
pub fn optimize(
    data: &Dataset,
    k: u64,
    max_suppression: f64,
) -> Result<Option<Optimum>, KanonError> {
    if k == 0 {
        return Err(KanonError::InvalidParameter("k must be at least 1".into()));
    }
    if !(0.0..=1.0).contains(&max_suppression) {
        return Err(KanonError::InvalidParameter(format!(
            "max_suppression must be within [0, 1], got {max_suppression}"
        )));
    }
    let heights: Vec<u8> = data.heights().iter().map(|&h| h as u8).collect();
    let limit = (max_suppression * data.num_rows() as f64).floor() as u64;
    let mut s = Search {
        data,
        k,
        limit,
        anon_min: Vec::new(),
        nonanon_max: Vec::new(),
        cache: Vec::new(),
        cache_entries: 0,
        checked: 0,
    };
    let top: Box<[u8]> = heights.iter().map(|&h| h - 1).collect();
    let result = search(&mut s, &heights, top);
    super::grouping::release_pools();
    Ok(result)
}

fn search(s: &mut Search<'_>, heights: &[u8], top: Box<[u8]>) -> Option<Optimum> {
    if !s.is_anonymous(&top) {
        return None;
    }
    let bottom: Box<[u8]> = vec![0u8; heights.len()].into_boxed_slice();
    let mut heap = BinaryHeap::new();
    let mut seen: HashSet<Box<[u8]>> = HashSet::new();
    seen.insert(bottom.clone());
    heap.push(s.candidate(bottom));
    while let Some(Cand { node, .. }) = heap.pop() {
        if s.probe(&node, &top) {
            return Some(s.optimum(&node));
        }
        for c in 0..node.len() {
            if node[c] + 1 < heights[c] {
                let mut succ = node.clone();
                succ[c] += 1;
                if seen.insert(succ.clone()) {
                    heap.push(s.candidate(succ));
                }
            }
        }
    }
    unreachable!("the top node is anonymous, so the best-first search reaches an anonymous node")
}

/// A lattice node in the best-first queue, ordered so that the
/// `BinaryHeap` (a max-heap) pops the smallest (loss, level sum, levels).
struct Cand {
    loss: f64,
    height: u32,
    node: Box<[u8]>,
}

impl PartialEq for Cand {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Cand {}
impl PartialOrd for Cand {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Cand {
    fn cmp(&self, o: &Self) -> Ordering {
        o.loss
            .total_cmp(&self.loss)
            .then(o.height.cmp(&self.height))
            .then_with(|| o.node.cmp(&self.node))
    }
}

fn leq(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).all(|(x, y)| x <= y)
}

fn to_usize(node: &[u8]) -> Vec<usize> {
    node.iter().map(|&l| l as usize).collect()
}

/// Cached class lists: at most this many classes in total ...
const CACHE_BUDGET: usize = 32_000_000;
/// ... and per node.
const CACHE_MAX_EACH: usize = 12_000_000;

struct Search<'a> {
    data: &'a Dataset,
    k: u64,
    limit: u64,
    /// Antichain of known anonymous nodes (everything above is anonymous).
    anon_min: Vec<Box<[u8]>>,
    /// Antichain of known non-anonymous nodes (everything below is not).
    nonanon_max: Vec<Box<[u8]>>,
    /// (node, its classes), least recently used first.
    cache: Vec<(Box<[u8]>, ClassList)>,
    cache_entries: usize,
    checked: usize,
}

impl Search<'_> {
    fn candidate(&self, node: Box<[u8]>) -> Cand {
        Cand {
            loss: self.data.loss_unchecked(&to_usize(&node)),
            height: node.iter().map(|&l| l as u32).sum(),
            node,
        }
    }

    fn known(&self, node: &[u8]) -> Option<bool> {
        if self.anon_min.iter().any(|a| leq(a, node)) {
            Some(true)
        } else if self.nonanon_max.iter().any(|m| leq(node, m)) {
            Some(false)
        } else {
            None
        }
    }

    /// Class sizes of `node`, rolled up from the smallest cached node below it.
    fn classes(&mut self, node: &[u8]) -> ClassList {
        let src = self
            .cache
            .iter()
            .enumerate()
            .filter(|(_, (n, _))| leq(n, node))
            .min_by_key(|(_, (_, l))| l.len())
            .map(|(i, _)| i);
        match src {
            Some(i) => {
                // Move to the back: most recently used.
                let e = self.cache.remove(i);
                let out = self
                    .data
                    .classes(&to_usize(node), Some((&to_usize(&e.0), &e.1)));
                self.cache.push(e);
                out
            }
            None => self.data.classes(&to_usize(node), None),
        }
    }

    fn is_anonymous(&mut self, node: &[u8]) -> bool {
        if let Some(a) = self.known(node) {
            return a;
        }
        let list = self.classes(node);
        self.checked += 1;
        let below: u64 = list.weights().iter().filter(|&&w| w < self.k).sum();
        let anon = below <= self.limit;
        if anon {
            self.anon_min.retain(|a| !leq(node, a));
            self.anon_min.push(node.into());
        } else {
            self.nonanon_max.retain(|m| !leq(m, node));
            self.nonanon_max.push(node.into());
        }
        if list.len() <= CACHE_MAX_EACH && list.len() < self.data.num_distinct() {
            self.cache_entries += list.len();
            self.cache.push((node.into(), list));
            while self.cache_entries > CACHE_BUDGET && self.cache.len() > 1 {
                let removed = self.cache.remove(0);
                self.cache_entries -= removed.1.len();
            }
        }
        anon
    }

    /// Whether `node` is anonymous. If it is not (and was not known), climb
    /// from it to a maximal non-anonymous node: round-robin over the columns,
    /// raise a column by one level whenever the raised node is still not
    /// anonymous, until no column can be raised. Every node below that
    /// maximal node is then known non-anonymous. The climb's checks are rolled
    /// up from the classes of the nodes just checked, so they are cheap.
    ///
    /// Shortcut: checks near the bottom are the expensive ones, so we first
    /// guess a higher node that is very likely not anonymous (raised
    /// round-robin while the product of its level sizes stays >= N, i.e. at
    /// most one record per possible class on average) and check it instead;
    /// if it is indeed not anonymous, neither is `node` and the climb starts
    /// there. A wrong guess costs one check and we fall back to `node`.
    fn probe(&mut self, node: &[u8], top: &[u8]) -> bool {
        if let Some(a) = self.known(node) {
            return a;
        }
        let guess = self.guess(node, top);
        let start: Box<[u8]> = if guess.as_ref() != node && !self.is_anonymous(&guess) {
            guess
        } else if self.is_anonymous(node) {
            return true;
        } else {
            node.into()
        };
        let mut cur = start;
        loop {
            let mut raised = false;
            for c in 0..cur.len() {
                if cur[c] < top[c] {
                    cur[c] += 1;
                    if self.is_anonymous(&cur) {
                        cur[c] -= 1;
                    } else {
                        raised = true;
                    }
                }
            }
            if !raised {
                return false;
            }
        }
    }

    /// Highest node reached from `node` by round-robin single raises while
    /// the product of level sizes stays >= N and the node is not known to be
    /// anonymous.
    fn guess(&self, node: &[u8], top: &[u8]) -> Box<[u8]> {
        let n = self.data.num_rows() as u128;
        let product = |x: &[u8]| -> u128 {
            x.iter().enumerate().fold(1u128, |a, (c, &l)| {
                a.saturating_mul(self.data.hierarchy(c).level_size(l as usize) as u128)
            })
        };
        let mut cur: Box<[u8]> = node.into();
        loop {
            let mut raised = false;
            for c in 0..cur.len() {
                if cur[c] < top[c] {
                    cur[c] += 1;
                    if product(&cur) >= n && self.known(&cur) != Some(true) {
                        raised = true;
                    } else {
                        cur[c] -= 1;
                    }
                }
            }
            if !raised {
                return cur;
            }
        }
    }

    fn optimum(&mut self, node: &[u8]) -> Optimum {
        let levels = to_usize(node);
        let list = self.classes(node);
        let measures = measures_from_sizes(list.weights(), self.data.num_rows(), self.k, true);
        Optimum {
            info_loss: self.data.loss_unchecked(&levels),
            suppressed: measures.records_below_k,
            levels,
            measures,
            nodes_checked: self.checked,
            lattice_size: self.data.lattice_size(),
        }
    }
}
