"""Many models at once: 64 networks of workload S in one vmapped epoch vs 64 sequential epochs.

Workload S: n 8192, d 64, M 128, K 10, batch 128, relu, softmax, Adam 1e-3, float32.
Compilation is excluded on both sides: the sequential side calls the single-model
epoch of ``jaxbp.epoch.compile_epoch`` (the one ``fit`` runs) 64 times, on 64 different
θ; the batched side is the second epoch of ``jaxbp.fit_many(epochs=2)`` (its
``history["seconds"]``: the vmapped epoch over all models, plus fit_many's per-epoch host
work, drawing the sample orders and fetching the stats). Rounds alternate the two; we
report medians, min–max and the throughput ratio (models·epochs per second).

Each round also times the float32 peak (``jax.jit(jnp.dot)`` on 2048², median of 5) and the
table gives GFLOP/s = models·n(4dM + 6MK) / epoch time on both sides. The ratio cannot
exceed peak / (sequential GFLOP/s): that bound is printed too.

    python benchmarks/many.py [--models 64] [--hidden 128] [--rounds 5]
        [--out benchmarks/results/many.json]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # python benchmarks/many.py: import from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax
import jax.numpy as jnp
import optax

import jaxbp
from benchmarks.bf16_layouts import cpu_info
from benchmarks.measure import timed, write_json
from jaxbp import epoch

N, D, M, K, BATCH = 8192, 64, 128, 10, 128
TARGET = 3.0  # the performance issue's target for 64 models of workload S


def peak_seconds(size: int = 2048, reps: int = 5) -> float:
    """Median time of ``jax.jit(jnp.dot)`` on two float32 (size, size) matrices."""
    a = jax.random.normal(jax.random.key(9), (size, size))
    dot = jax.jit(jnp.dot)
    timed(dot, a, a)  # compile
    return statistics.median(timed(dot, a, a) for _ in range(reps))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=M, help=f"width M (workload S: {M})")
    parser.add_argument("--out", default="benchmarks/results/many.json")
    parser.add_argument(
        "--own-shuffles",
        action="store_true",
        help="every model shuffles with its own key (default: one shared minibatch order)",
    )
    args = parser.parse_args(argv)

    X = jax.random.normal(jax.random.key(0), (N, D))
    Y = jax.nn.one_hot(jax.random.randint(jax.random.key(1), (N,), 0, K), K)
    net = jaxbp.Net(activation="relu", head="softmax")
    keys = jax.random.split(jax.random.key(2), args.models)
    params = jaxbp.init_many(net, keys, d=D, hidden=args.hidden, out=K)
    optimizer = optax.adam(1e-3)
    opt_states = jax.vmap(optimizer.init)(params)
    singles = [jax.tree.map(lambda a, i=i: a[i], (params, opt_states)) for i in range(args.models)]

    one = epoch.compile_epoch(net, optimizer, n=N, batch_size=BATCH, grad="matrix")
    orders = [epoch.shuffle_order(k, 0, N) for k in keys]

    def sequential():
        order = orders if args.own_shuffles else [orders[0]] * args.models
        return [one(p, s, X, Y, o, None, None) for (p, s), o in zip(singles, order, strict=True)]

    def batched() -> float:  # fit_many compiles in its first epoch; its second is timed
        result = jaxbp.fit_many(net, params, X, Y, optimizer=optimizer, epochs=2,
                                batch_size=BATCH, key=keys if args.own_shuffles else keys[0],
                                grad="matrix", progress=False)  # fmt: skip
        return result.history["seconds"][1]

    timed(sequential)  # compile and warm up
    samples = {"sequential": [], "together": [], "peak": []}
    for r in range(args.rounds):
        order = ("sequential", "together") if r % 2 == 0 else ("together", "sequential")
        for name in order:
            samples[name].append(timed(sequential) if name == "sequential" else batched())
        samples["peak"].append(peak_seconds())
    med = {k: statistics.median(v) for k, v in samples.items()}
    ratio = med["sequential"] / med["together"]
    flops = args.models * N * (4 * D * args.hidden + 6 * args.hidden * K)
    gflops = {k: flops / med[k] / 1e9 for k in ("sequential", "together")}
    gflops["peak"] = 2 * 2048**3 / med["peak"] / 1e9
    bound = gflops["peak"] / gflops["sequential"]
    result = {
        "benchmark": "fit_many vs sequential fits",
        "workload": {
            "n": N,
            "d": D,
            "M": args.hidden,
            "K": K,
            "batch": BATCH,
            "models": args.models,
        },
        "shuffles": "own per model" if args.own_shuffles else "shared",
        "timing": {
            "sequential": "jaxbp.epoch.compile_epoch, called once per model",
            "together": "jaxbp.fit_many(epochs=2): history seconds of epoch 2",
        },
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": jax.device_count(),
            "cpu": cpu_info(),
        },
        "versions": {
            "jax": jax.__version__,
            "optax": optax.__version__,
            "python": platform.python_version(),
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": samples,
        "median_seconds": med,
        "gflops": gflops,
        "throughput_ratio": ratio,
        "ratio_bound_peak_over_sequential": bound,
        "target": TARGET,
        "met": ratio >= TARGET,
    }
    write_json(args.out, result)
    print(f"{args.models} models of workload S, M {args.hidden}, {args.rounds} rounds:")
    for name, values in samples.items():
        print(f"  {name:<10} {med[name]:8.3f} s  [{min(values):.3f}–{max(values):.3f}]  "
              f"{gflops[name]:6.1f} GFLOP/s")  # fmt: skip
    met = "met" if ratio >= TARGET else "NOT met"
    print(f"  throughput ratio {ratio:.2f}x (target ≥ {TARGET:g}x: {met}); "
          f"bound peak/sequential {bound:.2f}x")  # fmt: skip
    print(f"  wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
