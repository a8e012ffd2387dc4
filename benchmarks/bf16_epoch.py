"""One training epoch in float32 vs ``Net(matmul_dtype="bfloat16")``, in one process.

Workloads M' (n 16384, d 784, M 512, K 10, batch 256) and L' (n 8192, d 1024, M 2048,
K 10, batch 1024): scaled-down M and L of ``benchmarks/run.py``. The epoch is
``jaxbp.train.compile_epoch`` (what ``fit`` runs), compiled once and warmed up; the
variants are interleaved within each round (rotated order) and we report medians.

``bf16 rows`` is the bfloat16 path in the float32 path's row layout (``GᵀX`` contracts the
batch axis of two row-major operands, which XLA CPU runs in float32), obtained by routing
``grad="matrix"`` to :func:`jaxbp.backprop.matrix_grad_rows` while the epoch is compiled.

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
import optax

import jaxbp
from benchmarks import measure
from benchmarks.bf16_layouts import cpu_info
from jaxbp import backprop, gradients, train

WORKLOADS = {
    "M": {"n": 16384, "d": 784, "M": 512, "K": 10, "batch": 256},
    "L": {"n": 8192, "d": 1024, "M": 2048, "K": 10, "batch": 1024},
}


def _epoch(variant: str, w: dict):
    net = jaxbp.Net(activation="relu", head="softmax",
                    matmul_dtype=None if variant == "float32" else "bfloat16")  # fmt: skip
    optimizer = optax.adam(1e-3)
    if variant == "bf16 rows" and hasattr(backprop, "matrix_grad_rows"):
        with mock.patch.dict(gradients._ROUTES, {"matrix": backprop.matrix_grad_rows}):
            fn = train.compile_epoch(net, optimizer, n=w["n"], batch_size=w["batch"])
    else:
        fn = train.compile_epoch(net, optimizer, n=w["n"], batch_size=w["batch"])
    params = jaxbp.init(net, jax.random.key(0), d=w["d"], hidden=w["M"], out=w["K"])
    return fn, params, optimizer.init(params)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workloads", nargs="+", default=["M", "L"], choices=sorted(WORKLOADS))
    p.add_argument("--out", default="benchmarks/results/bf16_epoch.json")
    args = p.parse_args(argv)
    variants = ["float32", "bfloat16"]
    if hasattr(backprop, "matrix_grad_rows"):
        variants.append("bf16 rows")
    results = {}
    for wname in args.workloads:
        w = WORKLOADS[wname]
        X = jax.random.normal(jax.random.key(1), (w["n"], w["d"]))
        Y = jax.nn.one_hot(jax.random.randint(jax.random.key(2), (w["n"],), 0, w["K"]), w["K"])
        order = train.shuffle_order(jax.random.key(3), 0, w["n"])
        epochs = {v: _epoch(v, w) for v in variants}
        samples = {v: [] for v in variants}

        def run(v, epochs=epochs, X=X, Y=Y, order=order):
            fn, params, state = epochs[v]
            start = time.perf_counter()
            jax.block_until_ready(fn(params, state, X, Y, order, None, None))
            return time.perf_counter() - start

        for v in variants:
            run(v)  # compile and warm up
        for r in range(args.rounds):
            for v in variants[r % len(variants) :] + variants[: r % len(variants)]:
                samples[v].append(run(v))
        med = {v: statistics.median(s) for v, s in samples.items()}
        results[wname] = {"workload": w, "seconds": samples, "median_seconds": med,
                          "bf16_over_f32_time": med["bfloat16"] / med["float32"]}  # fmt: skip
        print(f"{wname}' {w}: medians of {args.rounds} rounds")
        for v in variants:
            s = samples[v]
            print(f"  {v:<9} {med[v]:7.3f} s  [{min(s):.3f}–{max(s):.3f}]  "
                  f"time / float32 {med[v] / med['float32']:.3f}")  # fmt: skip
    out = {"benchmark": "bf16 vs float32 epoch (compile_epoch)", "cpu": cpu_info(),
           "jax": jax.__version__, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
           "rounds": args.rounds, "results": results}  # fmt: skip
    measure.write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
