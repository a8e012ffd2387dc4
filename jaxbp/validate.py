"""Checks at the API boundary, so that mistakes surface as clear errors, not XLA traces.

Who checks what:

- Shapes, ranks and dtypes (x vs V, y vs K, V vs W, b, c) are checked by every
  public function (``forward``, ``forward_cache``, ``loss``, ``manual_grad``,
  ``batch_grad``, ``per_sample_grads``, ``per_sample_grad_norms``,
  ``autodiff_grad``, ``gradcheck``, ``fit``). Shapes are static, so these checks
  run under ``jax.jit`` too, at trace time, and cost nothing at run time.
- Label values (integer class ids in [0, K), ±1 for logistic) are checked by the
  same functions when the labels are concrete arrays; under ``jax.jit`` they are
  not (the values are unknown at trace time).
- :func:`check_data` checks everything that needs values: the label checks plus
  one-hot rows summing to 1, NaN/inf in X or Y, and empty data. ``fit`` and the
  CLI call it; call it yourself before jitting your own loop.

Errors name the argument, what was expected and what was given: ``ValueError``
for wrong shapes or values, ``TypeError`` for wrong types.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _shape_of(a, name: str):
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise TypeError(f"{name} must be an array, got {type(a).__name__}")
    return a.shape


def check_params(net, params) -> tuple[int, int, int]:
    """Check θ's shapes against each other and the head; return (d, M, K)."""
    if not all(hasattr(params, field) for field in ("V", "W", "b", "c")):
        raise TypeError(f"params must be a jaxbp.Params(V, W, b, c), got {type(params).__name__}")
    V, W = _shape_of(params.V, "params.V"), _shape_of(params.W, "params.W")
    if len(V) != 2:
        raise ValueError(f"params.V must be a matrix (M, d), got shape {V}")
    if len(W) != 2:
        raise ValueError(f"params.W must be a matrix (K, M), got shape {W}")
    M, d = V
    K = W[0]
    if W[1] != M:
        raise ValueError(
            f"params.W has {W[1]} columns but params.V has M={M} rows "
            f"(W.shape={W}, V.shape={V}); W must be (K, M)"
        )
    for field, want in (("b", (M,)), ("c", (K,))):
        value = getattr(params, field)
        if value is not None and _shape_of(value, f"params.{field}") != want:
            raise ValueError(
                f"params.{field} must have shape {want}, got {value.shape} "
                f"(V.shape={V}, W.shape={W})"
            )
    net.loss_head.check_width(K, "params.W.shape[0]")
    return d, M, K


def _numeric(a, name: str) -> jax.Array:
    """``a`` as a JAX array, refusing non-numeric input with a TypeError."""
    if hasattr(a, "dtype") and hasattr(a, "shape"):
        dtype = a.dtype
    else:
        try:
            dtype = np.asarray(a).dtype
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a numeric array, got {type(a).__name__}") from err
    if not (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)):
        raise TypeError(f"{name} must be a numeric array, got dtype {dtype}")
    if isinstance(a, np.ndarray):  # one copy: jnp.asarray holds two of a NumPy array at once
        return jax.device_put(a)
    return jnp.asarray(a)


_RANKS = {
    None: ((1, 2), "shape (d,) or (n, d)"),
    "single": ((1,), "one sample of shape (d,); for a batch use batch_grad"),
    "batch": ((2,), "a batch of shape (n, d); for one sample use manual_grad"),
}


def check_inputs(params, x, *, name: str = "x", kind: str | None = None) -> jax.Array:
    """Check x (d,) or X (n, d) against V (M, d); return it in θ's dtype (V.dtype).

    ``kind`` restricts the rank: ``"single"`` (d,), ``"batch"`` (n, d), None either.
    """
    x = _numeric(x, name)
    ranks, want = _RANKS[kind]
    if x.ndim not in ranks:
        raise ValueError(f"{name} must have {want}, got shape {x.shape}")
    d = params.V.shape[1]
    if x.shape[-1] != d:
        raise ValueError(
            f"{name} has {x.shape[-1]} features but V expects d={d} (V.shape={params.V.shape})"
        )
    return x.astype(params.V.dtype)


def _is_concrete(a) -> bool:
    return not isinstance(a, jax.core.Tracer)


