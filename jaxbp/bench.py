"""Benchmark harness: one training epoch of f(x) = h(W σ(Vx)), jaxbp against other libraries.

Every method trains the same network (relu, softmax head, no biases, float32, Adam
with learning rate 1e-3) for one epoch of shuffled minibatches on the same synthetic
data (fixed seed). Methods:

- ``jaxbp``: the compiled epoch function ``jaxbp.fit`` runs, with the hand-written
  matrix-form gradient (``grad="matrix"``); built once through the same internal
  factory ``fit`` uses (``jaxbp.train._make_epoch``) and called repeatedly on data
  already on the device. The same process also times ``jaxbp.fit(epochs=1)`` as a
  user calls it (numpy inputs, checks, compilation, one epoch).
- ``jaxbp-autodiff``: the same epoch with ``grad="autodiff"`` (``jax.grad``).
- ``jax-ref``: plain JAX written here without jaxbp: ``jax.grad`` of the cross-entropy,
  ``lax.scan`` over minibatches, ``optax.adam``.
- ``sklearn``: ``MLPClassifier`` (same width, adam, alpha 0, same batch size,
  ``max_iter=1``), one ``partial_fit`` pass. It has biases, so it does slightly more work.
- ``torch``: PyTorch eager, ``nn.Linear(bias=False)``, ``torch.optim.Adam``, a Python
  loop over minibatches (only when torch is importable).
- ``peak``: ``jax.jit(jnp.dot)`` on two 2048×2048 float32 matrices, 2·2048³ flops: the
  reference for "percent of peak".

Executed flops per epoch: n(4dM + 6MK) — forward X Vᵀ (2dM) and Z Wᵀ (2MK), backward
ΔᵀZ (2MK), ΔW (2MK) and Gᵀ X (2dM), per sample; the elementwise work and Adam are
not counted.

Protocol: every (method, round) runs in a fresh subprocess (one library's threads
never run beside another's); the subprocess builds the data, warms up (compiles,
runs once), then times whole epochs (``block_until_ready`` for JAX). Rounds are
interleaved: round r runs every method once, in an order rotated by r, so that a
slow period of a noisy machine hits all methods alike. The harness also measures how
many cores other processes use during each timed section, waits for a quiet machine
before each subprocess, reruns a noisy one once, and summarises only the clean rounds
(when a method has at least two). Medians and min–max over the timed epochs are
reported; ratios compare medians of the same run; every raw sample is kept in the JSON.

Run ``python scripts/bench.py`` (``--quick`` for a tiny smoke run, ``--from-json FILE``
to regenerate the Markdown table from saved results).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

SCHEMA = "jaxbp-bench/1"
RESULT_TAG = "@@JAXBP-BENCH@@ "
SECTION = "jaxbp-bench"


@dataclasses.dataclass(frozen=True)
class Workload:
    """One benchmark problem: n samples of d features, M hidden units, K classes.

    ``reps`` is the number of epochs timed in each subprocess (after the warm-up).
    """

    name: str
    n: int
    d: int
    hidden: int
    classes: int
    batch: int
    reps: int

    @property
    def flops(self) -> int:
        """Executed flops of one epoch: n(4dM + 6MK)."""
        return self.n * (4 * self.d * self.hidden + 6 * self.hidden * self.classes)

    @property
    def steps(self) -> int:
        """Minibatch steps per epoch (every workload divides n by the batch size)."""
        return self.n // self.batch


WORKLOADS = {
    "S": Workload("S", n=8192, d=64, hidden=128, classes=10, batch=128, reps=20),
    "M": Workload("M", n=65536, d=784, hidden=512, classes=10, batch=256, reps=2),
    "L": Workload("L", n=16384, d=1024, hidden=4096, classes=10, batch=1024, reps=1),
}
QUICK = {"n": 512, "d": 16, "hidden": 32, "classes": 10, "batch": 64, "reps": 3}
PEAK_N, QUICK_PEAK_N = 2048, 256

METHODS = {
    "jaxbp": "jaxbp epoch fn, grad=matrix (hand-written BP)",
    "jaxbp-autodiff": "jaxbp epoch fn, grad=autodiff",
    "jax-ref": "plain JAX: jax.grad + lax.scan + optax.adam",
    "sklearn": "scikit-learn MLPClassifier (adam, with biases)",
    "torch": "PyTorch eager (nn.Linear, Adam, Python loop)",
}
PEAK = "peak"

# Targets: jaxbp epoch ≤ factor × autodiff epoch; speed-up over sklearn / torch ≥ factor;
# percent of the jitted matmul peak ≥ value.
TARGETS = {
    "autodiff": {"S": 1.02, "M": 1.02, "L": 1.02},
    "sklearn": {"S": 8.0, "M": 4.0, "L": 3.0},
    "torch": {"S": 5.0, "M": 2.5, "L": 2.0},
    "peak": {"S": 50.0, "M": 85.0, "L": 85.0},
}


# ---------------------------------------------------------------------------
# Machine information and CPU accounting


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
        "cpu_model": _cpu_model(),
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


def _busy_cpu_seconds() -> float | None:
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
            _busy_cpu_seconds(),
            _own_cpu_seconds(),
            time.perf_counter(),
        )
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.wall
        own = _own_cpu_seconds() - self.own
        busy = _busy_cpu_seconds()
        self.cores_used = own / wall if wall > 0 else None
        self.foreign_cores = (
            None if busy is None or self.busy is None or wall <= 0
            else max(0.0, (busy - self.busy - own) / wall)
        )  # fmt: skip
        return False


# ---------------------------------------------------------------------------
# Workers: each runs in its own subprocess and prints one tagged JSON line.


def _data(wl: Workload):
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


def _work_jaxbp(wl: Workload, reps: int, budget_s: float, grad: str, fit_extras: str) -> dict:
    """Time the compiled jaxbp epoch; ``fit_extras`` "all"/"wall"/"": also time ``fit``."""
    import jax
    import optax

    import jaxbp
    from jaxbp import train, validate

    X, y = _data(wl)
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=wl.d, hidden=wl.hidden, out=wl.classes)
    optimizer = optax.adam(1e-3)
    key = jax.random.key(1)
    out: dict = {"threads": {"jax_devices": [str(d) for d in jax.devices()]}}
    try:  # the compiled epoch exactly as fit builds it
        Xd, Yd = validate.check_batch(net, params, X, y, kind="batch")
        epoch = train._make_epoch(net, optimizer, grad, wl.n, wl.batch)
        state = [params, optimizer.init(params)]

        def run_epoch(k: int) -> None:
            order = train.shuffle_order(key, k, wl.n)  # drawn on the host, as fit does
            p, s, stats = epoch(*state, Xd, Yd, order, None, None)
            jax.block_until_ready((p, s, stats))
            state[:] = [p, s]

        start = time.perf_counter()
        run_epoch(0)
        out["warmup_s"] = time.perf_counter() - start  # trace + compile + one epoch
        out |= _time_epochs(run_epoch, reps, budget_s)
        out["timing_mode"] = "epoch fn (jaxbp.train._make_epoch), data on device"
    except (AttributeError, TypeError) as err:  # internals changed: time through fit
        out["timing_mode"] = f"fit history seconds, epochs 2.. (internals unavailable: {err})"
        result = jaxbp.fit(net, params, X, y, optimizer=optimizer, epochs=reps + 1,
                           batch_size=wl.batch, key=key, grad=grad, progress=False)  # fmt: skip
        out["warmup_s"] = result.history["seconds"][0]
        out["samples_s"] = result.history["seconds"][1:]
        out["cores_used"] = out["foreign_cores"] = None
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

    X, y = _data(wl)
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
    X, y = _data(wl)
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


def _work_torch(wl: Workload, reps: int, budget_s: float) -> dict:
    import torch

    X, y = _data(wl)
    X, y = torch.from_numpy(X), torch.from_numpy(y).long()
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(wl.d, wl.hidden, bias=False),
        torch.nn.ReLU(),
        torch.nn.Linear(wl.hidden, wl.classes, bias=False),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_steps(Xs, ys, steps):
        for i in range(steps):
            rows = slice(i * wl.batch, (i + 1) * wl.batch)
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(Xs[rows]), ys[rows]).backward()
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
    return out


def _work_peak(size: int, reps: int) -> dict:
    """``jax.jit(jnp.dot)`` on size×size float32 (2·size³ flops), plus numpy's for context."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    A = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
    Ad = jnp.asarray(A)
    dot = jax.jit(jnp.dot)
    start = time.perf_counter()
    for _ in range(2):
        dot(Ad, Ad).block_until_ready()
    out = {"warmup_s": time.perf_counter() - start, "size": size}
    out |= _time_epochs(lambda k: dot(Ad, Ad).block_until_ready(), reps, budget_s=30.0)
    numpy_s = []
    A @ A
    for _ in range(3):
        start = time.perf_counter()
        A @ A
        numpy_s.append(time.perf_counter() - start)
    out["numpy_samples_s"] = numpy_s
    return out


