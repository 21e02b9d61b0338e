//! Generalization hierarchies in ARX's CSV format.

use super::error::KanonError;
use super::hash::FastMap;

/// A generalization hierarchy in ARX's format: one row per original
/// (level-0) value, column `i` holds that value generalized to level `i`;
/// conventionally the last level is `*`.
///
/// Invariants checked on construction: at least one row, all rows of equal
/// length, no duplicate level-0 value, and every value at level `i` has one
/// parent at level `i + 1` (a value may not map to two different parents).
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// `values[level][code]`: the distinct values of each level, numbered in
    /// order of first appearance.
    values: Vec<Vec<String>>,
    /// `map[level][code0]`: the level-`level` code of level-0 code `code0`.
    map: Vec<Vec<u32>>,
    /// Level-0 value -> level-0 code (= row index).
    index0: FastMap<String, u32>,
}

impl Hierarchy {
    /// Parses ARX's hierarchy CSV: no header, one row per level-0 value,
    /// cells separated by `delimiter`, `\n` or `\r\n` line ends, a final line
    /// end optional. No quoting is supported (ARX's files use none). Errors
    /// name the 1-based line number.
    pub fn parse(text: &str, delimiter: char) -> Result<Hierarchy, KanonError> {
        // A byte-order mark (spreadsheets save one) is not part of the first value.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines: Vec<&str> = text
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        let rows: Vec<Vec<String>> = lines
            .iter()
            .map(|l| l.split(delimiter).map(str::to_owned).collect())
            .collect();
        Self::from_rows(rows)
    }

    /// Builds a hierarchy from rows (row `i` is reported as line `i + 1`).
    pub fn from_rows(rows: Vec<Vec<String>>) -> Result<Hierarchy, KanonError> {
        if rows.is_empty() || rows[0].is_empty() {
            return Err(KanonError::EmptyHierarchy);
        }
        let height = rows[0].len();
        if height > 255 {
            return Err(KanonError::TooManyLevels(height));
        }
        for (i, r) in rows.iter().enumerate() {
            if r.len() != height {
                return Err(KanonError::RaggedRow {
                    line: i + 1,
                    expected: height,
                    found: r.len(),
                });
            }
        }
        if rows.len() > u32::MAX as usize {
            return Err(KanonError::TooManyDistinct);
        }
        // Level 0: unique values.
        let mut index0: FastMap<String, u32> = FastMap::default();
        for (i, r) in rows.iter().enumerate() {
            if let Some(&first) = index0.get(&r[0]) {
                return Err(KanonError::DuplicateValue {
                    line: i + 1,
                    first_line: first as usize + 1,
                    value: r[0].clone(),
                });
            }
            index0.insert(r[0].clone(), i as u32);
        }
        // Parent consistency: value at level l -> one parent at level l+1.
        for level in 0..height.saturating_sub(1) {
            let mut parent: FastMap<&str, (&str, usize)> = FastMap::default();
            for (i, r) in rows.iter().enumerate() {
                match parent.get(r[level].as_str()) {
                    Some(&(p, first)) if p != r[level + 1] => {
                        return Err(KanonError::InconsistentParent {
                            line: i + 1,
                            first_line: first + 1,
                            level,
                            value: r[level].clone(),
                            parent: r[level + 1].clone(),
                            other_parent: p.to_owned(),
                        });
                    }
                    Some(_) => {}
                    None => {
                        parent.insert(&r[level], (&r[level + 1], i));
                    }
                }
            }
        }
        let mut values = Vec::with_capacity(height);
        let mut map = Vec::with_capacity(height);
        for level in 0..height {
            let mut codes: FastMap<&str, u32> = FastMap::default();
            let mut vals = Vec::new();
            let mut m = Vec::with_capacity(rows.len());
            for r in &rows {
                let next = codes.len() as u32;
                let c = *codes.entry(&r[level]).or_insert_with(|| {
                    vals.push(r[level].clone());
                    next
                });
                m.push(c);
            }
            values.push(vals);
            map.push(m);
        }
        Ok(Hierarchy {
            values,
            map,
            index0,
        })
    }

    /// The trivial hierarchy ARX uses when none is given: level 0 = the
    /// values themselves, level 1 = `*`.
    pub fn flat<S: AsRef<str>>(values: &[S]) -> Result<Hierarchy, KanonError> {
        if values.is_empty() {
            // No data at all: a hierarchy with no level-0 value.
            return Ok(Hierarchy {
                values: vec![Vec::new(), vec!["*".to_owned()]],
                map: vec![Vec::new(), Vec::new()],
                index0: FastMap::default(),
            });
        }
        Self::from_rows(
            values
                .iter()
                .map(|v| vec![v.as_ref().to_owned(), "*".to_owned()])
                .collect(),
        )
    }

    /// The hierarchy as ARX-format rows: one per level-0 value, one column per level.
    pub fn rows(&self) -> Vec<Vec<String>> {
        (0..self.map[0].len())
            .map(|c0| {
                (0..self.values.len())
                    .map(|l| self.values[l][self.map[l][c0] as usize].clone())
                    .collect()
            })
            .collect()
    }