def check_targets(net, params, y, *, x_ndim: int, name: str = "y") -> jax.Array:
    """Check targets against K and return them as float rows (…, K).

    Accepted forms, for a batch (x_ndim = 2; drop the n for one sample):

    - squared: (n, K); or (n,) when K = 1
    - logistic: (n, 1) or (n,) of +1/−1
    - softmax: one-hot (n, K), or integer class ids (n,) converted to one-hot
    """
    y = _numeric(y, name)
    K = params.W.shape[0]
    head = net.loss_head
    compact = y.ndim == x_ndim - 1
    if not (compact or y.ndim == x_ndim):
        lead = "(n, K) or (n,)" if x_ndim == 2 else "(K,) or ()"
        raise ValueError(f"{name} must have shape {lead} to match x, got shape {y.shape}")
    if not compact and y.shape[-1] != K:
        raise ValueError(f"{name} has {y.shape[-1]} outputs per sample but W gives K={K}")
    rows = head.encode(y, K, compact=compact, name=name, dtype=params.W.dtype)
    if _is_concrete(y) and y.size:
        head.check_labels(np.asarray(y), K, name)
    return rows


def check_batch(
    net, params, X, Y, *, kind: str | None = None, names: tuple[str, str] | None = None
) -> tuple[jax.Array, jax.Array]:
    """All static checks for a (X, Y) pair: θ's shapes, X vs V, Y vs K, and n of X vs n of Y.

    Returns X in θ's dtype and Y as float rows (n, K) (or (K,) for one sample).
    """
    check_params(net, params)
    single = kind == "single" or (kind is None and np.ndim(X) == 1)
    x_name, y_name = names or (("x", "y") if single else ("X", "Y"))
    X = check_inputs(params, X, name=x_name, kind=kind)
    Y = check_targets(net, params, Y, x_ndim=X.ndim, name=y_name)
    if X.ndim == 2 and Y.shape[0] != X.shape[0]:
        raise ValueError(f"{x_name} has n={X.shape[0]} samples but {y_name} has {Y.shape[0]}")
    return X, Y


def check_data(net, params, X, Y) -> None:
    """Every check of (X, Y) that needs concrete values, plus the static ones.

    Raises ``ValueError`` for: empty data; NaN or inf in X or Y; class ids out of
    [0, K); logistic labels not in {+1, −1}; one-hot (or probability) rows with
    negative entries or not summing to 1; and all the shape errors of :func:`check_batch`.

    Example:
        >>> import jax, jaxbp, numpy as np
        >>> net = jaxbp.Net(head="logistic")
        >>> params = jaxbp.init(net, jax.random.key(0), d=2, hidden=4, out=1)
        >>> jaxbp.check_data(net, params, np.zeros((3, 2)), np.array([1, -1, 0]))
        Traceback (most recent call last):
        ...
        ValueError: Y must hold labels +1 or -1 for head='logistic', found 0 (0/1 labels? ...
    """
    checked_data(net, params, X, Y)


def _first_nonfinite(a: np.ndarray):
    """The index of the first NaN or inf in ``a`` (row-major), or None; checked in blocks
    of rows, so that the mask never holds more than about 2^20 entries."""
    if a.ndim == 0:
        a = a.reshape(1)
    rows = max(1, 2**20 // max(1, a[:1].size))
    for start in range(0, a.shape[0], rows):
        finite = np.isfinite(a[start : start + rows])
        if not finite.all():
            where = np.argwhere(~finite)[0]
            where[0] += start
            return where
    return None


def checked_data(net, params, X, Y, *, names: tuple[str, str] = ("X", "Y")):
    """:func:`check_data`, returning (X, Y) converted as :func:`check_batch` does."""
    Xc, Yc = check_batch(net, params, X, Y, kind="batch", names=names)
    if Xc.shape[0] == 0:
        raise ValueError(f"{names[0]} is empty (shape {Xc.shape}); need at least one sample")
    for name, arr in zip(names, (Xc, Yc), strict=True):
        where = _first_nonfinite(np.asarray(arr))  # np.asarray: no copy of a CPU array
        if where is not None:
            raise ValueError(
                f"{name} holds NaN or inf (first at index {tuple(int(i) for i in where)})"
            )
    net.loss_head.check_rows(np.asarray(Yc), names[1])
    return Xc, Yc