def _worker(method: str, wl: Workload, peak_n: int, budget_s: float, fit_extras: str) -> dict:
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
    if method == PEAK:
        return _work_peak(peak_n, 10)
    raise ValueError(f"unknown method {method!r}")


def _busy_cores(window_s: float = 1.0) -> float | None:
    """Cores busy over the next ``window_s`` seconds (this process sleeps meanwhile)."""
    before = _busy_cpu_seconds()
    time.sleep(window_s)
    after = _busy_cpu_seconds()
    return None if before is None or after is None else (after - before) / window_s


def wait_for_quiet(threshold: float, max_wait_s: float) -> dict:
    """Sleep until other processes use fewer than ``threshold`` cores, at most ``max_wait_s``."""
    start = time.perf_counter()
    busy = _busy_cores()
    while busy is not None and busy > threshold and time.perf_counter() - start < max_wait_s:
        busy = _busy_cores()
    return {"waited_s": time.perf_counter() - start, "busy_cores_before": busy}


def _run_subprocess(method: str, wl: Workload, opts: dict, timeout_s: float) -> dict:
    """Run one worker in a fresh Python process; return its result or an ``error``."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    payload = json.dumps({"method": method, "workload": dataclasses.asdict(wl), **opts})
    # Run this file as a script, not ``-m jaxbp.bench``: the package __init__ imports
    # jax, which the sklearn and torch workers must not load.
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", payload]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout_s:.0f} s"}
    wall = time.perf_counter() - start
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG) :]) | {"process_wall_s": wall}
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
    return {"error": f"exit code {proc.returncode}: " + " | ".join(tail)}


# ---------------------------------------------------------------------------
# The interleaved run


def rotated(methods: Sequence[str], r: int) -> list[str]:
    """The order of round r: ``methods`` rotated left by r."""
    methods = list(methods)
    k = r % len(methods) if methods else 0
    return methods[k:] + methods[:k]


def quick_workload(name: str) -> Workload:
    return Workload(name, **QUICK)


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def run(
    workloads: Sequence[Workload],
    methods: Sequence[str],
    *,
    rounds: int,
    peak_n: int = PEAK_N,
    budget_s: float = 30.0,
    slow_epoch_s: float = 60.0,
    slow_rounds: int = 2,
    noisy_cores: float | None = 0.3,
    retries: int = 1,
    quiet_wait_s: float = 0.0,
    quiet_wait_total_s: float = 360.0,
    timeout_s: float = 1800.0,
    fit_extras: str = "all",
    quick: bool = False,
    doc: dict | None = None,
    save: Callable[[dict], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the benchmark; return the results document (see ``SCHEMA``).

    Args:
        doc: an earlier results document to add ``rounds`` more rounds to (its
            configuration is used; the other configuration arguments are ignored).
        rounds: rounds per workload; round r runs every method (and the peak) once,
            in the order rotated by r, each in a fresh subprocess.
        budget_s: a worker stops timing epochs once this many seconds are spent
            (after at least one).
        slow_epoch_s, slow_rounds: a method whose first-round median epoch exceeds
            ``slow_epoch_s`` runs in the first ``slow_rounds`` rounds only.
        fit_extras: ``"all"``: the jaxbp worker also times ``fit(epochs=1)`` and, for
            short epochs, fit's per-epoch loop; ``"wall"``: only the former; ``""``: neither.
        noisy_cores, retries: a subprocess during whose timed section other processes
            used more than ``noisy_cores`` cores is rerun (up to ``retries`` times); the
            noisy attempt is kept under ``discarded``. ``None`` disables this.
        quiet_wait_s, quiet_wait_total_s: before each subprocess, wait up to
            ``quiet_wait_s`` for other processes to use fewer than ``noisy_cores`` cores
            (at most ``quiet_wait_total_s`` of waiting in the whole run).
        save: called with the document after every workload (partial results).
    """
    if doc is None:
        doc = new_document(
            methods, rounds=0, quick=quick, peak_n=peak_n, budget_s=budget_s,
            slow_epoch_s=slow_epoch_s, slow_rounds=slow_rounds, noisy_cores=noisy_cores,
            retries=retries, quiet_wait_s=quiet_wait_s,
        )  # fmt: skip
    cfg = doc["config"]
    cfg["rounds"] += rounds
    all_methods = [*cfg["methods"], PEAK]
    opts = {"peak_n": cfg["peak_size"], "budget_s": cfg["budget_s"], "fit_extras": fit_extras}
    waited = 0.0
    for wl in workloads:
        entry = doc["workloads"].setdefault(
            wl.name,
            {
                "spec": dataclasses.asdict(wl) | {"flops": wl.flops, "steps": wl.steps},
                "rounds": [],
                "capped": [],
                "methods": {m: {"runs": [], "discarded": [], "notes": []} for m in all_methods},
            },
        )
        first_round = len(entry["rounds"])
        for r in range(first_round, first_round + rounds):
            order = [
                m for m in rotated(all_methods, r)
                if not (m in entry["capped"] and r >= cfg["slow_rounds"])
            ]  # fmt: skip
            entry["rounds"].append({"round": r, "order": order})
            for method in order:
                record = entry["methods"][method]
                for attempt in range(cfg["retries"] + 1):
                    quiet = {}
                    if cfg["noisy_cores"] is not None and cfg["quiet_wait_s"] > 0:
                        budget = min(cfg["quiet_wait_s"], max(0.0, quiet_wait_total_s - waited))
                        quiet = wait_for_quiet(cfg["noisy_cores"], budget)
                        waited += quiet["waited_s"]
                    result = _run_subprocess(method, wl, opts, timeout_s) | {"round": r} | quiet
                    foreign = result.get("foreign_cores")
                    noisy = cfg["noisy_cores"] is not None and (foreign or 0) > cfg["noisy_cores"]
                    if noisy and attempt < cfg["retries"]:
                        record["discarded"].append(result)
                        log(f"  {wl.name} r{r} {method}: other processes used {foreign:.2f} "
                            "cores; rerunning")  # fmt: skip
                        continue
                    record["runs"].append(result)
                    break
                log(_progress_line(wl, r, method, result))
            if r == 0:
                for method in all_methods:
                    runs = [run for run in entry["methods"][method]["runs"] if "error" not in run]
                    first = _samples(runs)
                    if first and statistics.median(first) > cfg["slow_epoch_s"]:
                        entry["capped"].append(method)
                        entry["methods"][method]["notes"].append(
                            f"epoch > {cfg['slow_epoch_s']:.0f} s: runs in the first "
                            f"{cfg['slow_rounds']} rounds only"
                        )
        if save is not None:
            save(doc)
    return doc


