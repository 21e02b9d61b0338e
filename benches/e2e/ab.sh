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
#
# A BINARY of `copy` runs the bare copy instead (`anonymizer bench-copy` of the policy's
# published input columns, by the binary named before it, into a temporary folder): the
# builds' ratios to the I/O floor, measured side by side.
set -euo pipefail
cfg=$1; reps=$2; shift 2
: "${AS_OF:=2025-12-31}"
: "${ANONYMIZER_KEY:=$(printf bench | sha256sum | cut -d' ' -f1)}"
export ANONYMIZER_KEY
out=$(sed -n 's/^output *= *"\(.*\)".*/\1/p' "$cfg")
log=$(mktemp)
copy_out=$(mktemp -d)
trap 'rm -f "$log"; rm -rf "$copy_out"' EXIT
for r in $(seq "$reps"); do
  prev=""
  for b in "$@"; do
    if [ "$b" = copy ]; then
      [ -n "$prev" ] || { echo "copy must follow a binary"; exit 2; }
      rm -rf "$copy_out/out"
      s=$(date +%s.%N)
      "$prev" -q bench-copy --config "$cfg" --out "$copy_out/out" >/dev/null 2>"$log" \
        || { echo "copy $r failed:"; tail -3 "$log"; exit 1; }
      e=$(date +%s.%N)
      printf '%s copy %.2f s\n' "$r" "$(echo "$e - $s" | bc)"
      continue
    fi
    prev=$b
    rm -rf "$out"
    s=$(date +%s.%N)
    ANONYMIZER_LOG=anonymizer=debug "$b" run --config "$cfg" --as-of "$AS_OF" 2>"$log" >/dev/null \
      || { echo "run $r of $b failed:"; tail -3 "$log"; exit 1; }
    e=$(date +%s.%N)
    gate=$(grep -o "output scanned ms=[0-9]*\|input values looked up ms=[0-9]*\|named rows read ms=[0-9]*\|names checked ms=[0-9]*" "$log" | tr '\n' ' ')
    stages=$(python3 -c "
import json, sys
s = json.load(open(sys.argv[1]))['stages_ms']
print(' '.join(f'{k}={v}' for k, v in sorted(s.items())))" "$out/current/_manifest.json")
    printf '%s %s %.2f s  %s  %s\n' "$r" "$b" "$(echo "$e - $s" | bc)" "$stages" "$gate"
  done
done
