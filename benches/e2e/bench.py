#!/usr/bin/env python3
"""End-to-end benchmark: anonymizer vs the same job in DuckDB vs a bare Parquet copy.

See README.md next to this file. In short:

    python3 benches/e2e/bench.py --customers 20000 --reps 3

1. generates an export (`anonymizer generate`), cached in WORK/data-N (`--files F`: F files
   per table, cached in WORK/data-N-fF);
2. correctness: runs anonymizer and DuckDB with small-cell suppression off (k = 1) and
   checks that the four aggregate tables agree row for row, exactly; then (after the
   timed runs) compares the k-suppressed outputs cell by cell;
3. timed: alternates, rep after rep, anonymizer (the same job as DuckDB: no k-anonymity
   step), the DuckDB job, the bare DataFusion copy (`anonymizer bench-copy`), a bare
   DuckDB copy, and anonymizer with the full sample policy (k-anonymity included); each a
   child process under /usr/bin/time -v (wall time, peak RSS);
4. prints the medians and the ratios, and writes them as JSON/Markdown to WORK.

Only the standard library is needed to start: the script creates WORK/venv (python3 -m
venv; pip install duckdb psutil) and re-runs itself there.
"""

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SQL_TEMPLATE = HERE / "duckdb_job.sql"
AGGREGATES = ["subscriptions_monthly", "cohort_retention", "revenue_monthly", "mrr_monthly"]
AGG_KEYS = {
    "subscriptions_monthly": ["month", "country"],
    "cohort_retention": ["cohort_month", "months_since"],
    "revenue_monthly": ["month", "country", "currency", "offer_type"],
    "mrr_monthly": ["month", "country", "currency"],
}
# A fixed benchmark key (not a secret: synthetic data). Not all bytes equal, as anonymizer
# requires.
DEFAULT_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0"
ENGINES = ["anonymizer", "duckdb", "df-copy", "duckdb-copy", "anonymizer-full"]
# The versions the results in RESULTS.md were measured with, pinned so that a new DuckDB
# release changes neither the timings nor the agreement check behind one's back.
VENV_PACKAGES = ["duckdb==2.0.1", "psutil==7.2.2"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------
# Environment


def ensure_venv(args):
    """Re-executes this script in WORK/venv (or --venv) with the pinned packages, creating
    the virtualenv once; pip then installs only what is missing or of another version
    (a venv cut short, or one made for an earlier pin)."""
    try:
        import duckdb  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("E2E_IN_VENV"):
        sys.exit(f"duckdb is not importable from {sys.executable}")
    venv = Path(args.venv) if args.venv else Path(args.work) / "venv"
    py = venv / "bin" / "python"
    if not py.exists():
        log(f"creating {venv} (python3 -m venv; pip install {' '.join(VENV_PACKAGES)})")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    *VENV_PACKAGES], check=True)
    env = dict(os.environ, E2E_IN_VENV="1")
    os.execve(str(py), [str(py), str(Path(__file__).resolve())] + sys.argv[1:], env)


def find_binary(arg):
    b = Path(arg)
    if not b.is_absolute():
        b = REPO / b
    if b.exists():
        return b
    log(f"{b} missing: cargo build --release")
    subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    if b.exists():
        return b
    # With CARGO_TARGET_DIR (or build.target-dir) the binary lands elsewhere.
    r = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=REPO,
                       capture_output=True, text=True)
    if r.returncode == 0:
        built = Path(json.loads(r.stdout)["target_directory"]) / "release" / "anonymizer"
        if built.exists():
            return built
    sys.exit(f"no binary at {b} after cargo build --release; pass --bin")


def has_bench_copy(binary):
    r = subprocess.run([str(binary), "bench-copy", "--help"], capture_output=True, text=True)
    return r.returncode == 0


def machine():
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
            mem = f"{kb / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1).strip() if m else ""
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "ram": mem, "cpu": cpu}


# ---------------------------------------------------------------------------------------
# Inputs and policies


