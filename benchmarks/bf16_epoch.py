"""One training epoch in float32 vs ``Net(matmul_dtype="bfloat16")``, in one process.

Workloads Ms (n 16384, d 784, M 512, K 10, batch 256) and Ls (n 8192, d 1024, M 2048,
K 10, batch 1024): scaled-down M and L of ``benchmarks/run.py``. The epoch is
``jaxbp.epoch.compile_epoch`` (what ``fit`` runs), compiled once and warmed up; the
variants are interleaved within each round (rotated order) and we report medians.
Every round also times the float32 and the bfloat16 → float32 dot peaks
(``jnp.dot`` of two 2048² matrices), so the epochs can be set against them.

``float32`` and ``bfloat16`` are what ``fit`` runs (``matrix_grad``: samples as columns,
every product a plain row-major product). The ``rows`` variants route ``grad="matrix"``
to :func:`jaxbp.backprop.matrix_grad_rows` (samples as rows: ``X Vᵀ`` and ``GᵀX``
contract the last axis or the batch axis of both operands, which XLA CPU runs in
float32 even for bfloat16 inputs) while the epoch is compiled.

    python benchmarks/bf16_epoch.py [--rounds 5] [--workloads M L]
        [--out benchmarks/results/bf16_epoch.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

if __name__ == "__main__" and not __package__:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax
import jax.numpy as jnp
import optax

import jaxbp
from benchmarks import measure, workloads
from benchmarks.bf16_layouts import cpu_info
from jaxbp import backprop, epoch, gradients

# Sizes from the one workload table (benchmarks/workloads.py): Ms and Ls, shorter M and L.
WORKLOADS = {
    name: {"n": w.n, "d": w.d, "M": w.hidden, "K": w.classes, "batch": w.batch}
    for name, w in ((name, workloads.WORKLOADS[name]) for name in workloads.BF16_EPOCH)
}


VARIANTS = ("float32", "bfloat16", "float32 rows", "bf16 rows")
PEAK = 2048


def _epoch(variant: str, w: dict):
    net = jaxbp.Net(activation="relu", head="softmax",
                    matmul_dtype="bfloat16" if variant.startswith("bf") else None)  # fmt: skip
    optimizer = optax.adam(1e-3)
    if variant.endswith("rows"):
        with mock.patch.dict(gradients._ROUTES, {"matrix": backprop.matrix_grad_rows}):
            fn = epoch.compile_epoch.__wrapped__(net, optimizer, n=w["n"], batch_size=w["batch"])
    else:
        fn = epoch.compile_epoch.__wrapped__(net, optimizer, n=w["n"], batch_size=w["batch"])
    params = jaxbp.init(net, jax.random.key(0), d=w["d"], hidden=w["M"], out=w["K"])
    return fn, params, optimizer.init(params)


def _peaks():
    """{dtype: (jitted dot, a, b)} for the float32 and the bfloat16 → float32 peak."""
    a = jax.random.normal(jax.random.key(5), (PEAK, PEAK))
    b = jax.random.normal(jax.random.key(6), (PEAK, PEAK))
    bf = jnp.bfloat16
    return {
        "peak float32": (jax.jit(jnp.dot), a, b),
        "peak bf16": (
            jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32)),
            a.astype(bf), b.astype(bf),
        ),
    }  # fmt: skip


def _flops(w: dict) -> float:
    """Executed flops of one epoch: n(4dM + 6MK)."""
    return w["n"] * (4 * w["d"] * w["M"] + 6 * w["M"] * w["K"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    p.add_argument("--out", default="benchmarks/results/bf16_epoch.json")
    args = p.parse_args(argv)
    variants = list(VARIANTS)
    peaks = _peaks()
    results = {}
    for wname in args.workloads:
        w = WORKLOADS[wname]
        X = jax.random.normal(jax.random.key(1), (w["n"], w["d"]))
        Y = jax.nn.one_hot(jax.random.randint(jax.random.key(2), (w["n"],), 0, w["K"]), w["K"])
        order = epoch.shuffle_order(jax.random.key(3), 0, w["n"])
        epochs = {v: _epoch(v, w) for v in variants}
        samples = {v: [] for v in [*variants, *peaks]}

        def run(v, epochs=epochs, X=X, Y=Y, order=order):
            if v in peaks:
                fn, a, b = peaks[v]
                return min(measure.timed(fn, a, b) for _ in range(3))
            fn, params, state = epochs[v]
            return measure.timed(fn, params, state, X, Y, order, None, None)

        for v in samples:
            run(v)  # compile and warm up
        names = list(samples)
        for r in range(args.rounds):
            for v in names[r % len(names) :] + names[: r % len(names)]:
                samples[v].append(run(v))
        med = {v: statistics.median(s) for v, s in samples.items()}
        gflops = {v: _flops(w) / med[v] / 1e9 for v in variants}
        gflops |= {v: 2 * PEAK**3 / med[v] / 1e9 for v in peaks}
        results[wname] = {
            "workload": w, "seconds": samples, "median_seconds": med, "gflops": gflops,
            "bf16_over_f32_time": med["bfloat16"] / med["float32"],
            "peak_bf16_over_f32": gflops["peak bf16"] / gflops["peak float32"],
        }  # fmt: skip
        print(f"{wname} {w}: medians of {args.rounds} rounds")
        for v in variants:
            s, peak = samples[v], "peak bf16" if v.startswith("bf") else "peak float32"
            print(f"  {v:<12} {med[v]:7.3f} s  [{min(s):.3f}–{max(s):.3f}]  "
                  f"time / float32 {med[v] / med['float32']:.3f}  {gflops[v]:6.1f} GFLOP/s "
                  f"= {100 * gflops[v] / gflops[peak]:.0f}% of the {peak}")  # fmt: skip
        for v in peaks:
            print(f"  {v:<12} {gflops[v]:6.1f} GFLOP/s")
        print(f"  bf16 peak / float32 peak {results[wname]['peak_bf16_over_f32']:.2f}x; "
              f"bf16 epoch speed-up {1 / results[wname]['bf16_over_f32_time']:.2f}x")  # fmt: skip
    out = {"benchmark": "bf16 vs float32 epoch (compile_epoch)", "cpu": cpu_info(),
           "jax": jax.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "rounds": args.rounds, "results": results}  # fmt: skip
    measure.write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
