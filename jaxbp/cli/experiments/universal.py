"""Universal approximation: "One hidden layer NN can approximate almost arbitrary target g."

Regression targets g on an interval (smooth sin 3x, a kink |x|, steps) and on a square
(a 2-D product of sines) are fitted by relu networks of width M = 1, 2, 4, …, 256, a few
seeds each; the test MSE against the noiseless g falls as M grows.

All widths train at once, in one :func:`jaxbp.fit_many` call at the largest width
``M_max``, with a per-model mask over the hidden units. A network of width m is the
width-``M_max`` network whose units j ≥ m have V row j = 0, b_j = 0 and W column j = 0
at init and never move. The gradient does not keep them at zero by itself: with W
column j = 0 the BP equations give ∂L/∂V row j = (Wᵀδ ⊙ σ′(a))_j xᵀ = 0 and
∂L/∂b_j = 0, but ∂L/∂W column j = δ z_j with z_j = σ(0 + 0), which is 0 for relu and
not for e.g. sigmoid. So :func:`mask_hidden` multiplies the gradient by the mask before
the optimizer; Adam's moments of a masked entry then stay 0 and so does its update.
The test suite checks that a masked model equals ``jaxbp.fit`` of the narrow network.
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

NAME = "universal"
CLAIM = "One hidden layer NN can approximate almost arbitrary target g."
TARGETS = {  # name: (g on raw inputs (n, d), input dimension d, description)
    "sin": (lambda x: np.sin(3 * x[:, 0]), 1, "sin(3x)"),
    "abs": (lambda x: np.abs(x[:, 0]), 1, "|x|"),
    "box": (lambda x: (np.abs(x[:, 0]) < 1).astype(float), 1, "box 1[|x| < 1] (two steps)"),
    "2d": (lambda x: np.sin(2 * x[:, 0]) * np.cos(2 * x[:, 1]), 2, "sin(2x₁) cos(2x₂)"),
}
LOW, HIGH = -2.0, 2.0
NET = jaxbp.Net(activation="relu", head="squared")


def settings(quick: bool) -> dict:
    """The experiment's sizes; ``quick`` is the test-suite version."""
    return {
        "widths": [2**k for k in range(9)],
        "seeds": 1 if quick else 3,
        "epochs": 150 if quick else 400,
        "batch_size": 16,
        "lr": 3e-2,
        "schedule": "cosine decay to 1% over the run",
        "optimizer": "adam",
        "n_train_1d": 410,
        "n_train_2d": 820 if quick else 1640,
        "interval": [LOW, HIGH],
        "activation": NET.activation,
    }


def mask_hidden(width) -> optax.GradientTransformation:
    """Zero the gradient of the hidden units j ≥ ``width``: V rows, b entries, W columns.

    ``width`` may be a traced scalar, e.g. an ``optax.inject_hyperparams`` value, so that
    every model of a :func:`jaxbp.fit_many` run has its own width.
    """

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        keep = (jnp.arange(updates.V.shape[0]) < width).astype(updates.V.dtype)
        b = None if updates.b is None else updates.b * keep
        return updates._replace(V=updates.V * keep[:, None], W=updates.W * keep, b=b), state

    return optax.GradientTransformation(init_fn, update_fn)


def masked_adam(learning_rate, width) -> optax.GradientTransformation:
    """``mask_hidden(width)`` chained before Adam (wrap in ``optax.inject_hyperparams``)."""
    return optax.chain(mask_hidden(width), optax.adam(learning_rate))


def init_padded(net, keys, widths, *, d: int, out: int, max_width: int) -> jaxbp.Params:
    """He-initialised networks of width ``widths[i]``, zero-padded to ``max_width`` units.

    One :func:`jaxbp.init_many` call at ``max_width`` (bias=True); then model i keeps its
    first ``widths[i]`` units, its W columns scaled by √(max_width / widths[i]) (He's
    variance 2 / fan_in for its own width), its offsets b drawn from N(0, 1) instead of 0
    (with standardised inputs this spreads the relu kinks −b_j/v_j over the data rather
    than putting them all at 0), and the other units' V rows, b entries and W columns
    set to 0. So model i is exactly a width-``widths[i]`` network, padded.
    """
    params = jaxbp.init_many(net, keys, d=d, hidden=max_width, out=out, bias=True)
    widths = jnp.asarray(widths, params.V.dtype)
    keep = (jnp.arange(max_width) < widths[:, None]).astype(params.V.dtype)  # (m, M)
    b = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), (max_width,)))(keys)
    return params._replace(
        V=params.V * keep[:, :, None],
        W=params.W * (keep * jnp.sqrt(max_width / widths)[:, None])[:, None, :],
        b=b.astype(params.V.dtype) * keep,
    )


