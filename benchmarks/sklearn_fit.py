"""``BPClassifier.fit`` against ``MLPClassifier.fit``: the whole fit, compilation included.

    python benchmarks/sklearn_fit.py [--runs 3] [--epochs 1 10 100] [--json FILE]

Same network and settings on both sides: one hidden layer of 128 relu units with biases,
softmax output, Adam with learning rate 1e-3, no L2 penalty, minibatches of 128
shuffled every epoch, float32 inputs, exactly ``epochs`` epochs (``MLPClassifier`` with
``tol=0`` and ``n_iter_no_change`` above ``max_iter``, so that it never stops early).
Data: the 8×8 digits (1797 × 64, 10 classes) and the S workload of
``benchmarks/measure.py`` (8192 × 64, 10 classes, a linear teacher).

Every timed fit runs in a fresh Python process (the libraries imported and JAX's
runtime started before the clock starts), so jaxbp's time includes tracing and XLA
compilation, as a user's first fit does; JAX's persistent compilation cache is off.
The jaxbp process then fits a second, identical estimator: ``warm`` is that fit, with
the compiled epoch reused.
Repeats are interleaved (every case once per round), medians are reported. Prints a
table and writes JSON (``benchmarks.measure.write_json``) with the machine's CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.measure import WORKLOADS, cpu_model, machine_info, write_json  # noqa: E402

HIDDEN, BATCH, LR = 128, 128, 1e-3
DATASETS = ("digits", "S")


def load(name: str):
    """(X float32, y int) of the named data set."""
    import numpy as np

    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return (X / 16).astype(np.float32), y
    from benchmarks.measure import data

    return data(WORKLOADS[name])


def worker(method: str, name: str, epochs: int) -> dict:
    """Fit once (twice for jaxbp) in this process; the seconds of each fit."""
    import warnings

    X, y = load(name)
    if method == "sklearn":
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        warnings.simplefilter("ignore", ConvergenceWarning)

        def make():
            return MLPClassifier(
                hidden_layer_sizes=(HIDDEN,), activation="relu", solver="adam", alpha=0.0,
                batch_size=BATCH, learning_rate_init=LR, max_iter=epochs, tol=0.0,
                n_iter_no_change=epochs + 1, shuffle=True, random_state=0,
            )  # fmt: skip
    else:
        import jax

        import jaxbp
        from jaxbp.sklearn import BPClassifier

        jaxbp.fit  # noqa: B018 - import the library's modules before the clock
        jax.numpy.zeros(1).block_until_ready()  # and start the runtime

        def make():
            return BPClassifier(
                hidden=HIDDEN, activation="relu", optimizer="adam", learning_rate=LR,
                batch_size=BATCH, epochs=epochs, random_state=0,
            )  # fmt: skip

    out = {}
    for label in ("cold", "warm") if method == "jaxbp" else ("cold",):
        est = make()
        start = time.perf_counter()
        est.fit(X, y)
        out[label] = time.perf_counter() - start
        out["n_iter"] = int(est.n_iter_)
        out["train_accuracy"] = float(est.score(X, y))
    return out


def run_worker(method: str, name: str, epochs: int) -> dict:
    env = dict(os.environ, JAXBP_CACHE_DIR="off", PYTHONPATH=str(ROOT))
    code = (
        "import json, sys; from benchmarks.sklearn_fit import worker; "
        f"print(json.dumps(worker({method!r}, {name!r}, {epochs})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"{method} {name} {epochs}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--epochs", type=int, nargs="+", default=[1, 10, 100])
    p.add_argument("--data", nargs="+", choices=DATASETS, default=list(DATASETS))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    cases = [(d, e, m) for d in args.data for e in args.epochs for m in ("jaxbp", "sklearn")]
    runs = {c: [] for c in cases}
    for _ in range(args.runs):
        for case in cases:  # interleaved: every case sees the same machine load
            runs[case].append(run_worker(case[2], case[0], case[1]))
    rows = []
    for data, epochs in dict.fromkeys((d, e) for d, e, _ in cases):
        jx, sk = runs[(data, epochs, "jaxbp")], runs[(data, epochs, "sklearn")]
        row = {
            "data": data,
            "epochs": epochs,
            "jaxbp_fit_s": statistics.median(r["cold"] for r in jx),
            "jaxbp_warm_fit_s": statistics.median(r["warm"] for r in jx),
            "sklearn_fit_s": statistics.median(r["cold"] for r in sk),
            "jaxbp_runs": jx,
            "sklearn_runs": sk,
        }
        row["speedup"] = row["sklearn_fit_s"] / row["jaxbp_fit_s"]
        rows.append(row)
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores); median of {args.runs} interleaved runs")
    print("whole fit, one fresh process per fit (jaxbp: compilation included)")
    print("| data | epochs | BPClassifier s | MLPClassifier s | speed-up | BP warm s |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['data']} | {r['epochs']} | {r['jaxbp_fit_s']:.2f} | {r['sklearn_fit_s']:.2f} "
            f"| {r['speedup']:.2f}x | {r['jaxbp_warm_fit_s']:.2f} |"
        )
    if args.json:
        settings = {"hidden": HIDDEN, "batch_size": BATCH, "learning_rate": LR, "runs": args.runs}
        write_json(args.json, {"machine": machine_info(), "settings": settings, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