def generate(binary, data, customers, seed, files=None):
    if (data / ".complete").exists():
        log(f"export {data} exists (delete it to regenerate)")
        return
    shutil.rmtree(data, ignore_errors=True)
    log(f"generating {customers} customers into {data}")
    t = time.perf_counter()
    cmd = [str(binary), "-q", "generate", "--out", str(data), "--customers", str(customers),
           "--seed", str(seed)]
    if files:
        cmd += ["--files", str(files)]
    subprocess.run(cmd, check=True)
    log(f"  generated in {time.perf_counter() - t:.1f} s")
    (data / ".complete").write_text("ok\n")


def write_policy(template, dest, data, out, k=None, kanon=True):
    """A copy of the sample policy with paths adjusted, [analytics] k set to `k`, and
    without quasi_identifiers / [k_anonymity] unless `kanon`."""
    text = template.read_text()
    text = re.sub(r'(?m)^output = ".*"', f'output = "{out}"', text)
    text = re.sub(r'(?m)^input = "[^"]*customers"', f'input = "{data}/customers"', text)
    text = re.sub(r'(?m)^input = "[^"]*transactions"', f'input = "{data}/transactions"', text)
    if not kanon:
        text = re.sub(r"(?m)^quasi_identifiers = .*\n", "", text)
        text = re.sub(r"(?ms)^\[k_anonymity\]\n.*?(?=^\[|^#|\Z)", "", text)
    if k is not None:
        text = re.sub(r"(?ms)(^\[analytics\]\n(?:.*\n)*?)^k = \d+", rf"\g<1>k = {k}", text)
    dest.write_text(text)
    return dest


def policy_k(template):
    import tomllib
    return int(tomllib.loads(template.read_text()).get("analytics", {}).get("k", 10))


def kept_columns(policy):
    """Per table, the input columns a run publishes (what bench-copy copies)."""
    import tomllib
    p = tomllib.loads(Path(policy).read_text())
    return {t: [c for c, r in v["columns"].items() if r != "drop"] for t, v in p["tables"].items()}


def as_of_of(data):
    import duckdb
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    d = con.execute("SELECT CAST(MAX(transaction_at) AS DATE) FROM "
                    f"read_parquet('{data}/transactions/*.parquet')").fetchall()[0][0]
    return d.isoformat()


# ---------------------------------------------------------------------------------------
# The DuckDB job


def render_sql(data, out, key, as_of, k, threads, raw_keys=False):
    as_of_d = dt.date.fromisoformat(as_of)
    end = as_of_d + dt.timedelta(days=1)
    last_month = end.year * 12 + end.month - 1 - 1
    glob = lambda t: f"'{data}/{t}/*.parquet'"  # noqa: E731
    sub = {
        "THREADS": str(threads),
        "PRESERVE_ORDER": "true",
        "KEY": key,
        "AS_OF": as_of,
        "END": f"{end.isoformat()} 00:00:00",
        "LAST_MONTH": str(last_month),
        "K": str(k),
        "CUSTOMERS": glob("customers"),
        "TRANSACTIONS": glob("transactions"),
        "OUT": str(out),
        "EVENT_CUSTOMER": "CAST(customer_id AS VARCHAR)" if raw_keys
        else "kh(CAST(customer_id AS VARCHAR))",
        "EVENT_SUBSCRIPTION": "nullif(trim(subscription_id), '')" if raw_keys
        else "kh(nullif(trim(subscription_id), ''))",
        "CUSTOMER_KEY": "CAST(customer_id AS VARCHAR)" if raw_keys
        else "kh(CAST(customer_id AS VARCHAR))",
    }
    sql = SQL_TEMPLATE.read_text()
    for name, v in sub.items():
        sql = sql.replace("{{" + name + "}}", v)
    left = re.findall(r"\{\{[A-Z_]+\}\}", sql)
    if left:
        sys.exit(f"unfilled placeholders in {SQL_TEMPLATE}: {left}")
    return sql


def statements(sql):
    """Splits on lines ending with ';' (the file's convention), dropping comment-only
    chunks."""
    out, cur = [], []
    for line in sql.splitlines():
        cur.append(line)
        if line.rstrip().endswith(";") and not line.lstrip().startswith("--"):
            s = "\n".join(cur).strip()
            if any(ln.strip() and not ln.strip().startswith("--") for ln in s.splitlines()):
                out.append(s)
            cur = []
    return out


