//! k-anonymity measures and optimal generalization search for `anonymizer`,
//! matching the ARX Data Anonymization Tool.
//!
//! Why this exists: the batch anonymizer must (1) report how identifying a
//! table of quasi-identifiers is under a given generalization (equivalence
//! classes, AECS, discernibility, prosecutor risk), (2) find the
//! generalization that reaches k-anonymity with the least information loss,
//! and (3) tell per row which generalized values to write and which rows to
//! suppress — with figures that agree exactly with ARX, the reference tool
//! users compare against. Rows are dictionary-encoded and grouped into
//! distinct tuples once, so tens of millions of rows with few distinct
//! combinations stay cheap, and each lattice node is evaluated on distinct
//! tuples or rolled up from a finer node's classes.
//!
//! Entry points: [`Hierarchy`], [`DatasetBuilder`] / [`Dataset`],
//! [`measures`], [`entropy_loss`], [`optimize`], [`Dataset::generalization`];
//! [`arx_adult`] loads ARX's Adult test data.

pub mod arx_adult;
pub mod builtin;
mod dataset;
pub mod enforce;
mod error;
mod grouping;
mod hash;
mod hierarchy;
mod measures;
pub mod read;
mod search;
#[cfg(test)]
mod tests_arx;
#[cfg(test)]
mod tests_prop;

pub use dataset::{Dataset, DatasetBuilder, Generalization};
pub use error::KanonError;
pub use hierarchy::Hierarchy;
pub use measures::Measures;
pub use search::{Optimum, entropy_loss, measures, optimize};
