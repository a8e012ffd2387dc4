"""Backpropagation by hand: the lecture's BP equations, for one sample and for a batch.

For one sample (the lecture's summary slide), after the forward pass stored
a = Vx, z = σ(a), o = Wz:

    δ      = ∂ℓ/∂(Wz)                    (per head, see ``jaxbp.heads``)
    ∂ℓ/∂W  = δ zᵀ                        (∂ℓ/∂c = δ)
    ∂ℓ/∂z  = Wᵀ δ
    ∂ℓ/∂V  = (Wᵀδ ⊙ σ′(Vx)) xᵀ           (∂ℓ/∂b = Wᵀδ ⊙ σ′(Vx))

For a batch, L(θ) = (1/n) Σ ℓᵢ, stacking the δᵢ / n as the rows of Δ:

    ∂L/∂W = Δᵀ Z,    ∂L/∂V = ((Δ W) ⊙ σ′(A))ᵀ X.

With sample weights sᵢ, L(θ) = Σ sᵢ ℓᵢ / Σ s and only Δ changes: its rows are sᵢ δᵢ / Σ s.

``matrix_grad`` computes these with samples as columns (Aᵀ = V Xᵀ, ∂L/∂V = Gᵀ X), the
layout in which every product is a plain row-major product (faster on XLA CPU, and
the only form it runs as a bfloat16 dot); ``matrix_grad_rows`` is the same with
samples as rows.

Nothing here calls ``jax.grad``; ``jaxbp.oracle`` does, to check this file, and
``jaxbp.gradients`` picks between the two routes by name (``batch_grad(method=...)``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxbp.model import Cache, Net, forward_pass, matmul, row_major_transpose, row_scale
from jaxbp.params import Params
from jaxbp.validate import check_batch

Array = jax.Array


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
    a, z, o, _, _ = forward_pass(net, params, x, y)
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


def backward_rows(net: Net, params: Params, X: Array, Y: Array, scale):
    """Forward cache, Δ (rows δᵢ·scale) and G (rows (Wᵀδᵢ ⊙ σ′(Vxᵢ))·scale) for a batch.

    Inputs already checked. Shared by the matrix-form gradient and the per-sample norms.
    """
    cache = forward_pass(net, params, X, Y)  # A = X Vᵀ, Z = σ(A), O = Z Wᵀ
    Delta = net.loss_head.delta(cache.o, Y) * scale  # rows δᵢ · scale
    G = matmul(net, Delta, params.W) * net.sigma.grad(cache.a)  # (Δ W) ⊙ σ′(A)
    return cache, Delta, G


def matrix_grad(
    net: Net, params: Params, X: Array, Y: Array, sample_weight: Array | None = None
) -> tuple[Params, Cache]:
    """∇L(θ) in matrix form: Δ = rows δᵢ/n, ∂L/∂W = ΔᵀZ, ∂L/∂V = ((ΔW) ⊙ σ′(A))ᵀX.

    With ``sample_weight`` s (n,), Δ's rows are sᵢ δᵢ / Σ s (the gradient of Σ sᵢℓᵢ / Σ s).

    Inputs already checked; returns (∇L(θ), forward cache), so that the training loop
    reports ℓᵢ without a second forward pass. The products run in the lecture's column
    layout (:func:`matrix_grad_columns`), in which each is a plain row-major product:
    the fast form for XLA CPU, and the only one it runs as a bfloat16 dot with
    ``net.matmul_dtype="bfloat16"``. :func:`matrix_grad_rows` is the same gradient with
    samples as rows, as the equations above are written.
    """
    return matrix_grad_columns(net, params, X, Y, sample_weight)


def matrix_grad_rows(
    net: Net, params: Params, X: Array, Y: Array, sample_weight: Array | None = None
) -> tuple[Params, Cache]:
    """:func:`matrix_grad` with samples as rows: A = X Vᵀ, ∂L/∂V = GᵀX (contracts axis 0).

    The equations exactly as written; the training epoch uses it when each minibatch is
    split over devices along its sample axis, which this layout keeps leading.
    """
    cache, Delta, G = backward_rows(net, params, X, Y, row_scale(X.shape[0], sample_weight))
    dW = matmul(net, Delta.T, cache.z)  # ∂L/∂W = Δᵀ Z
    dV = matmul(net, G.T, X)  # ∂L/∂V = ((Δ W) ⊙ σ′(A))ᵀ X
    grads = Params(V=dV, W=dW, b=_if(params.b, G.sum(0)), c=_if(params.c, Delta.sum(0)))
    return grads, cache


def matrix_grad_columns(
    net: Net, params: Params, X: Array, Y: Array, sample_weight: Array | None = None
) -> tuple[Params, Cache]:
    """:func:`matrix_grad` with samples as columns, as the lecture writes one sample.

    Aᵀ = V Xᵀ (M, n), Zᵀ = σ(Aᵀ), Oᵀ = W Zᵀ (K, n); Gᵀ = (Wᵀ Δᵀ) ⊙ σ′(Aᵀ) (M, n);
    ∂L/∂W = (Zᵀ Δ)ᵀ and ∂L/∂V = Gᵀ X. Same mathematics as :func:`matrix_grad_rows`;
    only the order of the axes differs, chosen so that every product is a plain
    row-major × row-major product. XLA CPU runs those on its fast kernels and keeps
    them in bfloat16; in the gradient it converted a bfloat16 dot's operands back to
    float32 when the dot read a transposed operand (``V @ X.T``, the transpose folded
    into the dot) or contracted the leading (batch) axis of both operands (``G.T @ X``
    in the row layout; jaxlib 0.10.2, see BENCHMARKS.md, "bfloat16"). Under ``vmap``
    over models with a shared minibatch (``fit_many``), Aᵀ and Gᵀ X stay one large
    product for all models. The transposes this needs are O(nd) or O(nK) copies
    (:func:`jaxbp.model.row_major_transpose`). With ``matmul_dtype="bfloat16"``, δ, σ′
    and ℓ are computed in float32 from the float32 logits and pre-activations.
    """
    head, sigma, W = net.loss_head, net.sigma, params.W
    scale = row_scale(X.shape[0], sample_weight)  # 1/n, or the column sᵢ / Σ s
    X = X.astype(net.matmul_dtype or X.dtype)  # bfloat16: rounded once, for both O(nMd) products
    At = matmul(net, params.V, row_major_transpose(X))  # Aᵀ = V Xᵀ (M, n)
    if params.b is not None:
        At = At + params.b[:, None]
    Zt = sigma.fn(At)  # Zᵀ = σ(Aᵀ)
    o = _small(net, W, Zt).T  # O = (W Zᵀ)ᵀ (n, K)
    if params.c is not None:
        o = o + params.c
    cache = Cache(a=At.T, z=Zt.T, o=o, f=head.h(o), loss=head.loss(o, Y))
    Delta = head.delta(o, Y) * scale  # rows δᵢ / n (sᵢ δᵢ / Σ s)
    WtDt = _small(net, row_major_transpose(W), row_major_transpose(Delta))  # Wᵀ Δᵀ (M, n)
    Gt = WtDt * sigma.grad(At)  # Gᵀ = (Wᵀ Δᵀ) ⊙ σ′(Aᵀ)
    dW = _small(net, Zt, Delta).T  # ∂L/∂W = Δᵀ Z = (Zᵀ Δ)ᵀ
    dV = matmul(net, Gt, X)  # ∂L/∂V = Gᵀ X
    grads = Params(V=dV, W=dW, b=_if(params.b, Gt.sum(1)), c=_if(params.c, Delta.sum(0)))
    return grads, cache


def _small(net: Net, a: Array, b: Array) -> Array:
    """a @ b for the O(nMK) products of the column layout, as a plain row-major product.

    With ``net.matmul_dtype`` set, inputs are rounded to it and multiplied in float32: the
    same numbers as a bfloat16 × bfloat16 → float32 dot (a product of two bfloat16 values
    is exact in float32). Not a bfloat16 dot, because XLA CPU refuses some small ones
    at run time ("Unsupported element type for DotThunk::Execute: BF16 x BF16 = F32",
    jaxlib 0.10.2). The result sits behind an optimisation barrier so that XLA cannot
    fold the caller's transpose into the dot (which would make it contract a leading
    axis and run 3–4× slower on K = 10).
    """
    if net.matmul_dtype is not None:
        low, high = jnp.dtype(net.matmul_dtype), jnp.result_type(a, b)
        a, b = a.astype(low).astype(high), b.astype(low).astype(high)
    return jax.lax.optimization_barrier(a @ b)


def vmap_grad(
    net: Net, params: Params, X: Array, Y: Array, sample_weight: Array | None = None
) -> tuple[Params, Cache]:
    """∇L(θ) = (1/n) Σᵢ ∇ℓᵢ(θ), the mean of ``jax.vmap(manual_grad)``; inputs already checked.

    With ``sample_weight`` s: Σᵢ sᵢ ∇ℓᵢ(θ) / Σ s.
    """
    per_sample = vmapped_manual_grad(net, params, X, Y)
    if sample_weight is None:
        grads = jax.tree.map(lambda g: g.mean(0), per_sample)
    else:
        scale = row_scale(X.shape[0], sample_weight)[:, 0]
        grads = jax.tree.map(lambda g: jnp.tensordot(scale, g, 1), per_sample)
    return grads, forward_pass(net, params, X, Y)


def vmapped_manual_grad(net: Net, params: Params, X: Array, Y: Array) -> Params:
    """∇θ ℓᵢ for every row: ``jax.vmap(manual_grad)`` on inputs already checked."""
    return jax.vmap(manual_grad, in_axes=(None, None, 0, 0))(net, params, X, Y)


def per_sample_grads(net: Net, params: Params, X: Array, Y: Array) -> Params:
    """∇θ ℓᵢ for every sample: a ``Params`` whose leaves have a leading n axis.

    ``jax.vmap(manual_grad)`` over the rows of X and Y (gradients of ℓᵢ, not of ℓᵢ/n).
    """
    X, Y = check_batch(net, params, X, Y, kind="batch")
    return vmapped_manual_grad(net, params, X, Y)


def per_sample_grad_norms(net: Net, params: Params, X: Array, Y: Array) -> Array:
    """‖∇θ ℓᵢ‖ (Frobenius over V, W, b, c) for every sample, without per-sample gradients.

    Each per-sample gradient is a sum of outer products, so with gᵢ = Wᵀδᵢ ⊙ σ′(Vxᵢ):

        ‖∇ℓᵢ‖² = ‖δᵢ‖²‖zᵢ‖² + ‖gᵢ‖²‖xᵢ‖²  (+ ‖gᵢ‖² with b, + ‖δᵢ‖² with c)

    since ‖δ zᵀ‖_F = ‖δ‖·‖z‖. Cost: one forward and one backward pass, O(n(d + K)) memory
    beyond the activations, instead of n copies of θ.
    """
    X, Y = check_batch(net, params, X, Y, kind="batch")
    cache, Delta, G = backward_rows(net, params, X, Y, 1)
    delta2, g2 = jnp.sum(Delta**2, -1), jnp.sum(G**2, -1)
    sq = delta2 * jnp.sum(cache.z**2, -1) + g2 * jnp.sum(X**2, -1)
    if params.b is not None:
        sq = sq + g2
    if params.c is not None:
        sq = sq + delta2
    return jnp.sqrt(sq)