def duckdb_exec(sql_file, out, timings_file):
    """Child process: runs the rendered SQL, one statement at a time."""
    import duckdb
    out = Path(out)
    for t in ["customers", "transactions"] + AGGREGATES:
        (out / t).mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    timings = []
    for s in statements(Path(sql_file).read_text()):
        t = time.perf_counter()
        con.execute(s)
        ms = (time.perf_counter() - t) * 1000
        m = re.search(r"TO '[^']*/([a-z_]+)/part-00000\.parquet'", s)
        if m:
            timings.append((m.group(1), round(ms)))
    Path(timings_file).write_text(json.dumps(dict(timings)))


def duckdb_copy_exec(data, out, columns_json, threads):
    """Child process: bare Parquet-to-Parquet copy of the published input columns."""
    import duckdb
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    for t, cols in json.loads(columns_json).items():
        (Path(out) / t).mkdir(parents=True, exist_ok=True)
        sel = ", ".join(f'"{c}"' for c in cols)
        con.execute(f"COPY (SELECT {sel} FROM read_parquet('{data}/{t}/*.parquet')) "
                    f"TO '{out}/{t}/part-00000.parquet' "
                    "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1, "
                    "ROW_GROUP_SIZE 1048576)")


# ---------------------------------------------------------------------------------------
# Measuring


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


