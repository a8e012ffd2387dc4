"""The two-layer network f(x) = h(W σ(Vx)): configuration, forward pass and loss.

Shapes follow the lecture for one sample, x (d,) → f (K,); a batch stacks samples
as rows, X (n, d) → F (n, K), and every function here accepts either. In code the
product Vx is written ``x @ V.T`` so that one line serves both: for a batch it is
the matrix A = X Vᵀ whose rows are the Vxᵢ.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxbp import activations, heads, validate
from jaxbp.params import Params
from jaxbp.validate import (
    check_batch,
    check_inputs,
    check_nonempty,
    check_params,
    check_real,
    check_sample_weight,
)

Array = jax.Array


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class Net(validate.NetBase):
    """Static configuration of f(x) = h(W σ(Vx)): hashable, and a pytree with no leaves.

    Because ``Net`` has no leaves, ``jax.jit(jaxbp.manual_grad)(net, params, x, y)``
    works without ``static_argnums``; a new ``Net`` value means a new compilation.

    Args:
        activation: σ, one of :data:`jaxbp.activations.NAMES`.
        head: ``squared`` (regression), ``logistic`` (K = 1, labels ±1) or
            ``softmax`` (K ≥ 2, one-hot labels or class ids).
        output: the squared head's output map h (any activation name; identity
            when ``None``). Must be ``None`` for the other heads.
        negative_slope: α of ``leaky_relu`` (σ or output map), 0.01 by default; a
            finite real number (NaN, ±inf, booleans and strings are refused).
        matmul_dtype: ``None`` (matrix products in the parameters' dtype) or
            ``"bfloat16"``: mixed precision for the batch path (forward and
            matrix-form BP) — inputs of each matrix product rounded to bfloat16,
            products accumulated and everything else kept in float32. The
            matrix-form BP's two O(nMd) products then run as bfloat16 dots (see
            ``jaxbp.backprop.matrix_grad_columns``).

    Example:
        >>> import jaxbp
        >>> net = jaxbp.Net(activation="tanh", head="softmax")
        >>> net.sigma.name, net.loss_head.name
        ('tanh', 'softmax')
    """

    activation: str = "relu"
    head: str = "squared"
    output: str | None = None
    negative_slope: float = 0.01
    matmul_dtype: str | None = None

    def __post_init__(self):
        if not isinstance(self.activation, str):
            raise TypeError(
                f"activation must be a name (str), got {type(self.activation).__name__}"
            )
        activations.get(self.activation)
        heads.get(self.head, self.output)
        check_real(self.negative_slope, "negative_slope", low=-math.inf)
        if self.matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(
                f"matmul_dtype must be one of {MATMUL_DTYPES}, got {self.matmul_dtype!r}"
            )

    @property
    def sigma(self) -> activations.Activation:
        """σ and σ′."""
        return activations.get(self.activation, negative_slope=self.negative_slope)

    @property
    def loss_head(self) -> heads.Head:
        """h, ℓ and δ."""
        return heads.get(self.head, self.output, negative_slope=self.negative_slope)

    @property
    def is_classifier(self) -> bool:
        """Whether the head predicts classes (logistic, softmax) rather than values."""
        return self.loss_head.classifier


MATMUL_DTYPES = (None, "bfloat16")


def matmul(net: Net, a: Array, b: Array) -> Array:
    """a @ b, with bfloat16 inputs and float32 accumulation when ``net.matmul_dtype`` says so."""
    if net.matmul_dtype is None:
        return a @ b
    low = jnp.dtype(net.matmul_dtype)
    return jnp.matmul(a.astype(low), b.astype(low), preferred_element_type=jnp.result_type(a, b))


def row_major_transpose(a: Array) -> Array:
    """aᵀ, materialised in row-major order: the data of aᵀ, not a view of a's.

    XLA folds a transpose into the dot that reads it (as other contraction axes) or
    into the array's memory layout. For the bfloat16 path that is the slow case: XLA
    CPU (jaxlib 0.10.2) converted the bfloat16 operands of a dot that reads ``X.T``
    back to float32, and kept them in bfloat16 when the dot was a plain product of
    row-major operands. Flattening aᵀ behind an optimisation barrier pins its element
    order (a 1-D array has one layout), so the dot sees a row-major (n, m) operand.
    O(nm) work; the values are those of ``a.T``.
    """
    m, n = a.shape
    return jax.lax.optimization_barrier(a.T.reshape(-1)).reshape(n, m)


class Cache(NamedTuple):
    """What the lecture's forward pass stores: Vx, z = σ(Vx), Wz, f = h(Wz), ℓ."""

    a: Array
    z: Array
    o: Array
    f: Array
    loss: Array


def _hidden(net: Net, params: Params, x: Array) -> tuple[Array, Array]:
    """a = Vx (+ b), z = σ(a)."""
    a = matmul(net, x, params.V.T)
    if params.b is not None:
        a = a + params.b
    return a, net.sigma.fn(a)


