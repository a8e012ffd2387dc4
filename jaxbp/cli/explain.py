"""``jaxbp explain``: one sample through a tiny network, every stored value under its equation.

For the student holding the lecture: the forward pass prints what the summary
slide says to store (Vx, z, Wz, f, ℓ); the backward pass prints δ, ∂ℓ/∂W = δzᵀ,
∂ℓ/∂z = Wᵀδ and ∂ℓ/∂V = (Wᵀδ ⊙ σ′(Vx))xᵀ, each hand-written value beside the
``jax.grad`` value and their largest difference. Everything runs in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxbp.backprop import manual_grad
from jaxbp.model import Net, forward_cache, forward_pass
from jaxbp.oracle import random_problem
from jaxbp.params import Params
from jaxbp.validate import check_targets


def _fmt(a, indent: int) -> str:
    """``a`` printed with its continuation lines aligned under the first bracket."""
    text = np.array2string(np.asarray(a), precision=5, floatmode="maxprec_equal")
    return text.replace("\n", "\n" + " " * indent)


def _autodiff(net: Net, params: Params, x, y):
    """jax.grad of ℓ with respect to Wz, z and θ: the oracle values."""
    head = net.loss_head
    cache = forward_pass(net, params, x, y)
    d_o = jax.grad(lambda o: head.loss(o, y))(cache.o)
    d_z = jax.grad(lambda z: head.loss(params.W @ z + (0 if params.c is None else params.c), y))(
        cache.z
    )
    d_theta = jax.grad(lambda p: forward_pass(net, p, x, y).loss)(params)
    return d_o, d_z, d_theta


def explain(
    activation: str = "relu",
    head: str = "softmax",
    *,
    d: int = 3,
    hidden: int = 4,
    out: int = 2,
    seed: int = 0,
    bias: bool = False,
    output: str | None = None,
) -> str:
    """The forward and backward pass of one sample, as text (see module docstring)."""
    net = Net(activation=activation, head=head, output=output)
    out = net.loss_head.nearest_width(out)  # e.g. 1 for logistic
    with jax.enable_x64(True):
        params, x, y = random_problem(
            net, jax.random.key(seed), n=None, d=d, hidden=hidden, K=out, bias=bias
        )
        y = check_targets(net, params, y, x_ndim=1)
        forward, backward = equations(net, params, x, y)
        lines = [
            f"One sample through f(x) = h(W σ(Vx)) with σ = {activation}, head = {head}"
            f"{f' (h = {output})' if output else ''}, d={d}, M={hidden}, K={out}, seed={seed}"
            f"{', with offsets b, c' if bias else ''}. Float64.",
            "",
            "Data and parameters",
            f"  x     = {_fmt(x, 10)}",
            f"  y     = {_fmt(y, 10)}",
            f"  V     = {_fmt(params.V, 10)}",
            f"  W     = {_fmt(params.W, 10)}",
        ]
        if bias:
            lines += [f"  b     = {_fmt(params.b, 10)}", f"  c     = {_fmt(params.c, 10)}"]
        lines += ["", "Forward pass (store Vx, z, Wz, f, ℓ)"]
        lines += [_block(title, value) for title, value in forward]
        lines += ["", "Backward pass (hand-written | jax.grad | largest |difference|)"]
        lines += [_compare(title, manual, oracle) for title, manual, oracle in backward]
    return "\n".join(lines)


def equations(net: Net, params: Params, x, y) -> tuple[list, list]:
    """The lecture's forward and backward pass of one sample, as (forward, backward) rows.

    ``forward``: (title, value) for Vx, z = σ(Vx), Wz, f = h(Wz) and ℓ. ``backward``:
    (title, hand-written, jax.grad) for δ, ∂ℓ/∂W = δzᵀ, ∂ℓ/∂z = Wᵀδ,
    ∂ℓ/∂V = (Wᵀδ ⊙ σ′(Vx))xᵀ and, with offsets, ∂ℓ/∂b and ∂ℓ/∂c. ``y`` is the target
    row as the head takes it (``jaxbp.validate.check_targets``). Computed in the
    dtype of ``params`` (``jaxbp explain`` uses float64; the playground its live θ).
    """
    bias = params.b is not None
    cache = forward_cache(net, params, x, y)
    grads = manual_grad(net, params, x, y)
    d_o, d_z, oracle = _autodiff(net, params, x, y)
    delta = net.loss_head.delta(cache.o, y)
    dz = params.W.T @ delta
    forward = [
        ("Vx" + (" + b" if bias else ""), cache.a),
        ("z = σ(Vx" + (" + b)" if bias else ")"), cache.z),
        ("Wz" + (" + c" if bias else ""), cache.o),
        ("f = h(Wz)", cache.f),
        (net.loss_head.loss_formula, cache.loss),
    ]
    backward = [
        (net.loss_head.delta_formula + "   (δ = ∂ℓ/∂(Wz))", delta, d_o),
        ("∂ℓ/∂W = δ zᵀ", grads.W, oracle.W),
        ("∂ℓ/∂z = Wᵀ δ", dz, d_z),
        ("∂ℓ/∂V = (Wᵀδ ⊙ σ′(Vx)) xᵀ", grads.V, oracle.V),
    ]
    if bias:
        backward += [
            ("∂ℓ/∂b = Wᵀδ ⊙ σ′(Vx)", grads.b, oracle.b),
            ("∂ℓ/∂c = δ", grads.c, oracle.c),
        ]
    return forward, backward


def _block(title: str, value) -> str:
    return f"  {title}\n        {_fmt(value, 8)}"


def _compare(title: str, manual, oracle) -> str:
    diff = float(jnp.max(jnp.abs(manual - oracle)))
    return (
        f"  {title}\n"
        f"    hand-written {_fmt(manual, 17)}\n"
        f"    jax.grad     {_fmt(oracle, 17)}\n"
        f"    max |diff|   {diff:.1e}"
    )