def measured(cmd, env=None, label=""):
    """Runs cmd under /usr/bin/time -v; returns (wall s, peak RSS MiB, CPU s = user +
    system)."""
    tfile = Path(os.environ.get("TMPDIR", "/tmp")) / f"e2e-time-{os.getpid()}.txt"
    full = ["/usr/bin/time", "-v", "-o", str(tfile)] + [str(c) for c in cmd]
    t = time.perf_counter()
    r = subprocess.run(full, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        log(r.stdout[-3000:], r.stderr[-3000:])
        sys.exit(f"{label} failed (exit {r.returncode}): {' '.join(map(str, cmd))}")
    text = tfile.read_text()
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    cpu = sum(float(re.search(rf"{k} time \(seconds\): ([0-9.]+)", text).group(1))
              for k in ("User", "System"))
    tfile.unlink()
    return wall, rss_kb / 1024, cpu


class Runner:
    def __init__(self, args, binary, data, work):
        self.args, self.binary, self.data, self.work = args, binary, data, work
        self.env = dict(os.environ, ANONYMIZER_KEY=args.key)
        self.py = sys.executable

    def anonymizer(self, policy, out):
        shutil.rmtree(out, ignore_errors=True)
        w, rss, cpu = measured([self.binary, "-q", "run", "--config", policy, "--as-of",
                                self.args.as_of, "--out", out], self.env, "anonymizer run")
        m = json.loads((Path(out) / "current" / "_manifest.json").read_text())
        return w, rss, cpu, m.get("stages_ms", {})

    def duckdb(self, k, out, raw_keys=False):
        shutil.rmtree(out, ignore_errors=True)
        sql = render_sql(self.data, out, self.args.key, self.args.as_of, k,
                         self.args.threads, raw_keys)
        sql_file = self.work / f"duckdb_job.k{k}{'.raw' if raw_keys else ''}.sql"
        sql_file.write_text(sql)
        tfile = self.work / "duckdb_timings.json"
        w, rss, cpu = measured([self.py, Path(__file__).resolve(), "_duckdb", sql_file, out,
                                tfile], self.env, "duckdb job")
        return w, rss, cpu, json.loads(tfile.read_text())

    def df_copy(self, policy, out):
        shutil.rmtree(out, ignore_errors=True)
        w, rss, cpu = measured([self.binary, "-q", "bench-copy", "--config", policy, "--out",
                                out], self.env, "bench-copy")
        return w, rss, cpu, {}

    def duckdb_copy(self, policy, out):
        shutil.rmtree(out, ignore_errors=True)
        cols = json.dumps(kept_columns(policy))
        w, rss, cpu = measured([self.py, Path(__file__).resolve(), "_duckdb_copy", self.data,
                                out, cols, self.args.threads], self.env, "duckdb copy")
        return w, rss, cpu, {}


# ---------------------------------------------------------------------------------------
# Comparing


def compare_exact(anon_dir, duck_dir):
    """k = 1 outputs: every row of every aggregate equal (EXCEPT ALL both ways)."""
    import duckdb
    con = duckdb.connect()
    ok = True
    rows = []
    for t in AGGREGATES:
        a = f"read_parquet('{anon_dir}/{t}/*.parquet')"
        d = f"read_parquet('{duck_dir}/{t}/*.parquet')"
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {a}").fetchall()]
        dcols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {d}").fetchall()]
        if cols != dcols:
            log(f"  {t}: columns differ: {cols} vs {dcols}")
            ok = False
            rows.append((t, None, None, None, None, "columns differ"))
            continue
        sel = ", ".join(f'"{c}"' for c in cols)
        na = con.execute(f"SELECT COUNT(*) FROM {a}").fetchall()[0][0]
        nd = con.execute(f"SELECT COUNT(*) FROM {d}").fetchall()[0][0]
        only_a = con.execute(f"SELECT {sel} FROM {a} EXCEPT ALL SELECT {sel} FROM {d}").fetchall()
        only_d = con.execute(f"SELECT {sel} FROM {d} EXCEPT ALL SELECT {sel} FROM {a}").fetchall()
        same = na == nd and not only_a and not only_d
        ok &= same
        rows.append((t, na, nd, len(only_a), len(only_d), "identical" if same else "DIFFER"))
        if not same:
            for r in only_a[:5]:
                log(f"    only anonymizer: {r}")
            for r in only_d[:5]:
                log(f"    only duckdb:     {r}")
    return ok, rows


TOKEN_COLUMNS = {"customer_id", "email", "transaction_id", "customer_email", "subscription_id"}


def compare_records(anon_dir, duck_dir):
    """Informational: per column of the record-level tables, the share of rows (in file
    order) where both engines wrote the same value. Token columns differ by design (keyed
    BLAKE3 vs keyed SHA-256)."""
    import duckdb
    con = duckdb.connect()
    out = []
    for t in ["customers", "transactions"]:
        a = f"(SELECT * FROM read_parquet('{anon_dir}/{t}/*.parquet'))"
        d = f"(SELECT * FROM read_parquet('{duck_dir}/{t}/*.parquet'))"
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {a}").fetchall()]
        dcols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {d}").fetchall()]
        if cols != dcols:
            out.append((t, "columns differ", f"{cols} vs {dcols}"))
            continue
        q = ", ".join(f'COUNT(*) FILTER (WHERE a."{c}" IS NOT DISTINCT FROM d."{c}")'
                      for c in cols)
        r = con.execute(f"SELECT COUNT(*), {q} FROM {a} a POSITIONAL JOIN {d} d").fetchall()[0]
        n = r[0]
        for c, same in zip(cols, r[1:]):
            note = "token: different keyed hash by design" if c in TOKEN_COLUMNS else ""
            out.append((t, c, f"{same}/{n}", note))
    return out


def compare_suppressed(anon_dir, duck_dir):
    """Normal-k outputs, cell by cell on the key columns: a value both publish must be
    equal; DuckDB (primary rule only) may publish a cell anonymizer withheld (secondary
    suppression), never the reverse."""
    import duckdb
    con = duckdb.connect()
    out = []
    ok = True
    for t in AGGREGATES:
        a = f"read_parquet('{anon_dir}/{t}/*.parquet')"
        d = f"read_parquet('{duck_dir}/{t}/*.parquet')"
        keys = AGG_KEYS[t]
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {a}").fetchall()]
        vals = [c for c in cols if c not in keys and c != "suppressed"]
        on = " AND ".join(f'a."{k}" IS NOT DISTINCT FROM d."{k}"' for k in keys)
        na, nd = (con.execute(f"SELECT COUNT(*) FROM {x}").fetchall()[0][0] for x in (a, d))
        nj = con.execute(f"SELECT COUNT(*) FROM {a} a JOIN {d} d ON {on}").fetchall()[0][0]
        parts = []
        for c in vals:
            parts += [
                f'COUNT(*) FILTER (WHERE a."{c}" IS NOT NULL AND d."{c}" IS NOT NULL '
                f'AND a."{c}" = d."{c}")',
                f'COUNT(*) FILTER (WHERE a."{c}" IS NULL AND d."{c}" IS NOT NULL)',
                f'COUNT(*) FILTER (WHERE a."{c}" IS NOT NULL AND d."{c}" IS NULL)',
                f'COUNT(*) FILTER (WHERE a."{c}" IS NOT NULL AND d."{c}" IS NOT NULL '
                f'AND a."{c}" <> d."{c}")',
                f'COUNT(*) FILTER (WHERE a."{c}" IS NULL AND d."{c}" IS NULL)',
            ]
        r = con.execute(f"SELECT {', '.join(parts)} FROM {a} a JOIN {d} d ON {on}").fetchall()[0]
        equal = sum(r[0::5])
        secondary = sum(r[1::5])
        duck_only_null = sum(r[2::5])
        mismatch = sum(r[3::5])
        both_null = sum(r[4::5])
        good = na == nd == nj and duck_only_null == 0 and mismatch == 0
        ok &= good
        out.append({"table": t, "rows": na, "rows_duckdb": nd, "cells_equal": equal,
                    "withheld_both": both_null, "withheld_by_anonymizer_only": secondary,
                    "withheld_by_duckdb_only": duck_only_null, "different": mismatch,
                    "ok": good})
    return ok, out


# ---------------------------------------------------------------------------------------
# Report


def med(xs):
    return statistics.median(xs) if xs else None


def fmt(x, p=1):
    return "n/a" if x is None else f"{x:.{p}f}"


def report(results, stages, duck_stmts, meta):
    lines = []
    lines.append(f"customers={meta['customers']}  transactions={meta['transactions']}  "
                 f"input={meta['input_mb']:.0f} MiB  as-of={meta['as_of']}  "
                 f"k={meta['k']}  reps={meta['reps']}  threads={meta['threads']}")
    lines.append(f"machine: nproc={meta['machine']['nproc']} RAM={meta['machine']['ram']} "
                 f"{meta['machine']['cpu']}; duckdb {meta['duckdb_version']} (python + duckdb "
                 f"idle: {meta['python_duckdb_baseline_rss_mib']} MiB RSS); anonymizer binary "
                 f"built {meta['binary_mtime']}")
    if meta["debug_build"]:
        lines.append("NOTE: the anonymizer binary is a debug build (its path has a `debug` "
                     "folder): its times and ratios say nothing about speed")
    lines.append("")
    lines.append("| engine | wall s (median) | wall s (all reps) | peak RSS MiB (median) "
                 "| CPU s user+sys (median) | load avg before (median) |")
    lines.append("|---|---:|---|---:|---:|---:|")
    for e in ENGINES:
        rs = results.get(e)
        if not rs:
            lines.append(f"| {e} | n/a | not run | n/a | n/a | n/a |")
            continue
        walls = [x[0] for x in rs]
        lines.append(f"| {e} | {fmt(med(walls), 2)} | {', '.join(fmt(w, 2) for w in walls)} "
                     f"| {fmt(med([x[1] for x in rs]), 0)} | {fmt(med([x[2] for x in rs]), 1)} "
                     f"| {fmt(med([x[3] for x in rs if x[3] is not None]), 2)} |")
    lines.append("")

    def ratio(a, b, i):
        if not results.get(a) or not results.get(b):
            return None
        return med([x[i] for x in results[a]]) / med([x[i] for x in results[b]])

    lines.append("| ratio (medians) | wall | peak RSS | CPU |")
    lines.append("|---|---:|---:|---:|")
    for a, b in [("anonymizer", "duckdb"), ("anonymizer", "df-copy"),
                 ("duckdb", "duckdb-copy"), ("df-copy", "duckdb-copy"),
                 ("anonymizer-full", "anonymizer"), ("anonymizer-full", "duckdb")]:
        lines.append(f"| {a} / {b} | {fmt(ratio(a, b, 0), 2)} | {fmt(ratio(a, b, 1), 2)} "
                     f"| {fmt(ratio(a, b, 2), 2)} |")
    lines.append("")
    for e in ("anonymizer", "anonymizer-full"):
        if stages.get(e):
            keys = sorted({k for s in stages[e] for k in s})
            parts = [f"{k}={med([s.get(k, 0) for s in stages[e]]):.0f}" for k in keys]
            lines.append(f"{e} stages_ms (median): " + " ".join(parts))
    if duck_stmts:
        keys = list(duck_stmts[0].keys())
        parts = [f"{k}={med([s.get(k, 0) for s in duck_stmts]):.0f}" for k in keys]
        lines.append("duckdb statements ms (median): " + " ".join(parts))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_duckdb":
        return duckdb_exec(*sys.argv[2:5])
    if len(sys.argv) > 1 and sys.argv[1] == "_duckdb_copy":
        return duckdb_copy_exec(*sys.argv[2:6])

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000,
                    help="export size (about 20 transactions each); default 1000000")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--files", type=int, default=None,
                    help="files per table of the generated export (default: the "
                         "generator's); many small files, as a warehouse unloads them")
    ap.add_argument("--reps", type=int, default=3, help="timed repetitions per engine")
    ap.add_argument("--bin", default="target/release/anonymizer",
                    help="anonymizer binary (relative to the repo); built if missing")
    ap.add_argument("--policy", default=str(REPO / "anonymizer.toml"),
                    help="the policy to copy (default: the sample anonymizer.toml)")
    ap.add_argument("--work", default=os.environ.get("E2E_WORK", "/tmp/anonymizer-e2e"),
                    help="folder for exports, outputs, policies and the venv")
    ap.add_argument("--venv", default=None, help="virtualenv (default WORK/venv)")
    ap.add_argument("--as-of", default=None,
                    help="YYYY-MM-DD; default: the date of the latest transaction")
    ap.add_argument("--k", type=int, default=None,
                    help="[analytics] k of the timed runs (default: the policy's)")
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads (SET threads)")
    ap.add_argument("--key", default=os.environ.get("ANONYMIZER_KEY", DEFAULT_KEY),
                    help="64 hex characters (default: $ANONYMIZER_KEY, else a fixed "
                         "benchmark key)")
    ap.add_argument("--engines", default=",".join(ENGINES),
                    help=f"timed engines, comma-separated, from {','.join(ENGINES)}")
    ap.add_argument("--no-check", action="store_true", help="skip the k = 1 agreement check")
    ap.add_argument("--check-only", action="store_true", help="only the agreement check")
    ap.add_argument("--duckdb-raw-keys", action="store_true",
                    help="DuckDB aggregates group by raw ids instead of keyed tokens "
                         "(record-level tables are still tokenized)")
    args = ap.parse_args()
    # Checked before anything is generated or installed.
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        ap.error(f"--engines: {'unknown ' + ', '.join(unknown) if unknown else 'none given'}; "
                 f"choose from {','.join(ENGINES)}")
    if args.reps < 1 or args.customers < 1:
        ap.error("--reps and --customers must be at least 1")

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    args.work = str(work)
    ensure_venv(args)
    import duckdb

    binary = find_binary(args.bin)
    template = Path(args.policy).resolve()
    k = args.k if args.k is not None else policy_k(template)
    if "df-copy" in engines and not has_bench_copy(binary):
        log(f"{binary} has no bench-copy subcommand yet: df-copy is skipped")
        engines.remove("df-copy")

    suffix = f"{args.customers}" + (f"-f{args.files}" if args.files else "")
    data = work / f"data-{suffix}"
    generate(binary, data, args.customers, args.seed, args.files)
    args.as_of = args.as_of or as_of_of(data)
    ntx = duckdb.connect().execute(
        f"SELECT COUNT(*) FROM read_parquet('{data}/transactions/*.parquet')").fetchall()[0][0]
    input_mb = sum(f.stat().st_size for f in data.rglob("*.parquet")) / 2**20
    log(f"binary {binary}; as-of {args.as_of}; {args.customers} customers, {ntx} transactions")

    pol = work / "policies"
    pol.mkdir(exist_ok=True)
    outs = work / "out"
    p_same = write_policy(template, pol / "same-job.toml", data, outs / "anonymizer", k, False)
    p_full = write_policy(template, pol / "full.toml", data, outs / "anonymizer-full", k, True)
    p_k1 = write_policy(template, pol / "same-job-k1.toml", data, outs / "check-anonymizer",
                        1, False)
    run = Runner(args, binary, data, work)
    meta = {"customers": args.customers, "transactions": ntx, "input_mb": input_mb,
            "as_of": args.as_of, "k": k, "reps": args.reps, "threads": args.threads,
            "machine": machine(), "binary": str(binary),
            "binary_mtime": dt.datetime.fromtimestamp(binary.stat().st_mtime, dt.timezone.utc)
            .isoformat(timespec="seconds"),
            "debug_build": "debug" in binary.parts,
            "duckdb_version": duckdb.__version__,
            "python_duckdb_baseline_rss_mib": round(measured(
                [sys.executable, "-c", "import duckdb; duckdb.connect().execute('SELECT 1')"],
                label="baseline")[1]),
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}

    check = None
    if not args.no_check:
        log("check: anonymizer and DuckDB with k = 1 (no suppression)")
        run.anonymizer(p_k1, outs / "check-anonymizer")
        run.duckdb(1, outs / "check-duckdb", args.duckdb_raw_keys)
        ok, rows = compare_exact(outs / "check-anonymizer" / "current", outs / "check-duckdb")
        print("\nAgreement with k = 1 (exact, every row of every aggregate):")
        print("| table | rows anonymizer | rows duckdb | only in anonymizer | only in duckdb | result |")
        print("|---|---:|---:|---:|---:|---|")
        for r in rows:
            print("| " + " | ".join(str(x) for x in r) + " |")
        rec = compare_records(outs / "check-anonymizer" / "current", outs / "check-duckdb")
        print("\nRecord-level tables, same value in the same row (informational):")
        print("| table | column | same | note |")
        print("|---|---|---:|---|")
        for r in rec:
            print("| " + " | ".join(str(x) for x in r) + " |")
        check = {"ok": ok, "tables": rows, "records": rec}
        if not ok:
            print("AGREEMENT CHECK FAILED")
        if args.check_only:
            sys.exit(0 if ok else 1)

    results, stages, duck_stmts = {e: [] for e in engines}, {}, []
    for rep in range(args.reps):
        order = engines[rep % len(engines):] + engines[:rep % len(engines)]
        for e in order:
            load = loadavg()
            if e == "anonymizer":
                w, r, c, s = run.anonymizer(p_same, outs / "anonymizer")
                stages.setdefault(e, []).append(s)
            elif e == "anonymizer-full":
                w, r, c, s = run.anonymizer(p_full, outs / "anonymizer-full")
                stages.setdefault(e, []).append(s)
            elif e == "duckdb":
                w, r, c, s = run.duckdb(k, outs / "duckdb", args.duckdb_raw_keys)
                duck_stmts.append(s)
            elif e == "df-copy":
                w, r, c, _ = run.df_copy(p_same, outs / "df-copy")
            elif e == "duckdb-copy":
                w, r, c, _ = run.duckdb_copy(p_same, outs / "duckdb-copy")
            else:
                sys.exit(f"unknown engine {e}")
            results[e].append((w, r, c, load))
            log(f"rep {rep + 1}/{args.reps} {e:16s} {w:8.2f} s  {r:8.0f} MiB  cpu {c:7.1f} s  "
                f"load before {load}")

    supp, sok = None, True
    if "anonymizer" in engines and "duckdb" in engines:
        sok, supp = compare_suppressed(outs / "anonymizer" / "current", outs / "duckdb")
        print(f"\nk = {k} outputs, cell by cell (anonymizer: primary + secondary suppression; "
              "DuckDB: primary only):")
        print("| table | rows | cells equal | withheld by both | withheld by anonymizer only "
              "| withheld by DuckDB only | different | ok |")
        print("|---|---:|---:|---:|---:|---:|---:|---|")
        for s in supp:
            print(f"| {s['table']} | {s['rows']} | {s['cells_equal']} | {s['withheld_both']} | "
                  f"{s['withheld_by_anonymizer_only']} | {s['withheld_by_duckdb_only']} | "
                  f"{s['different']} | {'yes' if s['ok'] else 'NO'} |")

    text = report(results, stages, duck_stmts, meta)
    print("\n" + text)
    res = work / f"results-{suffix}.json"
    res.write_text(json.dumps({"meta": meta, "check": check, "suppression_check": supp,
                               "results": results, "stages_ms": stages,
                               "duckdb_statements_ms": duck_stmts, "table": text}, indent=1,
                              default=str))
    log(f"\nwrote {res}")
    if check is not None and not check["ok"]:
        sys.exit(1)
    if not sok:
        print("SUPPRESSED OUTPUTS DISAGREE")
        sys.exit(1)


if __name__ == "__main__":
    main()
