"""The oracle: ``jax.grad`` of the loss, and a float64 central finite-difference check.

``gradcheck`` compares three independent routes to ∇L(θ): the hand-written BP
(matrix form and per-sample vmap), ``jax.grad``, and central differences

    ∂L/∂θⱼ ≈ (L(θ + ε eⱼ) − L(θ − ε eⱼ)) / 2ε,

all in float64. Errors are relative, over the whole flattened gradient:
‖g₁ − g₂‖₂ / max(‖g₁‖₂, ‖g₂‖₂).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxbp.backprop import matrix_grad, vmap_grad
from jaxbp.model import Cache, Net, forward_pass, loss, weighted_mean
from jaxbp.params import Params, init
from jaxbp.validate import check_batch, check_nonempty, check_params, check_real

Array = jax.Array


def autodiff_grad(
    net: Net, params: Params, X: Array, Y: Array, sample_weight: Array | None = None
) -> Params:
    """∇L(θ) = ``jax.grad(jaxbp.loss)`` w.r.t. params: the oracle for the hand-written BP.

    With ``sample_weight`` s, the gradient of the weighted loss Σ sᵢ ℓᵢ / Σ s.
    """
    return jax.grad(loss, argnums=1)(net, params, X, Y, sample_weight)


def autodiff_batch_grad(
    net: Net, params: Params, X: Array, Y: Array, sample_weight: Array | None = None
) -> tuple[Params, Cache]:
    """(∇L(θ) by ``jax.grad`` of the mean loss, forward cache) on inputs already checked.

    The ``grad="autodiff"`` route of ``jaxbp.batch_grad`` and ``jaxbp.fit``: same
    signature as ``jaxbp.backprop.matrix_grad``, so the two can be swapped.
    """

    def mean_loss(p):
        cache = forward_pass(net, p, X, Y)
        return weighted_mean(cache.loss, sample_weight), cache

    return jax.grad(mean_loss, has_aux=True)(params)


def relative_error(g1, g2) -> Array:
    """‖g₁ − g₂‖₂ / max(‖g₁‖₂, ‖g₂‖₂) over all leaves flattened; 0 when both are 0."""
    v1, _ = ravel_pytree(g1)
    v2, _ = ravel_pytree(g2)
    scale = jnp.maximum(jnp.linalg.norm(v1), jnp.linalg.norm(v2))
    err = jnp.linalg.norm(v1 - v2)
    return jnp.where(scale > 0, err / jnp.where(scale > 0, scale, 1), 0.0)


def finite_difference_grad(net: Net, params: Params, X: Array, Y: Array, eps: float = 1e-6):
    """Central differences (L(θ + ε eⱼ) − L(θ − ε eⱼ)) / 2ε for every coordinate θⱼ.

    Inputs must already be checked (Y as float rows). Costs 2P forward passes for P
    parameters, batched 256 coordinates at a time: meant for small networks.
    """
    theta, unravel = ravel_pytree(params)

    def mean_loss(t):
        return jnp.mean(forward_pass(net, unravel(t), X, Y).loss)

    def central(e):
        return (mean_loss(theta + eps * e) - mean_loss(theta - eps * e)) / (2 * eps)

    basis = jnp.eye(theta.size, dtype=theta.dtype)
    return unravel(jax.lax.map(central, basis, batch_size=256))


class GradCheck(NamedTuple):
    """Largest relative errors between the routes to ∇L(θ) (see module docstring)."""

    manual_vs_autodiff: float
    manual_vs_fd: float
    autodiff_vs_fd: float


def gradcheck(net: Net, params: Params, X: Array, Y: Array, *, eps: float = 1e-6) -> GradCheck:
    """Check the hand-written gradients against ``jax.grad`` and finite differences, in float64.

    The inputs are cast to float64 (64-bit mode is switched on for the check only).
    "manual" is the larger error of the matrix and the vmap method.

    Example:
        >>> import jax, jax.numpy as jnp, jaxbp
        >>> net = jaxbp.Net(activation="tanh", head="softmax")
        >>> params = jaxbp.init(net, jax.random.key(0), d=3, hidden=4, out=2)
        >>> X = jax.random.normal(jax.random.key(1), (8, 3))
        >>> Y = jnp.arange(8) % 2
        >>> r = jaxbp.gradcheck(net, params, X, Y)
        >>> r.manual_vs_autodiff < 1e-12, r.manual_vs_fd < 1e-6
        (True, True)
    """
    check_params(net, params)  # θ as given (integer θ is refused, not cast)
    eps = check_real(eps, "eps", low=0.0, low_ok=False)
    with jax.enable_x64(True):
        params64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        X, Y = check_batch(net, params64, X, Y, kind="batch")
        check_nonempty(X)
        X, Y = jnp.asarray(X, jnp.float64), jnp.asarray(Y, jnp.float64)
        oracle = autodiff_batch_grad(net, params64, X, Y)[0]
        fd = finite_difference_grad(net, params64, X, Y, eps)
        manual = [g(net, params64, X, Y)[0] for g in (matrix_grad, vmap_grad)]
        return GradCheck(
            manual_vs_autodiff=max(float(relative_error(m, oracle)) for m in manual),
            manual_vs_fd=max(float(relative_error(m, fd)) for m in manual),
            autodiff_vs_fd=float(relative_error(oracle, fd)),
        )


def random_problem(
    net: Net,
    key: Array,
    *,
    n: int | None,
    d: int,
    hidden: int,
    K: int,
    bias: bool = False,
    dtype=jnp.float64,
) -> tuple[Params, Array, Array]:
    """A random (params, X, Y) for ``net``: the small problem of the checks and ``explain``.

    X is standard normal (n, d) (or one sample (d,) when ``n`` is None); Y holds the
    head's random targets (:meth:`jaxbp.heads.Head.random_targets`). With ``bias``, the
    offsets b, c are drawn non-zero so that their gradients are exercised. K is the
    output width (the head's own, e.g. 1 for logistic, is the caller's choice).
    """
    kp, kx, ky, kb = jax.random.split(key, 4)
    params = init(net, kp, d=d, hidden=hidden, out=K, bias=bias, dtype=dtype)
    if bias:
        kb1, kb2 = jax.random.split(kb)
        params = params._replace(
            b=0.1 * jax.random.normal(kb1, params.b.shape, dtype),
            c=0.1 * jax.random.normal(kb2, params.c.shape, dtype),
        )
    shape = () if n is None else (n,)
    X = jax.random.normal(kx, (*shape, d), dtype)
    return params, X, net.loss_head.random_targets(ky, shape, K, dtype)
