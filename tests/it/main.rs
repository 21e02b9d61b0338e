//! The one integration test binary (one link instead of many). Fixtures are generated in
//! code with a fixed seed; see `common`.

mod analytics;
mod bad_inputs;
mod common;
mod crash;
mod csv_mapping;
mod erasure;
mod fuzz_corpus;
mod kanon;
mod oracle;
mod pipeline;
mod plans;
mod policy_errors;
mod query;
mod rules_props;
mod verify;