def new_document(methods: Sequence[str], *, rounds: int, quick: bool, peak_n: int,
                 budget_s: float, slow_epoch_s: float, slow_rounds: int,
                 noisy_cores: float | None, retries: int, quiet_wait_s: float) -> dict:  # fmt: skip
    """An empty results document: machine information and the run's configuration."""
    skipped = {}
    if "torch" in methods and not torch_available():
        skipped["torch"] = "torch is not importable"
        methods = [m for m in methods if m != "torch"]
    return {
        "schema": SCHEMA,
        "machine": machine_info(),
        "config": {
            "rounds": rounds,
            "quick": quick,
            "methods": list(methods),
            "skipped": skipped,
            "peak_size": peak_n,
            "budget_s": budget_s,
            "slow_epoch_s": slow_epoch_s,
            "slow_rounds": slow_rounds,
            "noisy_cores": noisy_cores,
            "retries": retries,
            "quiet_wait_s": quiet_wait_s,
            "flops_formula": "n(4dM + 6MK)",
            "network": "relu, softmax head, no biases, float32, Adam lr 1e-3, one epoch",
            "protocol": (
                "fresh subprocess per (method, round); warm-up excluded; rounds interleaved "
                "in rotated order; medians and min-max over the timed epochs of the clean runs"
            ),
        },
        "workloads": {},
    }


