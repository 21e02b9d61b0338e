#!/usr/bin/env bash
# ab.sh: two (or more) anonymizer builds on the same export, alternated, one line per run:
# wall time, the manifest's stages_ms and the gate's two phases (from the debug log).
#
#   benches/e2e/ab.sh POLICY REPS BINARY [BINARY ...]
#
# POLICY is a policy whose inputs point at an export (e.g. a copy of bench.py's
# WORK/policies/same-job.toml); its `output` folder is deleted before every run.
# AS_OF (default 2025-12-31) is passed as --as-of; ANONYMIZER_KEY defaults to a fixed,
# non-secret benchmark key (synthetic data only). Take medians per binary: the machine
# is shared, so compare builds only within one invocation.
set -euo pipefail
cfg=$1; reps=$2; shift 2
: "${AS_OF:=2025-12-31}"
: "${ANONYMIZER_KEY:=$(printf bench | sha256sum | cut -d' ' -f1)}"
export ANONYMIZER_KEY
out=$(sed -n 's/^output *= *"\(.*\)".*/\1/p' "$cfg")
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for r in $(seq "$reps"); do
  for b in "$@"; do
    rm -rf "$out"
    s=$(date +%s.%N)
    ANONYMIZER_LOG=anonymizer=debug "$b" run --config "$cfg" --as-of "$AS_OF" 2>"$log" >/dev/null \
      || { echo "run $r of $b failed:"; tail -3 "$log"; exit 1; }
    e=$(date +%s.%N)
    gate=$(grep -o "output scanned ms=[0-9]*\|input values looked up ms=[0-9]*" "$log" | tr '\n' ' ')
    stages=$(python3 -c "
import json, sys
s = json.load(open(sys.argv[1]))['stages_ms']
print(' '.join(f'{k}={v}' for k, v in sorted(s.items())))" "$out/current/_manifest.json")
    printf '%s %s %.2f s  %s  %s\n' "$r" "$b" "$(echo "$e - $s" | bc)" "$stages" "$gate"
  done
done
