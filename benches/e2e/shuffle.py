#!/usr/bin/env python3
"""shuffle.py: a copy of a benchmark policy whose transactions are the same rows in a
pseudo-random order, for timing the run on an export that is not sorted by customer.

    WORK/venv/bin/python benches/e2e/shuffle.py WORK/policies/same-job.toml

`anonymizer generate` writes transactions sorted by customer (about 20 in a row), and
every work-once-per-run-of-equal-values shortcut (tokens, rules, the aggregates' ids, the
gate's lookup) is at its best on that order. Warehouse exports are often in another
order; this measures the run on the worst one.

Writes, beside POLICY's transactions folder (INPUT):
  - INPUT-shuffled/: INPUT's rows ordered by DuckDB's hash(transaction_id) (a fixed,
    pseudo-random order), zstd, row groups of 1,048,576 rows, files of about 400 MB;
    kept if it already exists (delete it to rewrite it);
and beside POLICY:
  - NAME-shuffled.toml (NAME: POLICY's file name without .toml): POLICY reading
    INPUT-shuffled, with its own `output` folder (`...-shuffled`).

Then time it beside the bare copy (both read the same files):

    benches/e2e/ab.sh WORK/policies/same-job-shuffled.toml 2 target/release/anonymizer copy

Sorting 100M transactions takes DuckDB about 4.5 minutes on 2 cores and up to 16 GB
(it spills to INPUT-shuffled.tmp). Needs the duckdb module (bench.py's WORK/venv has it).
"""
import re
import shutil
import sys
import time
import tomllib
from pathlib import Path


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    policy = Path(sys.argv[1]).resolve()
    text = policy.read_text()
    cfg = tomllib.loads(text)
    table = cfg["tables"].get("transactions")
    if table is None:
        sys.exit(f"{policy}: no [tables.transactions]")
    raw = table["input"]
    src = Path(raw) if Path(raw).is_absolute() else policy.parent / raw
    if not src.is_dir() or not list(src.glob("*.parquet")):
        sys.exit(f"{src}: not a folder of Parquet files")
    dst = src.parent / f"{src.name}-shuffled"

    if not dst.exists():
        import duckdb

        tmp = src.parent / f"{src.name}-shuffled.tmp"
        part = src.parent / f"{src.name}-shuffled.part"
        shutil.rmtree(part, ignore_errors=True)
        con = duckdb.connect()
        con.execute("SET threads = 2")
        con.execute("SET memory_limit = '16GB'")
        con.execute(f"SET temp_directory = '{tmp}'")
        con.execute("SET preserve_insertion_order = false")
        start = time.time()
        con.execute(
            f"COPY (SELECT * FROM read_parquet('{src}/*.parquet') ORDER BY hash(transaction_id)) "
            f"TO '{part}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1048576, "
            "FILE_SIZE_BYTES '400MB')"
        )
        part.rename(dst)
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"shuffled {src} into {dst} in {time.time() - start:.1f} s", file=sys.stderr)

    # Point only the transactions table at the shuffled copy: its `input` line is the
    # first one after [tables.transactions].
    head, sep, tail = text.partition("[tables.transactions]")
    tail = re.sub(r'(?m)^input = ".*"', lambda _: f'input = "{dst}"', tail, count=1)
    text = head + sep + tail
    text = re.sub(r'(?m)^output = "(.*)"', lambda m: f'output = "{m.group(1)}-shuffled"', text)
    out = policy.parent / f"{policy.stem}-shuffled.toml"
    out.write_text(text)
    print(out)


if __name__ == "__main__":
    main()