def _progress_line(wl: Workload, r: int, method: str, result: dict) -> str:
    if "error" in result:
        return f"{wl.name} r{r} {method:15s} ERROR {result['error']}"
    samples = result["samples_s"]
    return (
        f"{wl.name} r{r} {method:15s} median {statistics.median(samples):.4f} s "
        f"({len(samples)} epochs, cores used {_fmt(result.get('cores_used'), '.2f')}, "
        f"others {_fmt(result.get('foreign_cores'), '.2f')})"
    )


# ---------------------------------------------------------------------------
# Summary and rendering


def _samples(runs: list[dict], key: str = "samples_s") -> list[float]:
    return [s for run in runs for s in run.get(key, [])]


def _per_round_medians(runs: list[dict]) -> dict[int, float]:
    return {run["round"]: statistics.median(run["samples_s"]) for run in runs if run["samples_s"]}


def _stats(values: list[float]) -> dict | None:
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def select_runs(record: dict, noisy_cores: float | None, min_clean: int = 2) -> tuple[list, str]:
    """The runs a summary uses: the clean ones (other processes used at most
    ``noisy_cores`` cores during the timed section) when there are ``min_clean`` of
    them, else every successful run. Returns (runs, "clean" or "all")."""
    ok = [run for run in record["runs"] if "error" not in run and run.get("samples_s")]
    if noisy_cores is None:
        return ok, "all"
    clean = [
        run for run in ok
        if run.get("foreign_cores") is not None and run["foreign_cores"] <= noisy_cores
    ]  # fmt: skip
    return (clean, "clean") if len(clean) >= min(min_clean, len(ok)) else (ok, "all")


