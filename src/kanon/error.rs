//! Error type of the k-anonymity module.

/// Everything that can go wrong while parsing hierarchies, building a
/// [`super::Dataset`] or evaluating generalizations.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KanonError {
    /// The hierarchy text or row list holds no rows.
    #[error("hierarchy is empty")]
    EmptyHierarchy,
    /// A hierarchy row has a different number of levels than the first row.
    #[error("hierarchy line {line}: expected {expected} levels, found {found}")]
    RaggedRow {
        /// 1-based line (row) number.
        line: usize,
        /// Number of levels of the first row.
        expected: usize,
        /// Number of levels of this row.
        found: usize,
    },
    /// The same level-0 value appears on two rows.
    #[error("hierarchy line {line}: its level-0 value is already defined on line {first_line}")]
    DuplicateValue {
        /// 1-based line number of the duplicate.
        line: usize,
        /// 1-based line number of the first occurrence.
        first_line: usize,
        /// The duplicated value.
        value: String,
    },
    /// A value at some level maps to two different parents at the next level.
    #[error(
        "hierarchy line {line}: its value at level {level} maps to another parent than on line {first_line}"
    )]
    InconsistentParent {
        /// 1-based line number of the conflicting row.
        line: usize,
        /// 1-based line number of the row that first defined the parent.
        first_line: usize,
        /// Level of the value (its parent is at `level + 1`).
        level: usize,
        /// The value.
        value: String,
        /// Parent on this line.
        parent: String,
        /// Parent on `first_line`.
        other_parent: String,
    },
    /// A hierarchy has more levels than supported (255).
    #[error("hierarchy has {0} levels, at most 255 are supported")]
    TooManyLevels(usize),
    /// A data value does not occur at level 0 of its column's hierarchy.
    /// The message names the column and row, never the value (errors carry no data).
    #[error(
        "column {column:?}, row {row}: the value is not in the column's hierarchy; add a row for it to the hierarchy file"
    )]
    UnknownValue {
        /// Column name.
        column: String,
        /// 1-based row number.
        row: u64,
        /// The offending value (for callers; not in the message).
        value: String,
    },
    /// A data row has the wrong number of values.
    #[error("row {row}: expected {expected} values, found {found}")]
    RowArity {
        /// 1-based row number.
        row: u64,
        /// Number of quasi-identifier columns.
        expected: usize,
        /// Number of values given.
        found: usize,
    },
    /// A level vector has the wrong length.
    #[error("expected {expected} generalization levels, found {found}")]
    LevelCount {
        /// Number of quasi-identifiers.
        expected: usize,
        /// Length of the given vector.
        found: usize,
    },
    /// A generalization level is not below the column's hierarchy height.
    #[error("column {column:?}: level {level} out of range (hierarchy height {height})")]
    LevelOutOfRange {
        /// Column name.
        column: String,
        /// The requested level.
        level: usize,
        /// Height of the column's hierarchy (levels incl. level 0).
        height: usize,
    },
    /// A parameter (k, suppression limit, column list, ...) is invalid.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// More than 2^32 - 1 distinct quasi-identifier tuples or dictionary values.
    #[error("too many distinct values or tuples (more than 4294967295)")]
    TooManyDistinct,
    /// Reading or parsing an input file failed.
    #[error("{path}: {message}")]
    Input {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}
