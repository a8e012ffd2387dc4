"""Per-example gradient norms: ``jaxbp.per_sample_grad_norms`` vs. ``jax.vmap(jax.grad(·))``.

The reference materialises every per-sample gradient (n copies of θ; the V part alone
is n·M·d floats) and takes its norm; jaxbp uses the outer-product identity
‖δ zᵀ‖_F = ‖δ‖·‖z‖, ‖g xᵀ‖_F = ‖g‖·‖x‖ and never forms them. Default problem:
n 4096, d 784, M 512, K 10, relu, softmax, float32.

Protocol: the two are first checked to agree (rtol 1e-4). Then each method runs in a
fresh subprocess per round (rounds interleaved, order alternating), warm-up
(compile + one call) excluded, ``block_until_ready`` per call. Memory, per method:
XLA's compiled memory analysis (``jax.jit(f).lower(...).compile().memory_analysis()``:
temp, argument, output bytes) and the process's peak resident set (``ru_maxrss``)
after the data are built and after compile + calls, in the same fresh subprocess.

    python benchmarks/norms.py                   # writes benchmarks/results/norms-*.json
    python benchmarks/norms.py --md BENCHMARKS.md   # ... and rewrites its BENCHMARKS.md section
    python benchmarks/norms.py --from-json FILE --md BENCHMARKS.md   # re-render that section
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # python benchmarks/norms.py: import from the root
    sys.path[0] = str(Path(__file__).resolve().parents[1])

from benchmarks.measure import machine_info, write_json
from benchmarks.report import format_seconds, write_section
from benchmarks.run import ROOT, rotated

SCHEMA = "jaxbp-bench-norms/1"
SECTION = "jaxbp-bench-norms"
TAG = "@@JAXBP-NORMS@@ "
FULL = {"n": 4096, "d": 784, "hidden": 512, "classes": 10}
QUICK = {"n": 256, "d": 32, "hidden": 16, "classes": 10}
METHODS = {
    "jaxbp": "jaxbp.per_sample_grad_norms (outer-product identity)",
    "vmap-grad": "norms of jax.vmap(jax.grad(loss of one sample))",
}
TARGET_SPEEDUP = 20.0
RTOL = 1e-4


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _setup(size: dict):
    """Data, parameters and the two jitted norm functions (plain JAX for the reference)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    import jaxbp

    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.standard_normal((size["n"], size["d"]), dtype=np.float32))
    y = rng.integers(0, size["classes"], size["n"])
    Y = jax.nn.one_hot(y, size["classes"], dtype=jnp.float32)
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(
        net, jax.random.key(0), d=size["d"], hidden=size["hidden"], out=size["classes"]
    )

    def loss_of_one_sample(p, x, y):
        o = jax.nn.relu(p["V"] @ x) @ p["W"].T  # o = W σ(Vx)
        return jax.nn.logsumexp(o) - y @ o

    def per_sample_grads(p, X, Y):
        return jax.vmap(jax.grad(loss_of_one_sample), in_axes=(None, 0, 0))(p, X, Y)

    def vmap_grad_norms(p, X, Y):
        grads = per_sample_grads(p, X, Y)
        return jnp.sqrt(sum(jnp.sum(g.reshape(g.shape[0], -1) ** 2, -1) for g in grads.values()))

    plain = {"V": params.V, "W": params.W}
    functions = {
        "jaxbp": (jax.jit(lambda p, X, Y: jaxbp.per_sample_grad_norms(net, p, X, Y)), params),
        "vmap-grad": (jax.jit(vmap_grad_norms), plain),
        "vmap-grad-kept": (jax.jit(per_sample_grads), plain),
    }
    return functions, X, Y


def _worker(method: str, size: dict, reps: int) -> dict:
    functions, X, Y = _setup(size)
    rss_setup = _rss_mib()
    fn, p = functions[method]
    memory = _memory(fn.lower(p, X, Y).compile())
    rss_compiled = _rss_mib()
    start = time.perf_counter()
    fn(p, X, Y).block_until_ready()
    warmup = time.perf_counter() - start
    samples = []
    for _ in range(reps):
        start = time.perf_counter()
        fn(p, X, Y).block_until_ready()
        samples.append(time.perf_counter() - start)
        if sum(samples) > 20:
            break
    return {
        "samples_s": samples,
        "warmup_s": warmup,
        "memory_analysis": memory,
        "ru_maxrss_setup_mib": rss_setup,
        "ru_maxrss_compiled_mib": rss_compiled,
        "ru_maxrss_peak_mib": _rss_mib(),
    }


def _memory(compiled) -> dict:
    """The byte counts of XLA's ``memory_analysis()`` of a compiled function."""
    mem = compiled.memory_analysis()
    keys = ("temp", "argument", "output", "alias", "generated_code", "peak_memory")
    return {f"{k}_size_in_bytes": getattr(mem, f"{k}_size_in_bytes", None) for k in keys}


def _check(size: dict) -> dict:
    """Both methods on the same data: the max relative difference, and whether ≤ RTOL."""
    import numpy as np

    functions, X, Y = _setup(size)
    a, b = (np.asarray(fn(p, X, Y)) for fn, p in (functions[m] for m in METHODS))
    rel = float(np.max(np.abs(a - b) / np.abs(b)))
    # For scale, compiled but not run: the per-sample gradients themselves, which a
    # reference that kept them (to clip them, say) would hold.
    keep, p = functions["vmap-grad-kept"]
    return {
        "max_rel_diff": rel,
        "rtol": RTOL,
        "ok": bool(np.allclose(a, b, rtol=RTOL, atol=0)),
        "kept_per_sample_grads_memory": _memory(keep.lower(p, X, Y).compile()),
    }


