"""The compiled epoch: the few lines that run on the accelerator.

One epoch is one compiled function: a shuffle, a ``lax.scan`` over the full
minibatches and one step on the last partial batch (its gradient is the mean over
its real samples; nothing is dropped). Like the three-line ``update`` of JAX's
from-scratch MNIST example, a step is: gradient, optimizer update, apply.
``jaxbp.train.fit`` runs it inside the host loop; benchmarks time exactly it.
"""

from __future__ import annotations

import functools
import numbers

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxbp.backprop import matrix_grad, matrix_grad_rows
from jaxbp.evaluation import batch_metrics
from jaxbp.gradients import grad_fn
from jaxbp.model import Net, forward_pass

Array = jax.Array


def shuffle_order(key: Array, epoch: int, n: int) -> np.ndarray:
    """The sample order of epoch ``epoch``: a permutation of range(n) seeded by fold_in(key, epoch).

    Drawn with NumPy on the host: XLA's CPU sort made ``jax.random.permutation`` a
    third of a small epoch's time. Deterministic in (key, epoch), so a resumed run
    sees the same orders.
    """
    seed = np.asarray(jax.random.key_data(jax.random.fold_in(key, epoch)))
    return np.random.default_rng(seed).permutation(n).astype(np.int32)


def _epoch_fn(net: Net, optimizer, grad: str, n: int, batch_size: int, sharding):
    """One epoch, uncompiled (see :func:`compile_epoch`).

    A step whose result is not finite leaves θ and the optimizer state as they were
    at the start of the epoch (``stats["ok"]`` is False): the last finite θ is kept.
    """
    grad = grad_fn(grad)
    if sharding is not None and grad is matrix_grad:
        grad = matrix_grad_rows  # the minibatch is split along its samples: keep them leading
    n_full, tail = divmod(n, batch_size)
    gather = None if sharding is None else sharded_gather(sharding, n)

    def step(carry, batch):
        params, opt_state = carry
        Xb, Yb, Sb = batch  # Sb: the minibatch's sample weights, or None
        grads, cache = grad(net, params, Xb, Yb, Sb)  # ∇L over the minibatch
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)  # θ ← θ − μ_k ∇L(θ) (or Adam's step)
        return (params, opt_state), batch_metrics(net, cache, Yb, Sb)

    def shard(batch, lead=()):
        if sharding is None or batch[0].shape[len(lead)] % sharding.mesh.size:
            return batch
        spec = jax.sharding.PartitionSpec(*lead, *sharding.spec)
        where = jax.sharding.NamedSharding(sharding.mesh, spec)
        return jax.lax.with_sharding_constraint(batch, jax.tree.map(lambda _: where, batch))

    def rows_of(S, rows):  # the sample weights of some rows, or None without weights
        return None if S is None else S[rows]

    def epoch(params, opt_state, X, Y, order, Xv, Yv, S=None, Sv=None):
        cut = n_full * batch_size
        if gather is not None:  # X, Y sharded by rows: each device gives the rows it holds
            order = order if batch_size < n else jnp.arange(n, dtype=jnp.int32)
            rows = order[:cut].reshape(n_full, batch_size)
            carry, (losses, corrects) = jax.lax.scan(
                lambda carry, rows: step(carry, (*gather(X, Y, rows), rows_of(S, rows))),
                (params, opt_state), rows,
            )  # fmt: skip
            last = order[cut:]
            tail_batch = (*gather(X, Y, last), rows_of(S, last)) if tail else None
        elif batch_size < n:  # reshuffle every epoch; full-batch GD needs no shuffle

            def gathered(carry, rows):  # each minibatch gathered in its step: no shuffled copy of X
                return step(carry, shard((X[rows], Y[rows], rows_of(S, rows))))

            rows = order[:cut].reshape(n_full, batch_size)
            carry, (losses, corrects) = jax.lax.scan(gathered, (params, opt_state), rows)
            tail_batch = (X[order[cut:]], Y[order[cut:]], rows_of(S, order[cut:]))
        else:
            S1 = None if S is None else S.reshape(1, n)
            batches = (X.reshape(1, n, -1), Y.reshape(1, n, -1), S1)
            carry, (losses, corrects) = jax.lax.scan(
                step, (params, opt_state), shard(batches, (None,))
            )
            tail_batch = None
        loss_sum, correct_sum = losses.sum(), corrects.sum()
        if tail:
            tail_batch = tail_batch if gather is not None else shard(tail_batch)
            carry, (loss_tail, correct_tail) = step(carry, tail_batch)
            loss_sum, correct_sum = loss_sum + loss_tail, correct_sum + correct_tail
        finite = [jnp.all(jnp.isfinite(p)) for p in jax.tree.leaves(carry[0])]
        ok = jnp.all(jnp.stack([*finite, jnp.isfinite(loss_sum)]))
        new_params, new_state = jax.tree.map(
            lambda new, old: jnp.where(ok, new, old), carry, (params, opt_state)
        )
        total = n if S is None else S.sum()  # the means are weighted by S when given
        stats = {"loss": loss_sum / total, "accuracy": correct_sum / total, "ok": ok}
        if Xv is not None:
            cache_v = forward_pass(net, new_params, Xv, Yv)
            val_loss, val_correct = batch_metrics(net, cache_v, Yv, Sv)
            total_v = Xv.shape[0] if Sv is None else Sv.sum()
            stats |= {"val_loss": val_loss / total_v, "val_accuracy": val_correct / total_v}
        return new_params, new_state, stats

    return epoch


