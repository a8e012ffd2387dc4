"""The training loop: goals reached, grad methods agree, resume, divergence, no recompiles."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxbp
from jaxbp import data, epoch, gradients, train


@pytest.fixture(scope="module")
def moons():
    return data.moons(jax.random.key(0), n=600)


def _fit(net, params, X, Y, **kw):
    kw = {"optimizer": optax.adam(1e-2), "epochs": 3, "batch_size": 32, "progress": False} | kw
    return jaxbp.fit(net, params, X, Y, key=jax.random.key(1), **kw)


def test_moons_reaches_95_percent(moons):
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=2, hidden=32, out=2, bias=True)
    result = _fit(net, params, moons.X_train, moons.y_train, epochs=60)
    assert result.status == "completed"
    assert jaxbp.evaluate(net, result.params, moons.X_test, moons.y_test)["accuracy"] >= 0.95


def test_sine_regression_fits():
    ds = data.sine(jax.random.key(0), n=256)
    net = jaxbp.Net(activation="tanh", head="squared")
    params = jaxbp.init(net, jax.random.key(0), d=1, hidden=32, out=1, bias=True)
    result = _fit(net, params, ds.X_train, ds.y_train, epochs=300, batch_size=None)
    mse = jaxbp.evaluate(net, result.params, ds.X_test, ds.y_test)["mse"]
    assert mse < 0.01  # noise variance is 0.05² = 0.0025; sin has variance ≈ 0.5


def test_history_fields_and_accuracy(moons):
    net = jaxbp.Net(activation="tanh", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=2, hidden=8, out=2)
    result = _fit(
        net, params, moons.X_train, moons.y_train, validation=(moons.X_test, moons.y_test)
    )
    h = result.history
    assert h["epoch"] == [1, 2, 3]
    for key in ("loss", "val_loss", "accuracy", "val_accuracy", "seconds"):
        assert len(h[key]) == 3 and all(math.isfinite(v) for v in h[key])
    final = jaxbp.evaluate(net, result.params, moons.X_test, moons.y_test)
    assert h["val_loss"][-1] == pytest.approx(final["loss"], rel=1e-5)
    assert h["val_accuracy"][-1] == pytest.approx(final["accuracy"])


def test_grad_methods_give_the_same_trajectory_in_float64(moons):
    with jax.enable_x64(True):
        net = jaxbp.Net(activation="silu", head="softmax")
        params = jaxbp.init(
            net, jax.random.key(0), d=2, hidden=8, out=2, bias=True, dtype=jnp.float64
        )
        X, Y = moons.X_train.astype(np.float64), moons.y_train
        results = {g: _fit(net, params, X, Y, epochs=5, grad=g).params for g in gradients.METHODS}
        for g in ("vmap", "autodiff"):
            chex.assert_trees_all_close(results[g], results["matrix"], rtol=1e-9, atol=1e-9)


def test_one_epoch_is_compiled_once(moons, monkeypatch):
    made = []
    original = epoch.compile_epoch

    def spy(*args, **kwargs):
        made.append(original(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(train, "compile_epoch", spy)
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=2, hidden=8, out=2)
    _fit(net, params, moons.X_train, moons.y_train, epochs=6, validation_fraction=0.2)
    assert len(made) == 1 and made[0].traces() == 1
    _fit(net, params, moons.X_train, moons.y_train, epochs=2, validation_fraction=0.2)
    assert made[0].traces() == 1  # a second fit of the same shapes reuses the compiled epoch


def test_last_partial_batch_is_used_with_its_own_mean():
    """n = 10, batch 4: steps on 4, 4 and the last 2 samples, each the mean over its batch."""
    X = jax.random.normal(jax.random.key(3), (10, 3))
    Y = jax.random.normal(jax.random.key(4), (10, 2))
    net = jaxbp.Net(activation="tanh", head="squared")
    params = jaxbp.init(net, jax.random.key(0), d=3, hidden=5, out=2)
    lr = 0.1
    result = jaxbp.fit(
        net, params, X, Y, optimizer=optax.sgd(lr), epochs=1, batch_size=4,
        key=jax.random.key(7), progress=False,
    )  # fmt: skip
    # The documented shuffle: epoch k uses shuffle_order(second half of split(key), k, n).
    perm = epoch.shuffle_order(jax.random.split(jax.random.key(7))[1], 0, 10)
    expected, losses = params, []
    for idx in (perm[:4], perm[4:8], perm[8:]):
        losses.append(float(jaxbp.loss(net, expected, X[idx], Y[idx])) * len(idx))
        g = jaxbp.batch_grad(net, expected, X[idx], Y[idx])
        expected = jax.tree.map(lambda p, d: p - lr * d, expected, g)
    chex.assert_trees_all_close(result.params, expected, rtol=1e-5, atol=1e-6)
    assert result.history["loss"][0] == pytest.approx(sum(losses) / 10, rel=1e-5)


def test_full_batch_is_gradient_descent():
    X = jax.random.normal(jax.random.key(3), (12, 3))
    Y = jnp.arange(12) % 3
    net = jaxbp.Net(activation="sigmoid", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=3, hidden=5, out=3)
    result = jaxbp.fit(
        net, params, X, Y, optimizer=optax.sgd(0.5), epochs=3, key=jax.random.key(0), progress=False
    )
    expected = params
    for _ in range(3):  # θ_{k+1} = θ_k − μ ∇L(θ_k)
        g = jaxbp.batch_grad(net, expected, X, Y)
        expected = jax.tree.map(lambda p, d: p - 0.5 * d, expected, g)
    chex.assert_trees_all_close(result.params, expected, rtol=1e-5, atol=1e-6)


def test_resume_equals_one_run_bit_for_bit(moons):
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=2, hidden=8, out=2, bias=True)
    sched = optax.cosine_decay_schedule(1e-2, decay_steps=200)
    kw = {"optimizer": optax.adam(sched), "validation_fraction": 0.2}
    whole = _fit(net, params, moons.X_train, moons.y_train, epochs=10, **kw)
    first = _fit(net, params, moons.X_train, moons.y_train, epochs=5, **kw)
    second = _fit(
        net, first.params, moons.X_train, moons.y_train, epochs=5, opt_state=first.opt_state,
        initial_epoch=first.epoch, history=first.history, **kw,
    )  # fmt: skip
    assert second.epoch == whole.epoch == 10
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(second.params), strict=True):
        assert np.array_equal(a, b)
    for a, b in zip(
        jax.tree.leaves(whole.opt_state), jax.tree.leaves(second.opt_state), strict=True
    ):
        assert np.array_equal(a, b)
    for key in ("epoch", "loss", "val_loss", "accuracy", "val_accuracy"):
        assert whole.history[key] == second.history[key]


def test_divergence_stops_and_keeps_last_finite_params():
    ds = data.sine(jax.random.key(0), n=64)
    net = jaxbp.Net(activation="relu", head="squared")
    params = jaxbp.init(net, jax.random.key(0), d=1, hidden=16, out=1)
    result = _fit(net, params, ds.X_train, ds.y_train, optimizer=optax.sgd(1e6), epochs=20)
    assert result.status == "diverged"
    assert result.history["diverged_epoch"] == [result.epoch + 1]
    assert len(result.history["loss"]) == result.epoch < 20
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(result.params))


def test_early_stopping_restores_the_best_params(moons):
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=2, hidden=64, out=2, bias=True)
    Xv, Yv = moons.X_test[:20], moons.y_test[:20]  # a tiny validation set overfits quickly
    result = _fit(
        net, params, moons.X_train, moons.y_train, epochs=200, optimizer=optax.adam(5e-2),
        validation=(Xv, Yv), early_stopping=3,
    )  # fmt: skip
    assert result.status == "early_stopped"
    h = result.history
    best = int(np.argmin(h["val_loss"]))
    assert h["best_epoch"] == [h["epoch"][best]] == [result.epoch]
    assert len(h["epoch"]) == best + 1 + 3
    assert jaxbp.evaluate(net, result.params, Xv, Yv)["loss"] == pytest.approx(
        h["val_loss"][best], rel=1e-5
    )


def test_weight_decay_is_l2_on_weights_only():
    X = jax.random.normal(jax.random.key(3), (8, 3))
    Y = jax.random.normal(jax.random.key(4), (8, 2))
    net = jaxbp.Net(activation="tanh", head="squared")
    params = jaxbp.init(net, jax.random.key(0), d=3, hidden=4, out=2, bias=True)
    params = params._replace(b=jnp.ones(4), c=jnp.ones(2))
    lam, lr = 0.1, 0.05
    result = _fit(
        net, params, X, Y, optimizer=optax.sgd(lr), epochs=1, batch_size=None, weight_decay=lam
    )
    g = jaxbp.batch_grad(net, params, X, Y)
    expected = jaxbp.Params(
        V=params.V - lr * (g.V + lam * params.V),
        W=params.W - lr * (g.W + lam * params.W),
        b=params.b - lr * g.b,
        c=params.c - lr * g.c,
    )
    chex.assert_trees_all_close(result.params, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"epochs": 0}, ValueError, "epochs must be a positive integer"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer"),
        ({"optimizer": "adam"}, TypeError, "optax.GradientTransformation"),
        ({"grad": "magic"}, ValueError, "unknown gradient method 'magic'"),
        ({"early_stopping": 0}, ValueError, "early_stopping must be a positive integer"),
        ({"validation_fraction": 1.5}, ValueError, "validation_fraction must be in"),
        ({"epochs": True}, ValueError, "epochs must be a positive integer"),
        ({"batch_size": True}, ValueError, "batch_size must be a positive integer"),
        ({"weight_decay": "0.1"}, TypeError, "weight_decay"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay"),
        ({"weight_decay": float("nan")}, ValueError, "weight_decay"),
        ({"history": [1, 2]}, TypeError, "history must be a dict"),
        ({"initial_epoch": -5}, ValueError, "initial_epoch must be an int >= 0"),
        ({"validation": np.zeros((3, 2))}, TypeError, r"validation must be a pair \(Xv, Yv\)"),
        ({"opt_state": optax.sgd(0.1).init(jaxbp.Params(jnp.zeros((4, 2)), jnp.zeros((2, 4))))},
         ValueError, "opt_state does not belong"),
        ({"callback": 5}, TypeError, "callback must be callable"),
        ({"state": 5}, TypeError, "state must be a jaxbp.train.TrainState"),
        ({"progress": "yes"}, TypeError, "progress must be True, False or None"),
        ({"grad": "magic"}, ValueError, r"\(grad=\)"),
    ],
)  # fmt: skip
def test_bad_arguments_fail_before_compiling(moons, kwargs, error, match, monkeypatch):
    monkeypatch.setattr(train, "compile_epoch", lambda *a, **k: pytest.fail("compiled first"))
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=2, hidden=4, out=2)
    with pytest.raises(error, match=match):
        _fit(net, params, moons.X_train, moons.y_train, **kwargs)


@pytest.mark.parametrize(
    ("X", "Y", "match"),
    [
        (np.zeros((0, 2)), np.zeros((0,), int), "X is empty"),
        (np.array([[0.0, np.nan]] * 3), np.array([0, 1, 0]), "X holds NaN or inf"),
        (np.zeros((3, 2)), np.array([0, 1, 5]), "class id 5"),
        (np.zeros((3, 3)), np.array([0, 1, 0]), "X has 3 features but V expects d=2"),
        (np.zeros((3, 2)), np.array([0, 1]), "X has n=3 samples but Y has 2"),
    ],
)
def test_bad_data_fails_before_compiling(X, Y, match, monkeypatch):
    monkeypatch.setattr(train, "compile_epoch", lambda *a, **k: pytest.fail("compiled first"))
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=2, hidden=4, out=2)
    with pytest.raises(ValueError, match=match):
        _fit(net, params, X, Y)


def test_predict_and_evaluate():
    X = jax.random.normal(jax.random.key(0), (6, 3))
    for head, out, Y in [
        ("softmax", 3, jnp.array([0, 1, 2, 0, 1, 2])),
        ("logistic", 1, jnp.array([1, -1, 1, -1, 1, -1])),
        ("squared", 2, jnp.ones((6, 2))),
    ]:
        net = jaxbp.Net(activation="tanh", head=head)
        params = jaxbp.init(net, jax.random.key(1), d=3, hidden=4, out=out)
        pred = jaxbp.predict(net, params, X)
        metrics = jaxbp.evaluate(net, params, X, Y)
        assert metrics["loss"] == pytest.approx(float(jaxbp.loss(net, params, X, Y)))
        if head == "squared":
            assert pred.shape == (6, 2)
            assert metrics["loss"] == pytest.approx(2 * metrics["mse"], rel=1e-5)
        else:
            assert pred.shape == (6,)
            assert metrics["accuracy"] == pytest.approx(float(jnp.mean(pred == Y)))


@pytest.mark.parametrize(
    ("X", "error", "match"),
    [
        (None, TypeError, "X must be a numeric array"),
        ("abc", TypeError, "X must be a numeric array"),
        (np.ones((3, 2), np.complex64), TypeError, "X must be a real numeric array"),
        (np.ones((3, 2), bool), TypeError, "got dtype bool"),
    ],
)
def test_bad_X_is_a_type_error_naming_X(X, error, match, monkeypatch):
    monkeypatch.setattr(train, "compile_epoch", lambda *a, **k: pytest.fail("compiled first"))
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=2, hidden=4, out=2)
    with pytest.raises(error, match=match):
        _fit(net, params, X, np.array([0, 1, 0]))


def test_fit_refuses_integer_params(monkeypatch):
    monkeypatch.setattr(train, "compile_epoch", lambda *a, **k: pytest.fail("compiled first"))
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=2, hidden=4, out=2)
    params = jax.tree.map(lambda a: a.astype(jnp.int32), params)
    with pytest.raises(TypeError, match=r"params\.V must be a floating-point array"):
        _fit(net, params, np.zeros((3, 2)), np.array([0, 1, 0]))


def test_fit_key_must_be_a_prng_key(monkeypatch):
    monkeypatch.setattr(train, "compile_epoch", lambda *a, **k: pytest.fail("compiled first"))
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=2, hidden=4, out=2)
    for key in (5, None, jax.random.split(jax.random.key(0), 2)):
        with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
            jaxbp.fit(net, params, np.zeros((3, 2)), np.array([0, 1, 0]),
                      optimizer=optax.sgd(0.1), epochs=1, key=key, progress=False)  # fmt: skip


def test_numpy_integer_epochs_and_batch_size_are_accepted():
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=2, hidden=4, out=2)
    X, Y = np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1])
    result = _fit(net, params, X, Y, epochs=np.int64(2), batch_size=np.int32(2))
    assert result.epoch == 2 and len(result.history["epoch"]) == 2


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"key": 5}, TypeError, "key must be one PRNG key"),
        ({"progress": "yes"}, TypeError, "progress must be True, False or None"),
        ({"validation": np.zeros((3, 2))}, TypeError, r"validation must be a pair \(Xv, Yv\)"),
        ({"hyperparams": [1]}, TypeError, "hyperparams must be a dict"),
        ({"grad": "magic"}, ValueError, r"\(grad=\)"),
    ],
)
def test_fit_many_bad_arguments(kwargs, error, match, monkeypatch):
    from jaxbp import many

    monkeypatch.setattr(many, "compile_epoch", lambda *a, **k: pytest.fail("compiled first"))
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init_many(net, jax.random.split(jax.random.key(0), 2), d=2, hidden=4, out=2)
    kw = {"optimizer": optax.sgd(0.1), "epochs": 1, "key": jax.random.key(1)} | kwargs
    with pytest.raises(error, match=match):
        jaxbp.fit_many(net, params, np.zeros((3, 2)), np.array([0, 1, 0]), **kw)
