"""What the page shows, computed at the current θ.

:func:`views` is ONE jitted function of (θ, data, fixed grids): the train and test
loss and accuracy, the live gradient check (hand-written matrix BP against
``jax.grad``, relative error in float32), the per-sample gradient norms, the
decision regions (or the fitted curve) on a fixed grid over the input plane, the
hidden features z_j(x) = σ(v_jᵀx + b_j) of the first :data:`MAX_MAPS` units on a
coarser grid, and the test confusion matrix. It compiles once per network and data
shape; every frame then costs one call.

:func:`point_equations` is ``jaxbp explain`` for a clicked point at the current θ
(the same rows, from :func:`jaxbp.cli.explain.equations`), and :func:`probe` is f(x)
for the hover read-out.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxbp.backprop import matrix_grad, per_sample_grad_norms
from jaxbp.cli.explain import equations
from jaxbp.model import Net, forward_pass
from jaxbp.oracle import autodiff_batch_grad, relative_error
from jaxbp.params import Params
from jaxbp.validate import check_targets

GRID = 64  # decision regions: GRID × GRID points over the plane
FEATURE_GRID = 32  # hidden-feature maps: FEATURE_GRID × FEATURE_GRID points each
LINE = 256  # 1-D data: points along the input line
MAX_MAPS = 32  # feature maps of the first 32 hidden units
GRADCHECK_RED = 1e-5  # the page turns the relative error red above this


class Grids(NamedTuple):
    """The fixed grids of a data set (in standardised inputs), or None for d > 2."""

    lo: np.ndarray  # (d,) lower corner
    hi: np.ndarray  # (d,) upper corner
    points: jax.Array | None  # (GRID², 2) or (LINE, 1)
    features: jax.Array | None  # (FEATURE_GRID², 2) or (LINE, 1)


def grids_for(X: np.ndarray) -> Grids:
    """Grids spanning the data (all of X) with a 10 % margin; rows run from lo to hi.

    Point (i, j) of a 2-D grid of size G is (x₁, x₂) = (lo₁ + (j + ½)·Δ₁, hi₂ − (i + ½)·Δ₂):
    row-major from the top left, as an image is drawn.
    """
    d = X.shape[1]
    lo, hi = X.min(0), X.max(0)
    pad = 0.1 * np.maximum(hi - lo, 1e-3)
    lo, hi = (lo - pad).astype(np.float32), (hi + pad).astype(np.float32)
    if d == 1:
        line = np.linspace(lo[0], hi[0], LINE, dtype=np.float32)[:, None]
        return Grids(lo, hi, jnp.asarray(line), jnp.asarray(line))
    if d != 2:
        return Grids(lo, hi, None, None)

    def plane(G):
        step = (hi - lo) / G
        x1 = lo[0] + (np.arange(G) + 0.5) * step[0]
        x2 = hi[1] - (np.arange(G) + 0.5) * step[1]
        a, b = np.meshgrid(x1, x2)  # a[i, j] = x1[j], b[i, j] = x2[i]
        return jnp.asarray(np.stack([a.ravel(), b.ravel()], 1).astype(np.float32))

    return Grids(lo, hi, plane(GRID), plane(FEATURE_GRID))


def _quantised(a: jax.Array, axis: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """a scaled to 0..255 (uint8) along ``axis``, with the min and max it was scaled by."""
    lo, hi = a.min(axis, keepdims=True), a.max(axis, keepdims=True)
    scaled = (a - lo) / jnp.where(hi > lo, hi - lo, 1.0)
    return jnp.round(255 * scaled).astype(jnp.uint8), lo.squeeze(axis), hi.squeeze(axis)


@jax.jit
def views(
    net: Net, params: Params, X: jax.Array, Y: jax.Array, Xt: jax.Array, Yt: jax.Array,
    yt_ids: jax.Array, grid: jax.Array | None, fgrid: jax.Array | None,
) -> dict:  # fmt: skip
    """Every view of one frame at θ = ``params`` (see module docstring).

    X, Y and Xt, Yt are the checked train and test data (Y as the head's float rows),
    ``yt_ids`` the test class ids (zeros for regression), ``grid`` and ``fgrid`` the
    fixed grids of :func:`grids_for` (None for d > 2). Returns a dict of arrays.
    """
    head = net.loss_head
    train, test = forward_pass(net, params, X, Y), forward_pass(net, params, Xt, Yt)
    out = {
        "train_loss": train.loss.mean(),
        "test_loss": test.loss.mean(),
        "train_accuracy": head.correct(train.o, Y).mean(),
        "test_accuracy": head.correct(test.o, Yt).mean(),
        # L(θ)'s gradient twice: the lecture's hand-written BP and jax.grad (the oracle)
        "gradcheck": relative_error(
            matrix_grad(net, params, X, Y)[0], autodiff_batch_grad(net, params, X, Y)[0]
        ),
        "norms": per_sample_grad_norms(net, params, X, Y),  # ‖∇θ ℓᵢ‖ (‖δᵢ‖‖zᵢ‖ and ‖gᵢ‖‖xᵢ‖)
    }
    if head.classifier:
        pred = head.classes(test.o)
        C = head.probabilities(test.o).shape[-1]
        out["confusion"] = jax.nn.one_hot(yt_ids, C, dtype=jnp.int32).T @ jax.nn.one_hot(
            pred, C, dtype=jnp.int32
        )
    else:
        out["train_mse"] = jnp.mean((train.f - Y) ** 2)
        out["test_mse"] = jnp.mean((test.f - Yt) ** 2)
    if grid is not None:
        K = params.W.shape[0]
        on_grid = forward_pass(net, params, grid, jnp.zeros((grid.shape[0], K), grid.dtype))
        if head.classifier:
            out["regions"] = jnp.round(255 * head.probabilities(on_grid.o)).astype(jnp.uint8)
        else:
            out["fit"] = on_grid.f.astype(jnp.float32)
        maps = forward_pass(net, params, fgrid, jnp.zeros((fgrid.shape[0], K), fgrid.dtype))
        z = maps.z[:, :MAX_MAPS].T  # (m, points): z_j(x) = σ(v_jᵀx + b_j)
        out["maps"], out["maps_lo"], out["maps_hi"] = _quantised(z, 1)
    return out


def host(tree: dict) -> dict:
    """The views as NumPy arrays (waits for the computation)."""
    return {k: np.asarray(v) for k, v in jax.device_get(tree).items()}


def point_equations(net: Net, params: Params, x, y_row) -> dict:
    """The lecture's forward and backward pass at one point, as JSON-able rows.

    ``y_row`` is the target as the head takes it (class id converted by the caller).
    Rows come from :func:`jaxbp.cli.explain.equations` (what ``jaxbp explain`` prints),
    plus ∂ℓ/∂(Vx) = Wᵀδ ⊙ σ′(Vx), checked against ``jax.grad`` of ℓ with respect to Vx.
    Like ``jaxbp explain``, in float64: the current θ cast from float32 (64-bit JAX is
    switched on for this thread only).
    """
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        return _point_rows(net, params, jnp.asarray(x, jnp.float64), jnp.asarray(y_row))


def _point_rows(net: Net, params: Params, x, y_row) -> dict:
    y = check_targets(net, params, y_row, x_ndim=1)
    forward, backward = equations(net, params, x, y)
    cache = forward_pass(net, params, x, y)
    g = (params.W.T @ net.loss_head.delta(cache.o, y)) * net.sigma.grad(cache.a)

    def loss_of_a(a):
        o = params.W @ net.sigma.fn(a) + (0 if params.c is None else params.c)
        return net.loss_head.loss(o, y)

    backward.insert(3, ("∂ℓ/∂(Vx) = Wᵀδ ⊙ σ′(Vx)", g, jax.grad(loss_of_a)(cache.a)))
    rows = []
    for title, hand, oracle in backward:
        hand, oracle = np.asarray(hand, np.float64), np.asarray(oracle, np.float64)
        scale = max(np.linalg.norm(hand), np.linalg.norm(oracle))
        rel = float(np.linalg.norm(hand - oracle) / scale) if scale > 0 else 0.0
        rows.append({
            "title": title, "hand": _json(hand), "oracle": _json(oracle),
            "max_diff": float(np.max(np.abs(hand - oracle))), "rel": rel,
        })  # fmt: skip
    return {
        "x": _json(x), "y": _json(y),
        "forward": [{"title": t, "value": _json(v)} for t, v in forward],
        "backward": rows, "dtype": "float64",
    }  # fmt: skip


def _json(a) -> list | float:
    """An array as nested lists of floats rounded to 6 significant digits."""
    a = np.asarray(a, np.float64)
    return (
        float(f"{float(a):.6g}")
        if a.ndim == 0
        else np.vectorize(lambda v: float(f"{v:.6g}"), otypes=[float])(a).tolist()
    )


@jax.jit
def _outputs(net: Net, params: Params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    K = params.W.shape[0]
    cache = forward_pass(net, params, x[None], jnp.zeros((1, K), x.dtype))
    probs = net.loss_head.probabilities(cache.o) if net.is_classifier else cache.f
    return cache.f[0], probs[0]


def probe(net: Net, params: Params, x) -> dict:
    """f(x) at one point (and the class probabilities of a classifier), for the hover."""
    f, probs = _outputs(net, params, jnp.asarray(x, params.V.dtype))
    out = {"f": _json(f)}
    if net.is_classifier:
        out["probabilities"] = _json(probs)
    return out