def fit_widths(net, X, Y, widths, init_keys, *, key, epochs: int, batch_size: int, learning_rate):
    """Train one model per (width, init key) pair at once: :func:`jaxbp.fit_many` at
    ``max(widths)`` hidden units with the units j ≥ width masked (see module docstring).

    ``init_keys`` (m,) draw each model's θ (:func:`init_padded`); ``key`` is the one
    shuffle key all models share (so model i takes the steps of ``jaxbp.fit(key=key)``
    of its narrow network). ``learning_rate``: a number or an optax schedule.
    Returns the :class:`jaxbp.FitResult` (stacked, padded params).
    """
    widths = np.asarray(widths)
    max_width = int(widths.max())
    d = X.shape[1]
    out = 1 if np.ndim(Y) == 1 else Y.shape[1]
    params = init_padded(net, init_keys, widths, d=d, out=out, max_width=max_width)
    opt = optax.inject_hyperparams(masked_adam)(learning_rate=learning_rate, width=max_width)
    return jaxbp.fit_many(
        net, params, X, Y, optimizer=opt, epochs=epochs, batch_size=batch_size, key=key,
        hyperparams={"width": widths}, progress=False,
    )  # fmt: skip


def _dataset(name: str, key, n_train_1d: int, n_train_2d: int) -> data.Dataset:
    g, d, _ = TARGETS[name]
    if d == 1:
        n = round(n_train_1d / (1 - data.TEST_FRACTION))
        return data.regression_1d(
            key, lambda x: g(x[:, None]), n=n, low=LOW, high=HIGH, noise=0.0, name=name
        )
    n = round(n_train_2d / (1 - data.TEST_FRACTION))
    X = np.asarray(jax.random.uniform(key, (n, d), minval=LOW, maxval=HIGH), np.float64)
    return data.make_dataset(name, X, g(X), n_classes=None, seed=0, target=g)


