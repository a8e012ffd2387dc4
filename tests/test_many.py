"""Many models at once (vmap over a model axis) and data parallelism over devices."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxbp
from jaxbp import data


@pytest.fixture(scope="module")
def moons():
    return data.moons(jax.random.key(0), n=400)


def _model(params, i):
    return jax.tree.map(lambda a: a[i], params)


def test_each_model_equals_its_own_fit(moons):
    net = jaxbp.Net(activation="tanh", head="softmax")
    keys = jax.random.split(jax.random.key(0), 4)
    scales = jnp.array([0.5, 1.0, 1.5, 2.0])
    params = jaxbp.init_many(net, keys, d=2, hidden=8, out=2, bias=True, scales=scales)
    lrs = jnp.array([1e-3, 3e-3, 1e-2, 3e-2])
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)
    many = jaxbp.fit_many(
        net, params, moons.X_train, moons.y_train, optimizer=opt, epochs=3, batch_size=48,
        key=keys, hyperparams={"learning_rate": lrs}, progress=False,
        validation=(moons.X_test, moons.y_test),
    )  # fmt: skip
    assert many.status == ["completed"] * 4
    assert np.shape(many.history["val_accuracy"]) == (3, 4)
    for i in range(4):
        one = jaxbp.fit(
            net, _model(params, i), moons.X_train, moons.y_train,
            optimizer=optax.adam(float(lrs[i])), epochs=3, batch_size=48, key=keys[i],
            progress=False, validation=(moons.X_test, moons.y_test),
        )  # fmt: skip
        chex.assert_trees_all_close(_model(many.params, i), one.params, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(
            np.asarray(many.history["loss"])[:, i], one.history["loss"], rtol=1e-5
        )


def test_init_many_scales_the_weights():
    net = jaxbp.Net(activation="relu", head="softmax")
    keys = jax.random.split(jax.random.key(0), 3)
    base = jaxbp.init_many(net, keys, d=4, hidden=5, out=3)
    scaled = jaxbp.init_many(net, keys, d=4, hidden=5, out=3, scales=[1.0, 2.0, 0.0])
    chex.assert_trees_all_close(scaled.V[1], 2 * base.V[1])
    assert float(jnp.abs(scaled.W[2]).max()) == 0.0
    chex.assert_trees_all_close(_model(base, 1), jaxbp.init(net, keys[1], d=4, hidden=5, out=3))


def test_a_diverging_model_is_frozen_and_the_others_train_on():
    ds = data.sine(jax.random.key(0), n=64)
    net = jaxbp.Net(activation="relu", head="squared")
    keys = jax.random.split(jax.random.key(0), 2)
    params = jaxbp.init_many(net, keys, d=1, hidden=16, out=1)
    opt = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1)
    result = jaxbp.fit_many(
        net, params, ds.X_train, ds.y_train, optimizer=opt, epochs=10, batch_size=16,
        key=keys, hyperparams={"learning_rate": jnp.array([1e-2, 1e6])}, progress=False,
    )  # fmt: skip
    assert result.status == ["completed", "diverged"]
    assert all(bool(jnp.all(jnp.isfinite(p))) for p in jax.tree.leaves(result.params))
    losses = np.asarray(result.history["loss"])
    assert losses[-1, 0] < losses[0, 0]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hyperparams": {"learning_rate": jnp.ones(2)}}, "inject_hyperparams"),
        ({"key": jax.random.split(jax.random.key(0), 5)}, "one key or 2 keys"),
    ],
)
def test_fit_many_argument_errors(moons, kwargs, match):
    net = jaxbp.Net(activation="relu", head="softmax")
    keys = jax.random.split(jax.random.key(0), 2)
    params = jaxbp.init_many(net, keys, d=2, hidden=4, out=2)
    kw = {"optimizer": optax.adam(1e-3), "epochs": 1, "key": keys, "progress": False} | kwargs
    with pytest.raises((TypeError, ValueError), match=match):
        jaxbp.fit_many(net, params, moons.X_train, moons.y_train, **kw)
    with pytest.raises(ValueError, match="leading model axis"):
        jaxbp.fit_many(net, _model(params, 0), moons.X_train, moons.y_train, **kw)


_SHARDED = textwrap.dedent(
    """
    import jax, numpy as np, optax, jaxbp
    from jaxbp import data
    assert len(jax.devices()) == 4, jax.devices()
    ds = data.load("blobs")
    net = jaxbp.Net("relu", "softmax")
    p = jaxbp.init(net, jax.random.key(0), d=2, hidden=16, out=3, bias=True)
    kw = dict(optimizer=optax.adam(1e-2), epochs=3, batch_size=64, key=jax.random.key(1),
              progress=False, validation_fraction=0.1)
    one = jaxbp.fit(net, p, ds.X_train, ds.y_train, **kw)
    four = jaxbp.fit(net, p, ds.X_train, ds.y_train, devices=4, **kw)
    assert four.params.V.sharding.mesh.size == 4
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(four.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one.history["loss"], four.history["loss"], rtol=1e-5)
    # sample weights travel with their rows through the sharded gather (and the tail batch)
    w = np.random.default_rng(0).uniform(0.0, 2.0, len(ds.X_train))
    kw_w = kw | {"batch_size": 60, "sample_weight": w}
    one_w = jaxbp.fit(net, p, ds.X_train, ds.y_train, **kw_w)
    four_w = jaxbp.fit(net, p, ds.X_train, ds.y_train, devices=4, **kw_w)
    for a, b, c in zip(jax.tree.leaves(one_w.params), jax.tree.leaves(four_w.params),
                       jax.tree.leaves(one.params)):  # fmt: skip
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
        assert not np.allclose(np.asarray(a), np.asarray(c))  # the weights did change θ
    try:
        jaxbp.fit(net, p, ds.X_train, ds.y_train, **(kw | {"batch_size": 63}), devices=4)
    except ValueError as err:
        assert "multiple of the 4 devices" in str(err), err
    else:
        raise AssertionError("batch_size 63 on 4 devices was accepted")
    d = jax.devices()
    for bad, kind, words in (([d[0], d[0]], ValueError, "more than once"),
                             ([0, 1], TypeError, "list of jax devices")):
        try:
            jaxbp.fit(net, p, ds.X_train, ds.y_train, **kw, devices=bad)
        except kind as err:
            assert "devices" in str(err) and words in str(err), err
        else:
            raise AssertionError(f"devices={bad} was accepted")
    # data on another device than θ: moved to θ's device, the same result
    X1 = jax.device_put(np.asarray(ds.X_train), d[1])
    p2 = jax.device_put(p, d[2])
    moved = jaxbp.fit(net, p2, X1, ds.y_train, **kw)
    assert moved.params.V.devices() == {d[2]}, moved.params.V.devices()
    for a, b in zip(jax.tree.leaves(one.params), jax.tree.leaves(moved.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    # θ sharded by an earlier fit(devices=4), resumed without devices=
    again = jaxbp.fit(net, four.params, X1, ds.y_train, **kw)
    assert len(again.params.V.devices()) == 1
    keys = jax.random.split(jax.random.key(0), 2)
    many_p = jax.device_put(jaxbp.init_many(net, keys, d=2, hidden=4, out=3), d[0])
    many = jaxbp.fit_many(net, many_p, X1, ds.y_train, optimizer=optax.adam(1e-2), epochs=1,
                          batch_size=64, key=keys, progress=False)  # fmt: skip
    assert many.params.V.devices() == {d[0]}, many.params.V.devices()
    print("sharded ok")
    """
)


def test_data_parallel_fit_equals_single_device():
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "JAX_PLATFORMS": "cpu",
    }
    proc = subprocess.run(
        [sys.executable, "-c", _SHARDED], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "sharded ok" in proc.stdout


def test_devices_must_exist(moons):
    net = jaxbp.Net(activation="relu", head="softmax")
    params = jaxbp.init(net, jax.random.key(0), d=2, hidden=4, out=2)
    with pytest.raises(ValueError, match="device"):
        jaxbp.fit(
            net, params, moons.X_train, moons.y_train, optimizer=optax.adam(1e-3), epochs=1,
            batch_size=64, key=jax.random.key(0), devices=len(jax.devices()) + 1, progress=False,
        )  # fmt: skip