def summarize(doc: dict) -> dict:
    """Medians, min–max, GFLOP/s, percent of peak, ratios and targets from raw samples.

    Per method, only the clean runs are used when there are at least two (see
    :func:`select_runs`; the threshold is the run's ``noisy_cores``); every run is kept
    in the JSON either way.
    """
    out = {}
    noisy = doc["config"].get("noisy_cores")
    for name, entry in doc["workloads"].items():
        flops = entry["spec"]["flops"]
        recs = entry["methods"]
        selected = {method: select_runs(rec, noisy) for method, rec in recs.items()}
        peak_runs = selected.get(PEAK, ([], "all"))[0]
        peak_stats = _stats(_samples(peak_runs))
        peak_flops = 2 * doc["config"]["peak_size"] ** 3
        peak_gflops = peak_flops / peak_stats["median"] / 1e9 if peak_stats else None
        numpy_peak = _stats(_samples(peak_runs, "numpy_samples_s"))
        methods = {}
        for method, rec in recs.items():
            if method == PEAK:
                continue
            runs, used = selected[method]
            st = _stats(_samples(runs))
            row = {
                "time": st,
                "rounds": len(runs),
                "rounds_run": len([run for run in rec["runs"] if "error" not in run]),
                "used": used,
                "notes": rec["notes"],
                "errors": [run["error"] for run in rec["runs"] if "error" in run],
            }
            if st:
                row["gflops"] = flops / st["median"] / 1e9
                row["pct_peak"] = 100 * row["gflops"] / peak_gflops if peak_gflops else None
                row["cores_used"] = _median_of(runs, "cores_used")
                row["foreign_cores"] = _median_of(runs, "foreign_cores")
            methods[method] = row
        base = methods.get("jaxbp", {}).get("time")
        ratios = {}
        for other in ("jaxbp-autodiff", "jax-ref", "sklearn", "torch"):
            st = methods.get(other, {}).get("time")
            if base and st:
                mine = _per_round_medians(selected["jaxbp"][0])
                theirs = _per_round_medians(selected[other][0])
                paired = [theirs[r] / mine[r] for r in mine if r in theirs]
                ratios[other] = {
                    "speedup": st["median"] / base["median"],  # other / jaxbp
                    "per_round": [min(paired), max(paired)] if paired else None,
                }
        host = {}
        if "jaxbp" in recs:
            runs = selected["jaxbp"][0]
            host = {
                "epoch_fn": base,
                "fit1_wall": _stats([run["fit1_wall_s"] for run in runs if "fit1_wall_s" in run]),
                "fit_loop_epoch": _stats(_samples(runs, "fit_loop_epoch_s")),
                "warmup": _stats([run["warmup_s"] for run in runs if "warmup_s" in run]),
                "timing_mode": runs[0].get("timing_mode") if runs else None,
            }
        out[name] = {
            "flops": flops,
            "peak": {
                "time": peak_stats,
                "rounds": len(peak_runs),
                "used": selected.get(PEAK, ([], "all"))[1],
                "gflops": peak_gflops,
                "numpy_gflops": peak_flops / numpy_peak["median"] / 1e9 if numpy_peak else None,
            },
            "methods": methods,
            "ratios": ratios,
            "host": host,
            "targets": _targets(name, methods, ratios, peak_gflops),
        }
    return out


