//! anonymizer: the nightly batch job that turns a subscription-video warehouse export
//! (customers and transactions, full of personal data) into a published folder that holds
//! none.
//!
//! One run, as data flows through it:
//!
//! 1. [`policy`] parses the TOML policy into raw structs and validates it against the
//!    export's schemas (read from file footers, no rows) into a typed [`policy::Policy`]:
//!    every column has a rule, every rule fits its column's type, every role points at a
//!    real column. Anything unclassified stops the run here (fail closed).
//! 2. [`key`] loads the secret pseudonymization key from `ANONYMIZER_KEY` or a key file;
//!    only a fingerprint (key id) ever leaves memory.
//! 3. [`run`] builds one DataFusion plan per input file: scan, then a projection whose
//!    expressions are the [`rules`] as scalar UDFs. The same UDFs are registered in the
//!    SQL context, so saved queries and (later) a Ballista cluster run the same functions.
//!    Files are processed concurrently; each output file depends only on its input file,
//!    so outputs are byte-identical whatever the core count.
//! 4. [`publish`] writes everything into a staging folder under a lock, then renames it
//!    into `OUT/runs/<run-id>/` and swaps the `OUT/current` symlink atomically. A failed or
//!    killed run leaves the previous `current` in place.
//!
//! [`generate`] writes realistic synthetic exports for tests, the demo and benchmarks;
//! [`demo`] chains generate + run for the README's first command.

pub mod analytics;
pub mod checks;
pub mod codec;
pub mod contain;
pub mod demo;
pub mod erasure;
pub mod error;
pub mod fsutil;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
pub mod input;
pub mod kanon;
pub mod key;
pub mod manifest;
pub mod personal_text;
pub mod policy;
pub mod progress;
pub mod publish;
pub mod query;
pub mod risk;
pub mod rules;
pub mod run;
pub mod verify;

pub use error::{Error, ExitCode};
