//! Secondary cell suppression for published aggregate tables.
//!
//! Cells with few contributing people are suppressed by the caller (primary suppression).
//! Published tables also satisfy linear identities, for example
//! `active_end = active_start + new + reactivated - churned` in each row, an `ALL` row that
//! equals the sum of the country rows, or `net = gross - refunds - chargebacks`. An
//! attacker who knows the published values and the identities must not be able to compute
//! any suppressed value exactly. This module chooses extra cells to suppress (secondary
//! suppression) so that no suppressed cell is determined, losing little information, and
//! always making the same choice for the same problem.
//!
//! * [`determined`] is the exact audit: the suppressed cells whose value follows from the
//!   published cells and the identities. A suppressed cell `j` is determined iff every
//!   vector of the null space of the identity matrix restricted to the suppressed columns is
//!   zero at `j`. The test runs per connected component of suppressed cells, by sparse
//!   Gauss-Jordan elimination in the prime field GF(2^61 - 1).
//! * [`protect`] is a greedy: a cheap local pass (an identity with exactly one suppressed
//!   cell reveals it, so the identity's cheapest published cell is suppressed too, to a
//!   fixpoint), then the exact audit. For the lowest determined cell `x` it suppresses the
//!   cheapest published cell whose suppression alone makes `x` undetermined (found exactly
//!   from the same elimination, tracking which combination of identities computes `x`);
//!   if no single cell does, the cheapest published cell that this combination uses. Then
//!   both passes repeat until the audit is clean. Ties in cost go to the lower cell index.
//!   Only components of suppressed cells that changed are eliminated again.
//!
//!   Why not simply "the cheapest published cell sharing an identity with `x`": with a
//!   grand total `T = sum of row totals` and column totals `C_j`, a suppressed `T` is
//!   still `sum C_j`; no cell sharing an identity with `T` (the row totals) helps, and that
//!   rule would suppress row totals one by one (on a random 1000 x 2 table with 10%
//!   primary cells: ~1,850 secondary cells instead of ~230, seconds instead of
//!   milliseconds).
//!
//! * [`pinned`] is the bounds audit, for problems that carry their values: with each
//!   cell's known least value (counts `>= 0`; the count of people a row that exists is
//!   made of `>= 1`) and the sets of cells that count someone (`sum >= 1`), interval
//!   propagation through the identities finds the suppressed cells confined to one value
//!   (`x + y = 0` with both suppressed: each is 0; `x + y = 2` with both `>= 1`: each is
//!   1), which [`determined`] does not see. [`protect`] withholds one more cell for each
//!   (preferably one on the other side of an identity that pins it) and runs both audits
//!   again, until neither finds anything.
//!
//! Limits: this prevents exact recovery, and single values that propagation finds (it is
//! sound, not complete). Published values plus the least values can still confine a
//! suppressed value to a narrow interval: if `x + y = 3` can be derived and both are
//! suppressed, each is known to lie in `0..=3` (`1..=2` if both are `>= 1`). Cells whose
//! value the identities fix on their own (say a cell that the identities force to equal 0)
//! cannot be protected by suppression; [`protect`] reports those in
//! [`Outcome::unresolved`] instead of suppressing half the table in vain. The arithmetic is
//! exact in GF(p); it agrees with rational arithmetic unless p = 2^61 - 1 divides one of
//! the matrix's nonzero minors, which small-coefficient table identities do not produce in
//! practice (their minors are tiny).

use std::collections::{BTreeMap, HashMap, VecDeque};

/// One linear identity over cells: sum of coef * value == 0.
pub type Constraint = Vec<(usize, i64)>;

/// A table to protect: its cells, what each costs to suppress, the caller's primary
/// suppressions and the linear identities the published values satisfy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problem {
    /// Number of cells; cells are 0..n.
    pub cells: usize,
    /// Cost of suppressing each cell (information lost), e.g. its count of people.
    pub cost: Vec<u64>,
    /// Cells the caller already suppressed (primary).
    pub primary: Vec<bool>,
    /// Identities over the cells; a cell may appear in any number of them. Duplicate
    /// entries for one cell are summed and zero coefficients are ignored.
    pub constraints: Vec<Constraint>,
    /// Each cell's true value, for the bounds audit ([`pinned`]); empty: no bounds audit.
    pub values: Vec<i128>,
    /// The least value an attacker knows each cell to have (`Some(0)`: a count or a sum
    /// of amounts; `Some(1)`: a count of the people a row that exists is made of; `None`:
    /// unbounded, e.g. net); with `values`. Missing entries are unbounded.
    pub lower: Vec<Option<i128>>,
    /// Per constraint (missing: false): the identity is exact only when each person
    /// falls in one cell, the truth being `sum <= 0` (a customer paying in two cells of
    /// a month counts once on the `+` side, twice on the `-` side), and these values do
    /// not satisfy it exactly. [`determined`] takes it as exact, which only finds more;
    /// the bounds audit ([`pinned`]) takes it as `sum <= 0`, since propagating an
    /// equality that is false can hide a pin as well as invent one. (Where the values
    /// do satisfy it, pass false: an attacker who knows the business may assume it.)
    pub at_most: Vec<bool>,
    /// Sets of cells of which at least one counts someone (`sum >= 1`): a row that
    /// exists because someone is in it, whose people are spread over several counts
    /// (subscriptions_monthly's active_start and active_end). Only the bounds audit uses
    /// them; cells known to be 0 may be left out.
    pub at_least_one: Vec<Vec<usize>>,
}

/// The suppression pattern chosen by [`protect`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Every suppressed cell: primary or secondary.
    pub suppressed: Vec<bool>,
    /// Cells suppressed to protect others (not primary).
    pub secondary: usize,
    /// Suppressed cells that remain determined (ascending). Empty unless the identities
    /// alone fix a primary cell's value (e.g. an identity that says the cell is 0): no
    /// suppression pattern can hide such a cell, so none is attempted. A caller that must
    /// fail closed should treat a non-empty list as an error.
    pub unresolved: Vec<usize>,
    /// Suppressed cells the bounds audit ([`pinned`]) still confines to one value
    /// (ascending): none was left to withhold near them, in their identities or next to
    /// the withheld cells linked to them. Empty on every problem seen so far; a caller
    /// that must fail closed should treat a non-empty list as an error.
    pub pinned: Vec<usize>,
}

