"""Training: θ_{k+1} = θ_k − μ_k ∇L(θ_k), with any optax optimizer and schedule.

One epoch is one compiled function: a shuffle, a ``lax.scan`` over the full
minibatches and one step on the last partial batch (its gradient is the mean over
its real samples; nothing is dropped). The host loop around it only reports
progress, watches for divergence and does early stopping.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxbp.backprop import grad_fn
from jaxbp.model import Net, _forward_cache, _output
from jaxbp.params import Params
from jaxbp.validate import check_batch, check_inputs, check_params, checked_data

Array = jax.Array

METHODS = ("matrix", "vmap", "autodiff")
STATUSES = ("completed", "early_stopped", "diverged")


class FitResult(NamedTuple):
    """What ``fit`` returns.

    Attributes:
        params: the trained θ (the best by validation loss after early stopping; the
            last finite θ after divergence).
        opt_state: the optax state that goes with ``params``' last update.
        history: per epoch, lists ``epoch``, ``loss`` (mean training loss over the
            epoch's minibatches), ``val_loss``, ``seconds``; for classifiers also
            ``accuracy`` and ``val_accuracy`` (validation entries are None without
            validation data).
        status: ``"completed"``, ``"early_stopped"`` or ``"diverged"``.
        epoch: the number of epochs whose update is in ``params`` and ``opt_state``
            (pass it back as ``initial_epoch`` to resume).
    """

    params: Params
    opt_state: Any
    history: dict[str, list]
    status: str
    epoch: int


def _correct(net: Net, o: Array, Y: Array) -> Array:
    """Per-sample 1/0: argmax(o) = argmax(y) (softmax) or sign(o) = y (logistic)."""
    if net.head == "softmax":
        return (jnp.argmax(o, -1) == jnp.argmax(Y, -1)).astype(o.dtype)
    return (jnp.where(o[..., 0] >= 0, 1.0, -1.0) == Y[..., 0]).astype(o.dtype)


def _metrics(net: Net, cache, Y: Array) -> tuple[Array, Array]:
    """(Σ ℓᵢ, Σ correctᵢ) over a batch; the second is 0 for regression."""
    correct = _correct(net, cache.o, Y).sum() if net.is_classifier else jnp.zeros(())
    return cache.loss.sum(), correct


def shuffle_order(key: Array, epoch: int, n: int) -> np.ndarray:
    """The sample order of epoch ``epoch``: a permutation of range(n) seeded by fold_in(key, epoch).

    Drawn with NumPy on the host: XLA's CPU sort made ``jax.random.permutation`` a
    third of a small epoch's time. Deterministic in (key, epoch), so a resumed run
    sees the same orders.
    """
    seed = np.asarray(jax.random.key_data(jax.random.fold_in(key, epoch)))
    return np.random.default_rng(seed).permutation(n).astype(np.int32)


def _epoch_fn(net: Net, optimizer, method: str, n: int, batch_size: int, sharding=None):
    """One epoch, uncompiled: (params, opt_state, X, Y, order, Xv, Yv) ↦ (params, opt_state, stats).

    ``order`` is the epoch's sample order (:func:`shuffle_order`), ignored for
    full-batch gradient descent.
    ``sharding``, when given, is the ``NamedSharding`` of one minibatch (split along
    its samples over a data axis); parameters stay replicated and XLA all-reduces
    the gradient.
    """
    grad = grad_fn(method)
    n_full, tail = divmod(n, batch_size)

    def step(carry, batch):
        params, opt_state = carry
        Xb, Yb = batch
        grads, cache = grad(net, params, Xb, Yb)  # ∇L over the minibatch
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)  # θ ← θ − μ_k ∇L(θ) (or Adam's step)
        return (params, opt_state), _metrics(net, cache, Yb)

    def shard(batch, lead=()):
        if sharding is None or batch[0].shape[len(lead)] % sharding.mesh.size:
            return batch
        spec = jax.sharding.PartitionSpec(*lead, *sharding.spec)
        where = jax.sharding.NamedSharding(sharding.mesh, spec)
        return jax.lax.with_sharding_constraint(batch, (where, where))

    def epoch(params, opt_state, X, Y, order, Xv, Yv):
        if batch_size < n:  # reshuffle every epoch; full-batch GD needs no shuffle
            X, Y = X[order], Y[order]
        cut = n_full * batch_size
        batches = (
            X[:cut].reshape(n_full, batch_size, -1),
            Y[:cut].reshape(n_full, batch_size, -1),
        )
        carry, (losses, corrects) = jax.lax.scan(step, (params, opt_state), shard(batches, (None,)))
        loss_sum, correct_sum = losses.sum(), corrects.sum()
        if tail:
            carry, (loss_tail, correct_tail) = step(carry, shard((X[cut:], Y[cut:])))
            loss_sum, correct_sum = loss_sum + loss_tail, correct_sum + correct_tail
        params, opt_state = carry
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(params)]))
        stats = {"loss": loss_sum / n, "accuracy": correct_sum / n, "finite": finite}
        if Xv is not None:
            val_loss, val_correct = _metrics(net, _forward_cache(net, params, Xv, Yv), Yv)
            stats |= {"val_loss": val_loss / Xv.shape[0], "val_accuracy": val_correct / Xv.shape[0]}
        return params, opt_state, stats

    return epoch


def _counted_jit(fn):
    """``jax.jit(fn)`` with a ``traces()`` method counting how often it was traced."""
    count = [0]

    def counted(*args):
        count[0] += 1
        return fn(*args)

    jitted = jax.jit(counted)
    jitted.traces = lambda: count[0]
    return jitted


@functools.lru_cache(maxsize=8)
def _make_epoch(net: Net, optimizer, method: str, n: int, batch_size: int, sharding=None):
    """The compiled epoch (see :func:`_epoch_fn`).

    Cached, so calling ``fit`` again with the same net, optimizer object and sizes
    (e.g. to resume) reuses the compiled function.
    """
    return _counted_jit(_epoch_fn(net, optimizer, method, n, batch_size, sharding))


def data_sharding(devices, batch_size: int):
    """The ``NamedSharding`` splitting each minibatch along a data axis over ``devices``.

    ``devices``: a number (the first that many of ``jax.devices()``), a list of
    devices, or a ``jax.sharding.Mesh`` (its first axis is the data axis).
    """
    if devices is None:
        return None
    if isinstance(devices, jax.sharding.Mesh):
        mesh = devices
    else:
        available = jax.devices()
        if isinstance(devices, int):
            if not 1 <= devices <= len(available):
                raise ValueError(
                    f"devices={devices}, but {len(available)} {available[0].platform} device(s) "
                    "are available"
                )
            devices = available[:devices]
        mesh = jax.sharding.Mesh(np.asarray(list(devices)), ("data",))
    axis = mesh.axis_names[0]
    if batch_size % mesh.shape[axis]:
        raise ValueError(
            f"batch_size={batch_size} must be a multiple of the {mesh.shape[axis]} devices "
            f"on the data axis {axis!r}"
        )
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis))


def with_weight_decay(optimizer, weight_decay: float):
    """``optimizer`` preceded by the L2 penalty gradient λθ on V and W (not on b, c)."""
    if not weight_decay:
        return optimizer

    def weights_only(params):
        def no(offset):
            return None if offset is None else False

        return Params(True, True, no(params.b), no(params.c))

    return optax.chain(
        optax.masked(optax.add_decayed_weights(weight_decay), weights_only), optimizer
    )


def _split_validation(X, Y, fraction: float, key):
    """Hold out ``fraction`` of the samples (a fixed random subset given the key)."""
    if not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction}")
    n = X.shape[0]
    n_val = max(1, round(fraction * n))
    if n_val >= n:
        raise ValueError(f"validation_fraction={fraction} leaves no training samples of n={n}")
    perm = np.asarray(jax.random.permutation(key, n))
    return (X[perm[n_val:]], Y[perm[n_val:]]), (X[perm[:n_val]], Y[perm[:n_val]])


def _check_fit_args(optimizer, epochs, batch_size, method, early_stopping):
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
            f"got {type(optimizer).__name__}"
        )
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(
            f"batch_size must be a positive integer or None (full batch), got {batch_size!r}"
        )
    grad_fn(method)
    if early_stopping is not None and (not isinstance(early_stopping, int) or early_stopping < 1):
        raise ValueError(
            f"early_stopping must be a positive integer (patience), got {early_stopping!r}"
        )


def _new_history(classifier: bool) -> dict[str, list]:
    keys = ["epoch", "loss", "val_loss", "seconds"]
    if classifier:
        keys[3:3] = ["accuracy", "val_accuracy"]
    return {k: [] for k in keys}


def fit(
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
    validation: tuple[Any, Any] | None = None,
    validation_fraction: float | None = None,
    early_stopping: int | None = None,
    weight_decay: float = 0.0,
    progress: bool = True,
    opt_state=None,
    initial_epoch: int = 0,
    history: dict[str, list] | None = None,
    callback: Callable[[int, FitResult], None] | None = None,
    devices=None,
) -> FitResult:
    """Train θ on (X, Y) by minibatch steps of ``optimizer`` on L(θ) = (1/n) Σ ℓᵢ(θ).

    Args:
        net, params: the network and its initial θ.
        X, Y: training data, X (n, d); Y as accepted by ``jaxbp.loss`` (class ids,
            ±1 labels, or target rows).
        optimizer: any optax ``GradientTransformation``; its learning rate may be an
            optax schedule μ_k (counted in steps).
        epochs: the number of epochs to run (on top of ``initial_epoch``).
        batch_size: minibatch size; ``None`` is full-batch gradient descent, exactly
            the lecture's θ_{k+1} = θ_k − μ_k ∇L(θ_k). A last partial batch is used,
            with the mean over its real samples.
        key: PRNG key for the shuffles and the validation split: with
            ``split_key, shuffle_key = jax.random.split(key)``, epoch k shuffles with
            ``shuffle_order(shuffle_key, k, n)``, so a resumed run repeats the same
            epochs.
        grad: ``"matrix"`` (hand-written, default), ``"vmap"`` or ``"autodiff"``.
        validation: held-out (Xv, Yv) evaluated after every epoch.
        validation_fraction: hold out this fraction of (X, Y) instead.
        early_stopping: patience in epochs; stops when the validation loss has not
            improved for that many epochs and restores the best θ (as scikit-learn
            does). Without validation data it holds out 10%.
        weight_decay: λ of an L2 penalty (λ/2)(‖V‖² + ‖W‖²), added as λθ to the
            gradient (offsets are not decayed). Reported losses exclude it.
        progress: show a tqdm progress bar over epochs.
        opt_state, initial_epoch, history: continue an earlier run (see
            ``jaxbp.checkpoint``); by default a fresh ``optimizer.init(params)``.
        callback: called as ``callback(epoch, result_so_far)`` after every epoch
            (e.g. to save a checkpoint).
        devices: data parallelism: a number of devices, a list of devices or a
            ``jax.sharding.Mesh``. Each minibatch is split along its samples over
            the devices (``NamedSharding``), θ is replicated, and XLA all-reduces
            the gradient. ``batch_size`` must be a multiple of the device count.

    Returns:
        A :class:`FitResult` (params, opt_state, history, status, epoch).

    Raises:
        ValueError, TypeError: bad data (see ``jaxbp.check_data``) or arguments,
            before anything is compiled.

    Example:
        >>> import jax, optax, jaxbp
        >>> from jaxbp import data
        >>> ds = data.load("moons")
        >>> net = jaxbp.Net(activation="relu", head="softmax")
        >>> params = jaxbp.init(net, jax.random.key(0), d=2, hidden=32, out=2, bias=True)
        >>> result = jaxbp.fit(net, params, ds.X_train, ds.y_train, optimizer=optax.adam(1e-2),
        ...                    epochs=50, batch_size=64, key=jax.random.key(1), progress=False)
        >>> result.history["accuracy"][-1] > 0.95
        True
    """
    _check_fit_args(optimizer, epochs, batch_size, grad, early_stopping)
    check_params(net, params)
    X, Y = checked_data(net, params, X, Y)
    split_key, shuffle_key = jax.random.split(key)
    if early_stopping and validation is None and validation_fraction is None:
        validation_fraction = 0.1
    if validation is not None and validation_fraction is not None:
        raise ValueError("give either validation=(Xv, Yv) or validation_fraction, not both")
    if validation_fraction is not None:
        (X, Y), validation = _split_validation(X, Y, validation_fraction, split_key)
        Xv, Yv = validation
    elif validation is not None:
        Xv, Yv = checked_data(net, params, *validation)
    else:
        Xv = Yv = None
    n = X.shape[0]
    batch_size = n if batch_size is None else min(batch_size, n)
    optimizer = with_weight_decay(optimizer, weight_decay)
    opt_state = optimizer.init(params) if opt_state is None else opt_state
    sharding = data_sharding(devices, batch_size)
    if sharding is not None:  # everything replicated; the epoch splits each minibatch
        replicated = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
        X, Y, Xv, Yv, params, opt_state = jax.device_put(
            (X, Y, Xv, Yv, params, opt_state), replicated
        )
    epoch_fn = _make_epoch(net, optimizer, grad, n, batch_size, sharding)
    return _loop(
        epoch_fn, net, params, opt_state, (X, Y, Xv, Yv), shuffle_key, epochs, initial_epoch,
        history, early_stopping, progress, callback,
    )  # fmt: skip


def _loop(epoch_fn, net, params, opt_state, data, key, epochs, initial_epoch, history,
          patience, progress, callback) -> FitResult:  # fmt: skip
    """The host loop: run compiled epochs, record history, stop on divergence or patience."""
    X, Y, Xv, Yv = data
    history = (
        _new_history(net.is_classifier)
        if history is None
        else {k: list(v) for k, v in history.items()}
    )
    best = (math.inf, params, opt_state, initial_epoch)
    waited, status = 0, "completed"
    bar = tqdm(
        range(initial_epoch, initial_epoch + epochs),
        disable=not progress,
        unit="epoch",
        leave=False,
    )
    for k in bar:
        start = time.perf_counter()
        order = shuffle_order(key, k, X.shape[0])
        new_params, new_opt_state, stats = epoch_fn(params, opt_state, X, Y, order, Xv, Yv)
        stats = jax.device_get(stats)
        seconds = time.perf_counter() - start
        if not (stats["finite"] and np.isfinite(stats["loss"])):
            status = "diverged"
            history.setdefault("diverged_epoch", []).append(k + 1)
            break
        params, opt_state = new_params, new_opt_state
        _record(history, net, k + 1, stats, seconds)
        bar.set_postfix(_postfix(history))
        if callback is not None:
            callback(k + 1, FitResult(params, opt_state, history, status, k + 1))
        if patience and "val_loss" in stats:
            if stats["val_loss"] < best[0]:
                best, waited = (stats["val_loss"], params, opt_state, k + 1), 0
            else:
                waited += 1
                if waited >= patience:
                    status = "early_stopped"
                    params, opt_state = best[1], best[2]
                    history["best_epoch"] = [best[3]]
                    break
    bar.close()
    last = history["epoch"][-1] if history["epoch"] else initial_epoch
    return FitResult(
        params, opt_state, history, status, best[3] if status == "early_stopped" else last
    )


def _record(history, net, epoch, stats, seconds) -> None:
    history["epoch"].append(epoch)
    history["loss"].append(float(stats["loss"]))
    history["val_loss"].append(float(stats["val_loss"]) if "val_loss" in stats else None)
    if net.is_classifier:
        history["accuracy"].append(float(stats["accuracy"]))
        history["val_accuracy"].append(
            float(stats["val_accuracy"]) if "val_accuracy" in stats else None
        )
    history["seconds"].append(seconds)


def _postfix(history) -> dict[str, str]:
    shown = {"loss": f"{history['loss'][-1]:.4f}"}
    if history.get("val_accuracy") and history["val_accuracy"][-1] is not None:
        shown["val_acc"] = f"{history['val_accuracy'][-1]:.3f}"
    elif history["val_loss"][-1] is not None:
        shown["val_loss"] = f"{history['val_loss'][-1]:.4f}"
    return shown


def predict(net: Net, params: Params, X) -> Array:
    """Predictions: class ids (softmax), ±1 labels (logistic), f(X) (squared)."""
    check_params(net, params)
    X = check_inputs(params, X, name="X")
    o = _output(net, params, X)
    if net.head == "softmax":
        return jnp.argmax(o, -1)
    if net.head == "logistic":
        return jnp.where(o[..., 0] >= 0, 1, -1)
    return net.loss_head.h(o)


def evaluate(net: Net, params: Params, X, Y) -> dict[str, float]:
    """``{"loss": L(θ), "accuracy": …}`` (classifiers) or ``{"loss": L(θ), "mse": …}``.

    MSE is the mean over samples and outputs of (f(x) − y)², so loss = K · MSE.
    """
    X, Y = check_batch(net, params, X, Y, kind="batch")
    cache = _forward_cache(net, params, X, Y)
    out = {"loss": float(jnp.mean(cache.loss))}
    if net.is_classifier:
        out["accuracy"] = float(jnp.mean(_correct(net, cache.o, Y)))
    else:
        out["mse"] = float(jnp.mean((cache.f - Y) ** 2))
    return out
