"""Features: "The network extracts features z and puts them into a linear model."

On four 2-D classification sets a relu network f(x) = softmax(W σ(Vx + b) + c) is
trained (a few seeds at once, :func:`jaxbp.fit_many`). A linear classifier (logistic
regression, scikit-learn) is then fitted three times on the training split and scored
on the test split: on the raw inputs x, on the trained network's hidden features
z = σ(Vx + b), and on the features of the same network at its random initialisation.
The last layer of the network is such a linear model on z; the probe asks whether z
made the problem linear.
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

NAME = "features"
CLAIM = "The network extracts features z and puts them into a linear model."
DATASETS = ("circles", "xor", "moons", "spirals")
NET = jaxbp.Net(activation="relu", head="softmax")


def settings(quick: bool) -> dict:
    """The experiment's sizes; ``quick`` is the test-suite version."""
    return {
        "datasets": list(DATASETS),
        "hidden": 32,
        "seeds": 2 if quick else 4,
        "epochs": 60 if quick else 200,
        "batch_size": 32,
        "optimizer": "adam",
        "lr": 1e-2,
        "activation": NET.activation,
        "probe": "StandardScaler + LogisticRegression (scikit-learn defaults, max_iter=5000)",
    }


def hidden_features(params: jaxbp.Params, X) -> np.ndarray:
    """z = σ(Vx + b) for every row of X: the forward pass's stored features."""
    Y = jnp.zeros(X.shape[0], jnp.int32)
    return np.asarray(_forward_cache(NET, params, X, Y).z)


_forward_cache = jax.jit(jaxbp.forward_cache)
_forward = jax.jit(jaxbp.forward)


def probe(Z_train, y_train, Z_test, y_test) -> float:
    """Test accuracy of a linear classifier (logistic regression) fitted on (Z_train, y_train)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(Z_train, y_train)
    return float(model.score(Z_test, y_test))


def _model(params, i):
    return jax.tree.map(lambda a: a[i], params)


def run(out: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """Run the experiment into ``out`` (results.json, PNGs); return the results dict."""
    start = time.perf_counter()
    cfg = settings(quick)
    results = {"experiment": NAME, "claim": CLAIM, "settings": cfg, "datasets": {}}
    trained, timings = {}, {}
    for t, name in enumerate(DATASETS):
        t0 = time.perf_counter()
        ds = data.load(name, key=jax.random.fold_in(jax.random.key(seed), t))
        keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), 100 + t), cfg["seeds"])
        init = jaxbp.init_many(NET, keys, d=ds.d, hidden=cfg["hidden"], out=2, bias=True)
        fit = jaxbp.fit_many(
            NET, init, ds.X_train, ds.y_train, optimizer=optax.adam(cfg["lr"]),
            epochs=cfg["epochs"], batch_size=cfg["batch_size"], key=keys, progress=False,
            validation=(ds.X_test, ds.y_test),
        )  # fmt: skip
        rows = {"probe_z": [], "probe_random_z": [], "network": []}
        for i in range(cfg["seeds"]):
            for key, params in (("probe_z", fit.params), ("probe_random_z", init)):
                p = _model(params, i)
                rows[key].append(
                    probe(
                        hidden_features(p, ds.X_train),
                        ds.y_train,
                        hidden_features(p, ds.X_test),
                        ds.y_test,
                    )
                )
            rows["network"].append(float(fit.history["val_accuracy"][-1][i]))
        results["datasets"][name] = {
            "probe_x": probe(ds.X_train, ds.y_train, ds.X_test, ds.y_test),
            "probe_z": float(np.mean(rows["probe_z"])),
            "probe_random_z": float(np.mean(rows["probe_random_z"])),
            "network_test_accuracy": float(np.mean(rows["network"])),
            "per_seed": rows,
        }
        trained[name] = (ds, _model(fit.params, 0), _model(init, 0))
        timings[name] = time.perf_counter() - t0
    results["figures"] = _figures(out, trained)
    return common.finish(out, results, start, per_dataset_s=timings)


def summary(results: dict) -> str:
    """A short table of the probes' test accuracies."""
    rows = [
        [name, r["probe_x"], r["probe_random_z"], r["probe_z"], r["network_test_accuracy"]]
        for name, r in results["datasets"].items()
    ]
    header = ["data", "linear on x", "on random z", "on learned z", "network"]
    return "test accuracy of a linear classifier on each representation\n" + common.table(
        header, rows
    )


def _pca2(Z: np.ndarray) -> np.ndarray:
    Z = Z - Z.mean(0)
    _, _, vt = np.linalg.svd(Z, full_matrices=False)
    return Z @ vt[:2].T


def _figures(out: Path, trained) -> list[str]:
    from matplotlib.colors import ListedColormap

    colors = ["#1f77b4", "#d62728"]
    fig, axes = common.figure(1, len(trained), size=(3.0, 3.0))
    for ax, (name, (ds, params, _)) in zip(axes[0], trained.items(), strict=True):
        X = np.concatenate([ds.X_train, ds.X_test])
        y = np.concatenate([ds.y_train, ds.y_test])
        lo, hi = X.min(0) - 0.3, X.max(0) + 0.3
        g0, g1 = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
        grid = np.stack([g0.ravel(), g1.ravel()], 1).astype(np.float32)
        pred = np.asarray(_forward(NET, params, grid)).argmax(-1).reshape(g0.shape)
        ax.contourf(g0, g1, pred, levels=[-0.5, 0.5, 1.5], cmap=ListedColormap(colors), alpha=0.2)
        ax.scatter(X[:, 0], X[:, 1], c=[colors[k] for k in y], s=4, linewidths=0)
        ax.set_title(f"{name}: decision regions", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    names = [common.save(fig, Path(out) / "features_regions.png")]

    fig, axes = common.figure(2, len(trained), size=(3.0, 2.8))
    for j, (name, (ds, params, init)) in enumerate(trained.items()):
        for row, (p, what) in enumerate(((init, "random z"), (params, "learned z"))):
            P = _pca2(hidden_features(p, ds.X_test))
            ax = axes[row, j]
            ax.scatter(P[:, 0], P[:, 1], c=[colors[k] for k in ds.y_test], s=5, linewidths=0)
            ax.set_title(f"{name}: {what} (PCA)", fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
    names.append(common.save(fig, Path(out) / "features_pca.png"))
    return names