def _spawn(job: dict) -> dict:
    env = dict(os.environ)  # the repository's jaxbp and benchmarks, whatever the cwd
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    cmd = [sys.executable, "-m", "benchmarks.norms", "--worker", json.dumps(job)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(TAG):
            return json.loads(line[len(TAG) :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
    return {"error": f"exit code {proc.returncode}: " + " | ".join(tail)}


def run(size: dict, rounds: int, log=print) -> dict:
    doc = {
        "schema": SCHEMA,
        "machine": machine_info(),
        "config": {"size": size, "rounds": rounds, "activation": "relu", "head": "softmax"},
    }
    doc["check"] = _spawn({"check": True, "size": size})
    log(f"agreement: {doc['check']}")
    if not doc["check"].get("ok"):
        log("the two methods disagree; not timing them")
        return doc
    doc["runs"] = {m: [] for m in METHODS}
    for r in range(rounds):
        for method in rotated(list(METHODS), r):
            result = _spawn({"method": method, "size": size, "reps": 20}) | {"round": r}
            doc["runs"][method].append(result)
            samples = result.get("samples_s")
            log(f"r{r} {method:10s} " + (f"median {statistics.median(samples):.4f} s"
                                         if samples else result.get("error", "")))  # fmt: skip
    return doc


def _mib(value) -> str:
    return "–" if value is None else f"{value / 2**20:,.1f}"


def render(doc: dict, source=None) -> str:
    size, mach = doc["config"]["size"], doc["machine"]
    lines = [
        "## Per-example gradient norms",
        "",
        f"`python benchmarks/norms.py` on {mach['date']} ({mach['cpu_model']}, "
        f"{mach['usable_cores']} cores, jax {mach['versions'].get('jax')}): n {size['n']}, "
        f"d {size['d']}, M {size['hidden']}, K {size['classes']}, relu, softmax, float32. "
        f"Agreement first: max relative difference "
        f"{doc['check'].get('max_rel_diff', float('nan')):.2e} (rtol {RTOL:g}: "
        f"{'ok' if doc['check'].get('ok') else 'FAILED'}). Each method in a fresh subprocess "
        f"per round, {doc['config']['rounds']} interleaved rounds, compile and first call "
        "excluded. Memory: XLA's compiled `memory_analysis()` (temp = scratch buffers of the "
        "computation; arguments and outputs separate) and `ru_maxrss` (peak resident set of "
        "the fresh subprocess) after the setup, after compiling, and after running. "
        f"Raw samples: `{source or 'the results JSON'}`.",
        "",
    ]
    if "runs" not in doc:
        return "\n".join(lines) + "\n"
    lines += [
        "| method | time (median) | min – max | calls (rounds) | XLA temp MiB | args + out MiB "
        "| ru_maxrss setup → compiled → run MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    medians = {}
    for method, runs in doc["runs"].items():
        ok = [run for run in runs if "error" not in run]
        samples = [s for run in ok for s in run["samples_s"]]
        if not samples:
            lines.append(f"| {METHODS[method]} | failed | | | | | |")
            continue
        medians[method] = statistics.median(samples)
        mem = ok[0]["memory_analysis"]
        io = (mem.get("argument_size_in_bytes") or 0) + (mem.get("output_size_in_bytes") or 0)
        rss = " → ".join(
            f"{statistics.median(run[key] for run in ok):,.0f}" if key in ok[0] else "–"
            for key in ("ru_maxrss_setup_mib", "ru_maxrss_compiled_mib", "ru_maxrss_peak_mib")
        )
        lines.append(
            f"| {METHODS[method]} | {format_seconds(medians[method])} "
            f"| {format_seconds(min(samples))} – {format_seconds(max(samples))} "
            f"| {len(samples)} ({len(ok)}) | {_mib(mem.get('temp_size_in_bytes'))} "
            f"| {_mib(io)} | {rss} |"
        )
    if len(medians) == 2:
        speedup = medians["vmap-grad"] / medians["jaxbp"]
        met = "**met**" if speedup >= TARGET_SPEEDUP else "**not met**"
        lines += ["", f"Target: jaxbp ≥ {TARGET_SPEEDUP:g}× faster: {met} ({speedup:.1f}×)."]
    kept = doc["check"].get("kept_per_sample_grads_memory")
    if kept:
        lines += [
            "",
            "For scale (compiled, not run): `jax.vmap(jax.grad(·))` returning the per-sample "
            f"gradients themselves needs {_mib(kept['output_size_in_bytes'])} MiB of output "
            f"and {_mib(kept['temp_size_in_bytes'])} MiB of temp. The norm reference above "
            "does not hold them: XLA fuses the per-sample outer products gᵢxᵢᵀ with the "
            "squaring and the sum, so it costs O(n·M·d) arithmetic but little memory; jaxbp "
            "costs O(n(M + d)) beyond the forward and backward pass.",
        ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--quick", action="store_true", help=f"tiny sizes {QUICK}")
    p.add_argument("--out", type=Path)
    p.add_argument("--md", type=Path, metavar="PATH",
                   help="also (re)write the norms section of this Markdown file")  # fmt: skip
    p.add_argument("--from-json", type=Path, metavar="FILE")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        if job.get("check"):
            result = _check(job["size"])
        else:
            result = _worker(job["method"], job["size"], job["reps"])
        print(TAG + json.dumps(result), flush=True)
        return 0
    if args.from_json:
        doc, out = json.loads(args.from_json.read_text()), args.from_json
    else:
        doc = run(QUICK if args.quick else FULL, args.rounds)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = args.out or Path("benchmarks/results") / f"norms-{stamp}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, doc)
        print(f"results -> {out}")
    text = render(doc, out)
    if args.md:
        write_section(args.md, SECTION, text)
    print(text)
    return 0 if doc.get("check", {}).get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
