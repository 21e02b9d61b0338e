#!/usr/bin/env bash
# The full crash trials (issue 8): 50 runs killed with SIGKILL at random moments, each
# followed by checks that OUT/current is a complete run readable by `anonymizer query`,
# then one run that must succeed. CI runs 6 trials of the same test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/anonymizer-target}"
ANONYMIZER_CRASH_TRIALS="${ANONYMIZER_CRASH_TRIALS:-50}" \
    cargo test --test it crash:: -- --nocapture
