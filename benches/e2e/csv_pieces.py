#!/usr/bin/env python3
"""csv_pieces.py: the same export as CSV files, run with its large files read in pieces
on every core (the default `csv_piece_bytes`) and whole (`csv_piece_bytes` past the
files' size: one core per file, as before pieces), alternated in one invocation with one
binary; checks that the two give the same aggregates (byte-identical files) and the same
record-level rows, and prints wall time, peak RSS, CPU time and the stages of each.

    python3 benches/e2e/csv_pieces.py --bin target/release/anonymizer \\
        --customers 50000 --reps 3 --work /tmp/csvp --venv ~/.cache/anonymizer-e2e-venv

The export is generated as Parquet (bench.py's generator, seed 42) and written to CSV by
DuckDB (installed into the virtualenv from PyPI); the policy is the sample policy
without k-anonymity (bench.py's same job), its inputs the two CSV files.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402


def csv_export(venv, data, csv_dir):
    """Every table of the Parquet export `data` as one CSV file with a header."""
    if (csv_dir / ".complete").exists():
        return
    csv_dir.mkdir(parents=True, exist_ok=True)
    py = Path(venv) / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
                   + bench.VENV_PACKAGES, check=True)
    script = "\n".join([
        "import duckdb",
        "c = duckdb.connect()",
        "c.execute('SET threads TO 2')",
    ] + [
        f"c.execute(\"COPY (SELECT * FROM read_parquet('{data}/{t}/*.parquet')) "
        f"TO '{csv_dir}/{t}.csv' (HEADER)\")"
        for t in ("customers", "transactions")
    ])
    subprocess.run([str(py), "-c", script], check=True)
    (csv_dir / ".complete").write_text("ok\n")


def policy(template, dest, csv_dir, out, piece_bytes):
    bench.write_policy(template, dest, csv_dir, out, None, False)
    text = dest.read_text()
    for t in ("customers", "transactions"):
        line = f'input = "{csv_dir}/{t}.csv"'
        text = text.replace(f'input = "{csv_dir}/{t}"', line)
        if piece_bytes:
            text = text.replace(line, f"{line}\ncsv_piece_bytes = {piece_bytes}")
    dest.write_text(text)
    return dest


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--customers", type=int, default=50000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", required=True)
    ap.add_argument("--venv", default=str(Path.home() / ".cache/anonymizer-e2e-venv"))
    ap.add_argument("--as-of", default="2025-12-31")
    ap.add_argument("--duckdb", action="store_true",
                    help="also time bench.py's DuckDB job on the same CSV files (its "
                         "read_parquet views read_csv instead; DuckDB sniffs the types, "
                         "so its results are not compared)")
    args = ap.parse_args()
    work = Path(args.work).resolve()
    data = work / f"data-{args.customers}"
    csv_dir = work / f"csv-{args.customers}"
    bench.generate(Path(args.bin).resolve(), data, args.customers, 42)
    csv_export(args.venv, data, csv_dir)
    for f in sorted(csv_dir.glob("*.csv")):
        bench.log(f"{f.name}: {f.stat().st_size / 1e6:.1f} MB")
    template = bench.REPO / "anonymizer.toml"
    (work / "policies").mkdir(exist_ok=True)
    variants = {
        "whole": policy(template, work / "policies/whole.toml", csv_dir, work / "out/whole",
                        1 << 40),
        "pieces": policy(template, work / "policies/pieces.toml", csv_dir,
                         work / "out/pieces", None),
    }
    env = dict(os.environ, ANONYMIZER_KEY=bench.DEFAULT_KEY)
    if args.duckdb:
        variants["duckdb"] = duckdb_sql(args, work, data, csv_dir)
    results = {v: [] for v in variants}
    manifests = {}
    for r in range(args.reps):
        for v, p in variants.items():
            out = work / "out" / v
            subprocess.run(["rm", "-rf", str(out)], check=True)
            if v == "duckdb":
                py = Path(args.venv) / "bin" / "python"
                w, rss, cpu = bench.measured([py, Path(bench.__file__).resolve(), "_duckdb", p,
                                              out, work / "duckdb_timings.json"], env, v)
                results[v].append((w, rss, cpu, {}))
                bench.log(f"rep {r + 1} duckdb: {w:.2f} s, {rss:.0f} MiB, {cpu:.2f} CPU s")
                continue
            w, rss, cpu = bench.measured([args.bin, "-q", "run", "--config", p, "--as-of",
                                          args.as_of, "--out", out], env, f"run ({v})")
            m = json.loads((out / "current" / "_manifest.json").read_text())
            manifests[v] = m
            results[v].append((w, rss, cpu, m.get("stages_ms", {})))
            bench.log(f"rep {r + 1} {v}: {w:.2f} s, {rss:.0f} MiB, {cpu:.2f} CPU s, "
                      f"stages {m.get('stages_ms', {})}")
    # The same outputs: aggregates byte for byte, record-level rows by count.
    a, b = manifests["whole"]["tables"], manifests["pieces"]["tables"]
    for t in a:
        if t in bench.AGGREGATES:
            assert [f["sha256"] for f in a[t]["files"]] == [f["sha256"] for f in b[t]["files"]], t
        assert sum(f["rows"] for f in a[t]["files"]) == sum(f["rows"] for f in b[t]["files"]), t
    for v, rs in results.items():
        med = lambda i: statistics.median(x[i] for x in rs)  # noqa: E731
        stages = {k: statistics.median(x[3].get(k, 0) for x in rs) for k in rs[0][3]}
        files = {t: len(manifests[v]["tables"][t]["files"])
                 for t in ("customers", "transactions")} if v in manifests else {}
        print(f"{v}: wall {med(0):.2f} s, peak RSS {med(1):.0f} MiB, CPU {med(2):.2f} s, "
              f"output files {files}, stages_ms {stages}")
    w = {v: statistics.median(x[0] for x in rs) for v, rs in results.items()}
    print(f"pieces / whole: {w['pieces'] / w['whole']:.2f}x wall "
          f"(medians of {args.reps} alternated runs); aggregates byte-identical")
    if "duckdb" in w:
        print(f"pieces / duckdb: {w['pieces'] / w['duckdb']:.2f}x wall")


def duckdb_sql(args, work, data, csv_dir):
    """bench.py's DuckDB job (the same suppression rule, keyed hashes) reading the CSV
    files: its two read_parquet views read_csv instead."""
    sql = bench.render_sql(data, work / "out" / "duckdb", bench.DEFAULT_KEY, args.as_of,
                           bench.policy_k(bench.REPO / "anonymizer.toml"), 2)
    for t in ("customers", "transactions"):
        parquet = f"read_parquet('{data}/{t}/*.parquet')"
        assert parquet in sql, parquet
        sql = sql.replace(parquet, f"read_csv('{csv_dir}/{t}.csv', header = true)")
    path = work / "duckdb_csv_job.sql"
    path.write_text(sql)
    return path


if __name__ == "__main__":
    main()
