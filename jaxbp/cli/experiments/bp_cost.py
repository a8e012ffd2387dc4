"""Cost of the gradient: "Backpropagation is an efficient way of computing the gradient."

For d = 64 inputs, K = 10 classes and a batch of n = 256 samples, the hidden width M
grows from 4 to 1024, so the number of parameters P = M(d + K) grows from 296 to
75 776. Timed, jitted and after compilation (median of interleaved repeats, each waited for with
``block_until_ready``):

- one forward pass: ``jaxbp.loss`` (f(x) and ℓ for the batch);
- the hand-written gradient: ``jaxbp.batch_grad`` (matrix-form BP);
- ``jax.grad``: ``jaxbp.autodiff_grad``;
- central finite differences (L(θ + ε eⱼ) − L(θ − ε eⱼ)) / 2ε: 2P forward passes,
  batched with ``jax.vmap`` over coordinates. Up to ``FD_CHUNK`` coordinates are timed
  in full; beyond that one chunk of ``FD_CHUNK`` coordinates is timed and the time is
  scaled by P / ``FD_CHUNK`` (``fd_method`` in results.json says so).
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

import jaxbp
from jaxbp.cli.experiments import common

NAME = "bp-cost"
CLAIM = "Backpropagation is an efficient way of computing the gradient."
NET = jaxbp.Net(activation="relu", head="softmax")
D, K, N = 64, 10, 256
FD_CHUNK = 128
EPS = 1e-2  # float32: balances truncation O(ε²) against rounding O(u / ε)


def settings(quick: bool) -> dict:
    """The experiment's sizes; ``quick`` is the test-suite version."""
    return {
        "d": D,
        "K": K,
        "n": N,
        "widths": [4, 32, 256, 1024] if quick else [4, 8, 16, 32, 64, 128, 256, 512, 1024],
        "repeats": 7 if quick else 25,
        "fd_repeats": 3 if quick else 5,
        "fd_chunk": FD_CHUNK,
        "fd_eps": EPS,
        "dtype": "float32",
        "device": str(jax.devices()[0]),
    }


def fd_coordinates(net, params, X, Y, idx, eps: float = EPS):
    """Central differences of L(θ) = ``jaxbp.loss`` for the coordinates ``idx`` of the
    flattened θ: 2·len(idx) forward passes, vmapped over the coordinates."""
    theta, unravel = ravel_pytree(params)

    def one(j):
        e = jnp.zeros_like(theta).at[j].set(eps)
        up = jaxbp.loss(net, unravel(theta + e), X, Y)
        down = jaxbp.loss(net, unravel(theta - e), X, Y)
        return (up - down) / (2 * eps)

    return jax.vmap(one)(idx)


def _time_width(M: int, cfg: dict, key) -> dict:
    k_p, k_x, k_y = jax.random.split(key, 3)
    params = jaxbp.init(NET, k_p, d=D, hidden=M, out=K)
    X = jax.random.normal(k_x, (N, D))
    Y = jax.nn.one_hot(jax.random.randint(k_y, (N,), 0, K), K)
    P = sum(a.size for a in jax.tree.leaves(params))
    chunk = min(P, FD_CHUNK)
    idx = jnp.arange(chunk)
    fns = {
        "forward_s": jax.jit(jaxbp.loss),
        "bp_s": jax.jit(jaxbp.batch_grad),
        "autodiff_s": jax.jit(jaxbp.autodiff_grad),
    }
    fd_fn = jax.jit(lambda n, p, x, y: fd_coordinates(n, p, x, y, idx))
    calls = {name: (lambda fn=fn: fn(NET, params, X, Y)) for name, fn in fns.items()}
    for call in [*calls.values(), lambda: fd_fn(NET, params, X, Y)]:
        jax.block_until_ready(call())  # compile
    row = {"width": M, "params": P, "fd_coordinates_timed": chunk}
    row |= common.interleaved_median_seconds(calls, cfg["repeats"])  # compared with each other
    row["fd_chunk_s"] = common.median_seconds(lambda: fd_fn(NET, params, X, Y), cfg["fd_repeats"])
    row["fd_s"] = row["fd_chunk_s"] * P / chunk
    bp = fns["bp_s"](NET, params, X, Y)
    fd = fd_fn(NET, params, X, Y)
    ref = ravel_pytree(bp)[0][:chunk]
    row["fd_rel_error"] = float(jnp.linalg.norm(fd - ref) / jnp.linalg.norm(ref))
    return row


