//! Dictionary-encoded quasi-identifier data grouped to distinct tuples.

use super::error::KanonError;
use super::grouping::{Groups, group_by, group_by_packed};
use super::hash::FastMap;
use super::hierarchy::Hierarchy;
use super::measures::{Measures, measures_from_sizes};

/// Equivalence classes of one lattice node: packed generalized keys (or,
/// for very wide keys, representative tuples) with class sizes.
pub(crate) enum ClassList {
    U64 { keys: Vec<u64>, weights: Vec<u64> },
    U128 { keys: Vec<u128>, weights: Vec<u64> },
    Wide { reps: Vec<u32>, weights: Vec<u64> },
}

impl ClassList {
    pub(crate) fn len(&self) -> usize {
        self.weights().len()
    }
    pub(crate) fn weights(&self) -> &[u64] {
        match self {
            ClassList::U64 { weights, .. }
            | ClassList::U128 { weights, .. }
            | ClassList::Wide { weights, .. } => weights,
        }
    }
}

/// Width of the packed tuple keys (chosen from the summed code widths).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    U64,
    U128,
    Wide,
}

/// Incremental builder for a [`Dataset`]: push rows of strings, then
/// [`DatasetBuilder::finish`]. Memory while building: one `u32` per cell.
#[derive(Debug)]
pub struct DatasetBuilder {
    names: Vec<String>,
    hierarchies: Vec<Option<Hierarchy>>,
    dicts: Vec<FastMap<String, u32>>,
    dict_values: Vec<Vec<String>>,
    codes: Vec<Vec<u32>>,
    rows: u64,
}

impl DatasetBuilder {
    /// Starts a dataset with the given quasi-identifier names and one optional
    /// hierarchy per column. `None` means ARX's default: level 0 = the value,
    /// level 1 = `*` (height 2).
    pub fn new(
        names: Vec<String>,
        hierarchies: Vec<Option<Hierarchy>>,
    ) -> Result<Self, KanonError> {
        if names.is_empty() {
            return Err(KanonError::InvalidParameter(
                "at least one quasi-identifier column is required".into(),
            ));
        }
        if names.len() != hierarchies.len() {
            return Err(KanonError::InvalidParameter(format!(
                "{} column names but {} hierarchies",
                names.len(),
                hierarchies.len()
            )));
        }
        let d = names.len();
        Ok(DatasetBuilder {
            names,
            hierarchies,
            dicts: (0..d).map(|_| FastMap::default()).collect(),
            dict_values: vec![Vec::new(); d],
            codes: vec![Vec::new(); d],
            rows: 0,
        })
    }

    /// Reserves room for `rows` more rows.
    pub fn reserve(&mut self, rows: usize) {
        for c in &mut self.codes {
            c.reserve(rows);
        }
    }

    /// Appends one row (one value per quasi-identifier, in column order).
    /// A value absent from its column's hierarchy is an error naming the
    /// column and the 1-based row number; the row is then not added.
    pub fn push_row<S: AsRef<str>>(&mut self, row: &[S]) -> Result<(), KanonError> {
        let d = self.names.len();
        let rowno = self.rows + 1;
        if row.len() != d {
            return Err(KanonError::RowArity {
                row: rowno,
                expected: d,
                found: row.len(),
            });
        }
        // Validate first so that a failing row leaves no partial state.
        for (c, v) in row.iter().enumerate() {
            if let Some(h) = &self.hierarchies[c]
                && h.code0(v.as_ref()).is_none()
            {
                return Err(KanonError::UnknownValue {
                    column: self.names[c].clone(),
                    row: rowno,
                    value: v.as_ref().to_owned(),
                });
            }
        }
        for (c, v) in row.iter().enumerate() {
            let v = v.as_ref();
            let code = match &self.hierarchies[c] {
                Some(h) => h.code0(v).unwrap(),
                None => match self.dicts[c].get(v) {
                    Some(&code) => code,
                    None => {
                        let code = self.dict_values[c].len();
                        if code >= u32::MAX as usize {
                            return Err(KanonError::TooManyDistinct);
                        }
                        self.dicts[c].insert(v.to_owned(), code as u32);
                        self.dict_values[c].push(v.to_owned());
                        code as u32
                    }
                },
            };
            self.codes[c].push(code);
        }
        self.rows += 1;
        Ok(())
    }

