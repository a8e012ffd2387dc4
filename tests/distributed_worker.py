"""One process of a multi-process ``jaxbp.fit``, started by tests/test_distributed.py.

    python tests/distributed_worker.py COORDINATOR N I OUT [--n ROWS] [--d D] [--epochs E]
        [--batch B] [--devices K]

With N = 0 it runs alone on K devices (the single-process reference: start it with
``--xla_force_host_platform_device_count=K``). Every process makes only its own rows
(row blocks of a fixed random matrix, so the whole X never exists in a worker), trains,
and process 0 (or the reference) writes θ to OUT/params.npz. Every process writes its
VmHWM before and after ``fit`` and the bytes of the whole X to OUT/memory-I.json. A
process started with ``--stall`` keeps training and touches OUT/ready-I after its first
epoch, for the lost-process test.
"""

import argparse
import json
import sys
from pathlib import Path

BLOCK = 1000


def rows(n: int, d: int, part: slice):
    """Rows ``part`` of the fixed (n, d) data and its labels, made block by block."""
    import numpy as np

    first, last = part.start // BLOCK, -(-part.stop // BLOCK)
    Xs, ys = [], []
    for b in range(first, last):
        rng = np.random.default_rng([7, b])
        size = min(BLOCK, n - b * BLOCK)
        Xs.append(rng.standard_normal((size, d), dtype=np.float32))
        ys.append(rng.integers(0, 3, size))
    X, y = np.concatenate(Xs), np.concatenate(ys)
    skip = part.start - first * BLOCK
    return X[skip : skip + part.stop - part.start], y[skip : skip + part.stop - part.start]


def vmhwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("coordinator")
    p.add_argument("num", type=int)
    p.add_argument("index", type=int)
    p.add_argument("out", type=Path)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--d", type=int, default=8)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--devices", type=int, default=0)
    p.add_argument("--stall", action="store_true")
    p.add_argument("--warm", action="store_true", help="one small fit before the baseline")
    p.add_argument("--whole", action="store_true", help="every process passes all rows")
    a = p.parse_args()

    from jaxbp import distributed

    try:
        if a.num:
            distributed.initialize(a.coordinator, a.num, a.index)
    except distributed.DistributedError as err:
        print(f"worker {a.index}: error: {err}", file=sys.stderr)
        return 2
    import jax
    import numpy as np
    import optax

    import jaxbp

    n_dev = a.devices or jax.device_count()
    part = distributed.shard_rows(a.n) if a.num and not a.whole else slice(0, a.n)
    X, y = rows(a.n, a.d, part)
    net = jaxbp.Net("tanh", "softmax")
    params = jaxbp.init(net, jax.random.key(0), d=a.d, hidden=16, out=3, bias=True)
    warm = dict(
        optimizer=optax.sgd(0.1),
        epochs=1,
        batch_size=a.batch,
        key=jax.random.key(1),
        progress=False,
        devices=n_dev,
    )
    if a.warm:  # XLA's compiler reaches its own peak here, before the baseline
        w = 16 * a.batch
        Xw, yw = rows(w, a.d, distributed.shard_rows(w) if a.num else slice(0, w))
        jaxbp.fit(net, params, Xw, yw, **warm)
    before = vmhwm()

    def callback(epoch, result):
        if a.stall:
            (a.out / f"ready-{a.index}").touch()

    epochs = 10_000 if a.stall else a.epochs
    try:
        result = jaxbp.fit(
            net, params, X, y, optimizer=optax.sgd(0.1), epochs=epochs, batch_size=a.batch,
            key=jax.random.key(1), progress=False, devices=n_dev, callback=callback,
        )  # fmt: skip
    except distributed.LostProcess as err:
        print(f"worker {a.index}: error: {err}", file=sys.stderr)
        return distributed.EXIT_LOST
    except ValueError as err:
        print(f"worker {a.index}: error: {err}", file=sys.stderr)
        return 2
    after = vmhwm()
    memory = {"before": before, "after": after, "X_bytes": a.n * a.d * 4, "rows": len(X)}
    (a.out / f"memory-{a.index}.json").write_text(json.dumps(memory))
    results = {"params.npz": result}
    if not a.num:  # the reference also trains on one device, without devices=
        results["params-one-device.npz"] = jaxbp.fit(
            net, params, X, y, **(warm | {"epochs": a.epochs, "devices": None})
        )
    for name, r in results.items() if a.index == 0 else ():
        leaves = {k: np.asarray(v) for k, v in r.params._asdict().items() if v is not None}
        np.savez(a.out / name, loss=np.asarray(r.history["loss"]), **leaves)
    return 0


if __name__ == "__main__":
    sys.exit(main())
