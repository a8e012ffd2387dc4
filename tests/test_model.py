"""Net (static configuration), forward, forward_cache and loss."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import problems
import pytest

import jaxbp

D, M, N = problems.D, problems.M, problems.N
K = {"squared": 2, "logistic": 1, "softmax": 3}
HEADS = tuple(K)


def problem(head, *, activation="tanh", bias=True, seed=0):
    return problems.problem(activation, head, K=K[head], bias=bias, seed=seed)


def reference(head, params, X, Y):
    """f = h(W tanh(Vx + b) + c) and the per-sample losses, in NumPy (an independent oracle)."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    X, Y = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    a = X @ p.V.T + p.b
    z = np.tanh(a)
    o = z @ p.W.T + p.c
    if head == "squared":
        f = o
        loss = ((Y - f) ** 2).sum(-1)
    elif head == "logistic":
        f = 1 / (1 + np.exp(-o))
        loss = np.log1p(np.exp(-Y * o)).sum(-1)
    else:
        f = np.exp(o) / np.exp(o).sum(-1, keepdims=True)
        loss = -(Y * np.log(f)).sum(-1)
    return a, z, o, f, loss


# ---- Net ---------------------------------------------------------------------------------


def test_net_is_hashable_and_equal_nets_hash_equal():
    a = jaxbp.Net(activation="relu", head="softmax")
    b = jaxbp.Net(activation="relu", head="softmax")
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a != jaxbp.Net(activation="tanh", head="softmax")
    assert a != jaxbp.Net(activation="relu", head="squared")
    assert jaxbp.Net("leaky_relu", negative_slope=0.2) != jaxbp.Net("leaky_relu")
    assert {a: 1}[b] == 1


def test_net_has_no_pytree_leaves():
    for net in (jaxbp.Net(), jaxbp.Net("tanh", "squared", output="sigmoid", negative_slope=0.3)):
        assert jax.tree.leaves(net) == []
        leaves, treedef = jax.tree.flatten(net)
        assert jax.tree.unflatten(treedef, leaves) == net
        assert jax.tree.map(lambda x: x + 1, net) == net


def test_net_is_frozen():
    net = jaxbp.Net()
    with pytest.raises(dataclasses.FrozenInstanceError):
        net.activation = "tanh"


def test_net_defaults_and_properties():
    net = jaxbp.Net()
    assert (net.activation, net.head, net.output, net.negative_slope) == (
        "relu",
        "squared",
        None,
        0.01,
    )
    assert not net.is_classifier
    assert jaxbp.Net(head="softmax").is_classifier and jaxbp.Net(head="logistic").is_classifier
    net = jaxbp.Net("leaky_relu", "squared", output="leaky_relu", negative_slope=0.25)
    assert net.sigma.name == "leaky_relu"
    assert float(net.sigma.grad(jnp.array(-1.0))) == 0.25
    assert float(net.loss_head.h(jnp.array([-2.0]))[0]) == -0.5  # the output map uses α too
    assert net.loss_head.name == "squared"


def test_net_as_jit_argument_is_static():
    net, params, X, _ = problem("softmax")
    traces = []

    @jax.jit
    def f(net, params, X):
        traces.append(net)
        assert isinstance(net, jaxbp.Net)  # not a tracer: a plain, static value
        return jaxbp.forward(net, params, X)

    f(net, params, X)
    f(jaxbp.Net(activation="tanh", head="softmax"), params, X)
    assert traces == [net]


# ---- forward, forward_cache, loss --------------------------------------------------------


@pytest.mark.parametrize("head", HEADS)
def test_forward_shapes_and_values(head):
    net, params, X, Y = problem(head)
    F = jaxbp.forward(net, params, X)
    assert F.shape == (N, K[head]) and F.dtype == jnp.float32
    f = jaxbp.forward(net, params, X[0])
    assert f.shape == (K[head],)
    np.testing.assert_allclose(f, F[0], rtol=1e-6)
    np.testing.assert_allclose(F, reference(head, params, X, Y)[3], rtol=1e-5, atol=1e-6)


def test_forward_probabilities():
    net, params, X, _ = problem("softmax")
    np.testing.assert_allclose(jaxbp.forward(net, params, X).sum(-1), np.ones(N), rtol=1e-6)
    net, params, X, _ = problem("logistic")
    F = np.asarray(jaxbp.forward(net, params, X))
    assert ((F > 0) & (F < 1)).all()


def test_forward_without_bias():
    net, params, X, _ = problem("squared", bias=False)
    assert params.b is None and params.c is None
    want = np.tanh(np.asarray(X) @ np.asarray(params.V).T) @ np.asarray(params.W).T
    np.testing.assert_allclose(jaxbp.forward(net, params, X), want, rtol=1e-5, atol=1e-6)