def run(out: Path, *, quick: bool = False, seed: int = 0) -> dict:
    """Run the experiment into ``out`` (results.json, PNG); return the results dict."""
    start = time.perf_counter()
    cfg = settings(quick)
    rows = [_time_width(M, cfg, jax.random.fold_in(jax.random.key(seed), M)) for M in cfg["widths"]]
    results = {"experiment": NAME, "claim": CLAIM, "settings": cfg}
    for key in ("params", "forward_s", "bp_s", "autodiff_s", "fd_s", "fd_rel_error"):
        results[key] = [r[key] for r in rows]
    results["widths"] = cfg["widths"]
    results["fd_coordinates_timed"] = [r["fd_coordinates_timed"] for r in rows]
    results["fd_method"] = (
        f"central differences, 2P forward passes of the batch (jaxbp.loss), vmapped over "
        f"coordinates; for P <= {FD_CHUNK} all coordinates are timed, otherwise the first "
        f"{FD_CHUNK} coordinates ({2 * FD_CHUNK} forward passes) are timed and the time is "
        f"scaled by P / {FD_CHUNK}"
    )
    results["bp_over_forward"] = [
        b / f for b, f in zip(results["bp_s"], results["forward_s"], strict=True)
    ]
    results["fd_over_bp"] = [f / b for f, b in zip(results["fd_s"], results["bp_s"], strict=True)]
    results["figures"] = _figures(out, results)
    return common.finish(out, results, start)


def summary(results: dict) -> str:
    """A short table: times per route and the two ratios the claim is about."""
    rows = [
        [P, f * 1e3, b * 1e3, a * 1e3, fd * 1e3, b / f, fd / b]
        for P, f, b, a, fd in zip(results["params"], results["forward_s"], results["bp_s"],
                                  results["autodiff_s"], results["fd_s"], strict=True)
    ]  # fmt: skip
    header = ["P", "forward ms", "BP ms", "jax.grad ms", "FD ms", "BP/fwd", "FD/BP"]
    return f"time of one gradient (batch n = {N})\n{common.table(header, rows)}"


def _figures(out: Path, results) -> list[str]:
    P = np.asarray(results["params"])
    fig, axes = common.figure(1, 1, size=(5.6, 4.0))
    ax = axes[0, 0]
    scaled = [c < p for c, p in zip(results["fd_coordinates_timed"], P, strict=True)]
    for key, label, style in (("forward_s", "forward pass (jaxbp.loss)", "o-"),
                              ("bp_s", "hand-written BP (batch_grad)", "s-"),
                              ("autodiff_s", "jax.grad (autodiff_grad)", "^--"),
                              ("fd_s", "finite differences (2P passes)", "d-")):  # fmt: skip
        ax.loglog(P, results[key], style, label=label, ms=4)
    fd = np.asarray(results["fd_s"])
    if any(scaled):
        ax.loglog(P[scaled], fd[scaled], "d", mfc="none", ms=9, color="C3",
                  label=f"FD scaled from {FD_CHUNK} timed coordinates")  # fmt: skip
    ax.set(xlabel="number of parameters P", ylabel="seconds (median, jitted)")
    ax.set_title(f"Cost of one gradient, batch n={N}, d={D}, K={K}", fontsize=10)
    ax.grid(alpha=0.3, which="both", linewidth=0.5)
    ax.legend(fontsize=7)
    return [common.save(fig, Path(out) / "bp_cost.png")]
