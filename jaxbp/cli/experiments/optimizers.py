"""Optimizers: "Which algorithm should we choose? Gradient descent or accelerated gradient descent?"

The same data and the same initial θ for seven training algorithms: full-batch
gradient descent θ_{k+1} = θ_k − μ ∇L(θ_k), Nesterov-accelerated gradient descent
(full batch), minibatch SGD, SGD with momentum, Adagrad, RMSprop and Adam. Each runs
a small grid of learning rates at once (:func:`jaxbp.fit_many` with
``optax.inject_hyperparams``); the rate with the lowest final validation loss is kept.

Every algorithm makes full passes over the training set, so an epoch costs n
sample-gradient evaluations for all of them: full-batch methods take one step per
epoch, minibatch methods n / B steps.

Layout of ``results.json``: ``optimizers`` → name → data set → ``lr`` (the rate picked),
``lrs`` (the grid), ``loss`` (training loss: index 0 at the shared initial θ, then the
mean minibatch loss of each epoch), ``grad_evals`` and ``seconds`` (cumulative, same
length as ``loss``), ``val_loss`` (final, per rate in the grid), ``steps_per_epoch``.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxbp
from jaxbp import data
from jaxbp.cli.experiments import common

NAME = "optimizers"
CLAIM = "Which algorithm should we choose? Gradient descent or accelerated gradient descent?"
# name: (optax optimizer wrapped for a per-model learning rate, full batch?, rate grid)
OPTIMIZERS = {
    "gd": (lambda: optax.inject_hyperparams(optax.sgd)(0.1), True, (0.03, 0.1, 0.3, 1.0)),
    "nesterov_gd": (
        lambda: optax.inject_hyperparams(optax.sgd)(0.1, momentum=0.9, nesterov=True),
        True,
        (0.01, 0.03, 0.1, 0.3),
    ),
    "sgd": (lambda: optax.inject_hyperparams(optax.sgd)(0.1), False, (0.01, 0.03, 0.1, 0.3)),
    "momentum": (
        lambda: optax.inject_hyperparams(optax.sgd)(0.1, momentum=0.9),
        False,
        (1e-3, 3e-3, 1e-2, 3e-2),
    ),
    "adagrad": (
        lambda: optax.inject_hyperparams(optax.adagrad)(0.1),
        False,
        (0.01, 0.03, 0.1, 0.3),
    ),
    "rmsprop": (
        lambda: optax.inject_hyperparams(optax.rmsprop)(0.1),
        False,
        (3e-4, 1e-3, 3e-3, 1e-2),
    ),
    "adam": (lambda: optax.inject_hyperparams(optax.adam)(0.1), False, (3e-4, 1e-3, 3e-3, 1e-2)),
}
NETS = {
    "digits": (jaxbp.Net(activation="relu", head="softmax"), 64),
    "teacher": (jaxbp.Net(activation="tanh", head="squared"), 32),
}


def settings(quick: bool) -> dict:
    """The experiment's sizes; ``quick`` is the test-suite version (teacher data only)."""
    return {
        "data_sets": ["teacher"] if quick else ["digits", "teacher"],
        "epochs": 8 if quick else 40,
        "batch_size": 32,
        "validation_fraction": 0.2,
        "hidden": {name: m for name, (_, m) in NETS.items()},
        "activation": {name: net.activation for name, (net, _) in NETS.items()},
        "lr_grids": {name: list(grid) for name, (_, _, grid) in OPTIMIZERS.items()},
        "momentum": 0.9,
        "seconds": "cumulative wall time of the vmapped run of the whole rate grid; the first "
        "epoch (which compiles) is counted at the median epoch time",
    }


def _split(ds: data.Dataset, fraction: float, seed: int):
    perm = np.random.default_rng(seed).permutation(len(ds.X_train))
    n_val = round(fraction * len(perm))
    val, train = perm[:n_val], perm[n_val:]
    return (ds.X_train[train], ds.y_train[train]), (ds.X_train[val], ds.y_train[val])