def test_forward_casts_inputs_to_params_dtype():
    net, params, X, _ = problem("squared")
    F = jaxbp.forward(net, params, np.asarray(X, np.float64))
    assert F.dtype == jnp.float32
    F_int = jaxbp.forward(net, params, np.ones((2, D), np.int32))
    np.testing.assert_allclose(F_int, jaxbp.forward(net, params, jnp.ones((2, D))), rtol=1e-6)


@pytest.mark.parametrize("head", HEADS)
def test_forward_cache(head):
    net, params, X, Y = problem(head)
    cache = jaxbp.forward_cache(net, params, X, Y)
    assert isinstance(cache, jaxbp.Cache)
    assert cache._fields == ("a", "z", "o", "f", "loss")
    shapes = {"a": (N, M), "z": (N, M), "o": (N, K[head]), "f": (N, K[head]), "loss": (N,)}
    for field, shape in shapes.items():
        assert getattr(cache, field).shape == shape, field
    for got, want in zip(cache, reference(head, params, X, Y), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cache.f, jaxbp.forward(net, params, X), rtol=1e-6)
    one = jaxbp.forward_cache(net, params, X[1], Y[1])
    for field, shape in shapes.items():
        assert getattr(one, field).shape == shape[1:], field
        np.testing.assert_allclose(getattr(one, field), getattr(cache, field)[1], rtol=1e-5)


@pytest.mark.parametrize("head", HEADS)
def test_loss_is_mean_of_cached_losses(head):
    net, params, X, Y = problem(head)
    L = jaxbp.loss(net, params, X, Y)
    assert L.shape == ()
    per_sample = jaxbp.forward_cache(net, params, X, Y).loss
    np.testing.assert_allclose(L, jnp.mean(per_sample), rtol=1e-6)
    np.testing.assert_allclose(L, reference(head, params, X, Y)[4].mean(), rtol=1e-5)
    np.testing.assert_allclose(jaxbp.loss(net, params, X[2], Y[2]), per_sample[2], rtol=1e-6)


def test_loss_with_class_ids_equals_one_hot():
    net, params, X, Y = problem("softmax")
    ids = np.argmax(np.asarray(Y), axis=1)
    np.testing.assert_allclose(jaxbp.loss(net, params, X, ids), jaxbp.loss(net, params, X, Y))
    np.testing.assert_allclose(
        jaxbp.loss(net, params, X[0], ids[0]), jaxbp.loss(net, params, X[0], Y[0])
    )


def test_squared_output_map():
    net = jaxbp.Net(activation="tanh", head="squared", output="sigmoid")
    _, params, X, Y = problem("squared")
    o = reference("squared", params, X, Y)[2]
    f = 1 / (1 + np.exp(-o))
    np.testing.assert_allclose(jaxbp.forward(net, params, X), f, rtol=1e-5)
    want = ((np.asarray(Y) - f) ** 2).sum(-1).mean()
    np.testing.assert_allclose(jaxbp.loss(net, params, X, Y), want, rtol=1e-5)


@pytest.mark.parametrize(
    ("slope", "error"),
    [
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (-float("inf"), ValueError),
        ("a", TypeError),
        (None, TypeError),
        (True, TypeError),
        (np.ones(2), TypeError),
    ],
)
def test_net_negative_slope_must_be_a_finite_real(slope, error):
    with pytest.raises(error, match="negative_slope must be"):
        jaxbp.Net(activation="leaky_relu", negative_slope=slope)


def test_net_negative_slope_accepts_ints_and_numpy_floats():
    assert jaxbp.Net(negative_slope=0).negative_slope == 0
    assert jaxbp.Net(activation="leaky_relu", negative_slope=np.float32(0.2)).sigma.name


def test_loss_of_an_empty_batch_is_an_error_not_nan():
    net, params, X, Y = problem("softmax")
    with pytest.raises(ValueError, match="X is empty"):
        jaxbp.loss(net, params, X[:0], Y[:0])
    with pytest.raises(ValueError, match="X is empty"):
        jax.jit(jaxbp.loss)(net, params, X[:0], Y[:0])


def test_forward_refuses_integer_params_and_complex_x():
    net, params, X, _ = problem("squared")
    with pytest.raises(TypeError, match=r"params\.V must be a floating-point array"):
        jaxbp.forward(net, params._replace(V=params.V.astype(jnp.int32)), X)
    with pytest.raises(TypeError, match="x must be a real numeric array"):
        jaxbp.forward(net, params, X + 1j)