def run(out: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """Run the experiment into ``out`` (results.json, PNGs); return the results dict."""
    start = time.perf_counter()
    cfg = settings(quick)
    widths = np.repeat(cfg["widths"], cfg["seeds"])  # model i: width widths[i]
    steps = cfg["epochs"] * -(-cfg["n_train_1d"] // cfg["batch_size"])
    results = {"experiment": NAME, "claim": CLAIM, "settings": cfg, "widths": cfg["widths"]}
    results["targets"], fits, timings = {}, {}, {}
    for t, name in enumerate(TARGETS):
        t0 = time.perf_counter()
        key = jax.random.fold_in(jax.random.key(seed), t)
        ds = _dataset(name, key, cfg["n_train_1d"], cfg["n_train_2d"])
        keys = jax.random.split(jax.random.fold_in(key, 1), len(widths))
        n_steps = steps if ds.d == 1 else steps * cfg["n_train_2d"] // cfg["n_train_1d"]
        lr = optax.cosine_decay_schedule(cfg["lr"], n_steps, alpha=0.01)
        fit = fit_widths(
            NET, ds.X_train, ds.y_train, widths, keys, key=jax.random.fold_in(key, 2),
            epochs=cfg["epochs"], batch_size=cfg["batch_size"], learning_rate=lr,
        )  # fmt: skip
        predict = jax.jit(jax.vmap(jaxbp.forward, in_axes=(None, 0, None)))
        err = np.mean((np.asarray(predict(NET, fit.params, ds.X_test))[..., 0] - ds.y_test) ** 2, 1)
        per_seed = err.reshape(len(cfg["widths"]), cfg["seeds"])
        results["targets"][name] = {
            "description": TARGETS[name][2],
            "test_mse": per_seed.mean(1).tolist(),
            "test_mse_per_seed": per_seed.tolist(),
            "train_loss_final": np.asarray(fit.history["loss"][-1])
            .reshape(per_seed.shape)
            .tolist(),
            "diverged": int(sum(s == "diverged" for s in fit.status)),
        }
        fits[name] = (ds, fit.params, predict)
        timings[name] = time.perf_counter() - t0
    results["figures"] = _figures(out, results, fits, cfg)
    return common.finish(out, results, start, per_target_s=timings)


def summary(results: dict) -> str:
    """A short table: test MSE at a few widths, and the fall from the smallest to the largest."""
    widths = results["widths"]
    shown = [i for i, m in enumerate(widths) if m in (1, 4, 16, 64, 256) or i == len(widths) - 1]
    shown = sorted(set(shown))
    rows = []
    for name, r in results["targets"].items():
        mse = r["test_mse"]
        rows.append([name, *[float(mse[i]) for i in shown], f"{mse[0] / mse[-1]:.0f}×"])
    header = ["target", *[f"M={widths[i]}" for i in shown], "fall"]
    return f"test MSE against width M (mean over seeds)\n{common.table(header, rows)}"


def _figures(out: Path, results, fits, cfg) -> list[str]:
    widths = np.asarray(results["widths"])
    fig, axes = common.figure(1, 1, size=(5.2, 3.8))
    ax = axes[0, 0]
    for r in results["targets"].values():
        per_seed = np.asarray(r["test_mse_per_seed"])
        (line,) = ax.loglog(widths, r["test_mse"], "o-", label=r["description"])
        ax.fill_between(widths, per_seed.min(1), per_seed.max(1), color=line.get_color(), alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set(xlabel="hidden width M", ylabel="test MSE against g")
    ax.set_title("Error falls with width (band: min–max over seeds)", fontsize=10)
    ax.grid(alpha=0.3, which="both", linewidth=0.5)
    ax.legend(fontsize=8)
    names = [common.save(fig, Path(out) / "universal_mse.png")]

    shown = [m for m in (1, 4, 16, 256) if m in widths]
    one_d = [n for n in TARGETS if TARGETS[n][1] == 1]
    fig, axes = common.figure(1, len(one_d), size=(3.6, 3.0))
    for ax, name in zip(axes[0], one_d, strict=True):
        ds, params, predict = fits[name]
        x = np.linspace(LOW, HIGH, 400)[:, None]
        ax.plot(x[:, 0], TARGETS[name][0](x), "k-", lw=2.5, alpha=0.35, label="target g")
        f = np.asarray(predict(NET, params, ds.transform(x)))[..., 0]
        for m in shown:
            i = int(np.flatnonzero(np.repeat(widths, cfg["seeds"]) == m)[0])  # first seed
            ax.plot(x[:, 0], f[i], lw=1.2, label=f"M={m}")
        ax.set_title(TARGETS[name][2], fontsize=10)
        ax.set_xlabel("x")
    axes[0, 0].legend(fontsize=7)
    names.append(common.save(fig, Path(out) / "universal_fits.png"))

    two_d = [n for n in TARGETS if TARGETS[n][1] == 2]
    for name in two_d:
        ds, params, predict = fits[name]
        g = np.linspace(LOW, HIGH, 80)
        X = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
        f = np.asarray(predict(NET, params, ds.transform(X)))[..., 0]
        fig, axes = common.figure(1, len(shown) + 1, size=(2.6, 2.6))
        panels = [("target g", TARGETS[name][0](X))]
        for m in shown:
            i = int(np.flatnonzero(np.repeat(widths, cfg["seeds"]) == m)[0])
            panels.append((f"M={m}", f[i]))
        for ax, (title, v) in zip(axes[0], panels, strict=True):
            ax.imshow(v.reshape(len(g), len(g)), origin="lower", extent=(LOW, HIGH, LOW, HIGH),
                      vmin=-1, vmax=1, cmap="RdBu_r")  # fmt: skip
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.suptitle(f"{TARGETS[name][2]}: fits of width M (first seed)", fontsize=10)
        names.append(common.save(fig, Path(out) / f"universal_fits_{name}.png"))
    return names
