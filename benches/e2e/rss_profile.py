#!/usr/bin/env python3
"""Peak RSS of `anonymizer run`, stage by stage.

Runs `anonymizer -q run --config POLICY --as-of DATE --out OUT`, samples the process's
resident set size every 0.2 s (psutil), then splits the samples by the stage times the
run's manifest records (`stages_ms`) and prints each stage's peak.

    WORK/venv/bin/python benches/e2e/rss_profile.py BIN POLICY OUT YYYY-MM-DD

(`WORK/venv` is the venv bench.py makes; it has psutil.) ANONYMIZER_KEY must be set.
"""
import subprocess, sys, time, json, os, shutil, psutil
binp, policy, out, asof = sys.argv[1:5]
shutil.rmtree(out, ignore_errors=True)
env = dict(os.environ)
t0 = time.perf_counter()
p = subprocess.Popen([binp, "-q", "run", "--config", policy, "--as-of", asof, "--out", out], env=env)
pp = psutil.Process(p.pid)
samples = []
while p.poll() is None:
    try:
        samples.append((time.perf_counter() - t0, pp.memory_info().rss / 2**20))
    except psutil.Error:
        break
    time.sleep(0.2)
m = json.load(open(f"{out}/current/_manifest.json"))
st = m["stages_ms"]
# In run order; hash_inputs runs beside the transform.
order = ["validate", "checks", "as_of", "erasure", "transform", "k_anonymity", "analytics", "verify", "publish"]
t = 0.0; bounds = []
for s in order:
    if s in st:
        bounds.append((s, t, t + st[s] / 1000)); t += st[s] / 1000
print("stages", st)
for s, a, b in bounds:
    xs = [r for (x, r) in samples if a <= x < b]
    if xs: print(f"{s:12s} {a:7.1f}-{b:7.1f}s  peak {max(xs):7.0f} MiB  end {xs[-1]:7.0f} MiB")
print("overall peak", max(r for _, r in samples))
