#!/usr/bin/env python3
"""perf_stages.py: a `perf record --call-graph` profile of `anonymizer run`, by stage.

    perf record -F 99 --call-graph dwarf,32768 -o perf.data \
        target/release/anonymizer -q run --config POLICY --as-of 2025-12-31
    perf script -i perf.data -F comm,tid,ip,sym > perf.txt
    python3 benches/e2e/perf_stages.py perf.txt
    python3 benches/e2e/perf_stages.py --self-test   # what .ci/run checks

Each sample goes to the first stage whose function is on its call stack (so a stage
counts everything it called: reading, writing, zstd), and within the stage to the
first "part" found the same way. Samples without a usable stack (no frame of ours) are
"unattributed". Shares are of all samples, i.e. of the run's CPU time. The table in
BENCHMARKS.md, "What limits speed now", is this script's output with some parts added
up (zstd with the reading or writing it belongs to).
"""
import collections
import sys

# (name, a substring of a function on the stack); the first match wins, so the more
# specific come first.
STAGES = [
    ("gate: output scan", "verify::scan_file"),
    ("gate: input lookup", "verify::Probe::"),
    # The output scan's row-group reader, where `scan_file` is inlined into its caller
    # (release builds since 2026-12-04 showed it so: the scan fell to "gate: other").
    ("gate: output scan", "verify::read_row_group_dictionaries"),
    ("gate: other", "anonymizer::verify::"),
    ("aggregates, pass 1", "kernel::read_stream"),
    # part_file (a spilled part) and part (one in memory, or what part_file read).
    ("aggregates, pass 2", "kernel::Context::part"),
    ("aggregates: other", "anonymizer::analytics::"),
    ("k-anonymity", "anonymizer::kanon::"),
    ("transform", "run::FileJob::run"),
    ("input digests", "run::hash_input"),
    ("input checks", "anonymizer::checks::"),
    ("publish", "anonymizer::publish::"),
]
PARTS = [
    ("zstd compression", "ZSTD_compress"),
    ("zstd decompression", "ZSTD_decompress"),
    ("writing Parquet (without zstd)", "arrow_writer"),
    # The rules run inside DataFusion's read (a projection in the Parquet decoder), so
    # they come before reading; the gate and the aggregates call helpers of
    # `anonymizer::rules` too, which are their own work (TRANSFORM_ONLY).
    ("tokens", "pseudonymize"),
    ("rules", "anonymizer::rules::"),
    ("reading Parquet (without zstd)", "parquet::"),
    ("reading Parquet (without zstd)", "datafusion_datasource"),
    ("SHA-256", "sha2::"),
    ("page-cache copies", "_copy_to_iter"),
    ("page faults", "page_fault"),
]
TRANSFORM_ONLY = {"tokens", "rules"}


def samples(path):
    """Yields each sample's stack (innermost first) from `perf script` output."""
    stack, header = [], None
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if header is not None:
                    yield stack
                stack, header = [], None
            elif header is None:
                header = line
            else:
                stack.append(line.strip().split(" ", 1)[-1])
    if header is not None:
        yield stack


def first(table, stack, default, skip=()):
    for name, pattern in table:
        if name not in skip and any(pattern in frame for frame in stack):
            return name
    return default


def split(path):
    """(samples, stage -> count, stage -> part -> count) of a `perf script` file."""
    stages = collections.Counter()
    parts = collections.defaultdict(collections.Counter)
    n = 0
    for stack in samples(path):
        n += 1
        stage = first(STAGES, stack, "unattributed")
        stages[stage] += 1
        skip = () if stage == "transform" else TRANSFORM_ONLY
        parts[stage][first(PARTS, stack, "the stage's own work", skip)] += 1
    return n, stages, parts


# Seven samples as `perf script -F comm,tid,ip,sym` prints them (innermost frame first).
SELF_TEST = """anonymizer 101
\t    7f01 ZSTD_decompressSequences_bmi2
\t    7f02 parquet::file::serialized_reader::decode_page
\t    7f03 anonymizer::verify::Probe::parquet_piece
\t    7f04 rayon_core::registry::WorkerThread::wait_until_cold

anonymizer 102
\t    7f05 anonymizer::rules::lanes::compress_avx512
\t    7f06 anonymizer::rules::pseudonymize::DigestRuns::flush
\t    7f07 anonymizer::run::FileJob::run::{{closure}}

anonymizer 103
\t    7f08 anonymizer::rules::for_each_text_run
\t    7f09 anonymizer::analytics::kernel::read_batch
\t    7f0a anonymizer::analytics::kernel::read_stream::{{closure}}

anonymizer 104
\t    7f0b anonymizer::analytics::kernel::Fold::add_all
\t    7f0c anonymizer::analytics::kernel::Context::part_file

anonymizer 105
\t    7f0d [unknown]

anonymizer 106
\t    7f0e anonymizer::verify::each_text_counted
\t    7f0f anonymizer::verify::read_row_group_dictionaries
\t    7f10 anonymizer::verify::verify::{{closure}}

anonymizer 107
\t    7f11 anonymizer::analytics::kernel::Fold::finish
\t    7f12 anonymizer::analytics::kernel::Context::part
"""


def self_test():
    """Splits SELF_TEST and checks every sample's stage and part (run by .ci/run)."""
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write(SELF_TEST)
        f.flush()
        n, stages, parts = split(f.name)
    want = {
        ("gate: input lookup", "zstd decompression"),
        ("transform", "tokens"),
        # The aggregates' calls into rules helpers are their own work, not "rules".
        ("aggregates, pass 1", "the stage's own work"),
        ("aggregates, pass 2", "the stage's own work"),
        ("unattributed", "the stage's own work"),
        ("gate: output scan", "the stage's own work"),
    }
    got = {(s, p) for s in parts for p in parts[s]}
    assert n == 7 and sum(stages.values()) == 7, (n, stages)
    assert stages["aggregates, pass 2"] == 2, stages
    assert got == want, got
    print("perf_stages.py self-test: ok")


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    n, stages, parts = split(sys.argv[1])
    if n == 0:
        sys.exit(f"{sys.argv[1]}: no samples (was it written by `perf script`?)")
    print(f"{n} samples")
    print("| stage | share of the CPU | of which |")
    print("| --- | ---: | --- |")
    for stage, count in stages.most_common():
        detail = "; ".join(f"{p} {100 * c / n:.1f} %" for p, c in parts[stage].most_common())
        print(f"| {stage} | {100 * count / n:.1f} % | {detail} |")


if __name__ == "__main__":
    main()
