#!/usr/bin/env python3
"""erasure_policy.py: a copy of a benchmark policy that honours erasure requests, for
timing the nightly run as it runs once customers have asked to be forgotten.

    python3 benches/e2e/erasure_policy.py WORK/policies/same-job.toml 200

writes, beside POLICY:
  - NAME-erasure-N.toml (NAME: POLICY's file name without .toml): POLICY with its own
    `output` folder (`...-erasure-N`) and an [erasure] section whose requests and ledger
    files sit beside it;
  - NAME-erasure-N-requests.jsonl: N requests for the emails of N customers of the policy's
    customers table (a fixed sample, seed 7), written with varied case and spaces as
    operators type them; every fourth request is a `delete`, the rest `anonymize`;
  - the ledger (NAME-erasure-N-ledger.json) is deleted, so the first run completes the
    requests and writes it, and every later run re-erases everyone in it (the steady
    state of a nightly job).

Then time it beside the policy without erasure (the ledger persists across runs):

    benches/e2e/ab.sh WORK/policies/same-job-erasure-200.toml 3 /tmp/anonymizer-before target/release/anonymizer

Needs the duckdb module (bench.py's WORK/venv has it):
WORK/venv/bin/python benches/e2e/erasure_policy.py ...
"""
import json
import re
import sys
import tomllib
from pathlib import Path


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    policy, n = Path(sys.argv[1]).resolve(), int(sys.argv[2])
    text = policy.read_text()
    cfg = tomllib.loads(text)
    customers = Path(cfg["tables"]["customers"]["input"])
    if not customers.is_absolute():
        customers = policy.parent / customers
    files = sorted(customers.glob("*.parquet")) if customers.is_dir() else [customers]
    if not files:
        sys.exit(f"{customers}: no Parquet files")
    email = cfg["tables"]["customers"].get("roles", {}).get("email", "email")

    import duckdb

    rows = duckdb.connect().execute(
        f"SELECT \"{email}\" FROM read_parquet(?) WHERE \"{email}\" IS NOT NULL "
        f"USING SAMPLE {n} ROWS (reservoir, 7) ORDER BY 1",
        [[str(f) for f in files]],
    ).fetchall()
    if len(rows) < n:
        sys.exit(f"{customers}: only {len(rows)} customers with an email")

    stem = policy.parent / f"{policy.stem}-erasure-{n}"
    requests = Path(f"{stem}-requests.jsonl")
    ledger = Path(f"{stem}-ledger.json")
    with requests.open("w") as f:
        for i, (e,) in enumerate(rows):
            typed = f" {e.upper()} " if i % 3 == 0 else e
            f.write(json.dumps({
                "request_id": f"bench-{i}",
                "email": typed,
                "received_at": "2025-12-01",
                "jurisdiction": "GDPR" if i % 2 else "CCPA",
                "kind": "delete" if i % 4 == 0 else "anonymize",
                "explained": True,
            }) + "\n")
    ledger.unlink(missing_ok=True)

    text = re.sub(r'(?m)^output = "(.*)"', lambda m: f'output = "{m.group(1)}-erasure-{n}"', text)
    text = re.sub(r"(?ms)^# \[erasure\]\n(?:#.*\n)*", "", text)
    if re.search(r"(?m)^\[erasure\]", text):
        sys.exit(f"{policy}: already has an [erasure] section")
    text += f'\n[erasure]\nrequests = "{requests}"\nledger = "{ledger}"\n'
    out = Path(f"{stem}.toml")
    out.write_text(text)
    print(out)


if __name__ == "__main__":
    main()
