"""Each head's δ = ∂ℓ/∂o against ``jax.grad`` of its loss w.r.t. the logits o, in float64.

Errors are relative over the whole array, ‖δ − ∇ₒℓ‖₂ / max(‖δ‖₂, ‖∇ₒℓ‖₂)
(as ``jaxbp.oracle.relative_error``), and must be ≤ 1e-12.
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxbp import heads

TOL = 1e-12
N, K = 6, 4


def _data(head: str, k: int):
    """Logits (N, k) of moderate size and matching float64 targets Y (N, k), from NumPy."""
    rng = np.random.default_rng(zlib.crc32(f"{head}{k}".encode()))
    logits = 3 * rng.standard_normal((N, k))
    if head == "squared":
        Y = rng.standard_normal((N, k))
    elif head == "logistic":
        Y = rng.choice([-1.0, 1.0], (N, k))
    else:
        Y = np.eye(k)[rng.integers(0, k, N)]
    return jnp.asarray(logits, jnp.float64), jnp.asarray(Y, jnp.float64)


def rel_err(a, b) -> float:
    """‖a − b‖₂ / max(‖a‖₂, ‖b‖₂), as ``jaxbp.oracle.relative_error`` (in NumPy: no compiling)."""
    a, b = np.ravel(a), np.ravel(b)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a), np.linalg.norm(b)))


def _deltas_and_grads(head: heads.Head, logits, Y):
    """δ and ∇ₒℓ for one row, and for a batch (the rows of ∇_O Σᵢ ℓ(oᵢ, yᵢ))."""
    delta_row, delta = head.delta(logits[0], Y[0]), head.delta(logits, Y)
    grad_row = jax.grad(head.loss)(logits[0], Y[0])
    grad = jax.grad(lambda logits: jnp.sum(head.loss(logits, Y)))(logits)
    return delta_row, grad_row, delta, grad


def _soft_labels():
    logits, _ = _data("softmax", K)
    return logits, jnp.asarray(np.random.default_rng(3).dirichlet(np.ones(K), N), jnp.float64)


# case: (a function returning the head, K). The squared head with several output maps h
# (its δ = 2(h(o) − y) ⊙ h′(o) uses each h′, which test_activations.py checks one by one).
OUTPUTS = ("sigmoid", "tanh", "softplus", "gelu_exact")
CASES = {
    "squared-identity": (lambda: heads.get("squared"), K),
    **{f"squared-{name}": (lambda name=name: heads.get("squared", name), K) for name in OUTPUTS},
    "squared-leaky_relu(0.3)": (lambda: heads.get("squared", "leaky_relu", negative_slope=0.3), 2),
    "logistic": (lambda: heads.get("logistic"), 1),
    "softmax-2": (lambda: heads.get("softmax"), 2),
    "softmax-5": (lambda: heads.get("softmax"), 5),
    "softmax-soft-labels": (lambda: heads.get("softmax"), K),
}


@pytest.fixture(scope="module")
def results():
    """Every case, compiled as one call (compiling dominates the cost)."""
    with jax.enable_x64(True):
        data = {}
        for case, (head, k) in CASES.items():
            name = head().name
            data[case] = _soft_labels() if case == "softmax-soft-labels" else _data(name, k)

        @jax.jit
        def run(data):
            return {case: _deltas_and_grads(CASES[case][0](), *xy) for case, xy in data.items()}

        return run(data)


@pytest.mark.parametrize("case", CASES)
def test_delta_is_grad_of_loss(case, results):
    k = CASES[case][1]
    delta_row, grad_row, delta, grad = results[case]
    assert delta_row.shape == (k,)
    assert delta.shape == (N, k)
    assert delta.dtype == jnp.float64
    assert rel_err(delta_row, grad_row) <= TOL
    assert rel_err(delta, grad) <= TOL
    assert np.linalg.norm(np.asarray(grad)) > 0  # the comparison is not 0 == 0


def test_squared_default_output_is_identity():
    head = heads.get("squared")
    with jax.enable_x64(True):
        logits, Y = _data("squared", K)
        np.testing.assert_allclose(head.h(logits), logits)
        np.testing.assert_allclose(head.delta(logits, Y), 2 * (logits - Y), rtol=1e-15)


def test_squared_leaky_relu_output_uses_slope():
    head = heads.get("squared", "leaky_relu", negative_slope=0.3)
    o, y = jnp.array([-2.0]), jnp.array([0.0])
    # h(o) = 0.3·(−2) = −0.6, h′(o) = 0.3: δ = 2(−0.6 − 0)·0.3
    np.testing.assert_allclose(head.delta(o, y), [2 * -0.6 * 0.3], rtol=1e-6)


def test_loss_values():
    """ℓ itself, per head, against the table in DESIGN.md written out independently."""
    with jax.enable_x64(True):
        o = jnp.array([0.3, -1.2, 2.0], jnp.float64)
        y = jnp.array([1.0, 0.0, -0.5], jnp.float64)
        assert float(heads.get("squared").loss(o, y)) == pytest.approx(
            float(np.sum((np.asarray(y) - np.asarray(o)) ** 2)), rel=1e-14
        )
        sq_tanh = np.sum((np.asarray(y) - np.tanh(np.asarray(o))) ** 2)
        assert float(heads.get("squared", "tanh").loss(o, y)) == pytest.approx(sq_tanh, rel=1e-14)
        # logistic: −log σ(y·o)
        for yy in (1.0, -1.0):
            want = -np.log(1 / (1 + np.exp(-yy * 0.7)))
            got = heads.get("logistic").loss(jnp.array([0.7]), jnp.array([yy]))
            assert float(got) == pytest.approx(want, rel=1e-14)
        # softmax: −yᵀ log softmax(o)
        onehot = jnp.array([0.0, 0.0, 1.0])
        p = np.exp(np.asarray(o)) / np.exp(np.asarray(o)).sum()
        got = heads.get("softmax").loss(o, onehot)
        assert float(got) == pytest.approx(-np.log(p[2]), rel=1e-14)


def test_h():
    o = jnp.array([[0.5, -1.0, 2.0]])
    np.testing.assert_allclose(heads.get("softmax").h(o), jax.nn.softmax(o, axis=-1))
    np.testing.assert_allclose(heads.get("softmax").h(o).sum(-1), [1.0], rtol=1e-6)
    np.testing.assert_allclose(heads.get("logistic").h(o), jax.nn.sigmoid(o))
    np.testing.assert_allclose(heads.get("squared", "tanh").h(o), jnp.tanh(o))


def test_loss_reduces_last_axis_only():
    logits = jnp.ones((N, K))
    Y = jnp.eye(K)[np.arange(N) % K]
    for name in ("squared", "softmax"):
        head = heads.get(name)
        shapes = jax.eval_shape(
            lambda logits, Y, h=head: (h.loss(logits, Y), h.loss(logits[0], Y[0])), logits, Y
        )
        assert shapes[0].shape == (N,) and shapes[1].shape == (), name


def test_unknown_head():
    with pytest.raises(ValueError, match="unknown head 'hinge'") as err:
        heads.get("hinge")
    for name in heads.NAMES:
        assert name in str(err.value)


@pytest.mark.parametrize("name", ["logistic", "softmax"])
def test_output_only_for_squared(name):
    with pytest.raises(ValueError, match=f"output='tanh'.*{name}.*head='squared'"):
        heads.get(name, "tanh")
