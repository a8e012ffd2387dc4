"""Peak memory of ``jaxbp.fit`` beyond its data, each case in a fresh process.

    python benchmarks/memory.py [--n 200000 1000000] [--d 100] [--json FILE]

A child process imports jaxbp, makes X (n, d) float32 and integer labels (K = 10),
records its peak RSS (``resource.getrusage(...).ru_maxrss``) as the baseline, runs one
epoch of ``fit`` (relu, M = 32, softmax, Adam, batch 256) or only ``checked_data``,
and reports the rise of the peak. The target is a rise of at most 1.5× the data.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import resource, sys, time
import numpy as np
import jax, optax, jaxbp
from jaxbp.validate import checked_data

n, d, what = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
K, M = 10, 32
net = jaxbp.Net(activation="relu", head="softmax")
params = jaxbp.init(net, jax.random.key(0), d=d, hidden=M, out=K)
rng = np.random.default_rng(0)
X = rng.standard_normal((n, d), dtype=np.float32)
y = rng.integers(0, K, n)
jax.block_until_ready(jaxbp.forward(net, params, X[:8]))  # JAX's runtime up before the baseline
peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
base = peak()
t = time.perf_counter()
if what == "fit":
    r = jaxbp.fit(net, params, X, y, optimizer=optax.adam(1e-3), epochs=1, batch_size=256,
                  key=jax.random.key(1), progress=False)
    jax.block_until_ready(r.params)
else:
    jax.block_until_ready(checked_data(net, params, X, y))
print(base, peak(), X.nbytes + y.nbytes, X.nbytes, time.perf_counter() - t)
"""


def measure(n: int, d: int, what: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(n), str(d), what],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    base, peak, data, x_bytes, seconds = done.stdout.split()
    base, peak, data, x_bytes = int(base), int(peak), int(data), int(x_bytes)
    return {
        "what": what, "n": n, "d": d, "data_MiB": data / 2**20, "X_MiB": x_bytes / 2**20,
        "baseline_MiB": base / 2**20, "peak_MiB": peak / 2**20,
        "rise_MiB": (peak - base) / 2**20, "rise_over_X": (peak - base) / x_bytes,
        "seconds": float(seconds),
    }  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[200_000, 1_000_000])
    p.add_argument("--d", type=int, default=100)
    p.add_argument("--what", nargs="+", default=["checked_data", "fit"])
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = [measure(n, args.d, what) for n in args.n for what in args.what]
    print("| call | n | d | X MiB | baseline MiB | peak MiB | rise MiB | rise / X | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['what']} | {r['n']} | {r['d']} | {r['X_MiB']:.0f} | {r['baseline_MiB']:.0f} "
            f"| {r['peak_MiB']:.0f} | {r['rise_MiB']:.0f} | {r['rise_over_X']:.2f} "
            f"| {r['seconds']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