/// Chooses secondary suppressions. Deterministic: same problem -> same outcome.
///
/// Afterwards `determined(p.cells, &p.constraints, &out.suppressed) == out.unresolved`,
/// which is empty unless the identities alone fix a primary cell. Every primary cell is
/// suppressed. The choice is greedy (low total cost, not minimal).
///
/// # Panics
///
/// If `cost` or `primary` does not have `cells` entries, or a constraint names a cell
/// `>= cells`.
pub fn protect(p: &Problem) -> Outcome {
    let n = p.cells;
    assert_eq!(p.cost.len(), n, "cost must have one entry per cell");
    assert_eq!(p.primary.len(), n, "primary must have one entry per cell");
    let sys = System::new(n, &p.constraints);

    // Cells that the identities determine even when every cell is suppressed. Suppressing
    // them hides nothing, and nothing can hide them, so they are never chosen as secondary
    // cells and never targeted.
    let inherent = {
        let mut mask = vec![false; n];
        for c in sys.determined(&vec![true; n]) {
            mask[c as usize] = true;
        }
        mask
    };

    let mut local = Local::new(&sys, &p.cost, &inherent, p.primary.clone());
    // Determined cells of each component, keyed by the component's (sorted) cells. The
    // suppressed set only grows, so a component whose cell set is unchanged has the same
    // answer; only components touched by a new suppression are eliminated again.
    let mut memo: HashMap<Vec<u32>, Vec<u32>> = HashMap::new();
    let mut stuck = vec![false; n];
    let mut pin_stuck = vec![false; n];
    // What the bounds audit still pins once protection has done what it can.
    let mut stuck_pins = Vec::new();
    let mut by_cell: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, c) in p.constraints.iter().enumerate() {
        for &(cell, _) in c {
            if by_cell[cell].last() != Some(&k) {
                by_cell[cell].push(k);
            }
        }
    }
    let mut scratch = vec![0u32; n];
    loop {
        local.run();
        let comps = sys.components(&local.suppressed);
        let mut next_memo = HashMap::with_capacity(comps.list.len());
        let mut target: Option<u32> = None;
        for comp in &comps.list {
            let det = match memo.remove(&comp.cells) {
                Some(det) => det,
                None => sys.component_determined(comp, &local.suppressed, &mut scratch),
            };
            for &c in &det {
                if !inherent[c as usize] && !stuck[c as usize] && target.is_none_or(|t| c < t) {
                    target = Some(c);
                }
            }
            next_memo.insert(comp.cells.clone(), det);
        }
        memo = next_memo;
        let Some(x) = target else {
            // No withheld cell follows exactly; but the bounds can still pin one (a
            // published total of 0 over withheld counts makes each of them 0). Withhold
            // the cheapest published cell sharing an identity with the lowest pinned
            // cell, then audit both ways again; a pinned cell with nothing published
            // near it is left, and reported in `Outcome::pinned` if still pinned at
            // the end.
            if p.values.is_empty() {
                break;
            }
            let pins = pinned(p, &local.suppressed);
            let Some(y) = pins.iter().copied().find(|&c| !pin_stuck[c]) else {
                // Only cells nothing could help are pinned: they are the answer.
                stuck_pins = pins;
                break;
            };
            // Best a cell whose coefficient has the other sign than y's in a shared
            // identity (an `ALL` total beside the countries that sum to it): withheld, it
            // leaves the sum room to move; one of the same sign would be pinned too.
            let opposite = by_cell[y].iter().flat_map(|&k| {
                let c = &p.constraints[k];
                let sign = c
                    .iter()
                    .filter(|e| e.0 == y)
                    .map(|e| e.1)
                    .sum::<i64>()
                    .signum();
                c.iter()
                    .filter(move |e| e.1.signum() == -sign)
                    .map(|e| e.0 as u32)
            });
            // Every identity of y withheld: the pin comes from further away, through
            // the withheld cells linked to y (its component); one published next to them.
            let component = || {
                let i = *comps.of.get(y)?;
                let comp = comps.list.get(i as usize)?;
                local.cheapest_neighbor(comp.cells.iter().copied())
            };
            match local
                .cheapest(opposite)
                .or_else(|| local.cheapest_neighbor(std::iter::once(y as u32)))
                .or_else(component)
            {
                Some(c) => local.suppress(c),
                None => pin_stuck[y] = true,
            }
            continue;
        };
        let comp = &comps.list[comps.of[x as usize] as usize];
        // Suppress the cheapest published cell that, alone, makes x undetermined; if x
        // needs two or more new cells, the cheapest cell the current attack on x uses
        // (which voids that attack). A cell outside the attack would leave it intact. The
        // attack uses a protectable cell unless x is fixed by the identities alone, which
        // `inherent` excludes; the last fallback is defensive.
        let repair = sys.repair(comp, x, &local.suppressed, &mut scratch);
        let pick = local
            .cheapest(repair.fixers.into_iter())
            .or_else(|| local.cheapest(repair.attack.into_iter()))
            .or_else(|| local.cheapest_neighbor(comp.cells.iter().copied()));
        match pick {
            Some(c) => local.suppress(c),
            // No published cell is linked to the component: it is closed under the
            // identities and can never change, so its determined cells stay so.
            None => {
                for &c in &memo[&comp.cells] {
                    stuck[c as usize] = true;
                }
            }
        }
    }

    let mut unresolved: Vec<usize> = memo.values().flatten().map(|&c| c as usize).collect();
    unresolved.sort_unstable();
    let suppressed = local.suppressed;
    let secondary = suppressed
        .iter()
        .zip(&p.primary)
        .filter(|&(&s, &prim)| s && !prim)
        .count();
    Outcome {
        suppressed,
        secondary,
        unresolved,
        pinned: stuck_pins,
    }
}

/// The suppressed cells whose value is uniquely determined by the published cells and the
/// constraints (empty for a safe pattern). Exact. Ascending.
///
/// # Panics
///
/// If `suppressed` does not have `cells` entries or a constraint names a cell `>= cells`.
pub fn determined(cells: usize, constraints: &[Constraint], suppressed: &[bool]) -> Vec<usize> {
    assert_eq!(
        suppressed.len(),
        cells,
        "suppressed must have one entry per cell"
    );
    System::new(cells, constraints)
        .determined(suppressed)
        .into_iter()
        .map(|c| c as usize)
        .collect()
}

