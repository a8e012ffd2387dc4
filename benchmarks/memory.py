"""Peak memory of ``jaxbp.fit`` beyond its data, each case in fresh processes.

    python benchmarks/memory.py [--n 200000 1000000] [--d 100] [--runs 3] [--json FILE]

A child process imports jaxbp, makes X (n, d) float32 and integer labels (K = 10), warms
JAX's runtime up, and then runs one epoch of ``fit`` (relu, M = 64, softmax, Adam, batch
256), or only ``checked_data``, or nothing (``none``: the baseline); ``fit_aligned`` is
``fit`` on the same X placed 64-byte aligned, which JAX's CPU client uses in place (NumPy
aligns large arrays to 16 bytes only, and ``jax.device_put`` then copies X). It reports its peak
resident memory, ``VmHWM`` from /proc/self/status (per address space and reset at exec,
unlike ``ru_maxrss``, which Linux carries across fork+exec). The rise of a call is the
median peak of fresh processes that make the call minus the median peak of fresh
processes that do not (runs interleaved). The target is a rise of at most 1.5× the data.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
TARGET = 1.5

from benchmarks.measure import cpu_model  # noqa: E402

CHILD = r"""
import sys, time
import numpy as np
import jax, optax, jaxbp
from jaxbp.validate import checked_data

n, d, what = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
K, M = 10, 64
net = jaxbp.Net(activation="relu", head="softmax")
params = jaxbp.init(net, jax.random.key(0), d=d, hidden=M, out=K)
rng = np.random.default_rng(0)
if what.endswith("aligned"):  # the same values, 64-byte aligned: JAX's CPU client aliases them
    raw = np.empty(n * d + 16, np.float32)
    start = (-raw.ctypes.data % 64) // 4
    X = raw[start : start + n * d].reshape(n, d)
    rng.standard_normal(dtype=np.float32, out=X)
else:
    X = rng.standard_normal((n, d), dtype=np.float32)
y = rng.integers(0, K, n)
jax.block_until_ready(jaxbp.forward(net, params, X[:8]))  # JAX's runtime up before the baseline
def peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
base = peak()
t = time.perf_counter()
if what.startswith("fit"):
    r = jaxbp.fit(net, params, X, y, optimizer=optax.adam(1e-3), epochs=1, batch_size=256,
                  key=jax.random.key(1), progress=False)
    jax.block_until_ready(r.params)
elif what == "checked_data":
    jax.block_until_ready(checked_data(net, params, X, y))
print(base, peak(), X.nbytes + y.nbytes, X.nbytes, time.perf_counter() - t)
"""


def peak_of(n: int, d: int, what: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(d), what],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    _base, peak, data, x_bytes, seconds = done.stdout.split()
    return {"peak": int(peak), "data": int(data), "X": int(x_bytes), "seconds": float(seconds)}


def measure(n: int, d: int, whats: list[str], runs: int) -> list[dict]:
    """Median peaks over ``runs`` interleaved fresh processes per call, and each rise."""
    peaks = {w: [] for w in ["none", *whats]}
    seconds = {w: [] for w in peaks}
    for _ in range(runs):
        for w in peaks:
            got = peak_of(n, d, w)
            peaks[w].append(got["peak"])
            seconds[w].append(got["seconds"])
            data, x_bytes = got["data"], got["X"]
    base = statistics.median(peaks["none"])
    rows = []
    for w in whats:
        peak = statistics.median(peaks[w])
        rows.append({
            "what": w, "n": n, "d": d, "data_MiB": data / 2**20, "X_MiB": x_bytes / 2**20,
            "baseline_MiB": base / 2**20, "peak_MiB": peak / 2**20,
            "rise_MiB": (peak - base) / 2**20, "rise_over_X": (peak - base) / x_bytes,
            "rise_over_data": (peak - base) / data, "seconds": statistics.median(seconds[w]),
            "peaks_MiB": [p / 2**20 for p in peaks[w]], "baselines_MiB": [
                p / 2**20 for p in peaks["none"]],
        })  # fmt: skip
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[200_000, 1_000_000])
    p.add_argument("--d", type=int, default=100)
    p.add_argument("--what", nargs="+", default=["checked_data", "fit", "fit_aligned"])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = [r for n in args.n for r in measure(n, args.d, args.what, args.runs)]
    print(
        f"CPU: {cpu_model()}; peak VmHWM, median of {args.runs} fresh processes per call; "
        f"target: fit's rise <= {TARGET}x the data"
    )
    print("| call | n | d | data MiB | baseline MiB | peak MiB | rise MiB | rise / data "
          "| target | s |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in rows:
        target = f"≤ {TARGET}: " + ("met" if r["rise_over_data"] <= TARGET else "NOT met")
        print(
            f"| {r['what']} | {r['n']} | {r['d']} | {r['data_MiB']:.0f} "
            f"| {r['baseline_MiB']:.0f} | {r['peak_MiB']:.0f} | {r['rise_MiB']:.0f} "
            f"| {r['rise_over_data']:.2f} | {target if r['what'].startswith('fit') else ''} "
            f"| {r['seconds']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
