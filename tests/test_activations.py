"""σ′ of every activation against ``jax.grad(σ)``, elementwise, in float64.

The grid holds 0 (the kinks of relu, leaky_relu and elu), ±1e-3, moderate values
and large |a| (±30, ±1e4). Hand-written σ′ and ``jax.grad`` may use different but
equivalent formulas (e.g. 1 − tanh² versus (1 + tanh)(1 − tanh), exp versus
expm1 + 1), which agree to a few ulps *of 1*, the scale of σ′; in the far tails,
where σ′ itself is below ~1e-3, neither keeps full relative precision. The
comparison is therefore |σ′ − jax.grad(σ)| ≤ 1e-12·|jax.grad(σ)| + 10 ulps of 1 (2.2e-15).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbp import activations

RTOL, ATOL = 1e-12, 10 * np.finfo(np.float64).eps  # ten ulps of 1, the scale of σ′

_MAGNITUDES = [1e-8, 1e-3, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 1e4]
GRID = np.array([0.0, *_MAGNITUDES, *(-m for m in _MAGNITUDES)])


def _both(act: activations.Activation, a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(hand-written σ′(a), jax.vmap(jax.grad(σ))(a))."""
    return act.grad(a), jax.vmap(jax.grad(act.fn))(a)


def _compare(acts: dict[str, activations.Activation], dtype) -> dict:
    """σ′ and jax.grad(σ) on GRID for every activation, in one compiled call."""
    with jax.enable_x64(dtype == jnp.float64):
        a = jnp.asarray(GRID, dtype)
        out = jax.jit(lambda a: {k: _both(act, a) for k, act in acts.items()})(a)
        for name, (manual, _) in out.items():
            assert manual.dtype == dtype, f"{name}: σ′ returned {manual.dtype} for {dtype}"
            assert manual.shape == a.shape
        return {k: (np.asarray(m), np.asarray(o)) for k, (m, o) in out.items()}


SLOPES = (0.0, 0.2, 0.5, 3.0)


@pytest.fixture(scope="module")
def float64_grads():
    acts = {name: activations.get(name) for name in activations.NAMES}
    for slope in SLOPES:
        acts[f"leaky_relu({slope})"] = activations.get("leaky_relu", negative_slope=slope)
    return _compare(acts, jnp.float64)


@pytest.mark.parametrize("name", activations.NAMES)
def test_grad_matches_autodiff(name, float64_grads):
    manual, oracle = float64_grads[name]
    assert np.isfinite(manual).all(), f"{name}: σ′ not finite at {GRID[~np.isfinite(manual)]}"
    np.testing.assert_allclose(manual, oracle, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("slope", SLOPES)
def test_leaky_relu_custom_slope(slope, float64_grads):
    manual, oracle = float64_grads[f"leaky_relu({slope})"]
    np.testing.assert_allclose(manual, oracle, rtol=RTOL, atol=ATOL)
    assert manual[GRID < 0] == pytest.approx(slope)
    assert (manual[GRID >= 0] == 1).all()


def test_fn_matches_the_standard_functions():
    """The registry's σ are the standard functions (so σ′ is checked against the right σ)."""
    a = np.linspace(-4.0, 4.0, 17)
    erf = np.vectorize(math.erf)
    expected = {
        "sigmoid": 1 / (1 + np.exp(-a)),
        "relu": np.maximum(a, 0),
        "silu": a / (1 + np.exp(-a)),
        "tanh": np.tanh(a),
        "identity": a,
        "softplus": np.log1p(np.exp(a)),
        "leaky_relu": np.where(a >= 0, a, 0.01 * a),
        "elu": np.where(a > 0, a, np.expm1(a)),
        "gelu": 0.5 * a * (1 + np.tanh(np.sqrt(2 / np.pi) * (a + 0.044715 * a**3))),
        "gelu_exact": a * 0.5 * (1 + erf(a / np.sqrt(2.0))),
    }
    assert set(expected) == set(activations.NAMES)
    got = jax.jit(lambda a: {name: activations.get(name).fn(a) for name in expected})(a)
    for name, want in expected.items():
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def float32_grads():
    return _compare({name: activations.get(name) for name in activations.NAMES}, jnp.float32)


@pytest.mark.parametrize("name", activations.NAMES)
def test_grad_keeps_float32(name, float32_grads):
    manual, oracle = float32_grads[name]
    np.testing.assert_allclose(manual, oracle, rtol=1e-6, atol=1e-6, err_msg=name)


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown activation 'swish'") as err:
        activations.get("swish")
    for name in activations.NAMES:
        assert name in str(err.value)


def test_names_are_the_documented_ones():
    documented = {"sigmoid", "relu", "silu", "tanh", "identity", "softplus", "leaky_relu"}
    documented |= {"elu", "gelu", "gelu_exact"}
    assert set(activations.NAMES) == documented
    for name in activations.NAMES:
        assert activations.get(name).name == name