/// The suppressed cells whose value the published cells, the identities and the signs
/// (each cell's known least value, `p.lower`: counts are `>= 0`, the count of people a
/// row that exists is made of `>= 1`, and `p.at_least_one`, `p.at_most`) confine to a
/// single value, by interval propagation: each identity bounds each of its suppressed
/// cells by the others' bounds, round after round until nothing tightens (at most
/// [`PIN_ROUNDS`] rounds). Sound (a cell it returns is pinned) but not complete: an LP
/// could find more. `p.values` is read only for the published cells; `p.cost` and
/// `p.primary` not at all. Ascending.
///
/// This is what [`determined`] cannot see: `x + y = 0` with `x, y >= 0` pins both to 0
/// although neither is determined by the identities alone; found by the fourth audit
/// (2026-12-04) on generated exports at k = 10, where an `ALL` row's published
/// `reactivated` of 0 gave every country's withheld `reactivated` back, and the rows'
/// identities then their `new` or `churned`.
pub fn pinned(p: &Problem, suppressed: &[bool]) -> Vec<usize> {
    let n = suppressed.len();
    let values = &p.values;
    // Bounds: `None` is unbounded. An identity that is `sum <= 0` gets a slack cell of
    // its own, unknown and `>= 0`: `sum + slack = 0`; a set that sums to `>= 1` one too:
    // `sum - slack - 1 = 0`. The slack cells come after the n cells.
    let mut lo: Vec<Option<i128>> = (0..n).map(|c| p.lower.get(c).copied().flatten()).collect();
    // Per identity: the published part's sum (with the constant), and its suppressed
    // cells' coefficients.
    let mut row = |terms: &mut dyn Iterator<Item = (usize, i64)>, constant: i128, slack: i128| {
        let mut known = constant;
        let mut vars: BTreeMap<usize, i128> = BTreeMap::new();
        for (cell, a) in terms {
            if suppressed[cell] {
                *vars.entry(cell).or_default() += i128::from(a);
            } else {
                known = known.saturating_add(i128::from(a).saturating_mul(values[cell]));
            }
        }
        vars.retain(|_, a| *a != 0);
        if slack != 0 {
            vars.insert(lo.len(), slack);
            lo.push(Some(0));
        }
        (!vars.is_empty()).then(|| (known, vars.into_iter().collect()))
    };
    let mut rows: Vec<(i128, Vec<(usize, i128)>)> = Vec::new();
    for (k, c) in p.constraints.iter().enumerate() {
        let slack = i128::from(p.at_most.get(k).copied().unwrap_or(false));
        rows.extend(row(&mut c.iter().copied(), 0, slack));
    }
    for set in &p.at_least_one {
        rows.extend(row(&mut set.iter().map(|&c| (c, 1)), -1, -1));
    }
    let mut hi: Vec<Option<i128>> = vec![None; lo.len()];
    // The least and greatest of `a * x` over x's bounds.
    let term = |a: i128, l: Option<i128>, h: Option<i128>| {
        let (tl, th) = if a > 0 { (l, h) } else { (h, l) };
        (
            tl.map(|v| a.saturating_mul(v)),
            th.map(|v| a.saturating_mul(v)),
        )
    };
    for _ in 0..PIN_ROUNDS {
        let mut changed = false;
        for (known, vars) in &rows {
            // Sums of the terms' least and greatest values: the finite part, and how
            // many are unbounded.
            let (mut min_sum, mut min_inf, mut max_sum, mut max_inf) = (0i128, 0, 0i128, 0);
            let terms: Vec<(Option<i128>, Option<i128>)> =
                vars.iter().map(|&(x, a)| term(a, lo[x], hi[x])).collect();
            for &(tl, th) in &terms {
                match tl {
                    Some(v) => min_sum = min_sum.saturating_add(v),
                    None => min_inf += 1,
                }
                match th {
                    Some(v) => max_sum = max_sum.saturating_add(v),
                    None => max_inf += 1,
                }
            }
            for (&(x, a), &(tl, th)) in vars.iter().zip(&terms) {
                // The others' sum, S, lies in [others_min, others_max]; a x = -known - S.
                let others_min = match tl {
                    Some(v) if min_inf == 0 => Some(min_sum.saturating_sub(v)),
                    None if min_inf == 1 => Some(min_sum),
                    _ => None,
                };
                let others_max = match th {
                    Some(v) if max_inf == 0 => Some(max_sum.saturating_sub(v)),
                    None if max_inf == 1 => Some(max_sum),
                    _ => None,
                };
                let (rl, rh) = (
                    others_max.map(|v| (-known).saturating_sub(v)),
                    others_min.map(|v| (-known).saturating_sub(v)),
                );
                let (nl, nh) = if a > 0 {
                    (rl.map(|v| ceil_div(v, a)), rh.map(|v| floor_div(v, a)))
                } else {
                    (rh.map(|v| ceil_div(v, a)), rl.map(|v| floor_div(v, a)))
                };
                if let Some(v) = nl
                    && lo[x].is_none_or(|l| v > l)
                {
                    lo[x] = Some(v);
                    changed = true;
                }
                if let Some(v) = nh
                    && hi[x].is_none_or(|h| v < h)
                {
                    hi[x] = Some(v);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    (0..n)
        .filter(|&c| suppressed[c] && lo[c].is_some() && lo[c] == hi[c])
        .collect()
}

/// Rounds of [`pinned`]'s propagation: bounds that still move after this many are far
/// from a single value.
pub const PIN_ROUNDS: usize = 200;

/// `a / b` rounded down, saturating: bounds are summed with saturation, and where the
/// identities taken as exact are not (the values contradict them) they can run away, so
/// `i128::MIN / -1` must not panic. `b != 0`.
fn floor_div(a: i128, b: i128) -> i128 {
    let Some(q) = a.checked_div(b) else {
        return i128::MAX;
    };
    if (a % b != 0) && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    }
}

/// `a / b` rounded up, saturating (see [`floor_div`]). `b != 0`.
fn ceil_div(a: i128, b: i128) -> i128 {
    let Some(q) = a.checked_div(b) else {
        return i128::MAX;
    };
    if (a % b != 0) && ((a < 0) == (b < 0)) {
        q + 1
    } else {
        q
    }
}

// ---------------------------------------------------------------------------------------
// Arithmetic in GF(p), p = 2^61 - 1.

const P: u64 = (1 << 61) - 1;

fn reduce(x: u128) -> u64 {
    // 2^61 == 1 (mod p), so x == (x mod 2^61) + (x div 2^61).
    let s = (x as u64 & P) + (x >> 61) as u64;
    let s = (s & P) + (s >> 61);
    if s >= P { s - P } else { s }
}

fn mul(a: u64, b: u64) -> u64 {
    reduce(a as u128 * b as u128)
}

fn add(a: u64, b: u64) -> u64 {
    let s = a + b;
    if s >= P { s - P } else { s }
}

fn sub(a: u64, b: u64) -> u64 {
    if a >= b { a - b } else { a + P - b }
}

fn inverse(a: u64) -> u64 {
    debug_assert!(a != 0);
    // Fermat: a^(p-2).
    let (mut base, mut exp, mut acc) = (a, P - 2, 1u64);
    while exp > 0 {
        if exp & 1 == 1 {
            acc = mul(acc, base);
        }
        base = mul(base, base);
        exp >>= 1;
    }
    acc
}

// ---------------------------------------------------------------------------------------
// The identities, normalized: per constraint, distinct cells ascending with nonzero
// coefficients in GF(p).

const NONE: u32 = u32::MAX;

struct System {
    rows: Vec<Vec<(u32, u64)>>,
    cell_rows: Vec<Vec<u32>>,
}

#[derive(Default)]
struct Component {
    /// Suppressed cells, ascending.
    cells: Vec<u32>,
    /// Constraints touching them, ascending.
    rows: Vec<u32>,
}

/// See [`System::repair`].
#[derive(Default)]
struct Repair {
    /// Published cells whose suppression alone makes the target undetermined (those whose
    /// constraints all touch the target's component; ascending).
    fixers: Vec<u32>,
    /// Published cells an attacker combines to compute the target (one such combination).
    attack: Vec<u32>,
}

struct Components {
    list: Vec<Component>,
    /// Per cell: index into `list`, or `NONE` for published cells.
    of: Vec<u32>,
}

impl System {
    fn new(cells: usize, constraints: &[Constraint]) -> System {
        assert!(cells < NONE as usize, "too many cells");
        let mut rows = Vec::with_capacity(constraints.len());
        let mut cell_rows = vec![Vec::new(); cells];
        let mut terms: Vec<(usize, i128)> = Vec::new();
        for (k, con) in constraints.iter().enumerate() {
            terms.clear();
            terms.extend(con.iter().map(|&(c, v)| {
                assert!(c < cells, "constraint {k} names cell {c} of {cells}");
                (c, i128::from(v))
            }));
            terms.sort_unstable_by_key(|t| t.0);
            let mut row: Vec<(u32, u64)> = Vec::with_capacity(terms.len());
            let mut i = 0;
            while i < terms.len() {
                let c = terms[i].0;
                let mut sum = 0i128;
                while i < terms.len() && terms[i].0 == c {
                    sum += terms[i].1;
                    i += 1;
                }
                let v = sum.rem_euclid(i128::from(P)) as u64;
                if v != 0 {
                    row.push((c as u32, v));
                    cell_rows[c].push(k as u32);
                }
            }
            rows.push(row);
        }
        System { rows, cell_rows }
    }

    /// Connected components of suppressed cells, linked through shared constraints, in
    /// order of their lowest cell.
    fn components(&self, suppressed: &[bool]) -> Components {
        fn find(parent: &mut [u32], mut x: u32) -> u32 {
            while parent[x as usize] != x {
                let up = parent[parent[x as usize] as usize];
                parent[x as usize] = up;
                x = up;
            }
            x
        }
        let n = suppressed.len();
        let mut parent: Vec<u32> = (0..n as u32).collect();
        for row in &self.rows {
            let mut first = None;
            for &(c, _) in row {
                if !suppressed[c as usize] {
                    continue;
                }
                match first {
                    None => first = Some(c),
                    Some(f) => {
                        let (a, b) = (find(&mut parent, f), find(&mut parent, c));
                        if a != b {
                            parent[a.max(b) as usize] = a.min(b);
                        }
                    }
                }
            }
        }
        let mut of = vec![NONE; n];
        let mut root_comp = vec![NONE; n];
        let mut list: Vec<Component> = Vec::new();
        for c in 0..n {
            if !suppressed[c] {
                continue;
            }
            let r = find(&mut parent, c as u32) as usize;
            if root_comp[r] == NONE {
                root_comp[r] = list.len() as u32;
                list.push(Component::default());
            }
            of[c] = root_comp[r];
            list[root_comp[r] as usize].cells.push(c as u32);
        }
        for (k, row) in self.rows.iter().enumerate() {
            if let Some(&(c, _)) = row.iter().find(|e| suppressed[e.0 as usize]) {
                list[of[c as usize] as usize].rows.push(k as u32);
            }
        }
        Components { list, of }
    }

    /// Determined cells of one component (ascending). `scratch` has one slot per cell.
    fn component_determined(
        &self,
        comp: &Component,
        suppressed: &[bool],
        scratch: &mut [u32],
    ) -> Vec<u32> {
        if comp.rows.is_empty() {
            return Vec::new();
        }
        for (i, &c) in comp.cells.iter().enumerate() {
            scratch[c as usize] = i as u32;
        }
        // Local column indices increase with the cell index, so rows stay sorted.
        let rows = comp
            .rows
            .iter()
            .map(|&k| {
                self.rows[k as usize]
                    .iter()
                    .filter(|e| suppressed[e.0 as usize])
                    .map(|&(c, v)| (scratch[c as usize], v))
                    .collect()
            })
            .collect();
        let ncols = comp.cells.len();
        eliminate(ncols, ncols as u32, rows)
            .determined(ncols as u32)
            .into_iter()
            .map(|l| comp.cells[l as usize])
            .collect()
    }

    /// Ways to stop the computation of determined cell `x` of `comp` (empty if `x` is not
    /// determined).
    fn repair(&self, comp: &Component, x: u32, suppressed: &[bool], scratch: &mut [u32]) -> Repair {
        for (i, &c) in comp.cells.iter().enumerate() {
            scratch[c as usize] = i as u32;
        }
        let ncols = comp.cells.len() as u32;
        // Each row carries a tag column ncols + i, so every reduced row says which
        // combination of the component's constraints it is.
        let rows = comp
            .rows
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let mut row: Vec<(u32, u64)> = self.rows[k as usize]
                    .iter()
                    .filter(|e| suppressed[e.0 as usize])
                    .map(|&(c, v)| (scratch[c as usize], v))
                    .collect();
                row.push((ncols + i as u32, 1));
                row
            })
            .collect();
        let reduced = eliminate(ncols as usize + comp.rows.len(), ncols, rows);
        let local_x = scratch[x as usize];
        let Some(x_row) = reduced.pivot_col.iter().position(|&c| c == local_x) else {
            return Repair::default();
        };
        if real_len(&reduced.rows[x_row], ncols) != 1 {
            return Repair::default();
        }

        // The attack: w = the combination that reduced to x's row. Its published support.
        let mut combined: BTreeMap<u32, u64> = BTreeMap::new();
        for &(tag, w) in &reduced.rows[x_row][1..] {
            let k = comp.rows[(tag - ncols) as usize];
            for &(c, v) in &self.rows[k as usize] {
                let e = combined.entry(c).or_insert(0);
                *e = add(*e, mul(w, v));
            }
        }
        debug_assert!(
            combined
                .iter()
                .all(|(&c, &v)| !suppressed[c as usize] || v == u64::from(c == x))
        );
        let attack = combined
            .into_iter()
            .filter(|&(c, v)| v != 0 && !suppressed[c as usize])
            .map(|(c, _)| c)
            .collect();

        // Fixers: published y whose suppression alone leaves x undetermined, among the y
        // whose constraints all belong to the component. (A y in a constraint with no
        // suppressed cell would be pinned by it; a y that would merge the component with
        // another is not considered.) Such a y is a fixer iff A v = -a_y has a solution
        // with v_x != 0, where A is the component's matrix and a_y is y's column over the
        // component's constraints: a_y is orthogonal to the left null space of A (spanned
        // by the combinations that reduced to zero rows) and w . a_y != 0.
        let mut watch: Vec<usize> = vec![x_row];
        watch.extend((0..reduced.rows.len()).filter(|&i| reduced.pivot_col[i] == NONE));
        let mut by_tag: Vec<Vec<(u32, u64)>> = vec![Vec::new(); comp.rows.len()];
        for (wi, &r) in watch.iter().enumerate() {
            let row = &reduced.rows[r];
            for &(tag, v) in &row[real_len(row, ncols)..] {
                by_tag[(tag - ncols) as usize].push((wi as u32, v));
            }
        }
        let mut candidates: Vec<u32> = comp
            .cells
            .iter()
            .flat_map(|&c| self.cell_rows[c as usize].iter())
            .flat_map(|&k| self.rows[k as usize].iter().map(|e| e.0))
            .filter(|&c| !suppressed[c as usize])
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        let mut acc = vec![0u64; watch.len()];
        let mut touched: Vec<u32> = Vec::new();
        let mut fixers = Vec::new();
        for y in candidates {
            let mut outside = false;
            for &k in &self.cell_rows[y as usize] {
                let Ok(i) = comp.rows.binary_search(&k) else {
                    outside = true;
                    break;
                };
                let row = &self.rows[k as usize];
                let a = row[row.binary_search_by_key(&y, |e| e.0).expect("y in row")].1;
                for &(wi, v) in &by_tag[i] {
                    acc[wi as usize] = add(acc[wi as usize], mul(v, a));
                    touched.push(wi);
                }
            }
            if !outside && acc[0] != 0 && touched.iter().all(|&wi| wi == 0 || acc[wi as usize] == 0)
            {
                fixers.push(y);
            }
            for wi in touched.drain(..) {
                acc[wi as usize] = 0;
            }
        }
        Repair { fixers, attack }
    }

    fn determined(&self, suppressed: &[bool]) -> Vec<u32> {
        let comps = self.components(suppressed);
        let mut scratch = vec![0u32; suppressed.len()];
        let mut out: Vec<u32> = comps
            .list
            .iter()
            .flat_map(|comp| self.component_determined(comp, suppressed, &mut scratch))
            .collect();
        out.sort_unstable();
        out
    }
}

/// The result of [`eliminate`]: the reduced rows and, per row, its pivot column (`NONE`
/// for rows that turned out dependent).
struct Reduced {
    rows: Vec<Vec<(u32, u64)>>,
    pivot_col: Vec<u32>,
}

impl Reduced {
    /// The determined columns, ascending: pivot columns whose reduced row has no entry in
    /// another (necessarily free) matrix column.
    fn determined(&self, real: u32) -> Vec<u32> {
        let mut out: Vec<u32> = (0..self.rows.len())
            .filter(|&i| self.pivot_col[i] != NONE && real_len(&self.rows[i], real) == 1)
            .map(|i| self.pivot_col[i])
            .collect();
        out.sort_unstable();
        out
    }
}

/// Entries of a sorted row in columns `< real`.
fn real_len(row: &[(u32, u64)], real: u32) -> usize {
    row.partition_point(|e| e.0 < real)
}

/// Sparse Gauss-Jordan elimination over GF(p) of the rows (sparse, sorted by column) of a
/// matrix with `ncols` columns. Only columns `< real` are matrix columns and may become
/// pivots; columns from `real` on are carried along (they record which combination of the
/// original rows each reduced row is). Each pivot is scaled to 1 and cleared from every
/// other row, so a pivot row holds its pivot and free columns only.
///
/// Pivots are taken in a fill-reducing order (shortest remaining row, then the column in
/// it held by the fewest remaining rows). The set of determined columns does not depend on
/// the order: column `j` is determined iff the unit vector `e_j` lies in the row space.
fn eliminate(ncols: usize, real: u32, mut rows: Vec<Vec<(u32, u64)>>) -> Reduced {
    let m = rows.len();
    // Rows that hold (or once held) each column; stale entries are checked on use.
    let mut col_rows: Vec<Vec<u32>> = vec![Vec::new(); ncols];
    // Number of not yet pivoted rows holding each column (exact).
    let mut col_count = vec![0u32; ncols];
    for (i, row) in rows.iter().enumerate() {
        for &(c, _) in row {
            col_rows[c as usize].push(i as u32);
            col_count[c as usize] += 1;
        }
    }
    let mut pivoted = vec![false; m];
    let mut pivot_col = vec![NONE; m];
    let mut seen = vec![0u32; m];
    let mut epoch = 0u32;
    let mut buf: Vec<(u32, u64)> = Vec::new();
    loop {
        let mut best: Option<(usize, usize)> = None;
        for (i, row) in rows.iter().enumerate() {
            if pivoted[i] {
                continue;
            }
            let len = real_len(row, real);
            if len == 0 {
                continue;
            }
            if best.is_none_or(|(best_len, _)| len < best_len) {
                best = Some((len, i));
                if len == 1 {
                    break;
                }
            }
        }
        let Some((len, pr)) = best else { break };
        let mut piv = std::mem::take(&mut rows[pr]);
        pivoted[pr] = true;
        let (pc, pv) = *piv[..len]
            .iter()
            .min_by_key(|&&(c, _)| (col_count[c as usize], c))
            .expect("pivot row has a matrix column");
        for &(c, _) in &piv {
            col_count[c as usize] -= 1;
        }
        if pv != 1 {
            let inv = inverse(pv);
            for e in &mut piv {
                e.1 = mul(e.1, inv);
            }
        }
        pivot_col[pr] = pc;
        epoch += 1;
        let holders = std::mem::take(&mut col_rows[pc as usize]);
        for &ri in &holders {
            let ri = ri as usize;
            if ri == pr || seen[ri] == epoch {
                continue;
            }
            seen[ri] = epoch;
            let row = &rows[ri];
            let Ok(pos) = row.binary_search_by_key(&pc, |e| e.0) else {
                continue;
            };
            let f = row[pos].1;
            let active = !pivoted[ri];
            // buf = row - f * piv, merging the two sorted rows.
            buf.clear();
            let (mut a, mut b) = (0, 0);
            while a < row.len() || b < piv.len() {
                let ca = row.get(a).map_or(NONE, |e| e.0);
                let cb = piv.get(b).map_or(NONE, |e| e.0);
                if ca < cb {
                    buf.push(row[a]);
                    a += 1;
                } else if cb < ca {
                    // Fill-in.
                    buf.push((cb, sub(0, mul(f, piv[b].1))));
                    col_rows[cb as usize].push(ri as u32);
                    if active {
                        col_count[cb as usize] += 1;
                    }
                    b += 1;
                } else {
                    let v = sub(row[a].1, mul(f, piv[b].1));
                    if v != 0 {
                        buf.push((ca, v));
                    } else if active {
                        col_count[ca as usize] -= 1;
                    }
                    a += 1;
                    b += 1;
                }
            }
            std::mem::swap(&mut rows[ri], &mut buf);
        }
        rows[pr] = piv;
    }
    Reduced { rows, pivot_col }
}

// ---------------------------------------------------------------------------------------
// The local pass: a constraint with exactly one suppressed cell reveals it.

struct Local<'a> {
    sys: &'a System,
    cost: &'a [u64],
    inherent: &'a [bool],
    suppressed: Vec<bool>,
    /// Per constraint: how many of its cells are suppressed.
    count: Vec<u32>,
    queue: VecDeque<u32>,
}

