"""Training: θ_{k+1} = θ_k − μ_k ∇L(θ_k), with any optax optimizer and schedule.

One epoch is one compiled function (:func:`compile_epoch`, from ``jaxbp.epoch``): a
shuffle, a ``lax.scan`` over the full minibatches and one step on the last partial
batch (its gradient is the mean over its real samples; nothing is dropped). The host loop
around it (:func:`run_epochs`) only reports, stops and saves: it records the
history, shows progress, watches for divergence, does early stopping and calls the
callback. ``fit`` runs it for one model; ``jaxbp.fit_many`` runs the same loop over a
leading model axis.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from jaxbp.epoch import compile_epoch, data_sharding, shuffle_order
from jaxbp.gradients import grad_fn
from jaxbp.model import Net, forward_pass
from jaxbp.optimizers import with_weight_decay
from jaxbp.params import Params
from jaxbp.validate import (
    check_key,
    check_net,
    check_params,
    check_positive_int,
    check_sample_weight,
    checked_data,
)

Array = jax.Array

STATUSES = ("completed", "early_stopped", "diverged", "stopped")
# compile_epoch, data_sharding and shuffle_order are used here but live in jaxbp.epoch,
# and METHODS in jaxbp.gradients: import them from there (one import path each; the
# names exist here only because this module uses them).
__all__ = [
    "STATUSES",
    "FitResult",
    "Interrupted",
    "TrainState",
    "fit",
]


class TrainState(NamedTuple):
    """Where a run stands, to resume it: θ, optimizer state, completed epochs, history."""

    params: Params
    opt_state: Any
    epoch: int = 0
    history: dict[str, list] | None = None


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
        status: ``"completed"``, ``"early_stopped"``, ``"diverged"`` or ``"stopped"``
            (the callback asked to stop).
        epoch: the number of epochs whose update is in ``params`` and ``opt_state``.
    """

    params: Params
    opt_state: Any
    history: dict[str, list]
    status: str
    epoch: int

    @property
    def state(self) -> TrainState:
        """The :class:`TrainState` to resume from: ``fit(..., state=result.state)``."""
        return TrainState(self.params, self.opt_state, self.epoch, self.history)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during ``fit``: ``.result`` holds the last completed epoch, history matching it."""

    def __init__(self, result: FitResult):
        super().__init__("training interrupted")
        self.result = result


def steps_per_epoch(n: int, batch_size: int | None) -> int:
    """Optimizer steps in one epoch over n samples: ⌈n / batch⌉ (1 for full batch)."""
    return math.ceil(n / min(batch_size or n, n))


def training_size(n: int, validation_fraction: float | None) -> int:
    """The samples ``fit`` trains on after holding out ``validation_fraction`` of n."""
    return n if validation_fraction is None else n - _validation_size(n, validation_fraction)


def _validation_size(n: int, fraction) -> int:
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 < fraction < 1:
        raise ValueError(f"validation_fraction must be in (0, 1), got {fraction!r}")
    n_val = max(1, round(fraction * n))
    if n_val >= n:
        raise ValueError(f"validation_fraction={fraction} leaves no training samples of n={n}")
    return n_val


def check_fit_args(
    optimizer, epochs, batch_size, grad, callback=None, progress=None
) -> tuple[int, int | None]:
    """The checks shared by ``fit`` and ``fit_many``; returns (epochs, batch_size) as ints."""
    if not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation (e.g. optax.adam(1e-3)), "
            f"got {type(optimizer).__name__}"
        )
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size", none_ok=True)
    grad_fn(grad, "grad")
    if progress is not None and not isinstance(progress, bool | np.bool_):
        raise TypeError(f"progress must be True, False or None, got {type(progress).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable(epoch, result), got {type(callback).__name__}")
    return epochs, batch_size


def new_history(classifier: bool) -> dict[str, list]:
    """An empty history: the columns ``fit`` records every epoch."""
    keys = ["epoch", "loss", "val_loss", "seconds"]
    if classifier:
        keys[3:3] = ["accuracy", "val_accuracy"]
    return {k: [] for k in keys}


def _resume(state, opt_state, initial_epoch, history, classifier: bool) -> tuple:
    """(opt_state, epoch, history) from ``state=`` or the three loose keywords."""
    if state is not None:
        if not isinstance(state, TrainState):
            raise TypeError(f"state must be a jaxbp.train.TrainState, got {type(state).__name__}")
        opt_state, initial_epoch, history = state.opt_state, state.epoch, state.history
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, numbers.Integral):
        raise TypeError(f"initial_epoch must be an int >= 0, got {initial_epoch!r}")
    if initial_epoch < 0:
        raise ValueError(f"initial_epoch must be an int >= 0, got {initial_epoch!r}")
    if history is None:
        return opt_state, int(initial_epoch), new_history(classifier)
    if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
        raise TypeError(
            f"history must be a dict of lists (a FitResult.history), got {history!r:.80}"
        )
    missing = set(new_history(classifier)) - set(history)
    if missing:
        raise ValueError(f"history lacks the columns {sorted(missing)}")
    if len(history["epoch"]) != initial_epoch:
        raise ValueError(
            f"history holds {len(history['epoch'])} epochs but initial_epoch={initial_epoch}"
        )
    return opt_state, int(initial_epoch), {k: list(v) for k, v in history.items()}


class LoopOptions(NamedTuple):
    """What the host loop needs besides the data and the state."""

    epochs: int
    classifier: bool
    patience: int | None = None
    progress: bool | None = None
    callback: Callable | None = None
    usable: Callable[[Params], bool] | None = None  # is θ's training loss finite?


def _row(epoch: int, stats: dict, seconds: float, classifier: bool) -> dict:
    """One history record; per-model lists when the stats have a model axis."""

    def value(name):
        return np.asarray(stats[name]).tolist() if name in stats else None

    row = {"epoch": epoch, "loss": value("loss"), "val_loss": value("val_loss")}
    if classifier:
        row |= {"accuracy": value("accuracy"), "val_accuracy": value("val_accuracy")}
    return row | {"seconds": seconds}


def _postfix(row: dict) -> dict[str, str]:
    shown = {"loss": f"{np.mean(row['loss']):.4f}"}
    if row.get("val_accuracy") is not None:
        shown["val_acc"] = f"{np.mean(row['val_accuracy']):.3f}"
    elif row["val_loss"] is not None:
        shown["val_loss"] = f"{np.mean(row['val_loss']):.4f}"
    return shown


def run_epochs(epoch_fn, state: TrainState, data: tuple, orders, options: LoopOptions):
    """The host loop around a compiled epoch; returns a :class:`FitResult`.

    ``data`` is (X, Y, Xv, Yv), or (X, Y, Xv, Yv, S, Sv) with sample weights (or None);
    ``orders(k)`` gives epoch k's sample order. Each
    epoch's history record is appended after the epoch has finished, and the result
    is committed in one assignment after that. With a model axis (``stats["ok"]`` of
    shape (m,)), a diverged model stays frozen while the others train on, and
    ``status`` is a list of m statuses. After divergence the result is the last
    epoch whose θ is finite and, when ``options.usable`` is given, whose training
    loss is finite too (else the epoch before it). On Ctrl-C it raises :class:`Interrupted`
    carrying the last committed epoch, with the history trimmed to match it.
    """
    X, Y, Xv, Yv, *weights = data
    params, opt_state, start, history = state
    committed = previous = FitResult(params, opt_state, history, "completed", start)
    rows = len(history["epoch"])
    best, waited, status, diverged = (math.inf, committed), 0, "completed", None
    show = sys.stderr.isatty() if options.progress is None else options.progress
    bar = tqdm(range(start, start + options.epochs), disable=not show, unit="epoch", leave=False)
    try:
        for k in bar:
            t0 = time.perf_counter()
            new_params, new_state, stats = epoch_fn(
                params, opt_state, X, Y, orders(k), Xv, Yv, *weights
            )
            stats = jax.device_get(stats)
            ok = np.asarray(stats["ok"])
            if ok.ndim:  # a model axis: frozen models stay frozen, the others go on
                diverged = ~ok if diverged is None else diverged | ~ok
            elif not ok:
                status = "diverged"
                if options.usable and committed is not previous:
                    if not options.usable(committed.params):  # finite θ, infinite loss
                        committed, rows = previous, rows - 1
                        for name in new_history(options.classifier):
                            del history[name][rows:]
                history.setdefault("diverged_epoch", []).append(committed.epoch + 1)
                params, opt_state = committed.params, committed.opt_state
                break
            row = _row(k + 1, stats, time.perf_counter() - t0, options.classifier)
            for name, value in row.items():
                history[name].append(value)
            params, opt_state = new_params, new_state
            previous = committed
            committed, rows = FitResult(params, opt_state, history, status, k + 1), rows + 1
            bar.set_postfix(_postfix(row))
            if diverged is not None and diverged.all():
                break
            if options.callback is not None and options.callback(k + 1, committed):
                status = "stopped"
                break
            if options.patience and row["val_loss"] is not None:
                if row["val_loss"] < best[0]:
                    best, waited = (row["val_loss"], committed), 0
                elif (waited := waited + 1) >= options.patience:
                    status = "early_stopped"
                    history["best_epoch"] = [best[1].epoch]
                    return best[1]._replace(history=history, status=status)
    except KeyboardInterrupt:
        for name in new_history(options.classifier):
            del history[name][rows:]
        raise Interrupted(committed._replace(status="stopped")) from None
    finally:
        bar.close()
    if diverged is not None:
        status = ["diverged" if d else "completed" for d in diverged]
    return committed._replace(status=status)


def _validation_data(net, params, X, Y, validation, fraction, early_stopping, split_key):
    """(X, Y, Xv, Yv): the training part and the validation data (or None, None)."""
    if early_stopping and validation is None and fraction is None:
        fraction = 0.1
    if validation is not None and fraction is not None:
        raise ValueError("give either validation=(Xv, Yv) or validation_fraction, not both")
    if fraction is not None:
        return _hold_out(split_key, X, Y, _validation_size(X.shape[0], fraction))
    if validation is None:
        return X, Y, None, None
    Xv, Yv = checked_validation(net, params, validation)
    return X, Y, Xv, Yv


def split_validation(key, X, Y, fraction: float):
    """(X, Y, Xv, Yv): exactly the split ``fit(..., key=key, validation_fraction=fraction)``
    makes, for a caller that needs it before ``fit`` (e.g. several processes, each of
    which then passes its shard and ``validation=(Xv, Yv)``)."""
    split_key = jax.random.split(check_key(key))[0]
    return _hold_out(split_key, jnp.asarray(X), jnp.asarray(Y), _validation_size(len(X), fraction))


@partial(jax.jit, static_argnums=1)
def _permuted_split(key, n_val: int, *arrays: Array) -> tuple[Array, ...]:
    """The one train/validation hold-out: the rows of every array in one random order
    (``key``'s permutation), as (train parts..., validation parts...) with the first
    ``n_val`` rows for validation. The same key and n give the same rows for every array.
    """
    perm = jax.random.permutation(key, arrays[0].shape[0])
    return tuple(a[perm[n_val:]] for a in arrays) + tuple(a[perm[:n_val]] for a in arrays)


def _hold_out(key, X: Array, Y: Array, n_val: int) -> tuple[Array, Array, Array, Array]:
    """(X, Y) in a random order split into training rows and the first ``n_val`` for validation."""
    X, Y, Xv, Yv = _permuted_split(key, n_val, X, Y)
    return X, Y, Xv, Yv


def _hold_out_weights(key, S: Array, n_val: int) -> tuple[Array, Array]:
    """The sample weights of :func:`_hold_out`'s split (same key, same permutation)."""
    S, Sv = _permuted_split(key, n_val, S)
    return S, Sv


def _split_weights(S, split_key, n_all: int, n_train: int):
    """(S, Sv): the weights of the training part and of a held-out validation part."""
    if S is None:
        return None, None
    if n_train == n_all:  # nothing held out (no validation, or validation=(Xv, Yv))
        return S, None
    S, Sv = _hold_out_weights(split_key, S, n_all - n_train)
    for part, name in ((S, "training"), (Sv, "held-out validation")):
        if not np.asarray(part).any():
            raise ValueError(
                f"sample_weight is 0 on every {name} sample after the validation split; "
                "give validation=(Xv, Yv) or other weights"
            )
    return S, Sv


def checked_validation(net, params, validation) -> tuple[Array, Array]:
    """``validation=(Xv, Yv)`` checked as :func:`jaxbp.check_data` does; TypeError if not a pair."""
    if not isinstance(validation, tuple | list) or len(validation) != 2:
        raise TypeError(
            f"validation must be a pair (Xv, Yv), got {type(validation).__name__}"
            + (f" of length {len(validation)}" if isinstance(validation, tuple | list) else "")
        )
    return checked_data(net, params, *validation, names=("validation[0]", "validation[1]"))


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
    progress: bool | None = None,
    state: TrainState | None = None,
    opt_state=None,
    initial_epoch: int = 0,
    history: dict[str, list] | None = None,
    callback: Callable[[int, FitResult], Any] | None = None,
    devices=None,
    sample_weight=None,
) -> FitResult:
    """Train θ on (X, Y) by minibatch steps of ``optimizer`` on L(θ) = (1/n) Σ ℓᵢ(θ).

    Args:
        net, params: the network and its initial θ.
        X, Y: training data, X (n, d); Y as accepted by ``jaxbp.loss`` (class ids,
            ±1 labels, or target rows).
        optimizer: any optax ``GradientTransformation``; its learning rate may be an
            optax schedule μ_k (counted in steps).
        epochs: the number of epochs to run (on top of the resumed ones).
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
        weight_decay: λ of an L2 penalty (λ/2)(‖V‖² + ‖W‖²), chained into the
            optimizer as λθ (``jaxbp.optimizers.with_weight_decay``; offsets are not
            decayed). Reported losses exclude it.
        progress: show a tqdm progress bar; by default only when standard error is
            a terminal (a person watches), so logs stay clean.
        state: a :class:`TrainState` (e.g. ``result.state``) to continue from; its
            ``params`` replace ``params``. The older keywords ``opt_state``,
            ``initial_epoch`` and ``history`` do the same, one by one.
        callback: called as ``callback(epoch, result_so_far)`` after every epoch
            (e.g. to save a checkpoint); if it returns a true value, training stops
            with status ``"stopped"``.
        devices: data parallelism: a number of devices, a list of distinct devices or
            a ``jax.sharding.Mesh``. X and Y are sharded by rows over the devices, θ
            is replicated; every step each device picks the minibatch rows it holds
            and a reduce-scatter hands each its slice, and XLA all-reduces the
            gradient (``jaxbp.epoch.sharded_gather``). The minibatches are those of
            one device, so θ equals the one-device result up to float32 rounding.
            ``batch_size`` must be a multiple of the device count. With several
            processes (``jaxbp.distributed.initialize``), X and Y are this process's
            rows (``jaxbp.distributed.shard_rows(n)``), the mesh holds every device,
            and validation data comes as ``validation=``. Without ``devices``, data
            on another device than θ is moved to θ's device.
        sample_weight: weights sᵢ ≥ 0 (n,), not all 0: each minibatch (the last
            partial one too) steps on Σ sᵢ ℓᵢ / Σ sᵢ over its samples (0 when they all
            weigh 0), and the reported losses and accuracies are weighted means. A
            ``validation_fraction`` split holds out the weights with their samples;
            ``validation=(Xv, Yv)`` is evaluated unweighted.

    Returns:
        A :class:`FitResult` (params, opt_state, history, status, epoch).

    Raises:
        ValueError, TypeError: bad data (see ``jaxbp.check_data``) or arguments,
            before anything is compiled.
        Interrupted: on Ctrl-C (a ``KeyboardInterrupt``); its ``result`` holds the
            last completed epoch.

    Examples:
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
    check_net(net)
    epochs, batch_size = check_fit_args(optimizer, epochs, batch_size, grad, callback, progress)
    if early_stopping is not None:
        early_stopping = check_positive_int(early_stopping, "early_stopping")
    if state is not None and isinstance(state, TrainState):
        params = state.params
    check_params(net, params)
    opt_state, start, history = _resume(state, opt_state, initial_epoch, history, net.is_classifier)
    X, Y = checked_data(net, params, X, Y)
    S = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    split_key, shuffle_key = jax.random.split(check_key(key))
    n_all = X.shape[0]
    multi = devices is not None and _multiprocess()
    if multi and validation is None and (validation_fraction is not None or early_stopping):
        raise ValueError(
            "validation_fraction (and early_stopping without validation=) hold out rows of "
            "the whole data, which no process holds: with several processes pass "
            "validation=(Xv, Yv), the same on every process"
        )
    if multi and S is not None:
        raise ValueError(
            "sample_weight is not supported with several processes yet: each process would "
            "need the weights of its own rows; train without it or in one process"
        )
    X, Y, Xv, Yv = _validation_data(
        net, params, X, Y, validation, validation_fraction, early_stopping, split_key
    )
    S, Sv = _split_weights(S, split_key, n_all, X.shape[0])
    n = X.shape[0]
    if multi:  # X holds this process's rows only
        from jaxbp import distributed

        n = distributed.global_count(n, X)
    batch_size = n if batch_size is None else min(batch_size, n)
    optimizer = with_weight_decay(optimizer, weight_decay)
    opt_state = _opt_state(optimizer, params, opt_state)
    sharding = data_sharding(devices, batch_size)
    if sharding is not None:  # X, Y sharded by rows, θ replicated (see jaxbp.distributed)
        from jaxbp import distributed

        if multi and sharding.mesh.size != jax.device_count():
            raise ValueError(
                f"devices: with {jax.process_count()} processes the mesh must hold all "
                f"{jax.device_count()} devices (devices={jax.device_count()}), got "
                f"{sharding.mesh.size}"
            )
        X, Y = distributed.place_rows(sharding, n, X, Y)
        Xv, Yv, S, Sv, params, opt_state = distributed.replicate(
            (Xv, Yv, S, Sv, params, opt_state), sharding
        )
    else:  # the epoch runs where θ is: data on another device is moved there
        X, Y, Xv, Yv, S, Sv, params, opt_state = on_one_device(
            (X, Y, Xv, Yv, S, Sv, params, opt_state), params
        )
    epoch_fn = compile_epoch(
        net, optimizer, n=n, batch_size=batch_size, grad=grad, sharding=sharding
    )

    def usable(p) -> bool:  # checked once, after a divergence only
        return bool(np.isfinite(jax.jit(loss_of)(p, X, Y)))

    def loss_of(p, X, Y):  # rows past n are a sharded layout's padding
        losses = forward_pass(net, p, X, Y).loss
        return jnp.sum(jnp.where(jnp.arange(X.shape[0]) < n, losses, 0.0)) / n

    options = LoopOptions(epochs, net.is_classifier, early_stopping, progress, callback, usable)
    run = partial(
        run_epochs, epoch_fn, TrainState(params, opt_state, start, history), (X, Y, Xv, Yv, S, Sv),
        lambda k: shuffle_order(shuffle_key, k, n), options,
    )  # fmt: skip
    if not multi:
        return run()
    try:
        return run()
    except Exception as err:  # a failed collective: name the lost process in one line
        from jaxbp import distributed

        lost = distributed.as_lost_process(err)
        if lost is None:
            raise
        distributed.mark_lost()
        raise lost from None


def _multiprocess() -> bool:
    return jax.process_count() > 1


def on_one_device(tree, params):
    """Every array of ``tree`` on one device: θ's (``params``), when θ is on one device,
    else the default.

    Data given on another device than θ (``jax.device_put(X, d1)``) is copied there,
    instead of failing inside XLA; θ spread over several devices (e.g. a result of
    ``fit(devices=...)``) is gathered onto the default device.
    """
    arrays = [a for a in jax.tree.leaves(tree) if isinstance(a, jax.Array)]
    where = {d for a in arrays for d in a.devices()}
    if len(where) <= 1:
        return tree
    own = {d for a in jax.tree.leaves(params) if isinstance(a, jax.Array) for d in a.devices()}
    target = own.pop() if len(own) == 1 else jax.devices()[0]
    return jax.device_put(tree, target)


def _opt_state(optimizer, params: Params, opt_state):
    """A fresh ``optimizer.init(params)``, or the given state if it has the same structure."""
    fresh = optimizer.init(params)
    if opt_state is None:
        return fresh
    got, want = jax.tree.structure(opt_state), jax.tree.structure(fresh)
    shapes = [np.shape(a) for a in jax.tree.leaves(opt_state)]
    if got != want or shapes != [np.shape(a) for a in jax.tree.leaves(fresh)]:
        raise ValueError(
            "opt_state does not belong to this optimizer and these params "
            "(its structure or shapes differ from optimizer.init(params), weight decay included)"
        )
    return opt_state
