"""Many small networks trained at once: ``jax.vmap`` over a leading model axis.

Seeds, learning rates or init scales differ from model to model; shapes are shared.
Every model follows exactly the steps of its own :func:`jaxbp.fit` (same shuffles
for the same key), but all of them run in one compiled epoch, which turns many
small matrix products into a few batched ones.

Example:
    >>> import jax, jax.numpy as jnp, optax, jaxbp
    >>> from jaxbp import data
    >>> ds = data.load("moons")
    >>> net = jaxbp.Net(activation="relu", head="softmax")
    >>> keys = jax.random.split(jax.random.key(0), 8)
    >>> params = jaxbp.init_many(net, keys, d=2, hidden=16, out=2, bias=True)
    >>> opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    >>> lrs = jnp.logspace(-3, -1, 8)
    >>> result = jaxbp.fit_many(net, params, ds.X_train, ds.y_train, optimizer=opt,
    ...                         epochs=5, batch_size=64, key=keys,
    ...                         hyperparams={"learning_rate": lrs}, progress=False)
    >>> len(result.history["loss"][-1])   # one value per model
    8
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxbp.epoch import compile_epoch, shuffle_order
from jaxbp.model import Net
from jaxbp.params import Params, init
from jaxbp.train import (
    FitResult,
    LoopOptions,
    TrainState,
    check_fit_args,
    checked_validation,
    new_history,
    on_one_device,
    run_epochs,
)
from jaxbp.validate import check_net, check_real, check_sample_weight, checked_data

Array = jax.Array


def init_many(net: Net, keys: Array, *, scales=None, **init_kwargs) -> Params:
    """``jaxbp.init`` for every key in ``keys`` (m,), stacked along a leading model axis.

    ``scales`` (m,), if given, multiplies model i's weights V, W by ``scales[i]``
    (all init schemes are zero-mean normal, so this is the init with std × scale).
    Other keyword arguments go to :func:`jaxbp.init`.

    Raises:
        TypeError: ``keys`` not m PRNG keys (``jax.random.split(key, m)``), ``scales``
            not real numbers; and the errors of :func:`jaxbp.init`.
        ValueError: ``scales`` of the wrong shape, NaN, infinite or negative.
    """
    check_net(net)
    m = _key_count(keys, "keys", many=True)
    if scales is not None:
        scales = _check_scales(scales, m)
    params = jax.vmap(lambda k: init(net, k, **init_kwargs))(keys)
    if scales is None:
        return params
    scales = jnp.asarray(scales, params.V.dtype)
    return params._replace(V=params.V * scales[:, None, None], W=params.W * scales[:, None, None])


def _key_count(keys, name: str, *, many: bool) -> int | None:
    """m for m PRNG keys (typed (m,) or raw uint32 (m, 2)); None for one key if not ``many``."""
    dtype, shape = getattr(keys, "dtype", None), getattr(keys, "shape", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        if shape == () and not many:
            return None
        if len(shape) == 1 and shape[0] >= 1:
            return shape[0]
    elif dtype == jnp.uint32:
        if shape == (2,) and not many:
            return None
        if len(shape) == 2 and shape[1] == 2 and shape[0] >= 1:
            return shape[0]
    want = "m PRNG keys, e.g. jax.random.split(jax.random.key(0), m)"
    if not many:
        want = "one PRNG key (jax.random.key(0)) or " + want
    raise TypeError(
        f"{name} must be {want}; got {type(keys).__name__}"
        + (f" of dtype {dtype} and shape {shape}" if dtype is not None else "")
    )


def _check_scales(scales, m: int) -> np.ndarray:
    """``scales`` as m finite numbers >= 0, else an error naming ``scales``."""
    values = np.asarray(scales)
    if (
        values.dtype == bool
        or not np.issubdtype(values.dtype, np.number)
        or np.iscomplexobj(values)
    ):
        raise TypeError(f"scales must be real numbers, one per key, got dtype {values.dtype}")
    if values.shape != (m,):
        raise ValueError(f"scales must have shape ({m},) (one per key), got {values.shape}")
    for i, value in enumerate(values.tolist()):
        check_real(value, f"scales[{i}] (scales)")
    return values


def _model(params: Params, i: int) -> Params:
    return jax.tree.map(lambda a: a[i], params)


def _with_hyperparams(opt_state, hyperparams: dict, m: int):
    """Write per-model values into an ``optax.inject_hyperparams`` state."""
    if not hyperparams:
        return opt_state
    if not isinstance(hyperparams, dict):
        raise TypeError(
            f"hyperparams must be a dict of per-model values, e.g. {{'learning_rate': lrs}}, "
            f"got {type(hyperparams).__name__}"
        )
    if not hasattr(opt_state, "hyperparams"):
        raise TypeError(
            "hyperparams= needs an optimizer made with optax.inject_hyperparams, e.g. "
            "optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)"
        )
    values = dict(opt_state.hyperparams)
    for name, value in hyperparams.items():
        if name not in values:
            raise ValueError(
                f"hyperparams: unknown name {name!r}; the optimizer has {sorted(values)}"
            )
        value = jnp.asarray(value, jnp.result_type(values[name]))
        if value.shape != (m,):
            raise ValueError(f"hyperparams[{name!r}] must have shape ({m},), got {value.shape}")
        values[name] = value
    return opt_state._replace(hyperparams=values)


def fit_many(
    net: Net,
    params: Params,
    X,
    Y,
    *,
    optimizer: optax.GradientTransformation,
    epochs: int,
    batch_size: int | None = None,
    key: Array,
    grad: str = "matrix",
    hyperparams: dict | None = None,
    validation: tuple | None = None,
    progress: bool | None = None,
    callback=None,
    sample_weight=None,
) -> FitResult:
    """Train m networks at once on the same (X, Y); ``params`` has a leading model axis m.

    Args:
        params: stacked θ, e.g. from :func:`init_many`.
        key: one key (every model sees the same shuffles) or m keys (m,): model i
            then takes exactly the steps of ``fit(..., key=key[i])``.
        hyperparams: per-model optimizer hyperparameters, e.g.
            ``{"learning_rate": lrs}`` with ``lrs`` of shape (m,); the optimizer must
            come from ``optax.inject_hyperparams``.
        validation: held-out (Xv, Yv) evaluated for every model after every epoch.
        callback: ``callback(epoch, result_so_far)`` after every epoch, as in ``fit``;
            a true return value stops all models.
        sample_weight: weights sᵢ ≥ 0 (n,), shared by all models, as in ``fit``.
        The other arguments are those of :func:`jaxbp.fit` (no early stopping or
        weight decay here: chain ``optax.add_decayed_weights`` into the optimizer).

    Returns:
        A :class:`jaxbp.FitResult` whose params and opt_state are stacked, whose
        history entries are lists of m values per epoch, and whose ``status`` is a
        list of m statuses. A model whose loss becomes NaN or inf is frozen at its
        last finite θ (status ``"diverged"``) while the others train on; training
        stops early only when every model has diverged. The loop is ``fit``'s own
        (``jaxbp.train.run_epochs``) over a leading model axis.
    """
    check_net(net)
    epochs, batch_size = check_fit_args(
        optimizer, epochs, batch_size, grad, callback, progress=progress
    )
    if not hasattr(params, "V") or getattr(params.V, "ndim", 0) != 3:
        raise ValueError("params must be stacked along a leading model axis (V of shape (m, M, d))")
    m = params.V.shape[0]
    first = _model(params, 0)
    X, Y = checked_data(net, first, X, Y)
    S = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    Xv = Yv = None
    if validation is not None:
        Xv, Yv = checked_validation(net, first, validation)
    n = X.shape[0]
    orders = _orders(key, m, n)
    batch_size = n if batch_size is None else min(batch_size, n)
    opt_state = _with_hyperparams(jax.vmap(optimizer.init)(params), hyperparams, m)
    X, Y, Xv, Yv, S, params, opt_state = on_one_device((X, Y, Xv, Yv, S, params, opt_state), params)
    epoch_fn = compile_epoch(net, optimizer, n=n, batch_size=batch_size, grad=grad, many=True)
    state = TrainState(params, opt_state, 0, new_history(net.is_classifier))
    options = LoopOptions(epochs, net.is_classifier, progress=progress, callback=callback)
    return run_epochs(epoch_fn, state, (X, Y, Xv, Yv, S, None), orders, options)


def _orders(key, m: int, n: int):
    """Epoch k ↦ the sample order(s): (n,) for one shared key, (m, n) for m keys.

    Model i draws exactly the orders of ``fit(..., key=key[i])``.
    """
    count = _key_count(key, "key", many=False)
    keys = jnp.asarray(key)
    if count is not None:
        if count != m:
            raise ValueError(f"key must be one key or {m} keys (one per model), got {count}")
        shuffle_keys = jax.vmap(jax.random.split)(keys)[:, 1]

        def each_model(k):  # shuffle_order(shuffle_keys[i], k, n) for every i, one fold_in
            seeds = np.asarray(jax.random.key_data(jax.vmap(jax.random.fold_in, (0, None))(
                shuffle_keys, k)))  # fmt: skip
            return np.stack([np.random.default_rng(s).permutation(n) for s in seeds]).astype(
                np.int32
            )

        return each_model
    shuffle_key = jax.random.split(keys)[1]
    return lambda k: shuffle_order(shuffle_key, k, n)
