"""Multi-process data parallelism on one host: epoch time with 1, 2 and 4 JAX processes.

    python benchmarks/distributed.py [--processes 1 2 4] [--n 16384] [--d 64] [--hidden 128]
        [--batch 256] [--epochs 4] [--json FILE]

Each case starts its processes on 127.0.0.1 (gloo collectives, one CPU device each) and
trains the same data with ``jaxbp.fit(..., devices=N)``; 1 process is plain ``fit`` on one
device. The epoch time is the median of the epochs after the first (compilation), as
``history["seconds"]`` reports them on process 0.

The collectives cost per step: each step of a sharded epoch runs one reduce-scatter of the
(batch, d + K) minibatch picks (X and one-hot Y side by side) and one all-reduce of the
gradient (V, W, b, c) with the loss and correct counts (XLA combines them). The same two
collectives, alone in a ``lax.scan`` of 64 steps over the same mesh, are timed in every
process: their µs per step is the overhead data parallelism adds. On this host all
processes share the CPU's cores, so more processes cannot make an epoch faster: the
point is that the result is right and what the collectives cost.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

STEPS = 64  # scan length of the collectives-only timing


def worker(a) -> dict:
    """One process: train, time the collectives alone, return process 0's figures."""
    from jaxbp import distributed

    if a.num > 1:
        distributed.initialize(f"127.0.0.1:{a.port}", a.num, a.index)
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import jaxbp

    rng = np.random.default_rng(0)
    X = rng.standard_normal((a.n, a.d), dtype=np.float32)
    y = rng.integers(0, 10, a.n)
    if a.num > 1:
        part = distributed.shard_rows(a.n)
        X, y = X[part], y[part]
    net = jaxbp.Net("relu", "softmax")
    params = jaxbp.init(net, jax.random.key(0), d=a.d, hidden=a.hidden, out=10, bias=True)
    result = jaxbp.fit(
        net, params, X, y, optimizer=optax.adam(1e-3), epochs=a.epochs, batch_size=a.batch,
        key=jax.random.key(1), progress=False, devices=a.num if a.num > 1 else None,
    )  # fmt: skip
    epoch_s = statistics.median(result.history["seconds"][1:])
    collective_us = None
    if a.num > 1:
        mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
        P = jax.sharding.PartitionSpec
        grads = [(a.hidden, a.d), (10, a.hidden), (a.hidden,), (10,), (), ()]  # θ, loss, correct

        def local(batch, grad):  # the step's collectives, as XLA combined them (one each)
            def step(carry, _):
                b, g = carry
                picked = jax.lax.psum_scatter(b, "data", scatter_dimension=0, tiled=True)
                g = jax.tree.map(lambda x: x * 0.5, jax.lax.psum(g, "data"))
                return (b + jnp.sum(picked) * 0, g), None

            return jax.lax.scan(step, (batch, grad), None, length=STEPS)[0]

        fn = jax.jit(
            jax.shard_map(local, mesh=mesh, in_specs=(P(), P()), out_specs=(P(), P()),
                          check_vma=False)
        )  # fmt: skip
        args = (jnp.ones((a.batch, a.d + 10)), [jnp.ones(s) for s in grads])
        jax.block_until_ready(fn(*args))
        times = []
        for _ in range(5):
            t = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - t)
        collective_us = statistics.median(times) / STEPS * 1e6
    steps = -(-a.n // a.batch)
    return {"processes": a.num, "epoch_s": epoch_s, "epochs_s": result.history["seconds"],
            "steps": steps, "step_us": epoch_s / steps * 1e6, "collective_us": collective_us,
            "loss": result.history["loss"][-1]}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_case(num: int, a, timeout: float = 600) -> dict:
    port = free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
    env.pop("XLA_FLAGS", None)
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for i in range(num):
            args = [sys.executable, __file__, "--worker", "--num", str(num), "--index", str(i),
                    "--port", str(port), "--n", str(a.n), "--d", str(a.d), "--hidden",
                    str(a.hidden), "--batch", str(a.batch), "--epochs", str(a.epochs),
                    "--result", str(Path(tmp) / f"{i}.json")]  # fmt: skip
            procs.append(subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.PIPE, text=True,
                                          start_new_session=True))  # fmt: skip
        try:
            for p in procs:
                _, err = p.communicate(timeout=timeout)
                if p.returncode:
                    raise RuntimeError(f"{num} processes: a worker failed:\n{err[-2000:]}")
        finally:
            for p in procs:
                if p.poll() is None:
                    os.killpg(p.pid, 9)
                    p.wait()
        rows = [json.loads((Path(tmp) / f"{i}.json").read_text()) for i in range(num)]
    row = rows[0]
    if num > 1:
        row["collective_us"] = max(r["collective_us"] for r in rows)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--n", type=int, default=16384)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--json", type=Path)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--num", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        a.result.write_text(json.dumps(worker(a)))
        return 0
    from benchmarks.measure import cpu_model, write_json

    rows = [run_case(num, a) for num in a.processes]
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores, shared by all processes); "
          f"n {a.n}, d {a.d}, M {a.hidden}, batch {a.batch}, relu/softmax/Adam; "
          f"median of epochs 2..{a.epochs}; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print("| processes | epoch s | µs per step | collectives µs per step | final loss |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        coll = "—" if r["collective_us"] is None else f"{r['collective_us']:.0f}"
        print(f"| {r['processes']} | {r['epoch_s']:.3f} | {r['step_us']:.0f} | {coll} "
              f"| {r['loss']:.5f} |")  # fmt: skip
    if a.json:
        write_json(a.json, {"cpu": cpu_model(), "cores": os.cpu_count(),
                            "load_average": os.getloadavg()[0], "args": vars(a) | {
            "json": str(a.json), "result": None}, "rows": rows})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
