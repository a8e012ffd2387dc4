"""Backpropagation by hand: the lecture's BP equations, for one sample and for a batch.

For one sample (the lecture's summary slide), after the forward pass stored
a = Vx, z = σ(a), o = Wz:

    δ      = ∂ℓ/∂(Wz)                    (per head, see ``jaxbp.heads``)
    ∂ℓ/∂W  = δ zᵀ                        (∂ℓ/∂c = δ)
    ∂ℓ/∂z  = Wᵀ δ
    ∂ℓ/∂V  = (Wᵀδ ⊙ σ′(Vx)) xᵀ           (∂ℓ/∂b = Wᵀδ ⊙ σ′(Vx))

For a batch, L(θ) = (1/n) Σ ℓᵢ, stacking the δᵢ / n as the rows of Δ:

    ∂L/∂W = Δᵀ Z,    ∂L/∂V = ((Δ W) ⊙ σ′(A))ᵀ X.

Nothing here calls ``jax.grad``; ``jaxbp.oracle`` does, to check this file.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxbp.model import Cache, Net, _forward_cache, matmul
from jaxbp.params import Params
from jaxbp.validate import check_batch

Array = jax.Array

METHODS: tuple[str, ...] = ("matrix", "vmap", "autodiff")


def manual_grad(net: Net, params: Params, x: Array, y: Array) -> Params:
    """∇θ ℓ for ONE sample (x (d,), y (K,) or a compact label), by the BP equations.

    Example:
        >>> import jax, jax.numpy as jnp, jaxbp
        >>> net = jaxbp.Net(activation="sigmoid", head="squared")
        >>> params = jaxbp.init(net, jax.random.key(0), d=3, hidden=4, out=2)
        >>> g = jax.jit(jaxbp.manual_grad)(net, params, jnp.ones(3), jnp.zeros(2))
        >>> g.V.shape, g.W.shape
        ((4, 3), (2, 4))
    """
    x, y = check_batch(net, params, x, y, kind="single")
    W, sigma_prime = params.W, net.sigma.grad
    # Forward pass: store Vx, z = σ(Vx), Wz (and f, ℓ).
    a, z, o, _, _ = _forward_cache(net, params, x, y)
    # Backward pass, second layer.
    delta = net.loss_head.delta(o, y)  # δ = ∂ℓ/∂(Wz), e.g. 2(h(Wz) − y) ⊙ h′(Wz)
    dW = jnp.outer(delta, z)  # ∂ℓ/∂W = δ zᵀ
    # Back-propagate to z.
    dz = W.T @ delta  # ∂ℓ/∂z = Wᵀ δ
    # First layer.
    g = dz * sigma_prime(a)  # ∂ℓ/∂(Vx) = Wᵀδ ⊙ σ′(Vx)
    dV = jnp.outer(g, x)  # ∂ℓ/∂V = (Wᵀδ ⊙ σ′(Vx)) xᵀ
    return Params(V=dV, W=dW, b=_if(params.b, g), c=_if(params.c, delta))


def _if(offset: Array | None, grad: Array) -> Array | None:
    """The offset's gradient when the offset exists, else None (∂ℓ/∂b = g, ∂ℓ/∂c = δ)."""
    return None if offset is None else grad


def _backward_rows(net: Net, params: Params, X: Array, Y: Array, scale):
    """Forward cache, Δ (rows δᵢ·scale) and G (rows (Wᵀδᵢ ⊙ σ′(Vxᵢ))·scale) for a batch."""
    cache = _forward_cache(net, params, X, Y)  # A = X Vᵀ, Z = σ(A), O = Z Wᵀ
    Delta = net.loss_head.delta(cache.o, Y) * scale  # rows δᵢ · scale
    G = matmul(net, Delta, params.W) * net.sigma.grad(cache.a)  # (Δ W) ⊙ σ′(A)
    return cache, Delta, G


def _matrix_grad(net: Net, params: Params, X: Array, Y: Array) -> tuple[Params, Cache]:
    """∇L(θ) in matrix form: Δ = rows δᵢ/n, ∂L/∂W = ΔᵀZ, ∂L/∂V = ((ΔW) ⊙ σ′(A))ᵀX."""
    cache, Delta, G = _backward_rows(net, params, X, Y, 1 / X.shape[0])
    dW = matmul(net, Delta.T, cache.z)  # ∂L/∂W = Δᵀ Z
    dV = matmul(net, G.T, X)  # ∂L/∂V = ((Δ W) ⊙ σ′(A))ᵀ X
    grads = Params(V=dV, W=dW, b=_if(params.b, G.sum(0)), c=_if(params.c, Delta.sum(0)))
    return grads, cache