def _output_layer(net: Net, params: Params, z: Array) -> Array:
    """o = Wz (+ c)."""
    o = matmul(net, z, params.W.T)
    return o if params.c is None else o + params.c


def forward(net: Net, params: Params, x: Array) -> Array:
    """f(x) = h(W σ(Vx)); (d,) → (K,) or (n, d) → (n, K).

    Example:
        >>> import jax, jax.numpy as jnp, jaxbp
        >>> net = jaxbp.Net(activation="relu", head="softmax")
        >>> params = jaxbp.init(net, jax.random.key(0), d=3, hidden=4, out=2)
        >>> jaxbp.forward(net, params, jnp.ones((5, 3))).shape
        (5, 2)
    """
    check_params(net, params)
    x = check_inputs(params, x)
    return net.loss_head.h(logits(net, params, x))


def logits(net: Net, params: Params, x: Array) -> Array:
    """o = W σ(Vx) (+ c), the output pre-activation, on inputs already checked."""
    return _output_layer(net, params, _hidden(net, params, x)[1])


def forward_cache(net: Net, params: Params, x: Array, y: Array) -> Cache:
    """The forward pass, storing a = Vx, z = σ(Vx), o = Wz, f = h(Wz) and ℓ.

    For a batch (X, Y) every field gains a leading n axis and ``loss`` holds the
    per-sample losses ℓᵢ (shape (n,)).
    """
    x, y = check_batch(net, params, x, y)
    return forward_pass(net, params, x, y)


def forward_pass(net: Net, params: Params, x: Array, y: Array) -> Cache:
    """The forward pass on inputs already checked and converted (x, y float rows).

    This is :func:`forward_cache` without the checks at the API boundary: the hot
    path of the training loop, the hand-written BP and the oracle call it on data
    that ``jaxbp.validate`` has converted once.
    """
    head = net.loss_head
    a, z = _hidden(net, params, x)  # Vx, z = σ(Vx)
    o = _output_layer(net, params, z)  # Wz
    return Cache(a=a, z=z, o=o, f=head.h(o), loss=head.loss(o, y))


def loss(net: Net, params: Params, X: Array, Y: Array, sample_weight: Array | None = None) -> Array:
    """L(θ) = (1/n) Σᵢ ℓᵢ(θ), the mean per-sample loss (for one sample, ℓ itself).

    With ``sample_weight`` s (n,): L(θ) = Σᵢ sᵢ ℓᵢ(θ) / Σᵢ sᵢ (all sᵢ = 1 gives the mean,
    bit for bit). Weights must be finite, ≥ 0 and not all 0.

    Example:
        >>> import jax, jax.numpy as jnp, jaxbp
        >>> net = jaxbp.Net(head="softmax")
        >>> params = jaxbp.init(net, jax.random.key(0), d=3, hidden=4, out=2)
        >>> float(jaxbp.loss(net, params, jnp.zeros((2, 3)), jnp.array([0, 1])))
        0.693...

    Raises:
        ValueError: for an empty batch X (n = 0), whose mean is undefined, and for bad
            ``sample_weight`` (wrong length, negative, NaN or all zero).
    """
    X, Y = check_batch(net, params, X, Y)
    check_nonempty(X)
    if sample_weight is not None and X.ndim != 2:
        raise ValueError("sample_weight needs a batch X of shape (n, d), got one sample")
    s = None if sample_weight is None else check_sample_weight(sample_weight, X.shape[0], X.dtype)
    return weighted_mean(forward_pass(net, params, X, Y).loss, s)


def weighted_mean(values: Array, sample_weight: Array | None) -> Array:
    """(1/n) Σᵢ vᵢ, or Σᵢ sᵢ vᵢ / Σᵢ sᵢ with weights s (0 when Σᵢ sᵢ = 0, e.g. a minibatch
    whose samples all have weight 0).

    Written as mean(s ⊙ v) · (n / Σ s), so that all sᵢ = 1 gives ``jnp.mean(v)`` bit for bit
    (s ⊙ v = v and n / Σ s = 1 exactly; XLA computes a mean as a sum times 1/n).
    """
    if sample_weight is None:
        return jnp.mean(values)
    return jnp.mean(sample_weight * values) * (values.shape[0] / _nonzero(jnp.sum(sample_weight)))


def row_scale(n: int, sample_weight: Array | None):
    """The factor of Δ's rows: 1/n, or sᵢ / Σⱼ sⱼ as a column (n, 1) (0 when Σⱼ sⱼ = 0)."""
    if sample_weight is None:
        return 1 / n
    return (sample_weight / _nonzero(jnp.sum(sample_weight)))[:, None]


def _nonzero(total: Array) -> Array:
    return jnp.where(total > 0, total, 1)