def run(out: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """Run the experiment into ``out`` (results.json, PNGs); return the results dict."""
    start = time.perf_counter()
    cfg = settings(quick)
    results = {"experiment": NAME, "claim": CLAIM, "settings": cfg}
    results["optimizers"] = {name: {} for name in OPTIMIZERS}
    timings = {}
    for ds_name in cfg["data_sets"]:
        net, hidden = NETS[ds_name]
        ds = data.load(ds_name, key=jax.random.key(seed))
        (X, Y), (Xv, Yv) = _split(ds, cfg["validation_fraction"], seed)
        n = len(X)
        theta = jaxbp.init(net, jax.random.key(seed), d=ds.d, hidden=hidden, out=ds.n_outputs,
                           bias=True)  # fmt: skip
        loss0 = float(jaxbp.loss(net, theta, X, Y))
        for name, (make, full, grid) in OPTIMIZERS.items():
            t0 = time.perf_counter()
            lrs = jnp.asarray(grid, jnp.float32)
            g = len(grid)
            same = jax.tree.map(lambda a, g=g: jnp.broadcast_to(a, (g, *a.shape)), theta)
            batch = None if full else cfg["batch_size"]
            fit = jaxbp.fit_many(
                net, same, X, Y, optimizer=make(), epochs=cfg["epochs"], batch_size=batch,
                key=jax.random.key(seed + 1), hyperparams={"learning_rate": lrs},
                validation=(Xv, Yv), progress=False,
            )  # fmt: skip
            val = np.asarray(fit.history["val_loss"][-1], float)
            val[[s == "diverged" for s in fit.status]] = np.inf
            best = int(np.nanargmin(np.where(np.isfinite(val), val, np.inf)))
            sec = np.asarray(fit.history["seconds"], float)
            sec[0] = np.median(sec[1:]) if len(sec) > 1 else sec[0]
            epochs = np.arange(cfg["epochs"] + 1)
            results["optimizers"][name][ds_name] = {
                "lr": float(grid[best]),
                "lrs": list(grid),
                "loss": [loss0, *np.asarray(fit.history["loss"], float)[:, best].tolist()],
                "grad_evals": (epochs * n).tolist(),
                "seconds": [0.0, *np.cumsum(sec).tolist()],
                "val_loss": val.tolist(),
                "status": fit.status[best],
                "steps_per_epoch": 1 if full else -(-n // cfg["batch_size"]),
            }
            timings[f"{ds_name}/{name}"] = time.perf_counter() - t0
    results["figures"] = _figures(out, results)
    return common.finish(out, results, start, per_run_s=timings)


def summary(results: dict) -> str:
    """A short table: the rate picked and the final training loss, per data set."""
    tables = []
    for ds_name in results["settings"]["data_sets"]:
        rows = []
        for name, per in results["optimizers"].items():
            r = per[ds_name]
            rows.append([name, r["lr"], r["loss"][0], r["loss"][-1], r["seconds"][-1]])
        header = ["optimizer", "lr", "loss at θ₀", "final loss", "seconds"]
        tables.append(f"{ds_name}: training loss\n{common.table(header, rows)}")
    return "\n\n".join(tables)


def _figures(out: Path, results) -> list[str]:
    names = []
    axes_x = (("grad_evals", "epochs"), ("grad_evals", "sample-gradient evaluations"),
              ("seconds", "wall time (s)"))  # fmt: skip
    for ds_name in results["settings"]["data_sets"]:
        fig, axes = common.figure(1, 3, size=(3.8, 3.2))
        for ax, (key, label) in zip(axes[0], axes_x, strict=True):
            for name, per in results["optimizers"].items():
                r = per[ds_name]
                x = np.asarray(r[key], float)
                if label == "epochs":
                    x = x / (x[1] if len(x) > 1 else 1)
                style = "--" if name in ("gd", "nesterov_gd") else "-"
                ax.plot(x, r["loss"], style, lw=1.3, label=f"{name} (μ={r['lr']:g})")
            ax.set_yscale("log")
            ax.set_xlabel(label)
            ax.grid(alpha=0.3, which="both", linewidth=0.5)
        axes[0, 0].set_ylabel("training loss")
        axes[0, 0].legend(fontsize=7)
        fig.suptitle(f"{ds_name}: same θ₀, best learning rate per algorithm", fontsize=10)
        names.append(common.save(fig, Path(out) / f"optimizers_{ds_name}.png"))
    return names
