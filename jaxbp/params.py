"""Parameters θ = (V, W) with optional offsets b, c, and their initialisation schemes.

``Params`` is a NamedTuple, hence a pytree: gradients, optimizer updates and
stacked per-sample gradients are ``Params`` of the same structure. A missing
offset is ``None`` (the lecture's "w.l.o.g. no offset"), an empty pytree.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxbp.validate import check_key, check_net, check_positive_int, check_real

Array = jax.Array


class Params(NamedTuple):
    """θ = (V, W): V (M, d) first layer, W (K, M) second layer; b (M,), c (K,) or None."""

    V: Array
    W: Array
    b: Array | None = None
    c: Array | None = None


_VARIANCE = {
    "he": (2.0, "fan_in"),
    "glorot": (1.0, "fan_avg"),
    "lecun": (1.0, "fan_in"),
}
SCHEMES: tuple[str, ...] = (*_VARIANCE, "normal")


def _initializer(scheme: str, scale: float):
    """A ``jax.nn.initializers`` function for weights stored as (fan_out, fan_in)."""
    if not isinstance(scheme, str):
        raise TypeError(f"scheme must be a name (str), got {type(scheme).__name__}")
    if scheme == "normal":
        return jax.nn.initializers.normal(stddev=scale)
    if scheme not in _VARIANCE:
        raise ValueError(f"unknown init scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")
    variance, mode = _VARIANCE[scheme]
    return jax.nn.initializers.variance_scaling(
        variance * scale**2, mode, "normal", in_axis=-1, out_axis=-2
    )


def _check_dims(**dims: int) -> dict[str, int]:
    """The sizes as Python ints (NumPy integers accepted); each must be ≥ 1."""
    return {name: check_positive_int(value, name) for name, value in dims.items()}


def _resolve_dtype(dtype) -> jnp.dtype:
    try:
        dtype = jnp.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be a floating dtype, got {dtype!r}") from err
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating dtype, got {dtype}")
    if dtype.itemsize == 8 and not jax.config.jax_enable_x64:
        raise ValueError(
            "dtype=float64 needs 64-bit JAX: set jax.config.update('jax_enable_x64', True) "
            "(or JAX_ENABLE_X64=1) before creating arrays"
        )
    return dtype


def init(
    net,
    key: Array,
    *,
    d: int,
    hidden: int,
    out: int,
    bias: bool = False,
    scheme: str = "he",
    scale: float = 1.0,
    dtype=jnp.float32,
) -> Params:
    """Draw θ = (V, W) for the network ``net`` with V (hidden, d) and W (out, hidden).

    Schemes (fan_in = columns, fan_out = rows of each matrix), all zero-mean normal:

    - ``he``:     Var = 2 / fan_in (suits relu-like σ)
    - ``glorot``: Var = 2 / (fan_in + fan_out) (suits tanh, sigmoid)
    - ``lecun``:  Var = 1 / fan_in
    - ``normal``: std = ``scale``

    For the first three, ``scale`` multiplies the standard deviation. Offsets b, c
    start at zero when ``bias=True``.

    The default dtype is float32 even when ``jax_enable_x64`` is on: pass
    ``dtype=jnp.float64`` to get float64 parameters (inputs are then cast to θ's dtype).

    Args:
        net: the :class:`jaxbp.Net`; its head fixes the admissible ``out``.
        key: a JAX PRNG key (``jax.random.key(0)``).
        d, hidden, out: input size d, hidden width M, output size K.
        bias: whether to include offsets b (M,) and c (K,).
        scheme: one of ``he``, ``glorot``, ``lecun``, ``normal``.
        scale: std for ``normal``; a multiplier of the std otherwise. A finite
            number >= 0.
        dtype: float32 (default, also under ``jax_enable_x64``) or float64 (needs
            ``jax_enable_x64``).

    Raises:
        TypeError: ``net`` not a :class:`jaxbp.Net`, ``key`` not a PRNG key, ``bias``
            not a bool, ``scale`` not a number, ``dtype`` not floating.
        ValueError: sizes not positive integers, ``out`` not allowed by the head,
            an unknown ``scheme``, ``scale`` NaN, infinite or negative.

    Example:
        >>> import jax, jaxbp
        >>> net = jaxbp.Net(activation="relu", head="softmax")
        >>> params = jaxbp.init(net, jax.random.key(0), d=64, hidden=128, out=10)
        >>> params.V.shape, params.W.shape, params.b
        ((128, 64), (10, 128), None)
    """
    check_net(net)
    check_key(key)
    d, hidden, out = _check_dims(d=d, hidden=hidden, out=out).values()
    net.loss_head.check_width(out, "out")
    if not isinstance(bias, bool):
        raise TypeError(f"bias must be True or False, got {type(bias).__name__} {bias!r:.40}")
    scale = check_real(scale, "scale")
    dtype = _resolve_dtype(dtype)
    _initializer(scheme, scale)  # checks the scheme before compiling
    return _draw(key, scheme, scale, (hidden, d, out), dtype, bias)


@partial(jax.jit, static_argnums=(1, 2, 3, 4, 5))
def _draw(key: Array, scheme: str, scale: float, sizes: tuple, dtype, bias: bool) -> Params:
    """V (M, d) and W (K, M) drawn from two halves of ``key``; b, c zeros: one compilation."""
    hidden, d, out = sizes
    initializer = _initializer(scheme, scale)
    key_v, key_w = jax.random.split(key)
    V = initializer(key_v, (hidden, d), dtype)
    W = initializer(key_w, (out, hidden), dtype)
    if not bias:
        return Params(V, W)
    return Params(V, W, jnp.zeros((hidden,), dtype), jnp.zeros((out,), dtype))
