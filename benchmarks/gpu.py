"""GPU benchmark, ready to run: gradients at precision "highest" vs float64, and the epoch.

    python benchmarks/gpu.py [--sizes gpu|tiny] [--repeats 5] [--out DIR]

1. Checks jaxbp's hand-written gradients on the default device under
   ``jax.default_matmul_precision("highest")`` against a float64 NumPy reference on the CPU.
2. Times one epoch (``jaxbp.epoch.compile_epoch``, data on the device, median of repeats
   after compilation) on M (65536, 784, 512, 10, batch 256), L′ (262144, 1024, 4096, 10,
   batch 4096) and XL (1048576, 784, 8192, 10, batch 16384) for jaxbp float32 (TF32 on a
   GPU), jaxbp bf16 (``Net(matmul_dtype="bfloat16")``) and plain JAX (``jax.grad`` of the
   cross entropy in the same scan), with the TF32 and bf16 GEMM peaks measured in the same
   run. Writes ``gpu.json`` and ``gpu.md`` (with % of peak) to ``--out``.

``--sizes tiny`` runs the same code on tiny sizes in seconds (the test suite does, on CPU);
data of a size is made only when that size runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

if __name__ == "__main__" and not __package__:  # python benchmarks/gpu.py: import from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jaxbp
from benchmarks.workloads import GPU, WORKLOADS
from jaxbp.epoch import compile_epoch

# name: (n, d, M, K, batch)
SIZES = {
    "gpu": {name: WORKLOADS[name].sizes for name in GPU},  # benchmarks/workloads.py
    "tiny": {"tiny": (512, 16, 32, 10, 64)},
}
PEAK_N = {"gpu": 8192, "tiny": 256}
VARIANTS = ("jaxbp float32", "jaxbp bf16", "plain JAX")


def _median_time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())  # compile (and warm up) outside the timing
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def gemm_peak(n: int, dtype, repeats: int) -> float:
    """FLOP/s of an (n, n) @ (n, n) product in ``dtype`` (float32: TF32 on a GPU by default)."""
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    dot = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
    return 2 * n**3 / _median_time(lambda: dot(a, b), repeats)


def gradient_check(n: int = 64, d: int = 12, M: int = 16, K: int = 5) -> dict:
    """Max relative error of jaxbp.batch_grad at precision "highest" vs float64 on the CPU."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, K, n)
    net = jaxbp.Net(activation="tanh", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=d, hidden=M, out=K, bias=True)
    with jax.default_matmul_precision("highest"):
        g = jax.jit(jaxbp.batch_grad, static_argnums=(4,))(net, params, X, y, "matrix")
    V, W, b, c = (np.asarray(p, np.float64) for p in params)
    Xd = X.astype(np.float64)
    A = Xd @ V.T + b
    Z = np.tanh(A)
    logits = Z @ W.T + c
    P = np.exp(logits - logits.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    Delta = (P - np.eye(K)[y]) / n  # rows δᵢ / n
    G = (Delta @ W) * (1 - Z**2)
    ref = {"V": G.T @ Xd, "W": Delta.T @ Z, "b": G.sum(0), "c": Delta.sum(0)}
    errors = {
        k: float(np.linalg.norm(np.asarray(getattr(g, k), np.float64) - r) / np.linalg.norm(r))
        for k, r in ref.items()
    }
    return {"max_rel_error": max(errors.values()), "errors": errors, "tolerance": 1e-5,
            "ok": max(errors.values()) < 1e-5}  # fmt: skip


def plain_epoch(optimizer, n: int, batch: int):
    """The same scan with jax.grad of the mean cross entropy (relu, no offsets)."""

    def loss(p, Xb, Yb):
        V, W = p
        logits = jax.nn.relu(Xb @ V.T) @ W.T
        return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.sum(Yb * logits, axis=1))

    @jax.jit
    def epoch(p, opt_state, X, Y, order):
        def step(carry, rows):
            p, s = carry
            value, g = jax.value_and_grad(loss)(p, X[rows], Y[rows])
            u, s = optimizer.update(g, s, p)
            return (optax.apply_updates(p, u), s), value

        rows = order[: (n // batch) * batch].reshape(n // batch, batch)
        (p, opt_state), losses = jax.lax.scan(step, (p, opt_state), rows)
        return p, opt_state, losses.mean()

    return epoch


def time_size(name, shape, repeats: int) -> list[dict]:
    n, d, M, K, batch = shape
    key = jax.random.key(0)
    X = jax.random.normal(key, (n, d), jnp.float32)
    Y = jax.nn.one_hot(jax.random.randint(jax.random.key(1), (n,), 0, K), K, dtype=jnp.float32)
    order = jax.random.permutation(jax.random.key(2), n)
    optimizer = optax.sgd(1e-3)
    flops = 6 * (n // batch) * batch * (d * M + M * K)  # forward 2, backward 4 per weight
    rows = []
    for variant in VARIANTS:
        if variant == "plain JAX":
            net = jaxbp.Net(activation="relu", head="softmax")
            params = jaxbp.init(net, key, d=d, hidden=M, out=K)
            p = (params.V, params.W)
            epoch = plain_epoch(optimizer, n, batch)
            state = optimizer.init(p)

            def run(epoch=epoch, p=p, state=state):
                return epoch(p, state, X, Y, order)
        else:
            bf16 = variant.endswith("bf16")
            net = jaxbp.Net(activation="relu", head="softmax",
                            matmul_dtype="bfloat16" if bf16 else None)  # fmt: skip
            params = jaxbp.init(net, key, d=d, hidden=M, out=K)
            epoch = compile_epoch(net, optimizer, n=n, batch_size=batch)
            state = optimizer.init(params)

            def run(epoch=epoch, params=params, state=state):
                return epoch(params, state, X, Y, order, None, None)

        seconds = _median_time(run, repeats)
        rows.append({"size": name, "n": n, "d": d, "M": M, "K": K, "batch": batch,
                     "variant": variant, "epoch_s": seconds, "flops": flops,
                     "flop_per_s": flops / seconds})  # fmt: skip
        print(f"{name} {variant}: {seconds * 1e3:.1f} ms/epoch", file=sys.stderr)
    return rows


def markdown(result: dict) -> str:
    peaks, check = result["peaks"], result["gradcheck"]
    lines = [
        f"Device: {result['device']}; GEMM peaks (n={result['peak_n']}): "
        f"TF32/float32 {peaks['float32'] / 1e12:.1f} TF/s, "
        f"bf16 {peaks['bfloat16'] / 1e12:.1f} TF/s. "
        f"Gradient check at precision='highest' vs float64: max rel. error "
        f"{check['max_rel_error']:.2e} ({'ok' if check['ok'] else 'FAILED'}).",
        "",
        "| size | n | d | M | batch | variant | ms / epoch | TF/s | % of peak |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|",
    ]  # fmt: skip
    for r in result["epochs"]:
        peak = peaks["bfloat16" if r["variant"].endswith("bf16") else "float32"]
        lines.append(
            f"| {r['size']} | {r['n']} | {r['d']} | {r['M']} | {r['batch']} | {r['variant']} "
            f"| {r['epoch_s'] * 1e3:.1f} | {r['flop_per_s'] / 1e12:.2f} "
            f"| {100 * r['flop_per_s'] / peak:.0f}% |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", choices=sorted(SIZES), default="gpu")
    p.add_argument("--only", nargs="+", help="size names to run (default: all of --sizes)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    device = jax.devices()[0]
    result = {
        "device": f"{device.platform}: {device.device_kind}",
        "machine": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "sizes": args.sizes,
        "peak_n": PEAK_N[args.sizes],
        "gradcheck": gradient_check(),
        "peaks": {
            str(np.dtype(dt)): gemm_peak(PEAK_N[args.sizes], dt, args.repeats)
            for dt in (jnp.float32, jnp.bfloat16)
        },
        "epochs": [],
    }
    for name, shape in SIZES[args.sizes].items():
        if args.only and name not in args.only:
            continue
        result["epochs"] += time_size(name, shape, args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu.json").write_text(json.dumps(result, indent=1) + "\n")
    table = markdown(result)
    (args.out / "gpu.md").write_text(table)
    print(table)
    return 0 if result["gradcheck"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
