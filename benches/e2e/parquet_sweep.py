#!/usr/bin/env python3
"""Sweep of the output Parquet settings: zstd level, row-group size, dictionary encoding.

For each setting, `anonymizer bench-copy` writes the published input columns of the
export with the run's chunking (the transform's writer, without the rules) and this
script records the copy's wall time and the bytes written, then times a reader: DuckDB
scanning every column of the transactions copy and a filtered aggregate (what an analyst's
query does). Settings are alternated over the repetitions and medians reported.

    python3 benches/e2e/parquet_sweep.py --work /tmp/anonymizer-e2e --customers 1000000

Needs an export made by bench.py (WORK/data-N) and its venv (WORK/venv, with DuckDB).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = [
    ("default (zstd 1, 1M rows, dictionary)", []),
    ("zstd 3", ["--zstd-level", "3"]),
    ("zstd 6", ["--zstd-level", "6"]),
    ("zstd 9", ["--zstd-level", "9"]),
    ("row groups of 128k rows", ["--row-group-rows", "131072"]),
    ("no dictionary", ["--no-dictionary"]),
]


def size_of(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*.parquet"))


def read_time(python, folder):
    code = f"""
import duckdb, time
con = duckdb.connect()
con.execute("SET threads = 2")
t = time.time()
con.execute("SELECT COUNT(*), COUNT(DISTINCT customer_id), SUM(amount) FROM read_parquet('{folder}/transactions/*.parquet')").fetchall()
con.execute("SELECT country, currency, COUNT(*) FROM read_parquet('{folder}/transactions/*.parquet') WHERE country IN ('DE', 'NL') GROUP BY ALL").fetchall()
print(time.time() - t)
"""
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default=os.environ.get("E2E_WORK", "/tmp/anonymizer-e2e"))
    ap.add_argument("--customers", type=int, default=1000000)
    ap.add_argument("--bin", default="target/release/anonymizer")
    ap.add_argument("--reps", type=int, default=2)
    args = ap.parse_args()
    work = Path(args.work)
    policy = work / "policies" / "same-job.toml"
    python = str(work / "venv" / "bin" / "python")
    if not policy.exists():
        sys.exit(f"{policy} is missing: run bench.py --work {work} first")
    text = policy.read_text()
    if f"data-{args.customers}" not in text:
        sys.exit(f"{policy} is not for {args.customers} customers: run bench.py with it first")
    results = {name: {"write": [], "read": [], "bytes": 0} for name, _ in SETTINGS}
    for rep in range(args.reps):
        order = SETTINGS[rep % len(SETTINGS):] + SETTINGS[: rep % len(SETTINGS)]
        for name, flags in order:
            out = work / "sweep-out"
            shutil.rmtree(out, ignore_errors=True)
            t = time.time()
            subprocess.run([args.bin, "bench-copy", "--config", str(policy), "--out", str(out)]
                           + flags, check=True, capture_output=True)
            w = time.time() - t
            r = read_time(python, out)
            results[name]["write"].append(w)
            results[name]["read"].append(r)
            results[name]["bytes"] = size_of(out)
            print(f"rep {rep + 1} {name:40s} write {w:6.2f} s  read {r:5.2f} s  "
                  f"{results[name]['bytes'] / 2**20:8.1f} MiB", flush=True)
    shutil.rmtree(work / "sweep-out", ignore_errors=True)
    print()
    print("| setting | write s (median) | DuckDB read s (median) | MiB |")
    print("| --- | ---: | ---: | ---: |")
    for name, _ in SETTINGS:
        r = results[name]
        print(f"| {name} | {statistics.median(r['write']):.2f} | "
              f"{statistics.median(r['read']):.2f} | {r['bytes'] / 2**20:.1f} |")
    (work / f"parquet-sweep-{args.customers}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
