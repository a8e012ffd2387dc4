"""Checks at the API boundary, so that mistakes surface as clear errors, not XLA traces.

Who checks what:

- Shapes, ranks and dtypes (x vs V, y vs K, V vs W, b, c) are checked by every
  public function (``forward``, ``forward_cache``, ``loss``, ``manual_grad``,
  ``batch_grad``, ``per_sample_grads``, ``per_sample_grad_norms``,
  ``autodiff_grad``, ``gradcheck``, ``fit``). Shapes are static, so these checks
  run under ``jax.jit`` too, at trace time, and cost nothing at run time.
  Dtypes: x and y must be real (integer or floating) arrays — complex, boolean,
  object and string arrays are refused — and θ's arrays must be floating.
  ``net`` must be a :class:`jaxbp.Net`. Where a mean over the batch is taken
  (``loss``, ``batch_grad``, ``autodiff_grad``, ``gradcheck``), an empty batch
  (n = 0, a static shape) is refused too.
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

import math
import numbers
import operator

import jax
import jax.numpy as jnp
import numpy as np


def _shape_of(a, name: str):
    if not hasattr(a, "shape") or not hasattr(a, "dtype"):
        raise TypeError(f"{name} must be an array, got {type(a).__name__}")
    return a.shape


class NetBase:
    """The type :func:`check_net` accepts. :class:`jaxbp.Net` derives from it, so that the
    checks need no import of ``jaxbp.model`` (which imports them): no import circle."""

    __slots__ = ()


def check_net(net):
    """``net`` itself if it is a :class:`jaxbp.Net`, else a TypeError naming ``net``."""
    if not isinstance(net, NetBase):
        raise TypeError(
            f"net must be a jaxbp.Net (e.g. jaxbp.Net(activation='relu', head='softmax')), "
            f"got {type(net).__name__}"
        )
    return net


def check_key(key, name: str = "key"):
    """A typed PRNG key (``jax.random.key``) or a raw uint32 key (2,); else a TypeError."""
    dtype = getattr(key, "dtype", None)
    shape = getattr(key, "shape", None)
    if dtype is not None and (
        (jnp.issubdtype(dtype, jax.dtypes.prng_key) and shape == ())
        or (dtype == jnp.uint32 and shape == (2,))
    ):
        return key
    raise TypeError(
        f"{name} must be a JAX PRNG key such as jax.random.key(0), got {type(key).__name__}"
        + (f" of dtype {dtype} and shape {shape}" if dtype is not None else "")
    )


def check_real(value, name: str, *, low: float = 0.0, low_ok: bool = True) -> float:
    """``value`` as a float if it is a finite real number ≥ ``low`` (> ``low`` unless ``low_ok``).

    Raises ``TypeError`` for a non-number (booleans and strings included) and
    ``ValueError`` for NaN, ±inf or a value out of range; both name ``name``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r:.40}")
    value = float(value)
    if not math.isfinite(value) or value < low or (value == low and not low_ok):
        bound = f">= {low}" if low_ok else f"> {low}"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def check_positive_int(value, name: str, *, none_ok: bool = False, none_means: str = "full batch"):
    """``value`` as a Python int if it is an integer ≥ 1 (NumPy integers accepted); else a
    ``ValueError`` naming ``name``. Booleans are refused. With ``none_ok``, None is
    returned as it is and the error says ``or None (<none_means>)``.

    The one positive-integer check of the API: sizes, epochs, batch sizes, patience.
    """
    if value is None and none_ok:
        return None
    try:
        number = operator.index(value)
    except TypeError:
        number = 0
    if isinstance(value, bool) or number < 1:
        extra = f" or None ({none_means})" if none_ok else ""
        raise ValueError(f"{name} must be a positive integer{extra}, got {value!r}")
    return number


def check_nonempty(X, name: str = "X") -> None:
    """A ValueError naming ``name`` for a batch with no samples (n is static: works under jit)."""
    if X.ndim == 2 and X.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {X.shape}); need at least one sample")


def check_params(net, params) -> tuple[int, int, int]:
    """Check ``net``, θ's shapes against each other and the head, and θ's dtypes (floating).

    Returns (d, M, K).
    """
    check_net(net)
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
    for field in ("V", "W", "b", "c"):
        value = getattr(params, field)
        if value is not None and not jnp.issubdtype(value.dtype, jnp.floating):
            raise TypeError(
                f"params.{field} must be a floating-point array (float32 or float64), got dtype "
                f"{value.dtype}; use jaxbp.init, or cast with .astype(jnp.float32)"
            )
    net.loss_head.check_width(K, "params.W.shape[0]")
    return d, M, K


def _numeric(a, name: str) -> jax.Array:
    """``a`` as a JAX array, refusing anything but real (integer or floating) arrays.

    Complex (the imaginary part would be dropped), boolean (a mask passed by mistake?),
    object and string arrays raise a TypeError naming ``name``.
    """
    if hasattr(a, "dtype") and hasattr(a, "shape"):
        dtype = a.dtype
    else:
        try:
            dtype = np.asarray(a).dtype
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be a numeric array, got {type(a).__name__}") from err
    if jnp.issubdtype(dtype, jnp.bool_):
        raise TypeError(
            f"{name} must be a numeric array (integer or floating), got dtype bool; "
            f"cast it with {name}.astype(float) if 0/1 values are meant"
        )
    if jnp.issubdtype(dtype, jnp.complexfloating):
        raise TypeError(
            f"{name} must be a real numeric array, got dtype {dtype} (complex values are not "
            "supported; the imaginary part would be dropped)"
        )
    if not jnp.issubdtype(dtype, jnp.number):
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
    check_nonempty(Xc, names[0])
    for name, arr in zip(names, (Xc, Yc), strict=True):
        where = _first_nonfinite(np.asarray(arr))  # np.asarray: no copy of a CPU array
        if where is not None:
            raise ValueError(
                f"{name} holds NaN or inf (first at index {tuple(int(i) for i in where)})"
            )
    net.loss_head.check_rows(np.asarray(Yc), names[1])
    return Xc, Yc


def check_sample_weight(sample_weight, n: int, dtype, *, name: str = "sample_weight"):
    """``sample_weight`` as a (n,) array of θ's ``dtype``, or None when it is None.

    The weights sᵢ of the weighted loss L(θ) = Σᵢ sᵢ ℓᵢ(θ) / Σᵢ sᵢ must be real, one per
    sample, finite, ≥ 0 and not all 0. The shape is checked always (also under
    ``jax.jit``); the values when the weights are concrete. Errors name ``name``:
    ``TypeError`` for a non-numeric array, ``ValueError`` for the rest.
    """
    if sample_weight is None:
        return None
    s = _numeric(sample_weight, name)
    if s.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one weight per sample, got {s.shape}")
    s = s.astype(dtype)
    if _is_concrete(s):
        values = np.asarray(s)
        if not np.isfinite(values).all():
            raise ValueError(f"{name} holds NaN or inf (first at index {_first_bad(values)})")
        if (values < 0).any():
            i = int(np.argmax(values < 0))
            raise ValueError(f"{name} must be >= 0, found {values[i].item()!r} at index {i}")
        if n and not values.any():
            raise ValueError(f"{name} is all zero: the weighted mean Σ sᵢℓᵢ / Σ sᵢ is undefined")
    return s


def _first_bad(values: np.ndarray) -> int:
    return int(np.argmax(~np.isfinite(values)))