    /// Appends one row given as level-0 codes of each column's hierarchy
    /// ([`Hierarchy::code0`]), for callers that encoded the values already (no
    /// string hashing per cell). Every column must have a hierarchy.
    pub fn push_codes(&mut self, row: &[u32]) -> Result<(), KanonError> {
        let d = self.names.len();
        if row.len() != d {
            return Err(KanonError::RowArity {
                row: self.rows + 1,
                expected: d,
                found: row.len(),
            });
        }
        for (c, code) in row.iter().enumerate() {
            match &self.hierarchies[c] {
                Some(h) if (*code as usize) < h.level_size(0) => {}
                _ => {
                    return Err(KanonError::InvalidParameter(format!(
                        "column {:?}, row {}: not a level-0 code of the column's hierarchy",
                        self.names[c],
                        self.rows + 1
                    )));
                }
            }
        }
        for (c, code) in row.iter().enumerate() {
            self.codes[c].push(*code);
        }
        self.rows += 1;
        Ok(())
    }

    /// Number of rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Groups the rows to distinct tuples and precomputes the entropy tables.
    pub fn finish(self) -> Result<Dataset, KanonError> {
        let DatasetBuilder {
            names,
            hierarchies,
            dict_values,
            codes,
            rows,
            ..
        } = self;
        if rows > u32::MAX as u64 {
            return Err(KanonError::TooManyDistinct);
        }
        let hierarchies: Vec<Hierarchy> = hierarchies
            .into_iter()
            .zip(dict_values)
            .map(|(h, vals)| match h {
                Some(h) => Ok(h),
                None => Hierarchy::flat(&vals),
            })
            .collect::<Result<_, _>>()?;
        let bits: Vec<u32> = hierarchies.iter().map(|h| bits_for(h.len())).collect();
        let total_bits: u32 = bits.iter().sum();
        let key_kind = if total_bits <= 64 {
            KeyKind::U64
        } else if total_bits <= 128 {
            KeyKind::U128
        } else {
            KeyKind::Wide
        };
        let mut shifts = Vec::with_capacity(bits.len());
        let mut s = 0;
        for b in &bits {
            shifts.push(s);
            s += b;
        }
        let n = rows as usize;
        let d = names.len();
        let cs = &codes;
        let sh = &shifts;
        let groups = match key_kind {
            KeyKind::U64 => {
                group_by_packed(
                    n,
                    |i| (0..d).fold(0u64, |k, c| k | ((cs[c][i] as u64) << sh[c])),
                    |_| 1,
                    true,
                    n,
                )
                .0
            }
            KeyKind::U128 => {
                group_by_packed(
                    n,
                    |i| (0..d).fold(0u128, |k, c| k | ((cs[c][i] as u128) << sh[c])),
                    |_| 1,
                    true,
                    n,
                )
                .0
            }
            KeyKind::Wide => group_by(
                n,
                |i| (0..d).map(|c| cs[c][i]).collect::<Vec<u32>>(),
                |_| 1,
                true,
            ),
        };
        super::grouping::release_pools();
        let Groups {
            reps,
            weights,
            assign,
        } = groups;
        let tuple_codes: Vec<Vec<u32>> = codes
            .iter()
            .map(|col| reps.iter().map(|&r| col[r as usize]).collect())
            .collect();
        drop(codes);
        let mut data = Dataset {
            names,
            hierarchies,
            rows,
            row_tuple: assign.unwrap_or_default(),
            tuple_codes,
            tuple_counts: weights,
            shifts,
            key_kind,
            masks: bits
                .iter()
                .map(|&b| if b >= 32 { u32::MAX } else { (1u32 << b) - 1 })
                .collect(),
            up: Vec::new(),
            loss: Vec::new(),
        };
        data.loss = data.compute_loss_table();
        data.up = data
            .hierarchies
            .iter()
            .map(|h| {
                (0..h.height())
                    .map(|from| {
                        (0..h.height())
                            .map(|to| {
                                let mut t =
                                    vec![0u32; if to >= from { h.level_size(from) } else { 0 }];
                                if to >= from {
                                    for code0 in 0..h.len() {
                                        t[h.level_map(from)[code0] as usize] =
                                            h.level_map(to)[code0];
                                    }
                                }
                                t
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Ok(data)
    }
}

fn bits_for(n: usize) -> u32 {
    if n <= 2 {
        1
    } else {
        usize::BITS - (n - 1).leading_zeros()
    }
}

/// Quasi-identifier columns encoded as dictionary codes (a column's code is
/// the row index of the value in its hierarchy), grouped to distinct tuples
/// with counts, so that every evaluation of a generalization works on the
/// distinct tuples, not on the rows. Per row only the index of its distinct
/// tuple is kept (4 bytes per row).
#[derive(Debug)]
pub struct Dataset {
    names: Vec<String>,
    hierarchies: Vec<Hierarchy>,
    rows: u64,
    /// Row -> distinct tuple.
    row_tuple: Vec<u32>,
    /// `tuple_codes[column][tuple]`: level-0 code.
    tuple_codes: Vec<Vec<u32>>,
    /// Number of rows of each distinct tuple.
    tuple_counts: Vec<u64>,
    /// Bit offset of each column in a packed key.
    shifts: Vec<u32>,
    key_kind: KeyKind,
    /// Per column, `(1 << bits) - 1`: mask of its code in a packed key.
    masks: Vec<u32>,
    /// `up[column][from][to][code at level from]` = code at level `to` (for `from <= to`).
    up: Vec<Vec<Vec<Vec<u32>>>>,
    /// `loss[column][level]`: ARX's precomputed non-uniform entropy of the column.
    loss: Vec<Vec<f64>>,
}

impl Dataset {
    /// Builds a dataset from whole columns of strings (one slice per
    /// quasi-identifier, all of equal length). See [`DatasetBuilder`] for
    /// row-by-row building.
    pub fn from_columns<S: AsRef<str>>(
        names: Vec<String>,
        columns: &[&[S]],
        hierarchies: Vec<Option<Hierarchy>>,
    ) -> Result<Dataset, KanonError> {
        if columns.len() != names.len() {
            return Err(KanonError::InvalidParameter(format!(
                "{} column names but {} columns",
                names.len(),
                columns.len()
            )));
        }
        let n = columns.first().map_or(0, |c| c.len());
        if columns.iter().any(|c| c.len() != n) {
            return Err(KanonError::InvalidParameter(
                "columns have different lengths".into(),
            ));
        }
        let mut b = DatasetBuilder::new(names, hierarchies)?;
        b.reserve(n);
        let mut row: Vec<&str> = Vec::with_capacity(columns.len());
        for i in 0..n {
            row.clear();
            row.extend(columns.iter().map(|c| c[i].as_ref()));
            b.push_row(&row)?;
        }
        b.finish()
    }

    /// Quasi-identifier names.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of quasi-identifiers.
    pub fn num_columns(&self) -> usize {
        self.names.len()
    }

    /// Number of records.
    pub fn num_rows(&self) -> u64 {
        self.rows
    }

    /// Number of distinct level-0 tuples.
    pub fn num_distinct(&self) -> usize {
        self.tuple_counts.len()
    }

    /// The hierarchy of a column (the synthesized `value;*` one for columns
    /// built without a hierarchy).
    pub fn hierarchy(&self, column: usize) -> &Hierarchy {
        &self.hierarchies[column]
    }

    /// Hierarchy heights (levels incl. level 0) of all columns.
    pub fn heights(&self) -> Vec<usize> {
        self.hierarchies.iter().map(Hierarchy::height).collect()
    }

    /// Number of nodes of the generalization lattice (product of heights,
    /// saturating).
    pub fn lattice_size(&self) -> u128 {
        self.hierarchies
            .iter()
            .fold(1u128, |a, h| a.saturating_mul(h.height() as u128))
    }

    /// Checks a level vector: one level per column, each below the height.
    pub fn check_levels(&self, levels: &[usize]) -> Result<(), KanonError> {
        if levels.len() != self.names.len() {
            return Err(KanonError::LevelCount {
                expected: self.names.len(),
                found: levels.len(),
            });
        }
        for (c, &l) in levels.iter().enumerate() {
            let height = self.hierarchies[c].height();
            if l >= height {
                return Err(KanonError::LevelOutOfRange {
                    column: self.names[c].clone(),
                    level: l,
                    height,
                });
            }
        }
        Ok(())
    }

    /// The original (level-0) value of a cell. Panics if out of range.
    pub fn value(&self, column: usize, row: usize) -> &str {
        let code = self.tuple_codes[column][self.row_tuple[row] as usize];
        self.hierarchies[column].value_at(0, code).unwrap()
    }

    /// The value of a cell generalized to `level`; `None` if the level is out
    /// of range. Panics if `column` or `row` is out of range.
    pub fn generalized_value(&self, column: usize, row: usize, level: usize) -> Option<&str> {
        let h = &self.hierarchies[column];
        let code0 = self.tuple_codes[column][self.row_tuple[row] as usize];
        h.value_at(level, h.code_at(level, code0)?)
    }

    /// ARX's precomputed non-uniform entropy of one column at one level.
    pub fn column_entropy(&self, column: usize, level: usize) -> Option<f64> {
        self.loss.get(column)?.get(level).copied()
    }

    fn compute_loss_table(&self) -> Vec<Vec<f64>> {
        let ln2 = std::f64::consts::LN_2;
        (0..self.num_columns())
            .map(|c| {
                let h = &self.hierarchies[c];
                let mut card0 = vec![0u64; h.len()];
                for (t, &code) in self.tuple_codes[c].iter().enumerate() {
                    card0[code as usize] += self.tuple_counts[t];
                }
                (0..h.height())
                    .map(|level| {
                        let map = h.level_map(level);
                        let mut card = vec![0u64; h.level_size(level)];
                        for (code0, &a) in card0.iter().enumerate() {
                            card[map[code0] as usize] += a;
                        }
                        // Same formula and order of terms as ARX's
                        // MetricMDNUEntropyPrecomputed: sum a * log2(a / b), negated.
                        let mut value = 0f64;
                        for (code0, &a) in card0.iter().enumerate() {
                            if a != 0 {
                                let a = a as f64;
                                let b = card[map[code0] as usize] as f64;
                                value += a * ((a / b).ln() / ln2);
                            }
                        }
                        if value == 0.0 { 0.0 } else { -value }
                    })
                    .collect()
            })
            .collect()
    }

    /// Entropy loss of a checked level vector (columns summed in order).
    pub(crate) fn loss_unchecked(&self, levels: &[usize]) -> f64 {
        levels
            .iter()
            .enumerate()
            .fold(0.0, |s, (c, &l)| s + self.loss[c][l])
    }

    /// Upper bound of the number of classes at `levels`: product of level sizes.
    fn class_estimate(&self, levels: &[usize], n: usize) -> usize {
        levels
            .iter()
            .enumerate()
            .map(|(c, &l)| self.hierarchies[c].level_size(l).max(1))
            .try_fold(1usize, |a, s| a.checked_mul(s))
            .unwrap_or(usize::MAX)
            .min(n)
    }

    /// Groups the distinct tuples by their generalized key at `levels`
    /// (optionally with the class of every tuple).
    pub(crate) fn group_tuples(&self, levels: &[usize], assign: bool) -> Groups {
        let d = self.num_columns();
        let maps: Vec<&[u32]> = (0..d)
            .map(|c| self.hierarchies[c].level_map(levels[c]))
            .collect();
        let maps = &maps;
        let codes = &self.tuple_codes;
        let sh = &self.shifts;
        let n = self.tuple_counts.len();
        let w = |i: usize| self.tuple_counts[i];
        let estimate = self.class_estimate(levels, n);
        match self.key_kind {
            KeyKind::U64 => {
                group_by_packed(
                    n,
                    |t| {
                        (0..d).fold(0u64, |k, c| {
                            k | ((maps[c][codes[c][t] as usize] as u64) << sh[c])
                        })
                    },
                    w,
                    assign,
                    estimate,
                )
                .0
            }
            KeyKind::U128 => {
                group_by_packed(
                    n,
                    |t| {
                        (0..d).fold(0u128, |k, c| {
                            k | ((maps[c][codes[c][t] as usize] as u128) << sh[c])
                        })
                    },
                    w,
                    assign,
                    estimate,
                )
                .0
            }
            KeyKind::Wide => group_by(
                n,
                |t| {
                    (0..d)
                        .map(|c| maps[c][codes[c][t] as usize])
                        .collect::<Vec<u32>>()
                },
                w,
                assign,
            ),
        }
    }

    /// Equivalence classes at `levels`, computed from the distinct tuples or
    /// rolled up from the classes `src` of a node `src_levels <= levels`
    /// (component-wise). Roll-ups read the source's packed keys sequentially
    /// and translate each column's code with a precomputed level-to-level table.
    pub(crate) fn classes(
        &self,
        levels: &[usize],
        src: Option<(&[usize], &ClassList)>,
    ) -> ClassList {
        let d = self.num_columns();
        let up: Vec<&[u32]> = match src {
            Some((sl, _)) => (0..d)
                .map(|c| self.up[c][sl[c]][levels[c]].as_slice())
                .collect(),
            None => Vec::new(),
        };
        let up = &up;
        let sh = &self.shifts;
        let masks = &self.masks;
        match src {
            None if self.key_kind == KeyKind::U64 && levels.iter().all(|&l| l == 0) => {
                // The bottom node's classes are the distinct tuples.
                let codes = &self.tuple_codes;
                let keys = (0..self.tuple_counts.len())
                    .map(|t| (0..d).fold(0u64, |k, c| k | ((codes[c][t] as u64) << sh[c])))
                    .collect();
                ClassList::U64 {
                    keys,
                    weights: self.tuple_counts.clone(),
                }
            }
            None => match self.key_kind {
                KeyKind::U64 => {
                    let maps: Vec<&[u32]> = (0..d)
                        .map(|c| self.hierarchies[c].level_map(levels[c]))
                        .collect();
                    let maps = &maps;
                    let codes = &self.tuple_codes;
                    let n = self.tuple_counts.len();
                    let (g, keys) = group_by_packed(
                        n,
                        |t| {
                            (0..d).fold(0u64, |k, c| {
                                k | ((maps[c][codes[c][t] as usize] as u64) << sh[c])
                            })
                        },
                        |i| self.tuple_counts[i],
                        false,
                        self.class_estimate(levels, n),
                    );
                    ClassList::U64 {
                        keys,
                        weights: g.weights,
                    }
                }
                KeyKind::U128 => {
                    let maps: Vec<&[u32]> = (0..d)
                        .map(|c| self.hierarchies[c].level_map(levels[c]))
                        .collect();
                    let maps = &maps;
                    let codes = &self.tuple_codes;
                    let n = self.tuple_counts.len();
                    let (g, keys) = group_by_packed(
                        n,
                        |t| {
                            (0..d).fold(0u128, |k, c| {
                                k | ((maps[c][codes[c][t] as usize] as u128) << sh[c])
                            })
                        },
                        |i| self.tuple_counts[i],
                        false,
                        self.class_estimate(levels, n),
                    );
                    ClassList::U128 {
                        keys,
                        weights: g.weights,
                    }
                }
                KeyKind::Wide => {
                    let g = self.group_tuples(levels, false);
                    ClassList::Wide {
                        reps: g.reps,
                        weights: g.weights,
                    }
                }
            },
            Some((
                _,
                ClassList::U64 {
                    keys: sk,
                    weights: sw,
                },
            )) => {
                let (g, keys) = group_by_packed(
                    sk.len(),
                    |i| {
                        let k = sk[i];
                        (0..d).fold(0u64, |a, c| {
                            a | ((up[c][((k >> sh[c]) as u32 & masks[c]) as usize] as u64) << sh[c])
                        })
                    },
                    |i| sw[i],
                    false,
                    self.class_estimate(levels, sk.len()),
                );
                ClassList::U64 {
                    keys,
                    weights: g.weights,
                }
            }
            Some((
                _,
                ClassList::U128 {
                    keys: sk,
                    weights: sw,
                },
            )) => {
                let (g, keys) = group_by_packed(
                    sk.len(),
                    |i| {
                        let k = sk[i];
                        (0..d).fold(0u128, |a, c| {
                            a | ((up[c][((k >> sh[c]) as u32 & masks[c]) as usize] as u128)
                                << sh[c])
                        })
                    },
                    |i| sw[i],
                    false,
                    self.class_estimate(levels, sk.len()),
                );
                ClassList::U128 {
                    keys,
                    weights: g.weights,
                }
            }
            Some((
                _,
                ClassList::Wide {
                    reps: sr,
                    weights: sw,
                },
            )) => {
                let maps: Vec<&[u32]> = (0..d)
                    .map(|c| self.hierarchies[c].level_map(levels[c]))
                    .collect();
                let maps = &maps;
                let codes = &self.tuple_codes;
                let mut g = group_by(
                    sr.len(),
                    |i| {
                        let t = sr[i] as usize;
                        (0..d)
                            .map(|c| maps[c][codes[c][t] as usize])
                            .collect::<Vec<u32>>()
                    },
                    |i| sw[i],
                    false,
                );
                for r in &mut g.reps {
                    *r = sr[*r as usize];
                }
                ClassList::Wide {
                    reps: g.reps,
                    weights: g.weights,
                }
            }
        }
    }

    /// Equivalence classes of every row at `levels`, with the rows of classes
    /// smaller than `k` marked as suppressed. This is what a caller needs to
    /// write the anonymized output.
    pub fn generalization(
        &self,
        levels: &[usize],
        k: u64,
    ) -> Result<Generalization<'_>, KanonError> {
        self.check_levels(levels)?;
        let g = self.group_tuples(levels, true);
        super::grouping::release_pools();
        Ok(Generalization {
            data: self,
            levels: levels.to_vec(),
            k,
            tuple_class: g.assign.unwrap_or_default(),
            class_sizes: g.weights,
        })
    }
}

/// Equivalence classes of a [`Dataset`] at one level vector, giving per-row
/// access to generalized values, class ids and suppression (class smaller than k).
#[derive(Debug)]
pub struct Generalization<'a> {
    data: &'a Dataset,
    levels: Vec<usize>,
    k: u64,
    tuple_class: Vec<u32>,
    class_sizes: Vec<u64>,
}

impl Generalization<'_> {
    /// The level vector.
    pub fn levels(&self) -> &[usize] {
        &self.levels
    }

    /// Number of equivalence classes (before suppression).
    pub fn num_classes(&self) -> usize {
        self.class_sizes.len()
    }

    /// Equivalence class id of a row (0-based, arbitrary but fixed numbering).
    pub fn class_id(&self, row: usize) -> usize {
        self.tuple_class[self.data.row_tuple[row] as usize] as usize
    }

    /// Size of the class of a row.
    pub fn class_size(&self, row: usize) -> u64 {
        self.class_sizes[self.class_id(row)]
    }

    /// True if the row's class has fewer than k records (ARX suppresses such
    /// records: every quasi-identifier becomes `*`).
    pub fn is_suppressed(&self, row: usize) -> bool {
        self.class_size(row) < self.k
    }

    /// The generalized value of a cell (not taking suppression into account;
    /// check [`Generalization::is_suppressed`]).
    pub fn value(&self, row: usize, column: usize) -> &str {
        self.data
            .generalized_value(column, row, self.levels[column])
            .unwrap()
    }

    /// 0-based indices of the rows in classes smaller than k.
    pub fn suppressed_rows(&self) -> Vec<usize> {
        let bad: Vec<bool> = self.class_sizes.iter().map(|&s| s < self.k).collect();
        self.data
            .row_tuple
            .iter()
            .enumerate()
            .filter(|&(_, &t)| bad[self.tuple_class[t as usize] as usize])
            .map(|(i, _)| i)
            .collect()
    }

    /// Number of rows in classes smaller than k.
    pub fn num_suppressed(&self) -> u64 {
        self.class_sizes.iter().filter(|&&s| s < self.k).sum()
    }

    /// Measures of this generalization without suppression (see [`Measures`]).
    pub fn measures(&self) -> Measures {
        measures_from_sizes(&self.class_sizes, self.data.num_rows(), self.k, false)
    }

    /// Measures after suppressing the classes smaller than k.
    pub fn measures_suppressed(&self) -> Measures {
        measures_from_sizes(&self.class_sizes, self.data.num_rows(), self.k, true)
    }
}
