"""bf16 vs float32 dots on XLA CPU: the peaks at 2048² and the layouts of the BP products.

Each dot is ``jax.jit`` of one ``lax.dot_general`` (bf16 × bf16 → float32 accumulate, or
float32 × float32), timed alone; dtypes and layouts are interleaved within each round and
we report medians in GF/s. The machine's CPU model and its bf16/AMX flags go in the JSON.

    python benchmarks/bf16_layouts.py [--rounds 7] [--B 1024 --d 1024 --M 2048]
        [--out benchmarks/results/bf16_layouts.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import jax
import jax.numpy as jnp
from jax import lax

from benchmarks import measure


def cpu_info() -> dict:
    """CPU model name and the flags that matter for bf16, the CPU count and JAX's devices."""
    return {
        "model": measure.cpu_model(),
        "flags": measure.cpu_flags(),
        "cpus": os.cpu_count(),
        "jax_devices": jax.device_count(),
    }


def _dot(dims, out):
    def f(a, b):
        return lax.dot_general(a, b, (dims, ((), ())), preferred_element_type=out)

    return jax.jit(f)


def _time(fn, a, b, reps: int) -> float:
    measure.timed(fn, a, b)  # compile
    return min(measure.timed(fn, a, b) for _ in range(reps))


def layouts(B: int, d: int, M: int) -> dict:
    """name ↦ (shape of a, shape of b, contracting dims, flops): the products of the BP."""
    return {
        "peak NN 2048² (a @ b)": ((2048, 2048), (2048, 2048), ((1,), (0,))),
        "A = X Vᵀ (NT)": ((B, d), (M, d), ((1,), (1,))),
        "X V₁, V₁ (d, M) (NN)": ((B, d), (d, M), ((1,), (0,))),
        "Gᵀ X, batch axis of both (TN)": ((B, M), (B, d), ((0,), (0,))),
        "Gᵀ (M, B) times X (B, d) (NN)": ((M, B), (B, d), ((1,), (0,))),
        "Gᵀ (M, B) times Xᵀ (d, B) (NT)": ((M, B), (d, B), ((1,), (1,))),
        "Xᵀ G, batch axis of both, swapped (TN)": ((B, d), (B, M), ((0,), (0,))),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--B", type=int, default=1024)
    p.add_argument("--d", type=int, default=1024)
    p.add_argument("--M", type=int, default=2048)
    p.add_argument("--out", default="benchmarks/results/bf16_layouts.json")
    args = p.parse_args(argv)

    cases = layouts(args.B, args.d, args.M)
    key = jax.random.key(0)
    arrays, fns = {}, {}
    for name, (sa, sb, dims) in cases.items():
        ka, kb = jax.random.split(jax.random.fold_in(key, len(arrays)))
        a, b = jax.random.normal(ka, sa), jax.random.normal(kb, sb)
        arrays[name] = {"float32": (a, b), "bfloat16": (a.astype("bfloat16"), b.astype("bfloat16"))}
        fns[name] = _dot(dims, jnp.float32)
    samples = {name: {"float32": [], "bfloat16": []} for name in cases}
    for r in range(args.rounds):
        for name in cases:
            for dtype in ("float32", "bfloat16")[:: 1 if r % 2 == 0 else -1]:
                samples[name][dtype].append(_time(fns[name], *arrays[name][dtype], args.reps))
    table = {}
    for name, (sa, sb, dims) in cases.items():
        contracted = sa[dims[0][0]]
        flops = 2 * contracted * (sa[0] * sa[1] // contracted) * (sb[0] * sb[1] // contracted)
        gf = {dt: flops / statistics.median(v) / 1e9 for dt, v in samples[name].items()}
        table[name] = {"gflops": gf, "bf16_over_f32": gf["bfloat16"] / gf["float32"],
                       "shapes": [sa, sb], "contract": dims}  # fmt: skip
    info = cpu_info()
    print(f"CPU: {info['model']}, {info['cpus']} CPUs; flags: {' '.join(info['flags'])}")
    print(f"B {args.B}, d {args.d}, M {args.M}; medians of {args.rounds} rounds (min of "
          f"{args.reps} reps each), GF/s, f32 accumulate")  # fmt: skip
    print(f"| {'dot':<44} | float32 | bf16 | bf16/f32 |")
    for name, row in table.items():
        g = row["gflops"]
        print(f"| {name:<44} | {g['float32']:7.1f} | {g['bfloat16']:5.1f} | "
              f"{row['bf16_over_f32']:7.2f}× |")  # fmt: skip
    result = {
        "benchmark": "bf16 vs float32 dot layouts, XLA CPU",
        "cpu": info,
        "versions": {
            "jax": jax.__version__,
            "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else None,
        },
        "sizes": {"B": args.B, "d": args.d, "M": args.M},
        "rounds": args.rounds,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "table": table,
        "samples_seconds": samples,
    }
    measure.write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