def sharded_gather(sharding, n: int):
    """``(X, Y, rows) ↦ (X[rows], Y[rows])`` for X, Y sharded by rows over ``sharding``'s
    data axis (device j holds the global rows [j·r, (j+1)·r), r = ⌈n / devices⌉).

    Every device picks the rows of the minibatch that it holds (zeros elsewhere) and a
    reduce-scatter (``psum_scatter``) sums the picks, leaving each device its slice of
    the minibatch; a sum of one row and zeros is exact, so the minibatch is exactly
    X[rows] of the whole data, whichever device holds each row. A batch that does not
    split evenly over the devices is summed onto all of them (``psum``). No device ever
    holds more of X than its shard and one minibatch.
    """
    mesh, axis = sharding.mesh, sharding.spec[0]
    size = mesh.shape[axis]
    r = -(-n // size)
    data = jax.sharding.PartitionSpec(axis)

    def picks(A, at, mine):
        got = A[jnp.clip(at, 0, r - 1)]
        return jnp.where(mine.reshape(-1, *(1,) * (A.ndim - 1)), got, jnp.zeros_like(got))

    def gather(X, Y, rows):
        even = rows.shape[0] % size == 0

        def local(Xs, Ys, rows):
            at = rows - jax.lax.axis_index(axis) * r
            mine = (at >= 0) & (at < r)
            xb, yb = picks(Xs, at, mine), picks(Ys, at, mine)
            joined = yb.dtype == xb.dtype and yb.ndim == 2  # one collective for both
            batch = jnp.concatenate([xb, yb], axis=1) if joined else (xb, yb)
            if even:
                batch = jax.lax.psum_scatter(batch, axis, scatter_dimension=0, tiled=True)
            else:
                batch = jax.lax.psum(batch, axis)
            return (batch[:, : xb.shape[1]], batch[:, xb.shape[1] :]) if joined else batch

        out = data if even else jax.sharding.PartitionSpec()
        return jax.shard_map(
            local, mesh=mesh, in_specs=(data, data, jax.sharding.PartitionSpec()),
            out_specs=(out, out),
        )(X, Y, rows)  # fmt: skip

    return gather


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
def compile_epoch(
    net: Net, optimizer, *, n: int, batch_size: int, grad: str = "matrix", sharding=None,
    many: bool = False,
):  # fmt: skip
    """The compiled epoch ``fit`` runs: ``(params, opt_state, X, Y, order, Xv, Yv, S=None,
    Sv=None) ↦ (params, opt_state, stats)``.

    X (n, d) and Y (n, K) are checked and converted (``jaxbp.validate.checked_data``),
    ``order`` is the epoch's sample order (:func:`shuffle_order`, ignored for full
    batch), Xv, Yv the validation data or None. ``stats`` holds ``loss`` and
    ``accuracy`` (means over the epoch's minibatches), ``ok`` (False when the epoch
    produced a NaN or inf: θ and the state are then returned unchanged) and, with
    validation data, ``val_loss`` and ``val_accuracy``. ``S``, ``Sv``: sample weights (n,)
    of the training and validation data, or None; with them every minibatch's loss is
    Σ sᵢℓᵢ / Σ sᵢ over its samples (0 if they all weigh 0) and the stats are weighted means.

    ``sharding``: the ``NamedSharding`` of one minibatch (see :func:`data_sharding`).
    ``many``: vmap over a leading model axis of params and opt_state (``fit_many``);
    ``order`` is then (n,) shared by all models or (m, n), one per model.

    Cached, so calling ``fit`` again with the same net, optimizer object and sizes
    (e.g. to resume) reuses the compiled function; benchmarks time exactly this.
    """
    epoch = _epoch_fn(net, optimizer, grad, n, batch_size, sharding)
    if not many:
        return _counted_jit(epoch)

    def each_model(params, opt_state, X, Y, order, Xv, Yv, S=None, Sv=None):
        axes = (0, 0, None, None, 0 if order.ndim == 2 else None, None, None, None, None)
        return jax.vmap(epoch, in_axes=axes)(params, opt_state, X, Y, order, Xv, Yv, S, Sv)

    return _counted_jit(each_model)


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
        if isinstance(devices, numbers.Integral) and not isinstance(devices, bool):
            if not 1 <= devices <= len(available):
                raise ValueError(
                    f"devices={devices}, but {len(available)} {available[0].platform} device(s) "
                    "are available (on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N "
                    "simulates N devices)"
                )
            devices = available[: int(devices)]
        elif isinstance(devices, bool | str) or not hasattr(devices, "__iter__"):
            raise TypeError(
                f"devices must be a number, a list of devices or a jax.sharding.Mesh, "
                f"got {type(devices).__name__}"
            )
        devices = list(devices)
        if not devices or not all(isinstance(d, jax.Device) for d in devices):
            raise TypeError(
                "devices must be a number, a non-empty list of jax devices (jax.devices()) or "
                f"a jax.sharding.Mesh, got {devices!r:.120}"
            )
        twice = sorted({str(d) for d in devices if devices.count(d) > 1})
        if twice:
            raise ValueError(
                f"devices lists {', '.join(twice)} more than once: give each device once "
                "(devices=[d0, d1], or devices=2)"
            )
        mesh = jax.sharding.Mesh(np.asarray(devices), ("data",))
    axis = mesh.axis_names[0]
    if batch_size % mesh.shape[axis]:
        raise ValueError(
            f"batch_size={batch_size} must be a multiple of the {mesh.shape[axis]} devices "
            f"on the data axis {axis!r}"
        )
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis))