def _median_of(runs: list[dict], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def _targets(name: str, methods: dict, ratios: dict, peak_gflops: float | None) -> dict:
    """Per target: the goal, the measured figure, and met (True/False); absent if unmeasured.

    Speed-up targets also get a ``ceiling``: the speed-up jaxbp would have at 100% of
    the matmul peak (peak GFLOP/s / the other method's GFLOP/s).
    """
    out = {}
    if name not in TARGETS["autodiff"]:
        return out
    auto = ratios.get("jaxbp-autodiff")
    if auto:
        factor = 1 / auto["speedup"]  # jaxbp epoch / autodiff epoch
        per_round = auto["per_round"] and [1 / auto["per_round"][1], 1 / auto["per_round"][0]]
        goal = TARGETS["autodiff"][name]
        out["autodiff"] = {"goal": goal, "value": factor, "per_round": per_round,
                           "met": factor <= goal}  # fmt: skip
    for other in ("sklearn", "torch"):
        ratio = ratios.get(other)
        if ratio:
            goal = TARGETS[other][name]
            gflops = methods[other]["gflops"]
            out[other] = {"goal": goal, "value": ratio["speedup"], "per_round": ratio["per_round"],
                          "met": ratio["speedup"] >= goal,
                          "ceiling": peak_gflops / gflops if peak_gflops else None}  # fmt: skip
    pct = methods.get("jaxbp", {}).get("pct_peak")
    if pct is not None:
        goal = TARGETS["peak"][name]
        out["peak"] = {"goal": goal, "value": pct, "per_round": None, "met": pct >= goal}
    return out


def _fmt(value, spec: str, missing: str = "–") -> str:
    return missing if value is None else format(value, spec)


def _secs(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 0.1:
        return f"{value * 1e3:.2f} ms"
    return f"{value:.3f} s"


def _range(st: dict | None) -> str:
    return "–" if not st else f"{_secs(st['min'])} – {_secs(st['max'])}"


_TARGET_ROWS = {
    "autodiff": ("jaxbp epoch ≤ {goal} × autodiff epoch", "{value:.3f}×"),
    "sklearn": ("speed-up over scikit-learn ≥ {goal}×", "{value:.2f}×"),
    "torch": ("speed-up over PyTorch eager ≥ {goal}×", "{value:.2f}×"),
    "peak": ("jaxbp ≥ {goal}% of matmul peak", "{value:.1f}%"),
}


def _speedup_cell(ratio: dict) -> str:
    cell = f"{ratio['speedup']:.2f}×"
    if ratio["per_round"]:
        lo, hi = ratio["per_round"]
        cell += f" ({lo:.2f}–{hi:.2f})"
    return cell


def _rounds_cell(used_rounds: int, successful: int, used: str, cfg: dict) -> str:
    if cfg.get("noisy_cores") is None:
        return str(used_rounds)
    return f"{used_rounds}/{successful}" if used == "clean" else f"{successful}, *noisy*"


def render_markdown(doc: dict, source: Path | str | None = None) -> str:
    """The Markdown section (tables and method notes) for a results document.

    ``source``: the JSON file the document was read from or written to, to cite.
    """
    summary = summarize(doc)
    cfg, mach = doc["config"], doc["machine"]
    v = mach["versions"]
    lines = [
        "## Training-epoch benchmark",
        "",
        f"Generated by `python scripts/bench.py` on {mach['date']}: {mach['cpu_model']}, "
        f"{mach['usable_cores']} usable cores, Python {mach['python']}, jax {v.get('jax')}, "
        f"jaxlib {v.get('jaxlib')}, optax {v.get('optax')}, scikit-learn {v.get('scikit-learn')}, "
        f"torch {v.get('torch') or 'not installed'}, numpy {v.get('numpy')}. "
        f"Raw samples and per-round details: `{source or 'the results JSON'}`.",
        "",
        f"One epoch of minibatch Adam (lr 1e-3) on f(x) = softmax(W relu(Vx)), float32, no "
        f"biases, synthetic data (fixed seed). Executed flops per epoch = "
        f"**{cfg['flops_formula']}** (forward 2dM + 2MK, backward 2MK + 2MK + 2dM per "
        f"sample). Peak = `jax.jit(jnp.dot)` on {cfg['peak_size']}×{cfg['peak_size']} float32, "
        f"2·{cfg['peak_size']}³ flops, median of 10, in its own subprocess in every round. "
        f"Each (method, round) runs in a fresh subprocess, warm-up/compilation excluded; "
        f"{cfg['rounds']} interleaved rounds in rotated order; median and min–max over the "
        f"timed epochs of the *clean* rounds. Speed-up = other's median epoch / jaxbp's "
        f"(higher is better for jaxbp); the per-round range pairs the medians of the same "
        f"round. `cores` = CPU time / wall of the timed section; `others` = cores used "
        f"meanwhile by other processes on the machine (noise).",
    ]
    if cfg.get("noisy_cores") is not None:
        lines += [
            "",
            f"Noise control: before each subprocess the harness waits (up to "
            f"{cfg.get('quiet_wait_s', 0):g} s) for other processes to use < "
            f"{cfg['noisy_cores']:g} cores, reruns a subprocess once if they used more during "
            f"its timed section, and the tables use only clean rounds (`others` ≤ "
            f"{cfg['noisy_cores']:g}) when a method has at least 2 of them, else all rounds "
            f"(marked *noisy*). `rounds` = clean/successful; every attempt is in the JSON.",
        ]
    if cfg.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"{m} ({why})" for m, why in cfg["skipped"].items())]
    for name, s in summary.items():
        spec = doc["workloads"][name]["spec"]
        lines += [
            "",
            f"### {name}: n {spec['n']}, d {spec['d']}, M {spec['hidden']}, K {spec['classes']}, "
            f"batch {spec['batch']} ({spec['steps']} steps), {s['flops'] / 1e9:.3f} GFLOP/epoch",
            "",
            "| method | epoch (median) | min – max | epochs (rounds) | GFLOP/s | % of peak "
            "| jaxbp speed-up (per round) | cores | others |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for method, row in s["methods"].items():
            st = row["time"]
            label = METHODS.get(method, method)
            if not st:
                why = "; ".join(row["errors"]) or "no samples"
                lines.append(f"| {label} | failed: {why} | | | | | | | |")
                continue
            ratio = s["ratios"].get(method)
            speed = "—" if method == "jaxbp" else _speedup_cell(ratio)
            notes = f" ({'; '.join(row['notes'])})" if row["notes"] else ""
            rounds = _rounds_cell(row["rounds"], row["rounds_run"], row["used"], cfg)
            lines.append(
                f"| {label}{notes} | {_secs(st['median'])} | {_range(st)} | {st['n']} "
                f"({rounds}) | {row['gflops']:.1f} | {_fmt(row['pct_peak'], '.1f')} "
                f"| {speed} | {_fmt(row['cores_used'], '.2f')} "
                f"| {_fmt(row['foreign_cores'], '.2f')} |"
            )
        peak = s["peak"]
        if peak["time"]:
            lines.append(
                f"| peak: jax.jit(jnp.dot) {cfg['peak_size']}³ | {_secs(peak['time']['median'])} "
                f"| {_range(peak['time'])} | {peak['time']['n']} ({peak['rounds']}) "
                f"| {peak['gflops']:.1f} | 100 "
                f"| numpy/BLAS same matmul: {_fmt(peak['numpy_gflops'], '.1f')} GFLOP/s | | |"
            )
    lines += ["", "### Targets", "", "| target | " + " | ".join(summary) + " |",
              "|---|" + "---|" * len(summary)]  # fmt: skip
    for key, (title, value_fmt) in _TARGET_ROWS.items():
        cells = []
        for s in summary.values():
            t = s["targets"].get(key)
            if t is None:
                cells.append("not measured")
                continue
            value = value_fmt.format(value=t["value"])
            if t["per_round"]:
                lo, hi = t["per_round"]
                value += f", rounds {lo:.2f}–{hi:.2f}"
            if t.get("ceiling"):
                value += f"; ceiling {t['ceiling']:.1f}×"
            cells.append(f"{'**met**' if t['met'] else '**not met**'} ({value})")
        goals = [f"{TARGETS[key][name]:g}" for name in summary if name in TARGETS[key]]
        goal = goals[0] if len(set(goals)) == 1 else "/".join(goals)
        lines.append(f"| {title.format(goal=goal)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Goals are given per workload (S/M/L). `rounds` = the min–max of the same-round "
        "ratios. `ceiling` = the speed-up jaxbp would reach at 100% of the matmul peak "
        "(peak GFLOP/s ÷ the other method's GFLOP/s): a goal above it cannot be met on this "
        "machine by making jaxbp faster.",
        "",
        "### jaxbp host overhead",
        "",
        "| workload | epoch fn (median) | fit loop, per epoch (epochs 2–6) "
        "| `fit(epochs=1)` wall | first epoch-fn call (trace + compile + run) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        h = s["host"]
        if not h:
            continue
        lines.append(
            f"| {name} | {_secs(h['epoch_fn'] and h['epoch_fn']['median'])} "
            f"| {_secs(h['fit_loop_epoch'] and h['fit_loop_epoch']['median'])} "
            f"| {_secs(h['fit1_wall'] and h['fit1_wall']['median'])} "
            f"| {_secs(h['warmup'] and h['warmup']['median'])} |"
        )
    modes = {s["host"].get("timing_mode") for s in summary.values() if s["host"]}
    lines += [
        "",
        "jaxbp timing: " + "; ".join(sorted(m for m in modes if m)) + ". `fit(epochs=1)` is "
        "called with numpy inputs as a user would: value checks, transfer, tracing, "
        "compilation (each call passes a new optimizer object, so fit's cached epoch "
        "function is not reused) and one epoch. The "
        "fit-loop column is fit's own `history['seconds']` (measured only where an epoch "
        "takes < 0.5 s). scikit-learn's MLPClassifier has biases (b, c) and computes its "
        "loss every step; it is timed by `partial_fit` over the whole set (one epoch).",
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, name: str, text: str, title: str = "# Benchmarks") -> None:
    """Put ``text`` between ``<!-- name:begin -->`` and ``<!-- name:end -->`` in ``path``.

    Everything outside the markers (hand-written notes) is kept; a missing file is
    created with ``title``; missing markers are appended.
    """
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else f"{title}\n"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)


def save_json(doc: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc | {"summary": summarize(doc)}, indent=1) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="bench",
        description="Time one training epoch of jaxbp against plain JAX, scikit-learn and "
        "PyTorch (fresh subprocess per method, interleaved rounds).",
    )
    p.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument(
        "--out", type=Path, help="results JSON (default benchmarks/results/bench-DATE.json)"
    )
    p.add_argument("--md", type=Path, default=Path("BENCHMARKS.md"),
                   help="Markdown file whose benchmark section is (re)written")  # fmt: skip
    p.add_argument("--quick", action="store_true",
                   help=f"tiny sizes ({QUICK}) and a {QUICK_PEAK_N}³ peak, for tests")  # fmt: skip
    p.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="regenerate the Markdown table from FILE; run nothing",
    )
    p.add_argument("--append", type=Path, metavar="FILE",
                   help="run --rounds more rounds of FILE's workloads and methods, add them to "
                        "FILE (or --out) and regenerate the table")  # fmt: skip
    p.add_argument("--slow-epoch", type=float, default=60.0, metavar="S",
                   help="a method whose epoch exceeds S seconds runs in fewer rounds")  # fmt: skip
    p.add_argument("--noisy-cores", type=float, default=0.3,
                   help="rerun a sample once if other processes used more cores "
                        "meanwhile (< 0: never)")  # fmt: skip
    p.add_argument("--quiet-wait", type=float, default=15.0, metavar="S",
                   help="before each subprocess wait up to S seconds for the other processes "
                        "to go below --noisy-cores (at most 6 minutes in all)")  # fmt: skip
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``bench`` command: run the benchmark (or re-render saved results); exit status."""
    args = _parser().parse_args(argv)
    if args.worker:
        job = json.loads(args.worker)
        result = _worker(job["method"], Workload(**job["workload"]), job["peak_n"],
                         job["budget_s"], job["fit_extras"])  # fmt: skip
        print(RESULT_TAG + json.dumps(result), flush=True)
        return 0
    earlier = args.from_json or args.append
    if earlier:
        doc = json.loads(earlier.read_text())
        if doc.get("schema") != SCHEMA:
            print(f"bench: {earlier} is not a {SCHEMA} results file", file=sys.stderr)
            return 2
    if args.from_json:
        text = render_markdown(doc, args.from_json)
        write_section(args.md, SECTION, text)
        print(text)
        return 0
    if args.rounds < 1:
        print("bench: --rounds must be at least 1", file=sys.stderr)
        return 2
    if args.append:  # more rounds of the same workloads and methods, into the same file
        quick = doc["config"]["quick"]
        workloads = [Workload(**{k: v for k, v in entry["spec"].items() if k not in ("flops",
                     "steps")}) for entry in doc["workloads"].values()]  # fmt: skip
        out = args.out or args.append
    else:
        doc, quick = None, args.quick
        workloads = [quick_workload(w) if quick else WORKLOADS[w] for w in args.workloads]
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = args.out or Path("benchmarks/results") / f"bench-{stamp}{'-quick' * quick}.json"
    print(
        f"bench: {len(workloads)} workload(s) x {args.rounds} round(s); results -> {out}",
        flush=True,
    )
    doc = run(
        workloads,
        args.methods,
        rounds=args.rounds,
        peak_n=QUICK_PEAK_N if quick else PEAK_N,
        budget_s=2.0 if quick else 30.0,
        slow_epoch_s=args.slow_epoch,
        noisy_cores=None if quick or args.noisy_cores < 0 else args.noisy_cores,
        quiet_wait_s=0.0 if quick else args.quiet_wait,
        fit_extras="wall" if quick else "all",
        quick=quick,
        doc=doc,
        save=lambda d: save_json(d, out),
        log=lambda line: print(line, flush=True),
    )
    doc["machine"]["loadavg_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    save_json(doc, out)
    text = render_markdown(doc, out)
    write_section(args.md, SECTION, text)
    print(text)
    return 0


if __name__ == "__main__":
    # Run as a script (the workers): drop this directory from the path (its modules
    # must not shadow others) and make the package importable from its parent.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    sys.path.insert(0, str(here.parent))
    sys.exit(main())