def _vmap_grad(net: Net, params: Params, X: Array, Y: Array) -> tuple[Params, Cache]:
    """∇L(θ) = (1/n) Σᵢ ∇ℓᵢ(θ), the mean of ``jax.vmap(manual_grad)``."""
    grads = jax.tree.map(lambda g: g.mean(0), _per_sample(net, params, X, Y))
    return grads, _forward_cache(net, params, X, Y)


def _autodiff_grad(net: Net, params: Params, X: Array, Y: Array) -> tuple[Params, Cache]:
    """∇L(θ) by ``jax.grad`` of the mean loss (the oracle)."""

    def mean_loss(p):
        cache = _forward_cache(net, p, X, Y)
        return jnp.mean(cache.loss), cache

    return jax.grad(mean_loss, has_aux=True)(params)


_GRADS = {"matrix": _matrix_grad, "vmap": _vmap_grad, "autodiff": _autodiff_grad}


def _per_sample(net: Net, params: Params, X: Array, Y: Array) -> Params:
    return jax.vmap(manual_grad, in_axes=(None, None, 0, 0))(net, params, X, Y)


def grad_fn(method: str):
    """The batch gradient (net, params, X, Y) ↦ (∇L(θ), forward cache) for ``method``.

    Unchecked: X and Y must already be converted (``jaxbp.validate.check_batch``).
    Returning the cache lets the training loop report ℓᵢ without a second forward pass.

    Raises:
        ValueError: for a method not in :data:`METHODS`.
    """
    if method not in _GRADS:
        raise ValueError(
            f"unknown gradient method {method!r}; expected one of {', '.join(METHODS)}"
        )
    return _GRADS[method]


def batch_grad(net: Net, params: Params, X: Array, Y: Array, method: str = "matrix") -> Params:
    """∇L(θ) for L(θ) = (1/n) Σᵢ ℓᵢ(θ) over a batch X (n, d), Y.

    Args:
        method: ``"matrix"`` (hand-written matrix-form BP, the default), ``"vmap"``
            (mean of ``jax.vmap(manual_grad)``) or ``"autodiff"`` (``jax.grad``).

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
    return grad(net, params, X, Y)[0]


def per_sample_grads(net: Net, params: Params, X: Array, Y: Array) -> Params:
    """∇θ ℓᵢ for every sample: a ``Params`` whose leaves have a leading n axis.

    ``jax.vmap(manual_grad)`` over the rows of X and Y (gradients of ℓᵢ, not of ℓᵢ/n).
    """
    X, Y = check_batch(net, params, X, Y, kind="batch")
    return _per_sample(net, params, X, Y)


def per_sample_grad_norms(net: Net, params: Params, X: Array, Y: Array) -> Array:
    """‖∇θ ℓᵢ‖ (Frobenius over V, W, b, c) for every sample, without per-sample gradients.

    Each per-sample gradient is a sum of outer products, so with gᵢ = Wᵀδᵢ ⊙ σ′(Vxᵢ):

        ‖∇ℓᵢ‖² = ‖δᵢ‖²‖zᵢ‖² + ‖gᵢ‖²‖xᵢ‖²  (+ ‖gᵢ‖² with b, + ‖δᵢ‖² with c)

    since ‖δ zᵀ‖_F = ‖δ‖·‖z‖. Cost: one forward and one backward pass, O(n(d + K)) memory
    beyond the activations, instead of n copies of θ.
    """
    X, Y = check_batch(net, params, X, Y, kind="batch")
    cache, Delta, G = _backward_rows(net, params, X, Y, 1)
    delta2, g2 = jnp.sum(Delta**2, -1), jnp.sum(G**2, -1)
    sq = delta2 * jnp.sum(cache.z**2, -1) + g2 * jnp.sum(X**2, -1)
    if params.b is not None:
        sq = sq + g2
    if params.c is not None:
        sq = sq + delta2
    return jnp.sqrt(sq)