    /// Number of levels including level 0.
    pub fn height(&self) -> usize {
        self.values.len()
    }

    /// Number of level-0 values (rows).
    pub fn len(&self) -> usize {
        self.index0.len()
    }

    /// True if the hierarchy has no level-0 value (only possible via [`Hierarchy::flat`] on no values).
    pub fn is_empty(&self) -> bool {
        self.index0.is_empty()
    }

    /// `value` (a level-0 value) generalized to `level`; `None` if the value
    /// is not in the hierarchy or the level is out of range.
    pub fn generalize(&self, value: &str, level: usize) -> Option<&str> {
        let code = *self.index0.get(value)?;
        self.value_at(level, self.code_at(level, code)?)
    }

    /// Level-0 code (row index) of a level-0 value.
    pub fn code0(&self, value: &str) -> Option<u32> {
        self.index0.get(value).copied()
    }

    /// Level-`level` code of level-0 code `code0`.
    pub fn code_at(&self, level: usize, code0: u32) -> Option<u32> {
        self.map.get(level)?.get(code0 as usize).copied()
    }

    /// The string of code `code` at `level`.
    pub fn value_at(&self, level: usize, code: u32) -> Option<&str> {
        self.values
            .get(level)?
            .get(code as usize)
            .map(String::as_str)
    }

    /// Number of distinct values at `level`.
    pub fn level_size(&self, level: usize) -> usize {
        self.values.get(level).map_or(0, Vec::len)
    }

    /// `map[level][code0]` table for a level.
    pub(crate) fn level_map(&self, level: usize) -> &[u32] {
        &self.map[level]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arx_format() {
        let h = Hierarchy::parse("a;x;*\r\nb;x;*\r\nc;y;*", ';').unwrap();
        assert_eq!(h.height(), 3);
        assert_eq!(h.len(), 3);
        assert_eq!(h.generalize("b", 1), Some("x"));
        assert_eq!(h.generalize("c", 2), Some("*"));
        assert_eq!(h.generalize("c", 3), None);
        let rows = h.rows();
        assert_eq!(rows[2], ["c", "y", "*"]);
        assert_eq!(Hierarchy::from_rows(rows.clone()).unwrap().rows(), rows);
        assert_eq!(h.generalize("d", 0), None);
        assert_eq!(h.level_size(1), 2);
        // trailing newline accepted
        assert_eq!(Hierarchy::parse("a;*\n", ';').unwrap().len(), 1);
    }

    #[test]
    fn errors() {
        assert_eq!(
            Hierarchy::parse("", ';').unwrap_err(),
            KanonError::EmptyHierarchy
        );
        assert_eq!(
            Hierarchy::parse("\r\n\n", ';').unwrap_err(),
            KanonError::EmptyHierarchy
        );
        assert_eq!(
            Hierarchy::from_rows(vec![]).unwrap_err(),
            KanonError::EmptyHierarchy
        );
        let e = Hierarchy::parse("a;x;*\nb;x\n", ';').unwrap_err();
        assert_eq!(
            e,
            KanonError::RaggedRow {
                line: 2,
                expected: 3,
                found: 2
            }
        );
        assert!(e.to_string().contains("line 2"));
        // blank line in the middle is a ragged row
        assert!(matches!(
            Hierarchy::parse("a;*\n\nb;*", ';').unwrap_err(),
            KanonError::RaggedRow { line: 2, .. }
        ));
        let e = Hierarchy::parse("a;x;*\nb;x;*\na;y;*", ';').unwrap_err();
        assert_eq!(
            e,
            KanonError::DuplicateValue {
                line: 3,
                first_line: 1,
                value: "a".into()
            }
        );
        assert!(e.to_string().contains("line 3"));
        let e = Hierarchy::parse("a;x;*\nb;x;*\nc;y;*\nd;y;z", ';').unwrap_err();
        assert!(
            matches!(
                e,
                KanonError::InconsistentParent {
                    line: 4,
                    first_line: 3,
                    level: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        let e = Hierarchy::parse("a;x;*\nb;y;*\nc;x;*\nd;x;q\n", ';').unwrap_err();
        assert!(e.to_string().contains("line 4"), "{e}");
    }

    /// Hierarchy values can be data (postal codes, dates): errors name lines, not values.
    /// A byte-order mark is not part of the first value.
    #[test]
    fn errors_name_lines_not_values_and_a_bom_is_skipped() {
        let e = Hierarchy::parse("jane@example.com;x;*\njane@example.com;y;*", ';').unwrap_err();
        assert!(!e.to_string().contains("jane"), "{e}");
        let e = Hierarchy::parse("1011;10;*\n1012;11;*\n2011;10;+", ';').unwrap_err();
        let text = e.to_string();
        assert!(text.contains("line 3") && !text.contains("10"), "{text}");
        let h = Hierarchy::parse("\u{feff}US;America;*\nFR;Europe;*\n", ';').unwrap();
        assert!(h.code0("US").is_some());
    }
}