impl<'a> Local<'a> {
    fn new(
        sys: &'a System,
        cost: &'a [u64],
        inherent: &'a [bool],
        suppressed: Vec<bool>,
    ) -> Local<'a> {
        let count: Vec<u32> = sys
            .rows
            .iter()
            .map(|row| row.iter().filter(|e| suppressed[e.0 as usize]).count() as u32)
            .collect();
        let queue = (0..count.len() as u32)
            .filter(|&k| count[k as usize] == 1)
            .collect();
        Local {
            sys,
            cost,
            inherent,
            suppressed,
            count,
            queue,
        }
    }

    fn suppress(&mut self, c: u32) {
        debug_assert!(!self.suppressed[c as usize]);
        self.suppressed[c as usize] = true;
        for &k in &self.sys.cell_rows[c as usize] {
            self.count[k as usize] += 1;
            if self.count[k as usize] == 1 {
                self.queue.push_back(k);
            }
        }
    }

    /// Runs to fixpoint: no constraint has exactly one suppressed cell (other than cells
    /// the identities determine by themselves).
    fn run(&mut self) {
        while let Some(k) = self.queue.pop_front() {
            if self.count[k as usize] != 1 {
                continue;
            }
            let row = &self.sys.rows[k as usize];
            let Some(&(s, _)) = row.iter().find(|e| self.suppressed[e.0 as usize]) else {
                continue;
            };
            if self.inherent[s as usize] {
                continue;
            }
            let pick = self.cheapest(row.iter().map(|e| e.0));
            if let Some(c) = pick {
                self.suppress(c);
            }
        }
    }

    /// The published, protectable cell with the smallest (cost, index) among `cells`.
    fn cheapest(&self, cells: impl Iterator<Item = u32>) -> Option<u32> {
        cells
            .filter(|&c| !self.suppressed[c as usize] && !self.inherent[c as usize])
            .min_by_key(|&c| (self.cost[c as usize], c))
    }

    /// The cheapest published cell sharing a constraint with any of `cells`.
    fn cheapest_neighbor(&self, cells: impl Iterator<Item = u32>) -> Option<u32> {
        let sys = self.sys;
        self.cheapest(cells.flat_map(|x| {
            sys.cell_rows[x as usize]
                .iter()
                .flat_map(|&k| sys.rows[k as usize].iter().map(|e| e.0))
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // ---- independent brute force: f64 rank with partial pivoting ----

    const TOL: f64 = 1e-9;

    fn rank_f64(mut m: Vec<Vec<f64>>, ncols: usize) -> usize {
        let mut rank = 0;
        for col in 0..ncols {
            if rank == m.len() {
                break;
            }
            let (best, val) = (rank..m.len())
                .map(|r| (r, m[r][col].abs()))
                .fold((rank, -1.0), |acc, x| if x.1 > acc.1 { x } else { acc });
            if val < TOL {
                continue;
            }
            m.swap(rank, best);
            let pivot = m[rank].clone();
            for (r, row) in m.iter_mut().enumerate() {
                let f = row[col] / pivot[col];
                if r != rank && f != 0.0 {
                    for (x, p) in row[col..].iter_mut().zip(&pivot[col..]) {
                        *x -= f * p;
                    }
                }
            }
            rank += 1;
        }
        rank
    }

    /// Suppressed cell j is determined iff dropping column j from the constraint matrix
    /// (restricted to suppressed columns) lowers its rank.
    fn brute_determined(
        cells: usize,
        constraints: &[Constraint],
        suppressed: &[bool],
    ) -> Vec<usize> {
        let cols: Vec<usize> = (0..cells).filter(|&c| suppressed[c]).collect();
        let pos = |c: usize| cols.iter().position(|&x| x == c);
        let a: Vec<Vec<f64>> = constraints
            .iter()
            .map(|k| {
                let mut row = vec![0.0; cols.len()];
                for &(c, v) in k {
                    if let Some(i) = pos(c) {
                        row[i] += v as f64;
                    }
                }
                row
            })
            .collect();
        let full = rank_f64(a.clone(), cols.len());
        (0..cols.len())
            .filter(|&j| {
                let without: Vec<Vec<f64>> = a
                    .iter()
                    .map(|row| {
                        let mut r = row.clone();
                        r.remove(j);
                        r
                    })
                    .collect();
                rank_f64(without, cols.len() - 1) + 1 == full
            })
            .map(|j| cols[j])
            .collect()
    }

    // ---- builders ----

    /// r x c table x_ij, then row totals R_i, column totals C_j, grand total T.
    fn table(r: usize, c: usize) -> (usize, Vec<Constraint>) {
        let x = |i: usize, j: usize| i * c + j;
        let row_t = |i: usize| r * c + i;
        let col_t = |j: usize| r * c + r + j;
        let total = r * c + r + c;
        let mut cons = Vec::new();
        for i in 0..r {
            let mut k: Constraint = (0..c).map(|j| (x(i, j), 1)).collect();
            k.push((row_t(i), -1));
            cons.push(k);
        }
        for j in 0..c {
            let mut k: Constraint = (0..r).map(|i| (x(i, j), 1)).collect();
            k.push((col_t(j), -1));
            cons.push(k);
        }
        let mut k: Constraint = (0..r).map(|i| (row_t(i), 1)).collect();
        k.push((total, -1));
        cons.push(k);
        (total + 1, cons)
    }

    fn check(p: &Problem, out: &Outcome) {
        for c in 0..p.cells {
            assert!(!p.primary[c] || out.suppressed[c], "primary {c} published");
        }
        let count = (0..p.cells)
            .filter(|&c| out.suppressed[c] && !p.primary[c])
            .count();
        assert_eq!(out.secondary, count);
        assert_eq!(
            determined(p.cells, &p.constraints, &out.suppressed),
            out.unresolved
        );
        assert_eq!(
            brute_determined(p.cells, &p.constraints, &out.suppressed),
            out.unresolved
        );
        if !p.values.is_empty() {
            assert_eq!(pinned(p, &out.suppressed), out.pinned);
        }
        // Unresolved cells are primary and fixed by the identities alone.
        let all = vec![true; p.cells];
        let inherent = brute_determined(p.cells, &p.constraints, &all);
        for &c in &out.unresolved {
            assert!(p.primary[c]);
            assert!(inherent.contains(&c), "cell {c} could have been protected");
        }
        assert_eq!(&protect(p), out, "not deterministic");
    }

    /// The fourth audit's case (2026-12-04), in small: countries X and Y, and ALL. Each
    /// row: start + new + react - churned - end = 0; ALL's react = X's + Y's. X's new (3)
    /// is small; react is 0 everywhere, so withholding it costs nothing.
    fn zero_total() -> Problem {
        // Cells: X row 0..5, Y row 5..10, ALL row 10..15 (start, new, react, churned, end).
        let row = |r: usize| -> Constraint {
            vec![(r, 1), (r + 1, 1), (r + 2, 1), (r + 3, -1), (r + 4, -1)]
        };
        let values: Vec<i128> = vec![
            20, 3, 0, 12, 11, // X
            30, 12, 0, 4, 38, // Y
            50, 15, 0, 16, 49, // ALL
        ];
        let mut constraints = vec![row(0), row(5), row(10)];
        for t in 0..5 {
            constraints.push(vec![(10 + t, 1), (t, -1), (5 + t, -1)]);
        }
        Problem {
            cells: 15,
            cost: values.iter().map(|&v| v as u64).collect(),
            primary: mask(15, &[1]),
            constraints,
            values,
            lower: vec![Some(0); 15],
            at_most: vec![],
            at_least_one: vec![],
        }
    }

    #[test]
    fn a_published_zero_total_pins_the_withheld_zeros_and_protection_sees_it() {
        let p = zero_total();
        // What the exact audit alone chose: it withholds the zeros (free), and the ALL
        // total of 0 gives them back, then X's row its new and churned.
        let exact = protect(&Problem {
            values: vec![],
            lower: vec![],
            ..p.clone()
        });
        assert!(determined(15, &p.constraints, &exact.suppressed).is_empty());
        let pins = pinned(&p, &exact.suppressed);
        assert!(
            pins.contains(&2) && pins.contains(&1),
            "{pins:?} {:?}",
            exact.suppressed
        );
        // With the values, protection withholds until nothing is pinned either.
        let out = protect(&p);
        check(&p, &out);
        assert!(pinned(&p, &out.suppressed).is_empty());
    }

    #[test]
    fn counts_of_rows_that_exist_are_at_least_one_and_protection_sees_it() {
        // Two rows that exist, each of one customer, withheld; their published total 2.
        // Known only to be >= 0 each could be 0, 1 or 2; a row that exists has someone
        // in it, so each is 1.
        let p = Problem {
            cells: 3,
            cost: vec![1, 1, 2],
            primary: mask(3, &[0, 1]),
            constraints: vec![vec![(0, 1), (1, 1), (2, -1)]],
            values: vec![1, 1, 2],
            lower: vec![Some(1), Some(1), Some(0)],
            at_most: vec![],
            at_least_one: vec![],
        };
        let withheld = mask(3, &[0, 1]);
        assert!(determined(3, &p.constraints, &withheld).is_empty());
        let zero = vec![Some(0); 3];
        assert!(
            pinned(
                &Problem {
                    lower: zero,
                    ..p.clone()
                },
                &withheld
            )
            .is_empty()
        );
        assert_eq!(pinned(&p, &withheld), vec![0, 1]);
        assert_eq!(brute_pinned(&p, &withheld, 4), vec![0, 1]);
        // Protection withholds the total too, and then nothing is pinned.
        let out = protect(&p);
        check(&p, &out);
        assert_eq!(out.suppressed, vec![true; 3]);
        assert!(pinned(&p, &out.suppressed).is_empty());
    }

    #[test]
    fn an_identity_that_is_only_at_most_does_not_hide_a_pin() {
        // x + y = T (T = 2 published, x and y >= 1: each is 1), and x + y <= z (z = 5
        // published: one customer in several cells). Taken as the equality x + y = 5 the
        // two contradict each other, propagation runs into empty intervals and x and y
        // look unpinned; taken as what it is, they are pinned.
        let p = Problem {
            cells: 4,
            constraints: vec![vec![(0, 1), (1, 1), (2, -1)], vec![(0, 1), (1, 1), (3, -1)]],
            values: vec![1, 1, 2, 5],
            lower: vec![Some(1), Some(1), Some(0), Some(0)],
            ..Problem::default()
        };
        let withheld = mask(4, &[0, 1]);
        let as_equal = pinned(&p, &withheld);
        assert!(as_equal.is_empty(), "{as_equal:?}");
        let at_most = Problem {
            at_most: vec![false, true],
            ..p
        };
        assert_eq!(pinned(&at_most, &withheld), vec![0, 1]);
    }

    #[test]
    fn a_row_that_exists_counts_someone_in_one_of_its_cells() {
        // Two countries' rows (start a, end b; start c, end d), both new this month:
        // their starts published 0. The ALL row's end, 2, is b + d. Each row exists, so
        // a + b >= 1 and c + d >= 1: b and d are each 1, though each alone is only
        // known to be >= 0.
        let p = Problem {
            cells: 5,
            constraints: vec![vec![(1, 1), (3, 1), (4, -1)]],
            values: vec![0, 1, 0, 1, 2],
            lower: vec![Some(0); 5],
            ..Problem::default()
        };
        let withheld = mask(5, &[1, 3]);
        assert!(pinned(&p, &withheld).is_empty());
        let p = Problem {
            at_least_one: vec![vec![0, 1], vec![2, 3]],
            ..p
        };
        assert_eq!(pinned(&p, &withheld), vec![1, 3]);
        assert_eq!(brute_pinned(&p, &withheld, 4), vec![1, 3]);
    }

    /// Every assignment of the suppressed cells in lower..=max (lower: the cell's known
    /// least value, else 0) that satisfies the identities (`sum <= 0` where `at_most`)
    /// and the `at_least_one` sets with the published values; the cells with one value
    /// across all of them.
    fn brute_pinned(p: &Problem, suppressed: &[bool], max: i128) -> Vec<usize> {
        let vars: Vec<usize> = (0..p.cells).filter(|&c| suppressed[c]).collect();
        let mut seen: Vec<Option<(i128, bool)>> = vec![None; p.cells];
        let mut x: Vec<i128> = p.values.clone();
        fn go(
            i: usize,
            vars: &[usize],
            x: &mut Vec<i128>,
            p: &Problem,
            max: i128,
            seen: &mut Vec<Option<(i128, bool)>>,
        ) {
            if i == vars.len() {
                let ok = p.constraints.iter().enumerate().all(|(k, c)| {
                    let sum = c
                        .iter()
                        .map(|&(cell, a)| i128::from(a) * x[cell])
                        .sum::<i128>();
                    if p.at_most.get(k).copied().unwrap_or(false) {
                        sum <= 0
                    } else {
                        sum == 0
                    }
                }) && p
                    .at_least_one
                    .iter()
                    .all(|set| set.iter().map(|&c| x[c]).sum::<i128>() >= 1);
                if ok {
                    for &v in vars {
                        seen[v] = Some(match seen[v] {
                            None => (x[v], true),
                            Some((first, same)) => (first, same && first == x[v]),
                        });
                    }
                }
                return;
            }
            let least = p.lower.get(vars[i]).copied().flatten().unwrap_or(0);
            for v in least..=max {
                x[vars[i]] = v;
                go(i + 1, vars, x, p, max, seen);
            }
        }
        go(0, &vars, &mut x, p, max, &mut seen);
        vars.into_iter()
            .filter(|&v| seen[v].is_some_and(|(_, same)| same))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100))]
        /// `pinned` is sound: every cell it returns has one value in every assignment
        /// within the cells' known least values (0, or 1 for a count of a row that
        /// exists; up to the largest value these problems can hold) that satisfies the
        /// identities with the published values.
        #[test]
        fn pinned_cells_have_one_value(
            values in prop::collection::vec(0i128..4, 6),
            withheld in prop::collection::vec(prop::bool::weighted(0.5), 6),
            positive in prop::collection::vec(prop::bool::weighted(0.3), 6),
            at_most in prop::collection::vec(prop::bool::weighted(0.3), 3),
            pairs in prop::collection::vec((0usize..6, 0usize..6), 0..3),
            shape in 0usize..3,
        ) {
            // Three shapes of identities over six cells; the totals set from their parts.
            let mut v = values;
            let constraints: Vec<Constraint> = match shape {
                0 => {
                    v[2] = v[0] + v[1];
                    v[5] = v[3] + v[4];
                    vec![vec![(0, 1), (1, 1), (2, -1)], vec![(3, 1), (4, 1), (5, -1)]]
                }
                1 => {
                    v[2] = v[0] + v[1];
                    v[4] = v[2] + v[3];
                    v[5] = v[4];
                    vec![
                        vec![(0, 1), (1, 1), (2, -1)],
                        vec![(2, 1), (3, 1), (4, -1)],
                        vec![(4, 1), (5, -1)],
                    ]
                }
                _ => {
                    v[3] = v[0] + v[1] + v[2];
                    v[4] = v[4].min(v[3]);
                    v[5] = v[3] - v[4];
                    vec![vec![(0, 1), (1, 1), (2, 1), (3, -1)], vec![(3, 1), (4, -1), (5, -1)]]
                }
            };
            let values = v;
            // A cell known to be >= 1 only where it is (the bound is a fact).
            let lower = values
                .iter()
                .zip(&positive)
                .map(|(&v, &pos)| Some(if pos && v >= 1 { 1 } else { 0 }))
                .collect();
            // Pairs that count someone, as facts: only those whose values do.
            let at_least_one = pairs
                .into_iter()
                .filter(|&(a, b)| values[a] + values[b] >= 1)
                .map(|(a, b)| vec![a, b])
                .collect();
            let p = Problem {
                cells: 6,
                cost: vec![1; 6],
                primary: vec![false; 6],
                constraints,
                values,
                lower,
                at_most,
                at_least_one,
            };
            let found = pinned(&p, &withheld);
            let brute = brute_pinned(&p, &withheld, 9);
            for c in &found {
                prop_assert!(brute.contains(c), "{c} pinned by propagation, not by enumeration");
            }
        }
    }

    fn mask(cells: usize, on: &[usize]) -> Vec<bool> {
        let mut m = vec![false; cells];
        for &c in on {
            m[c] = true;
        }
        m
    }

    // ---- unit tests ----

    #[test]
    fn single_row_adds_cheapest_other_cell() {
        // a + b + c - d - e = 0
        let cons = vec![vec![(0, 1), (1, 1), (2, 1), (3, -1), (4, -1)]];
        let p = Problem {
            cells: 5,
            cost: vec![5, 9, 3, 7, 4],
            primary: mask(5, &[0]),
            constraints: cons.clone(),
            ..Default::default()
        };
        let out = protect(&p);
        assert_eq!(out.suppressed, mask(5, &[0, 2]));
        assert_eq!(out.secondary, 1);
        assert!(out.unresolved.is_empty());
        check(&p, &out);

        // Cost tie between cells 1, 3 and 4: the lowest index wins.
        let p = Problem {
            cost: vec![5, 4, 9, 4, 4],
            ..p
        };
        let out = protect(&p);
        assert_eq!(out.suppressed, mask(5, &[0, 1]));
        assert_eq!(out.secondary, 1);

        // Zero-cost cells are candidates like any other.
        let p = Problem {
            cost: vec![5, 4, 9, 4, 0],
            ..p
        };
        assert_eq!(protect(&p).suppressed, mask(5, &[0, 4]));
    }

    #[test]
    fn table_with_totals_needs_a_rectangle() {
        let (cells, cons) = table(4, 3);
        let p = Problem {
            cells,
            cost: (0..cells as u64).map(|c| 10 + c % 7).collect(),
            primary: mask(cells, &[4]), // x_11
            constraints: cons,
            ..Default::default()
        };
        let out = protect(&p);
        assert!(determined(cells, &p.constraints, &out.suppressed).is_empty());
        assert!(out.secondary >= 3, "secondary = {}", out.secondary);
        check(&p, &out);
    }

    #[test]
    fn determined_on_tables() {
        let (cells, cons) = table(3, 3);
        // A 2x2 rectangle of inner cells is safe.
        assert!(determined(cells, &cons, &mask(cells, &[0, 1, 3, 4])).is_empty());
        // Three corners of it are not: each has a row or column alone.
        assert_eq!(
            determined(cells, &cons, &mask(cells, &[0, 1, 3])),
            vec![0, 1, 3]
        );
        // Published everything: nothing suppressed, nothing determined.
        assert!(determined(cells, &cons, &vec![false; cells]).is_empty());
        // Everything suppressed: nothing is determined in a table with totals.
        assert!(determined(cells, &cons, &vec![true; cells]).is_empty());
    }

    #[test]
    fn determined_finds_a_bridge() {
        // x0 + x1 - x3 = 0 and x0 + x1 + x2 - x4 = 0: with x0, x1, x2 suppressed every
        // constraint has at least two unknowns, yet x2 = x4 - x3.
        let cons = vec![
            vec![(0, 1), (1, 1), (3, -1)],
            vec![(0, 1), (1, 1), (2, 1), (4, -1)],
        ];
        let sup = mask(5, &[0, 1, 2]);
        assert_eq!(determined(5, &cons, &sup), vec![2]);
        assert_eq!(brute_determined(5, &cons, &sup), vec![2]);
        let p = Problem {
            cells: 5,
            cost: vec![1, 1, 1, 1, 1],
            primary: sup,
            constraints: cons,
            ..Default::default()
        };
        let out = protect(&p);
        // Suppressing 3 or 4 alone makes x2 undetermined; equal cost, lower index wins
        // (3 shares no identity with x2, yet it is what the attack x2 = x4 - x3 uses).
        assert_eq!(out.suppressed, mask(5, &[0, 1, 2, 3]));
        assert_eq!(out.secondary, 1);
        check(&p, &out);
        let p = Problem {
            cost: vec![1, 1, 1, 5, 2],
            ..p
        };
        let out = protect(&p);
        assert_eq!(out.suppressed, mask(5, &[0, 1, 2, 4]));
        check(&p, &out);
    }

    #[test]
    fn grand_total_is_fixed_through_column_totals() {
        // 50 x 2 table; rows 0 and 1 (cells and row totals) and the grand total are
        // primary. Every identity has >= 2 suppressed cells, but T = C0 + C1.
        let (cells, cons) = table(50, 2);
        let (row_t, col_t, total) = (100, 150, 152);
        let primary = mask(cells, &[0, 1, 2, 3, row_t, row_t + 1, total]);
        assert_eq!(determined(cells, &cons, &primary), vec![total]);
        let mut cost = vec![10; cells];
        cost[col_t + 1] = 20;
        let p = Problem {
            cells,
            cost,
            primary,
            constraints: cons,
            ..Default::default()
        };
        let out = protect(&p);
        // One cell: C0 (C1 would do too but costs more). No row total helps on its own.
        assert_eq!(out.secondary, 1);
        assert!(out.suppressed[col_t]);
        check(&p, &out);
    }

    #[test]
    fn two_suppressed_rectangles_joined_by_bridges() {
        // Two 2x2 tables with totals (cells 0..9 and 9..18), inner cells suppressed: each
        // is a 4-cycle with one degree of freedom t_A, t_B, so nothing is determined.
        let (n, t) = table(2, 2);
        let mut cons: Vec<Constraint> = t.clone();
        cons.extend(
            t.iter()
                .map(|k| k.iter().map(|&(c, v)| (c + n, v)).collect()),
        );
        let (a, b, d, w) = (0, n, 2 * n, 2 * n + 1);
        let cells = 2 * n + 2;
        let sup = mask(cells, &[0, 1, 2, 3, n, n + 1, n + 2, n + 3]);
        assert!(determined(cells, &cons, &sup).is_empty());
        // Published d = x_a - x_b fixes t_A - t_B only: still nothing determined.
        cons.push(vec![(a, 1), (b, -1), (d, -1)]);
        assert!(determined(cells, &cons, &sup).is_empty());
        // Published w = x_a + x_b fixes t_A + t_B too: all eight cells are determined,
        // though every identity has 0 or >= 2 suppressed cells.
        cons.push(vec![(a, 1), (b, 1), (w, -1)]);
        let det = determined(cells, &cons, &sup);
        assert_eq!(det, vec![0, 1, 2, 3, n, n + 1, n + 2, n + 3]);
        assert_eq!(det, brute_determined(cells, &cons, &sup));
        let mut cost = vec![10; cells];
        cost[w] = 3;
        let p = Problem {
            cells,
            cost,
            primary: sup,
            constraints: cons,
            ..Default::default()
        };
        let out = protect(&p);
        // Suppressing w (the cheapest cell of all) suffices.
        assert_eq!(out.secondary, 1);
        assert!(out.suppressed[w]);
        check(&p, &out);
    }

    #[test]
    fn identities_that_fix_a_cell_are_reported_not_chased() {
        // 2 * x0 = 0 (spelled with a duplicate entry) fixes x0; x0 + x1 - x2 = 0.
        let cons = vec![vec![(0, 1), (0, 1)], vec![(0, 1), (1, 1), (2, -1)]];
        let p = Problem {
            cells: 3,
            cost: vec![1, 1, 1],
            primary: mask(3, &[0]),
            constraints: cons,
            ..Default::default()
        };
        let out = protect(&p);
        assert_eq!(out.suppressed, mask(3, &[0]));
        assert_eq!(out.secondary, 0);
        assert_eq!(out.unresolved, vec![0]);
        check(&p, &out);
    }

    #[test]
    fn normalization_cancels_and_ignores_zeros() {
        // x0 - x0 + x1 - x2 + 0 * x3 = 0 is x1 = x2.
        let cons = vec![vec![(0, 1), (1, 1), (0, -1), (2, -1), (3, 0)]];
        assert!(determined(4, &cons, &mask(4, &[0, 3])).is_empty());
        assert_eq!(determined(4, &cons, &mask(4, &[1])), vec![1]);
        let p = Problem {
            cells: 4,
            cost: vec![0, 1, 1, 0],
            primary: mask(4, &[1]),
            constraints: cons,
            ..Default::default()
        };
        let out = protect(&p);
        assert_eq!(out.suppressed, mask(4, &[1, 2]));
        check(&p, &out);
    }

    #[test]
    fn cells_outside_every_constraint() {
        let p = Problem {
            cells: 3,
            cost: vec![1, 1, 1],
            primary: mask(3, &[2]),
            constraints: vec![vec![(0, 1), (1, -1)]],
            ..Default::default()
        };
        let out = protect(&p);
        assert_eq!(out.suppressed, mask(3, &[2]));
        assert_eq!(out.secondary, 0);
        check(&p, &out);
    }

    #[test]
    fn field_arithmetic() {
        assert_eq!(reduce(u128::from(P)), 0);
        assert_eq!(reduce(u128::from(P) * u128::from(P)), 0);
        assert_eq!(mul(P - 1, P - 1), 1);
        for a in [1, 2, 3, 12345, P - 2, 1 << 60] {
            assert_eq!(mul(a, inverse(a)), 1);
        }
        assert_eq!(sub(0, 1), P - 1);
    }

    // ---- subscription-shaped problem ----

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// 14 countries plus an ALL row, 40 months. Per row: active_start of month 0, then per
    /// month new, reactivated, churned, active_end (which is the next month's start).
    /// Identities: the flow identity per row and month, and ALL = sum of countries for
    /// every column. Cost = the cell's value. About 10% of cells are primary.
    fn subscription_problem(seed: u64) -> Problem {
        const COUNTRIES: usize = 14;
        const MONTHS: usize = 40;
        const PER_ROW: usize = 1 + 4 * MONTHS;
        let rows = COUNTRIES + 1;
        let all = COUNTRIES;
        let start = |r: usize, m: usize| {
            if m == 0 {
                r * PER_ROW
            } else {
                r * PER_ROW + 4 * m
            }
        };
        let flow = |r: usize, m: usize, kind: usize| r * PER_ROW + 1 + 4 * m + kind;
        let cells = rows * PER_ROW;
        let mut rng = XorShift(seed);
        let mut value = vec![0u64; cells];
        for r in 0..COUNTRIES {
            value[start(r, 0)] = rng.below(5000);
            for m in 0..MONTHS {
                let s = value[start(r, m)];
                let new = rng.below(300);
                let react = rng.below(100);
                let churn = rng.below((s + new + react).min(400) + 1);
                value[flow(r, m, 0)] = new;
                value[flow(r, m, 1)] = react;
                value[flow(r, m, 2)] = churn;
                value[flow(r, m, 3)] = s + new + react - churn;
            }
        }
        let mut columns: Vec<Vec<usize>> = vec![(0..rows).map(|r| start(r, 0)).collect()];
        for m in 0..MONTHS {
            for kind in 0..4 {
                columns.push((0..rows).map(|r| flow(r, m, kind)).collect());
            }
        }
        let mut constraints: Vec<Constraint> = Vec::new();
        for col in &columns {
            value[col[all]] = col[..all].iter().map(|&c| value[c]).sum();
            let mut k: Constraint = col[..all].iter().map(|&c| (c, 1)).collect();
            k.push((col[all], -1));
            constraints.push(k);
        }
        for r in 0..rows {
            for m in 0..MONTHS {
                constraints.push(vec![
                    (start(r, m), 1),
                    (flow(r, m, 0), 1),
                    (flow(r, m, 1), 1),
                    (flow(r, m, 2), -1),
                    (flow(r, m, 3), -1),
                ]);
            }
        }
        for k in &constraints {
            let sum: i64 = k.iter().map(|&(c, v)| v * value[c] as i64).sum();
            assert_eq!(sum, 0);
        }
        let primary = (0..cells).map(|_| rng.below(10) == 0).collect();
        Problem {
            cells,
            cost: value,
            primary,
            constraints,
            ..Default::default()
        }
    }

    #[test]
    fn subscription_table_is_protected_quickly() {
        for seed in [0x9E37_79B9_7F4A_7C15, 42, 7] {
            let p = subscription_problem(seed);
            assert_eq!(p.cells, 2415);
            let primaries = p.primary.iter().filter(|&&b| b).count();
            let t = std::time::Instant::now();
            let out = protect(&p);
            let elapsed = t.elapsed();
            eprintln!(
                "subscription seed {seed:#x}: {} cells, {} constraints, {primaries} primary, \
                 {} secondary, protect() took {elapsed:?}",
                p.cells,
                p.constraints.len(),
                out.secondary
            );
            assert!(out.unresolved.is_empty());
            assert!(determined(p.cells, &p.constraints, &out.suppressed).is_empty());
            for c in 0..p.cells {
                assert!(!p.primary[c] || out.suppressed[c]);
            }
            assert_eq!(protect(&p), out);
        }
    }

    // ---- property tests ----

    fn table_problem() -> impl Strategy<Value = Problem> {
        (2usize..=8, 2usize..=6).prop_flat_map(|(r, c)| {
            let (cells, cons) = table(r, c);
            (
                prop::collection::vec(prop::bool::weighted(0.15), cells),
                prop::collection::vec(0u64..50, cells),
            )
                .prop_map(move |(primary, cost)| Problem {
                    cells,
                    cost,
                    primary,
                    constraints: cons.clone(),
                    ..Default::default()
                })
        })
    }

    fn sparse_problem() -> impl Strategy<Value = Problem> {
        (2usize..=25).prop_flat_map(|n| {
            (
                prop::collection::vec(prop::collection::vec((0..n, -3i64..=3), 1..=6), 0..=12),
                prop::collection::vec(prop::bool::weighted(0.2), n),
                prop::collection::vec(0u64..20, n),
            )
                .prop_map(move |(constraints, primary, cost)| Problem {
                    cells: n,
                    cost,
                    primary,
                    constraints,
                    ..Default::default()
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn protect_tables(p in table_problem()) {
            let out = protect(&p);
            prop_assert!(out.unresolved.is_empty());
            prop_assert!(determined(p.cells, &p.constraints, &out.suppressed).is_empty());
            check(&p, &out);
        }

        #[test]
        fn protect_sparse_systems(p in sparse_problem()) {
            let out = protect(&p);
            check(&p, &out);
        }

        #[test]
        fn repair_matches_brute_force(p in sparse_problem()) {
            let sys = System::new(p.cells, &p.constraints);
            let det = sys.determined(&p.primary);
            let inherent = brute_determined(p.cells, &p.constraints, &vec![true; p.cells]);
            let comps = sys.components(&p.primary);
            let mut scratch = vec![0; p.cells];
            for &x in &det {
                let comp = &comps.list[comps.of[x as usize] as usize];
                let repair = sys.repair(comp, x, &p.primary, &mut scratch);
                // Fixers: exactly the published cells whose suppression alone frees x, among
                // those whose constraints all touch x's component.
                let fixers: Vec<u32> = (0..p.cells as u32)
                    .filter(|&y| !p.primary[y as usize])
                    .filter(|&y| {
                        sys.cell_rows[y as usize].iter().all(|k| comp.rows.contains(k))
                    })
                    .filter(|&y| {
                        let mut sup = p.primary.clone();
                        sup[y as usize] = true;
                        !brute_determined(p.cells, &p.constraints, &sup).contains(&(x as usize))
                    })
                    .collect();
                prop_assert_eq!(&repair.fixers, &fixers);
                // The attack: published cells that suffice to compute x.
                let mut sup = vec![true; p.cells];
                for &c in &repair.attack {
                    prop_assert!(!p.primary[c as usize]);
                    sup[c as usize] = false;
                }
                prop_assert!(brute_determined(p.cells, &p.constraints, &sup).contains(&(x as usize)));
                // Unless the identities alone fix x, it uses a cell they do not fix.
                prop_assert!(
                    inherent.contains(&(x as usize))
                        || repair.attack.iter().any(|&c| !inherent.contains(&(c as usize)))
                );
            }
        }

        #[test]
        fn determined_matches_brute_force_on_tables(p in table_problem()) {
            prop_assert_eq!(
                determined(p.cells, &p.constraints, &p.primary),
                brute_determined(p.cells, &p.constraints, &p.primary)
            );
        }

        #[test]
        fn determined_matches_brute_force_on_sparse_systems(p in sparse_problem()) {
            prop_assert_eq!(
                determined(p.cells, &p.constraints, &p.primary),
                brute_determined(p.cells, &p.constraints, &p.primary)
            );
        }
    }
}
