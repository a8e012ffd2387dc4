"""The oracle: gradcheck passes for correct code, and fails when the hand-written BP is wrong.

Errors are relative over the whole flattened gradient,
‖g₁ − g₂‖₂ / max(‖g₁‖₂, ‖g₂‖₂) (``jaxbp.oracle.relative_error``).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import problems
import pytest

import jaxbp
from jaxbp import activations, heads
from jaxbp.oracle import relative_error

D, M, N = problems.D, problems.M, problems.N
K = {"squared": 3, "logistic": 1, "softmax": 3}  # as test_properties' gradcheck


def problem(activation, head, *, bias=True, seed=0):
    """float32 θ and data, as a user would pass them (gradcheck casts to float64 itself)."""
    return problems.problem(activation, head, K=K[head], bias=bias, seed=seed, rows=False)


# gradcheck runs eagerly, and the first call for a configuration compiles every operation:
# the tests here share one (tanh, softmax, offsets). More configurations, drawn at random:
# test_properties.py::test_gradcheck_finite_differences; all 60: pytest --slow (below).


def test_gradcheck_passes_for_correct_code():
    result = jaxbp.gradcheck(*problem("tanh", "softmax"))
    assert isinstance(result, jaxbp.GradCheck)
    assert all(isinstance(v, float) for v in result)
    assert result.manual_vs_autodiff < 1e-12
    assert result.manual_vs_fd < 1e-6
    assert result.autodiff_vs_fd < 1e-6
    assert not jax.config.jax_enable_x64  # 64-bit mode was for the check only


def test_gradcheck_fails_for_a_wrong_activation_derivative(monkeypatch):
    """σ′ = 1 − tanh (the square forgotten): manual BP is wrong, jax.grad and FD are not."""
    problem_ = problem("tanh", "softmax")
    assert jaxbp.gradcheck(*problem_).manual_vs_autodiff < 1e-12
    wrong = activations.Activation("tanh", jnp.tanh, lambda a: 1 - jnp.tanh(a))
    monkeypatch.setitem(activations._REGISTRY, "tanh", wrong)
    assert problem_[0].sigma is wrong
    result = jaxbp.gradcheck(*problem_)
    assert result.manual_vs_autodiff > 1e-2
    assert result.manual_vs_fd > 1e-2
    assert result.autodiff_vs_fd < 1e-6  # the oracles still agree with each other


def test_gradcheck_fails_for_a_wrong_delta(monkeypatch):
    """δ = softmax(o) − y with the wrong sign: detected by both oracles."""
    problem_ = problem("tanh", "softmax")
    wrong = dataclasses.replace(heads.SOFTMAX, delta=lambda o, y: y - jax.nn.softmax(o, axis=-1))
    monkeypatch.setattr(heads, "SOFTMAX", wrong)
    result = jaxbp.gradcheck(*problem_)
    assert result.manual_vs_autodiff > 0.5
    assert result.manual_vs_fd > 0.5
    assert result.autodiff_vs_fd < 1e-6


def test_gradcheck_fails_for_a_wrong_leaky_slope(monkeypatch):
    """A σ′ that is wrong only for a < 0 (slope 0.1 instead of α = 0.3) is caught too."""
    _, params, X, Y = problem("leaky_relu", "softmax")
    net = jaxbp.Net(activation="leaky_relu", head="softmax", negative_slope=0.3)
    original = activations.leaky_relu

    def wrong(slope):
        act = original(slope)
        return act._replace(grad=lambda a: jnp.where(a >= 0, 1.0, 0.1).astype(a.dtype))

    correct = jaxbp.gradcheck(net, params, X, Y)
    assert correct.manual_vs_autodiff < 1e-12
    assert correct.manual_vs_fd < 1e-6
    monkeypatch.setattr(activations, "leaky_relu", wrong)
    result = jaxbp.gradcheck(net, params, X, Y)
    assert result.manual_vs_autodiff > 1e-3
    assert result.autodiff_vs_fd < 1e-6


def test_autodiff_grad_is_jax_grad_of_loss():
    net, params, X, Y = problem("tanh", "softmax")
    got, want = jax.jit(
        lambda p: (jaxbp.autodiff_grad(net, p, X, Y), jax.grad(jaxbp.loss, argnums=1)(net, p, X, Y))
    )(params)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(g, w)


# ---- relative_error --------------------------------------------------------------------------


def test_relative_error_definition():
    a = jaxbp.Params(jnp.array([[3.0]]), jnp.array([[4.0]]))
    zero = jax.tree.map(jnp.zeros_like, a)
    assert float(relative_error(a, zero)) == pytest.approx(1.0)
    assert float(relative_error(zero, zero)) == 0.0
    b = jaxbp.Params(jnp.array([[3.0]]), jnp.array([[0.0]]))
    # ‖a − b‖ = 4, max(‖a‖, ‖b‖) = 5
    assert float(relative_error(a, b)) == pytest.approx(0.8)
    assert float(relative_error(b, a)) == pytest.approx(0.8)
    # whole-vector, not per-leaf: a tiny leaf with a large relative error barely counts
    c = jaxbp.Params(jnp.array([[1000.0]]), jnp.array([[1e-3]]))
    d = jaxbp.Params(jnp.array([[1000.0]]), jnp.array([[2e-3]]))
    assert float(relative_error(c, d)) == pytest.approx(1e-6, rel=1e-3)


def test_relative_error_matches_numpy_over_offsets():
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (2, 4), (4,), (2,)]
    g1 = jaxbp.Params(*(jnp.asarray(rng.standard_normal(s)) for s in shapes))
    g2 = jaxbp.Params(*(jnp.asarray(rng.standard_normal(s)) for s in shapes))
    v1 = np.concatenate([np.ravel(x) for x in g1])
    v2 = np.concatenate([np.ravel(x) for x in g2])
    want = np.linalg.norm(v1 - v2) / max(np.linalg.norm(v1), np.linalg.norm(v2))
    assert float(relative_error(g1, g2)) == pytest.approx(want, rel=1e-5)
    # None offsets are empty subtrees: they add nothing to either norm.
    no_bias, no_bias2 = jaxbp.Params(g1.V, g1.W), jaxbp.Params(g2.V, g2.W)
    v1, v2 = (
        np.concatenate([np.ravel(g1.V), np.ravel(g1.W)]),
        np.concatenate([np.ravel(g2.V), np.ravel(g2.W)]),
    )
    want = np.linalg.norm(v1 - v2) / max(np.linalg.norm(v1), np.linalg.norm(v2))
    assert float(relative_error(no_bias, no_bias2)) == pytest.approx(want, rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
@pytest.mark.parametrize("head", ["squared", "logistic", "softmax"])
@pytest.mark.parametrize("activation", activations.NAMES)
def test_gradcheck_every_activation_and_head(activation, head, bias):
    """The full product (60 configurations), against finite differences: ``pytest --slow``."""
    result = jaxbp.gradcheck(*problem(activation, head, bias=bias, seed=1))
    assert result.manual_vs_autodiff < 1e-12
    assert result.manual_vs_fd < 1e-6
    assert result.autodiff_vs_fd < 1e-6
