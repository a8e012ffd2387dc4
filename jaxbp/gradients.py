"""The routes to ∇L(θ), by name: one registry for ``batch_grad``, ``fit`` and the CLI.

=============  ==========================================================  ================
method         ∇L(θ) for L(θ) = (1/n) Σᵢ ℓᵢ(θ)                             module
=============  ==========================================================  ================
``matrix``     hand-written BP in matrix form: ∂L/∂W = ΔᵀZ, ∂L/∂V = GᵀX      ``backprop``
``vmap``       mean of ``jax.vmap(manual_grad)``                           ``backprop``
``autodiff``   ``jax.grad`` of the mean loss (the oracle)                  ``oracle``
=============  ==========================================================  ================

Every route has the signature (net, params, X, Y, sample_weight=None) ↦ (∇L(θ), forward
cache) on checked inputs, so the training loop swaps them freely.
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from jaxbp import names
from jaxbp.backprop import matrix_grad, vmap_grad
from jaxbp.model import Net
from jaxbp.oracle import autodiff_batch_grad
from jaxbp.params import Params
from jaxbp.validate import check_batch, check_nonempty, check_sample_weight

Array = jax.Array

_ROUTES: dict[str, Callable] = {
    "matrix": matrix_grad,
    "vmap": vmap_grad,
    "autodiff": autodiff_batch_grad,
}
METHODS: tuple[str, ...] = names.GRADIENT_METHODS
assert tuple(_ROUTES) == METHODS, "jaxbp.names.GRADIENT_METHODS is out of date"


def grad_fn(method: str, name: str = "method") -> Callable:
    """The batch gradient (net, params, X, Y) ↦ (∇L(θ), forward cache) for ``method``.

    Unchecked: X and Y must already be converted (``jaxbp.validate.check_batch``).

    Raises:
        ValueError: for a method not in :data:`METHODS`; the message names the argument
            ``name`` (``method`` for ``batch_grad``, ``grad`` for ``fit``).
    """
    if not isinstance(method, str) or method not in _ROUTES:
        raise ValueError(
            f"unknown gradient method {method!r} ({name}=); expected one of {', '.join(METHODS)}"
        )
    return _ROUTES[method]


def batch_grad(
    net: Net,
    params: Params,
    X: Array,
    Y: Array,
    method: str = "matrix",
    sample_weight: Array | None = None,
) -> Params:
    """∇L(θ) for L(θ) = (1/n) Σᵢ ℓᵢ(θ) over a batch X (n, d), Y.

    Args:
        method: ``"matrix"`` (hand-written matrix-form BP, the default), ``"vmap"``
            (mean of ``jax.vmap(manual_grad)``) or ``"autodiff"`` (``jax.grad``).
        sample_weight: weights s (n,) ≥ 0, not all 0: ∇ of L(θ) = Σᵢ sᵢ ℓᵢ(θ) / Σᵢ sᵢ
            (in the matrix form, Δ's rows become sᵢ δᵢ / Σ s).

    Raises ``ValueError`` for an empty batch (n = 0): L(θ) is a mean over no samples.

    To jit, close over the method: ``jax.jit(functools.partial(batch_grad, method="vmap"))``.

    Example:
        >>> import jax, jax.numpy as jnp, jaxbp
        >>> net = jaxbp.Net(activation="tanh", head="softmax")
        >>> params = jaxbp.init(net, jax.random.key(0), d=3, hidden=4, out=2)
        >>> X, Y = jnp.ones((5, 3)), jnp.array([0, 1, 1, 0, 1])
        >>> g = jaxbp.batch_grad(net, params, X, Y)
        >>> bool(jnp.allclose(g.V, jaxbp.autodiff_grad(net, params, X, Y).V, atol=1e-6))
        True
    """
    grad = grad_fn(method)
    X, Y = check_batch(net, params, X, Y, kind="batch")
    check_nonempty(X)
    s = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    return grad(net, params, X, Y, s)[0]
