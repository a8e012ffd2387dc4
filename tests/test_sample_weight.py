"""Sample weights in the BP equations: L(θ) = Σᵢ sᵢ ℓᵢ(θ) / Σᵢ sᵢ, Δ's rows sᵢ δᵢ / Σ s.

- the hand-written gradients (matrix form and vmap) against ``jax.grad`` of the weighted
  loss written out here, for every activation × head × bias, with random weights ≥ 0
  including zeros (hypothesis);
- all weights 1 give today's mean loss bit for bit; weight k equals k copies;
- ``fit`` (minibatches and the last partial batch), ``fit_many`` and ``evaluate`` use the
  weights as the equations say;
- bad weights are refused with a ValueError naming ``sample_weight``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxbp
from jaxbp import names
from jaxbp.oracle import random_problem, relative_error
from jaxbp.train import shuffle_order
from jaxbp.validate import check_targets

WIDTH = {"squared": 2, "logistic": 1, "softmax": 3}


def _weighted_oracle(net, params, X, Y, s):
    """jax.grad of Σ sᵢℓᵢ / Σ s, with ℓᵢ from the forward cache (not jaxbp.loss)."""

    def L(p):
        return jnp.sum(s * jaxbp.forward_cache(net, p, X, Y).loss) / jnp.sum(s)

    return jax.grad(L)(params)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("head", names.HEADS)
@pytest.mark.parametrize("activation", names.ACTIVATIONS)
@settings(max_examples=3)
@given(data=st.data())
def test_weighted_gradient_matches_jax_grad(activation, head, bias, data):
    n = 7  # fixed shapes: every eager op compiles once per shape, not once per example
    weights = st.one_of(st.just(0.0), st.floats(0.0, 5.0, allow_nan=False))
    s = np.array(data.draw(st.lists(weights, min_size=n, max_size=n), label="s"))
    if not s.any():
        s[data.draw(st.integers(0, n - 1), label="nonzero")] = 1.0
    seed = data.draw(st.integers(0, 2**16), label="seed")
    net = jaxbp.Net(activation=activation, head=head)
    with jax.enable_x64(True):
        params, X, Y = random_problem(
            net, jax.random.key(seed), n=n, d=3, hidden=4, K=WIDTH[head], bias=bias
        )
        s = jnp.asarray(s)
        oracle = _weighted_oracle(net, params, X, Y, s)
        autodiff = jaxbp.autodiff_grad(net, params, X, Y, sample_weight=s)
        assert relative_error(autodiff, oracle) < 1e-12
        for method in ("matrix", "vmap", "autodiff"):
            g = jaxbp.batch_grad(net, params, X, Y, method=method, sample_weight=s)
            assert relative_error(g, oracle) < 1e-10, method
            assert (g.b is None) == (not bias)


def test_zero_weights_drop_samples():
    """Samples of weight 0 do not enter the gradient: same as the batch without them."""
    net = jaxbp.Net(activation="tanh", head="softmax")
    with jax.enable_x64(True):
        params, X, Y = random_problem(net, jax.random.key(0), n=8, d=3, hidden=4, K=3, bias=True)
        s = jnp.array([1.0, 0, 2, 0, 0, 1, 3, 0])
        keep = np.flatnonzero(np.asarray(s))
        weighted = jaxbp.batch_grad(net, params, X, Y, sample_weight=s)
        dropped = jaxbp.batch_grad(net, params, X[keep], Y[keep], sample_weight=s[keep])
        assert relative_error(weighted, dropped) < 1e-13
        unweighted = jaxbp.batch_grad(net, params, X, Y)
        assert relative_error(weighted, unweighted) > 1e-3


@pytest.mark.parametrize("n", [1, 7, 4099])
def test_all_ones_loss_is_the_mean_bit_for_bit(n):
    net = jaxbp.Net(activation="relu", head="softmax")
    params, X, Y = random_problem(
        net, jax.random.key(n), n=n, d=5, hidden=8, K=4, bias=True, dtype=jnp.float32
    )
    ones = np.ones(n, np.float32)
    mean = jaxbp.loss(net, params, X, Y)
    assert jaxbp.loss(net, params, X, Y, sample_weight=ones).item() == mean.item()
    jitted = jax.jit(jaxbp.loss)
    assert jitted(net, params, X, Y, jnp.asarray(ones)).item() == jitted(net, params, X, Y).item()
    assert jaxbp.evaluate(net, params, X, Y, sample_weight=ones) == jaxbp.evaluate(
        net, params, X, Y
    )


@pytest.mark.parametrize("head", names.HEADS)
def test_weight_k_equals_k_copies(head):
    """Weight k on sample i gives the gradient (and loss) of the batch with k copies of it."""
    net = jaxbp.Net(activation="sigmoid", head=head)
    with jax.enable_x64(True):
        params, X, Y = random_problem(
            net, jax.random.key(3), n=6, d=3, hidden=5, K=WIDTH[head], bias=True
        )
        counts = np.array([1, 3, 1, 0, 2, 1])
        rows = np.repeat(np.arange(6), counts)
        s = jnp.asarray(counts, jnp.float64)
        for method in ("matrix", "vmap"):
            weighted = jaxbp.batch_grad(net, params, X, Y, method=method, sample_weight=s)
            copies = jaxbp.batch_grad(net, params, X[rows], Y[rows], method=method)
            assert relative_error(weighted, copies) < 1e-13
        assert jnp.allclose(
            jaxbp.loss(net, params, X, Y, sample_weight=s),
            jaxbp.loss(net, params, X[rows], Y[rows]),
            rtol=1e-14,
        )


def _manual_epoch(net, params, X, Y, s, *, lr, batch_size, key):
    """One epoch of plain SGD written out: fit's shuffle, each minibatch (the last partial
    one too) stepping on Σ sᵢℓᵢ / Σ sᵢ over its samples; a batch of zero weight: no step."""
    shuffle_key = jax.random.split(key)[1]
    order = shuffle_order(shuffle_key, 0, X.shape[0])
    Yrows = check_targets(net, params, Y, x_ndim=2)
    for start in range(0, X.shape[0], batch_size):
        rows = order[start : start + batch_size]
        if s[rows].sum() == 0:
            continue
        g = _weighted_oracle(net, params, X[rows], Yrows[rows], s[rows])
        params = jax.tree.map(lambda p, gp: p - lr * gp, params, g)
    return params


@pytest.mark.parametrize("batch_size", [4, 5, None])
def test_fit_steps_on_the_weighted_minibatch_loss(batch_size):
    """fit (scan over minibatches + last partial batch, n = 13) equals the epoch written out."""
    net = jaxbp.Net(activation="tanh", head="softmax")
    with jax.enable_x64(True):
        params, X, Y = random_problem(net, jax.random.key(1), n=13, d=3, hidden=4, K=3, bias=True)
        s = jnp.asarray(np.random.default_rng(0).uniform(0, 2, 13) * (np.arange(13) % 4 != 0))
        key = jax.random.key(7)
        result = jaxbp.fit(
            net, params, X, Y, optimizer=optax.sgd(0.5), epochs=1, batch_size=batch_size,
            key=key, sample_weight=s, progress=False,
        )  # fmt: skip
        want = _manual_epoch(net, params, X, Y, s, lr=0.5, batch_size=batch_size or 13, key=key)
        assert relative_error(result.params, want) < 1e-12
        unweighted = jaxbp.fit(
            net, params, X, Y, optimizer=optax.sgd(0.5), epochs=1, batch_size=batch_size,
            key=key, progress=False,
        )  # fmt: skip
        assert relative_error(result.params, unweighted.params) > 1e-4


def test_fit_reports_weighted_means_and_survives_zero_weight_batches():
    net = jaxbp.Net(activation="relu", head="softmax")
    params, X, Y = random_problem(
        net, jax.random.key(2), n=20, d=3, hidden=6, K=2, bias=True, dtype=jnp.float32
    )
    s = np.zeros(20, np.float32)
    s[3] = 1.0  # most minibatches of 2 weigh 0: their step is 0, not 0/0
    result = jaxbp.fit(
        net, params, X, Y, optimizer=optax.sgd(0.1), epochs=2, batch_size=2,
        key=jax.random.key(0), sample_weight=s, progress=False,
    )  # fmt: skip
    assert result.status == "completed"
    assert all(np.isfinite(np.asarray(leaf)).all() for leaf in jax.tree.leaves(result.params))
    full = jaxbp.fit(
        net, params, X, Y, optimizer=optax.sgd(0.1), epochs=1, key=jax.random.key(0),
        sample_weight=s, progress=False,
    )  # fmt: skip
    # full batch: the reported loss is Σ sᵢℓᵢ / Σ s at the starting θ, i.e. ℓ₃
    assert np.isclose(full.history["loss"][0], jaxbp.loss(net, params, X[3:4], Y[3:4]), rtol=1e-6)
    ev = jaxbp.evaluate(net, params, X, Y, sample_weight=s)
    assert np.isclose(ev["loss"], float(jaxbp.loss(net, params, X[3:4], Y[3:4])), rtol=1e-6)
    assert ev["accuracy"] == jaxbp.evaluate(net, params, X[3:4], Y[3:4])["accuracy"]


def test_fit_many_with_weights_matches_fit():
    net = jaxbp.Net(activation="tanh", head="squared")
    keys = jax.random.split(jax.random.key(0), 2)
    params = jaxbp.init_many(net, keys, d=3, hidden=4, out=2, bias=True)
    X = np.random.default_rng(1).normal(size=(11, 3)).astype(np.float32)
    Y = np.random.default_rng(2).normal(size=(11, 2)).astype(np.float32)
    s = np.random.default_rng(3).uniform(0, 2, 11).astype(np.float32)
    many = jaxbp.fit_many(
        net, params, X, Y, optimizer=optax.sgd(0.1), epochs=2, batch_size=4, key=keys,
        sample_weight=s, progress=False,
    )  # fmt: skip
    for i in range(2):
        one = jaxbp.fit(
            net, jax.tree.map(lambda a, i=i: a[i], params), X, Y, optimizer=optax.sgd(0.1),
            epochs=2, batch_size=4, key=keys[i], sample_weight=s, progress=False,
        )  # fmt: skip
        mine = jax.tree.map(lambda a, i=i: a[i], many.params)
        assert relative_error(mine, one.params) < 1e-5
        assert np.allclose([h[i] for h in many.history["loss"]], one.history["loss"], rtol=1e-5)


def test_validation_fraction_holds_out_the_weights_with_their_samples():
    net = jaxbp.Net(activation="relu", head="softmax")
    params, X, Y = random_problem(
        net, jax.random.key(4), n=30, d=3, hidden=6, K=2, bias=True, dtype=jnp.float32
    )
    s = np.r_[np.ones(15), np.zeros(15)].astype(np.float32)
    result = jaxbp.fit(
        net, params, X, Y, optimizer=optax.sgd(0.0), epochs=1, key=jax.random.key(0),
        validation_fraction=0.3, sample_weight=s, progress=False,
    )  # fmt: skip
    # learning rate 0: θ stays; the validation loss is the weighted mean over the held-out rows
    perm = np.asarray(jax.random.permutation(jax.random.split(jax.random.key(0))[0], 30))
    val = perm[:9]
    want = jaxbp.loss(net, params, X[val], Y[val], sample_weight=s[val])
    assert np.isclose(result.history["val_loss"][0], float(want), rtol=1e-6)


BAD = {
    "wrong length": (np.ones(5), "shape"),
    "negative": (np.array([1.0, -1.0, 1.0, 1.0, 1.0, 1.0]), ">= 0"),
    "NaN": (np.array([1.0, np.nan, 1.0, 1.0, 1.0, 1.0]), "NaN"),
    "inf": (np.array([1.0, np.inf, 1.0, 1.0, 1.0, 1.0]), "NaN or inf"),
    "all zero": (np.zeros(6), "all zero"),
    "2-D": (np.ones((6, 1)), "shape"),
}


@pytest.mark.parametrize("what", BAD)
def test_bad_weights_raise_value_error_naming_sample_weight(what):
    weights, message = BAD[what]
    net = jaxbp.Net(activation="relu", head="softmax")
    params, X, Y = random_problem(
        net, jax.random.key(0), n=6, d=3, hidden=4, K=2, dtype=jnp.float32
    )
    calls = {
        "loss": lambda: jaxbp.loss(net, params, X, Y, sample_weight=weights),
        "batch_grad": lambda: jaxbp.batch_grad(net, params, X, Y, sample_weight=weights),
        "autodiff_grad": lambda: jaxbp.autodiff_grad(net, params, X, Y, sample_weight=weights),
        "evaluate": lambda: jaxbp.evaluate(net, params, X, Y, sample_weight=weights),
        "fit": lambda: jaxbp.fit(
            net, params, X, Y, optimizer=optax.sgd(0.1), epochs=1, key=jax.random.key(0),
            sample_weight=weights, progress=False,
        ),
        "fit_many": lambda: jaxbp.fit_many(
            net, jax.tree.map(lambda a: a[None], params), X, Y, optimizer=optax.sgd(0.1),
            epochs=1, key=jax.random.key(0), sample_weight=weights, progress=False,
        ),
    }  # fmt: skip
    for name, call in calls.items():
        with pytest.raises(ValueError, match=f"sample_weight.*{message}|{message}.*sample_weight"):
            call()
        assert name


def test_non_numeric_weights_are_a_type_error():
    net = jaxbp.Net(activation="relu", head="softmax")
    params, X, Y = random_problem(
        net, jax.random.key(0), n=3, d=3, hidden=4, K=2, dtype=jnp.float32
    )
    with pytest.raises(TypeError, match="sample_weight"):
        jaxbp.loss(net, params, X, Y, sample_weight=np.array(["a", "b", "c"]))
