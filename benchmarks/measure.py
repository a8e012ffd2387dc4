"""What the benchmark times: data, the per-method workers, CPU metering, the matmul peak.

Every method trains the same network (relu, softmax head, no biases, float32, Adam
with learning rate 1e-3) for one epoch of shuffled minibatches on the same synthetic
data (fixed seed). Methods:

- ``jaxbp``: the compiled epoch function ``jaxbp.fit`` runs, with the hand-written
  matrix-form gradient (``grad="matrix"``); built once by ``jaxbp.epoch.compile_epoch``
  (the factory ``fit`` uses) and called repeatedly on data already on the device. The
  same process also times ``jaxbp.fit(epochs=1)`` as a user calls it (numpy inputs,
  checks, compilation, one epoch).
- ``jaxbp-autodiff``: the same epoch with ``grad="autodiff"`` (``jax.grad``).
- ``jaxbp-bf16``: the same epoch as ``jaxbp`` with ``Net(matmul_dtype="bfloat16")``
  (bfloat16 matrix products with float32 accumulation; parameters, optimizer state and
  loss stay float32).
- ``jax-ref``: plain JAX written here without jaxbp: ``jax.grad`` of the cross-entropy,
  ``lax.scan`` over minibatches, ``optax.adam``.
- ``sklearn``: ``MLPClassifier`` (same width, adam, alpha 0, same batch size,
  ``max_iter=1``), one ``partial_fit`` pass. It has biases, so it does slightly more work.
- ``torch``: PyTorch eager, ``nn.Linear(bias=False)``, ``torch.optim.Adam``, a Python
  loop over minibatches (only when torch is importable).
- ``torch-bf16``: the same loop with ``torch.autocast("cpu", dtype=torch.bfloat16)``
  around the forward pass and the loss (backward outside it, as PyTorch recommends):
  the peer a user would pick for speed (only when torch is importable).
- ``peak``: ``jax.jit(jnp.dot)`` on two 2048×2048 float32 matrices, 2·2048³ flops: the
  reference for "percent of peak". It runs in every round, asked for or not.
- ``peak-bf16``: ``jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=float32))``
  on two 2048×2048 bfloat16 matrices, 2·2048³ flops: the reference for the percent of
  peak of the bf16 rows. It runs when asked for, or when a bf16 method is.

Executed flops per epoch: n(4dM + 6MK) — forward X Vᵀ (2dM) and Z Wᵀ (2MK), backward
ΔᵀZ (2MK), ΔW (2MK) and Gᵀ X (2dM), per sample; the elementwise work and Adam are
not counted.

Each worker runs in its own subprocess (started by :mod:`benchmarks.run`): it builds
the data, warms up (compiles, runs once), then times whole epochs
(``block_until_ready`` for JAX) and returns a JSON-able dict. The libraries are imported
inside the workers, so that the sklearn and torch workers never load JAX.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.workloads import CPU_EPOCH, Workload
from benchmarks.workloads import WORKLOADS as ALL_WORKLOADS

# The workloads live in benchmarks/workloads.py (one table for every script); the epoch
# benchmark runs the CPU ones.
WORKLOADS = {name: ALL_WORKLOADS[name] for name in CPU_EPOCH}
QUICK = {"n": 512, "d": 16, "hidden": 32, "classes": 10, "batch": 64, "reps": 3}
PEAK_N, QUICK_PEAK_N = 2048, 256

METHODS = {
    "jaxbp": "jaxbp epoch fn, grad=matrix (hand-written BP)",
    "jaxbp-autodiff": "jaxbp epoch fn, grad=autodiff",
    "jax-ref": "plain JAX: jax.grad + lax.scan + optax.adam",
    "sklearn": "scikit-learn MLPClassifier (adam, with biases)",
    "torch": "PyTorch eager (nn.Linear, Adam, Python loop)",
    "jaxbp-bf16": "jaxbp epoch fn, grad=matrix, matmul_dtype=bfloat16",
    "torch-bf16": "PyTorch eager, bf16 autocast (forward + loss)",
}
PEAK, PEAK_BF16 = "peak", "peak-bf16"
PEAKS = {
    PEAK: "jax.jit(jnp.dot), float32",
    PEAK_BF16: "jax.jit(jnp.dot), bfloat16 x bfloat16 -> float32",
}
BF16_METHODS = ("jaxbp-bf16", "torch-bf16")  # their % of peak is of PEAK_BF16
TORCH_METHODS = ("torch", "torch-bf16")


def quick_workload(name: str) -> Workload:
    """Workload ``name`` at the tiny ``--quick`` sizes (for smoke runs and tests)."""
    return Workload(name, **QUICK)


# ---------------------------------------------------------------------------
# Machine information and CPU accounting


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def write_json(path, doc) -> Path:
    """Write ``doc`` as indented JSON to ``path`` atomically (``jaxbp.atomic``); folders made."""
    from jaxbp import atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return path


def timed(fn: Callable, *args) -> float:
    """Wall seconds of one call ``fn(*args)``, including the wait for JAX's results."""
    import jax  # the harness itself runs without JAX; its workers import it

    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    return time.perf_counter() - start


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` line of /proc/cpuinfo (Linux), or None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name (every benchmark names it: the machines change)."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """The CPU flags that decide which matmul kernels run: AVX2/FMA, AVX-512 (incl. BF16), AMX."""
    flags = (_cpuinfo("flags") or "").split()
    return [f for f in flags if "avx512" in f or f.startswith("amx") or f in ("avx2", "fma")]


def machine_info() -> dict:
    """CPU, cores, OS, Python and library versions, date, load: what a reader needs."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            name: _version(name)
            for name in ("jax", "jaxlib", "optax", "numpy", "scikit-learn", "torch", "jaxbp")
        },
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "loadavg_at_start": load,
        "env": {k: os.environ.get(k) for k in ("XLA_FLAGS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")},
    }


def busy_cpu_seconds() -> float | None:
    """CPU seconds spent busy on all cores since boot (Linux /proc/stat), else None."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _CpuMeter:
    """Over a timed section: cores this process used, and cores other processes used."""

    def __enter__(self):
        self.busy, self.own, self.wall = (
            busy_cpu_seconds(),
            _own_cpu_seconds(),
            time.perf_counter(),
        )
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.wall
        own = _own_cpu_seconds() - self.own
        busy = busy_cpu_seconds()
        self.cores_used = own / wall if wall > 0 else None
        self.foreign_cores = (
            None if busy is None or self.busy is None or wall <= 0
            else max(0.0, (busy - self.busy - own) / wall)
        )  # fmt: skip
        return False


# ---------------------------------------------------------------------------
# Workers: each runs in its own subprocess and prints one tagged JSON line.


def data(wl: Workload):
    """Synthetic classification data, identical for every method: X ~ N(0, 1), float32,
    labels argmax(X T) of a fixed random linear teacher T."""
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((wl.n, wl.d), dtype=np.float32)
    teacher = rng.standard_normal((wl.d, wl.classes), dtype=np.float32)
    y = np.argmax(X @ teacher, axis=1).astype(np.int32)
    return X, y


def _time_epochs(run_epoch: Callable[[int], None], reps: int, budget_s: float) -> dict:
    """Time ``reps`` epochs (at least one; fewer if ``budget_s`` is spent)."""
    samples = []
    with _CpuMeter() as meter:
        for k in range(reps):
            start = time.perf_counter()
            run_epoch(k + 1)
            samples.append(time.perf_counter() - start)
            if sum(samples) > budget_s:
                break
    return {
        "samples_s": samples,
        "cores_used": meter.cores_used,
        "foreign_cores": meter.foreign_cores,
    }


def _work_jaxbp(wl: Workload, reps: int, budget_s: float, grad: str, fit_extras: str,
                matmul_dtype: str | None = None) -> dict:  # fmt: skip
    """Time the compiled jaxbp epoch; ``fit_extras`` "all"/"wall"/"": also time ``fit``.

    ``matmul_dtype``: ``Net(matmul_dtype=...)`` (``"bfloat16"`` for ``jaxbp-bf16``).
    """
    import jax
    import optax

    import jaxbp
    from jaxbp import epoch as epochs
    from jaxbp import validate

    X, y = data(wl)
    net = jaxbp.Net(activation="relu", head="softmax", matmul_dtype=matmul_dtype)
    params = jaxbp.init(net, jax.random.key(0), d=wl.d, hidden=wl.hidden, out=wl.classes)
    optimizer = optax.adam(1e-3)
    key = jax.random.key(1)
    out: dict = {"threads": {"jax_devices": [str(d) for d in jax.devices()]}}
    Xd, Yd = validate.check_batch(net, params, X, y, kind="batch")  # Y one-hot, on the device
    # The compiled epoch exactly as fit builds it.
    epoch = epochs.compile_epoch(net, optimizer, n=wl.n, batch_size=wl.batch, grad=grad)
    state = [params, optimizer.init(params)]

    def run_epoch(k: int) -> None:
        order = epochs.shuffle_order(key, k, wl.n)  # drawn on the host, as fit does
        p, s, stats = epoch(*state, Xd, Yd, order, None, None)
        jax.block_until_ready((p, s, stats))
        state[:] = [p, s]

    start = time.perf_counter()
    run_epoch(0)
    out["warmup_s"] = time.perf_counter() - start  # trace + compile + one epoch
    out |= _time_epochs(run_epoch, reps, budget_s)
    out["timing_mode"] = "epoch fn (jaxbp.epoch.compile_epoch), data on device"
    out["matmul_dtype"] = matmul_dtype or "float32"
    if fit_extras:  # fit as a user calls it: numpy inputs, checks, compilation, one epoch

        def fit(epochs: int):
            start = time.perf_counter()
            result = jaxbp.fit(net, params, X, y, optimizer=optax.adam(1e-3), epochs=epochs,
                               batch_size=wl.batch, key=key, grad=grad, progress=False)  # fmt: skip
            jax.block_until_ready(result.params)
            return time.perf_counter() - start, result.history["seconds"]

        out["fit1_wall_s"], seconds = fit(1)
        out["fit1_history_s"] = seconds[0]
        if fit_extras == "all" and statistics.median(out["samples_s"]) < 0.5:  # fit's host loop
            out["fit_loop_epoch_s"] = fit(6)[1][1:]
    return out


def _work_jax_ref(wl: Workload, reps: int, budget_s: float) -> dict:
    """Plain JAX, no jaxbp: the textbook jitted training epoch."""
    import jax
    import jax.numpy as jnp
    import optax

    X, y = data(wl)
    X, Y = jnp.asarray(X), jax.nn.one_hot(y, wl.classes, dtype=jnp.float32)
    kV, kW = jax.random.split(jax.random.key(0))
    params = {
        "V": jax.random.normal(kV, (wl.hidden, wl.d)) / jnp.sqrt(wl.d),
        "W": jax.random.normal(kW, (wl.classes, wl.hidden)) / jnp.sqrt(wl.hidden),
    }
    optimizer = optax.adam(1e-3)

    def loss(p, Xb, Yb):
        logits = jax.nn.relu(Xb @ p["V"].T) @ p["W"].T
        return jnp.mean(jax.nn.logsumexp(logits, axis=-1) - jnp.sum(Yb * logits, axis=-1))

    def step(carry, batch):
        p, s = carry
        value, grads = jax.value_and_grad(loss)(p, *batch)
        updates, s = optimizer.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), value

    @jax.jit
    def epoch(p, s, X, Y, key):
        perm = jax.random.permutation(key, wl.n)
        X, Y = X[perm], Y[perm]
        batches = X.reshape(wl.steps, wl.batch, wl.d), Y.reshape(wl.steps, wl.batch, wl.classes)
        (p, s), losses = jax.lax.scan(step, (p, s), batches)
        return p, s, losses.mean()

    state = [params, optimizer.init(params)]
    key = jax.random.key(1)

    def run_epoch(k: int) -> None:
        p, s, value = epoch(*state, X, Y, jax.random.fold_in(key, k))
        jax.block_until_ready((p, s, value))
        state[:] = [p, s]

    start = time.perf_counter()
    run_epoch(0)
    return {"warmup_s": time.perf_counter() - start, **_time_epochs(run_epoch, reps, budget_s)}


def _work_sklearn(wl: Workload, reps: int, budget_s: float) -> dict:
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_info

    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = data(wl)
    clf = MLPClassifier(
        hidden_layer_sizes=(wl.hidden,), activation="relu", solver="adam", alpha=0.0,
        batch_size=wl.batch, learning_rate_init=1e-3, max_iter=1, shuffle=True, random_state=0,
    )  # fmt: skip
    start = time.perf_counter()  # warm-up: initialise the weights, the BLAS threads
    few = min(wl.n, 4 * wl.batch)
    clf.partial_fit(X[:few], y[:few], classes=np.arange(wl.classes))
    out = {"warmup_s": time.perf_counter() - start}
    out |= _time_epochs(lambda k: clf.partial_fit(X, y), reps, budget_s)
    out["threads"] = [
        {k: info.get(k) for k in ("internal_api", "num_threads", "version")}
        for info in threadpool_info()
    ]
    out["dtype"] = str(clf.coefs_[0].dtype)
    return out


def _work_torch(wl: Workload, reps: int, budget_s: float, autocast: bool = False) -> dict:
    """PyTorch eager; ``autocast``: forward and loss under ``torch.autocast("cpu", bfloat16)``."""
    import contextlib

    import torch

    X, y = data(wl)
    X, y = torch.from_numpy(X), torch.from_numpy(y).long()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(wl.d, wl.hidden, bias=False),
        torch.nn.ReLU(),
        torch.nn.Linear(wl.hidden, wl.classes, bias=False),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def forward_context():
        if autocast:
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_steps(Xs, ys, steps):
        for i in range(steps):
            rows = slice(i * wl.batch, (i + 1) * wl.batch)
            optimizer.zero_grad(set_to_none=True)
            with forward_context():
                loss = loss_fn(model(Xs[rows]), ys[rows])
            loss.backward()
            optimizer.step()

    def run_epoch(k: int, steps: int = wl.steps) -> None:
        perm = torch.randperm(wl.n)
        train_steps(X[perm], y[perm], steps)

    start = time.perf_counter()
    run_epoch(0, min(wl.steps, 5))  # warm-up: shuffle, allocator, thread pool, kernels
    out = {"warmup_s": time.perf_counter() - start}
    out |= _time_epochs(run_epoch, reps, budget_s)
    out["threads"] = {
        "intra_op": torch.get_num_threads(),
        "inter_op": torch.get_num_interop_threads(),
    }
    if autocast:
        out["autocast"] = "cpu, bfloat16 (forward + loss)"
    return out


def _work_peak(size: int, reps: int, bf16: bool = False) -> dict:
    """``jax.jit(jnp.dot)`` on size×size float32 (2·size³ flops), plus numpy's for context.

    ``bf16``: bfloat16 operands with float32 accumulation
    (``preferred_element_type=float32``); numpy has no bfloat16 matmul, so no numpy figure.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    A = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    if bf16:
        Ad = jnp.asarray(A, dtype=jnp.bfloat16)
        dot = jax.jit(lambda a, b: jnp.dot(a, b, preferred_element_type=jnp.float32))
    else:
        Ad = jnp.asarray(A)
        dot = jax.jit(jnp.dot)
    start = time.perf_counter()
    for _ in range(2):
        dot(Ad, Ad).block_until_ready()
    out = {"warmup_s": time.perf_counter() - start, "size": size}
    out |= _time_epochs(lambda k: dot(Ad, Ad).block_until_ready(), reps, budget_s=30.0)
    out["dtype"] = "bfloat16 -> float32" if bf16 else "float32"
    if bf16:
        return out
    numpy_s = []
    A @ A
    for _ in range(3):
        start = time.perf_counter()
        A @ A
        numpy_s.append(time.perf_counter() - start)
    out["numpy_samples_s"] = numpy_s
    return out


def worker(method: str, wl: Workload, peak_n: int, budget_s: float, fit_extras: str) -> dict:
    """Run ``method``'s worker on ``wl`` in this process; its JSON-able result."""
    if method == "jaxbp":
        return _work_jaxbp(wl, wl.reps, budget_s, "matrix", fit_extras)
    if method == "jaxbp-autodiff":
        return _work_jaxbp(wl, wl.reps, budget_s, "autodiff", "")
    if method == "jax-ref":
        return _work_jax_ref(wl, wl.reps, budget_s)
    if method == "sklearn":
        return _work_sklearn(wl, wl.reps, budget_s)
    if method == "torch":
        return _work_torch(wl, wl.reps, budget_s)
    if method == "jaxbp-bf16":
        return _work_jaxbp(wl, wl.reps, budget_s, "matrix", "", matmul_dtype="bfloat16")
    if method == "torch-bf16":
        return _work_torch(wl, wl.reps, budget_s, autocast=True)
    if method == PEAK:
        return _work_peak(peak_n, 10)
    if method == PEAK_BF16:
        return _work_peak(peak_n, 10, bf16=True)
    raise ValueError(f"unknown method {method!r}")
