"""Numerical stability of the classification heads for huge logits (cf. optax's tests).

The stable forms (DESIGN.md) must give finite, exact losses and δ for logits of
±1e4 in float64 and float32 and ±80 in float32, where the naive formulas
``log(sigmoid(t))`` and ``log(softmax(o))`` give -inf or NaN. Gradients through the
whole network (``manual_grad``, ``batch_grad``) must stay finite and equal ``jax.grad``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxbp
from jaxbp import heads

LOGISTIC = heads.get("logistic")
SOFTMAX = heads.get("softmax")

# (dtype, logit magnitude): the cases the design asks for.
CASES = [(jnp.float64, 1e4), (jnp.float32, 80.0), (jnp.float32, 1e4)]
CASE_IDS = ["float64-1e4", "float32-80", "float32-1e4"]


def _softplus_exact(t: float) -> float:
    """log(1 + eᵗ) in Python floats (float64), without overflow."""
    return max(t, 0.0) + math.log1p(math.exp(-abs(t)))


def _sigmoid_exact(t: float) -> float:
    return 1 / (1 + math.exp(-t)) if t >= 0 else math.exp(t) / (1 + math.exp(t))


@pytest.mark.parametrize(("dtype", "big"), CASES, ids=CASE_IDS)
def test_logistic_loss_and_delta(dtype, big):
    with jax.enable_x64(dtype == jnp.float64):
        for o in (big, -big):
            for y in (1.0, -1.0):
                loss = LOGISTIC.loss(jnp.array([o], dtype), jnp.array([y], dtype))
                delta = LOGISTIC.delta(jnp.array([o], dtype), jnp.array([y], dtype))
                assert loss.dtype == dtype and delta.dtype == dtype
                assert np.isfinite(loss) and np.isfinite(delta).all()
                # ℓ = softplus(−y·o), δ = −y·σ(−y·o)
                want_loss = _softplus_exact(-y * o)
                want_delta = -y * _sigmoid_exact(-y * o)
                np.testing.assert_allclose(float(loss), want_loss, rtol=1e-6, atol=1e-300)
                np.testing.assert_allclose(float(delta[0]), want_delta, rtol=1e-6, atol=1e-300)


def test_logistic_exact_values_at_1e4():
    with jax.enable_x64(True):
        loss = LOGISTIC.loss
        # softplus(1e4) = 1e4 and softplus(−1e4) ≈ 0
        assert float(loss(jnp.array([1e4]), jnp.array([-1.0]))) == 1e4
        assert float(loss(jnp.array([1e4]), jnp.array([1.0]))) == 0.0
        assert float(LOGISTIC.delta(jnp.array([1e4]), jnp.array([-1.0]))[0]) == 1.0
        assert float(LOGISTIC.delta(jnp.array([1e4]), jnp.array([1.0]))[0]) == 0.0


@pytest.mark.parametrize(("dtype", "big"), CASES, ids=CASE_IDS)
def test_softmax_loss_and_delta(dtype, big):
    with jax.enable_x64(dtype == jnp.float64):
        o = jnp.array([big, -big], dtype)
        wrong, right = jnp.array([0.0, 1.0], dtype), jnp.array([1.0, 0.0], dtype)
        # −yᵀ log softmax(o): 2·big for the wrong class, log(1 + e^(−2 big)) for the right one.
        assert float(SOFTMAX.loss(o, wrong)) == pytest.approx(2 * big, rel=1e-6)
        assert float(SOFTMAX.loss(o, right)) == pytest.approx(
            math.log1p(math.exp(-2 * big)), abs=1e-30
        )
        np.testing.assert_allclose(SOFTMAX.delta(o, wrong), [1.0, -1.0], rtol=1e-6)
        np.testing.assert_allclose(SOFTMAX.delta(o, right), [0.0, 0.0], atol=1e-30)
        for y in (wrong, right):
            assert SOFTMAX.loss(o, y).dtype == dtype
            assert np.isfinite(SOFTMAX.delta(o, y)).all()


def test_softmax_many_classes_huge_logits():
    with jax.enable_x64(True):
        o = jnp.array([1e4, -1e4, 5e3, 0.0, -3e3], jnp.float64)
        for c in range(o.size):
            y = jax.nn.one_hot(c, o.size, dtype=jnp.float64)
            assert float(SOFTMAX.loss(o, y)) == pytest.approx(1e4 - float(o[c]), abs=1e-9)
            assert np.isfinite(SOFTMAX.delta(o, y)).all()


def test_softmax_small_loss_stays_accurate():
    """A confident, correct prediction: ℓ = log(1 + e⁻²⁰) ≈ 2.06e-9 next to logits of 1e4.

    Computing logsumexp(o) − yᵀo would cancel 1e4 against 1e4 and keep ~3 digits.
    """
    with jax.enable_x64(True):
        o = jnp.array([1e4, 1e4 - 20], jnp.float64)
        got = float(SOFTMAX.loss(o, jnp.array([1.0, 0.0], jnp.float64)))
        assert got == pytest.approx(math.log1p(math.exp(-20)), rel=1e-6)


def test_naive_formulas_fail_where_stable_forms_do_not():
    """The reason for the stable forms: the textbook expressions overflow."""
    with jax.enable_x64(True):
        t = jnp.array(-1e4, jnp.float64)
        assert float(jnp.log(jax.nn.sigmoid(t))) == -np.inf
        stable = LOGISTIC.loss(jnp.array([1e4]), jnp.array([-1.0]))  # −log σ(−1e4)
        assert np.isfinite(stable) and float(stable) == 1e4

        o = jnp.array([1e4, -1e4], jnp.float64)
        wrong, right = jnp.array([0.0, 1.0]), jnp.array([1.0, 0.0])
        naive_wrong = -jnp.sum(wrong * jnp.log(jax.nn.softmax(o)))
        naive_right = -jnp.sum(right * jnp.log(jax.nn.softmax(o)))
        assert float(naive_wrong) == np.inf
        assert np.isnan(float(naive_right))  # 0 · (−inf)
        assert float(SOFTMAX.loss(o, wrong)) == 2e4
        assert float(SOFTMAX.loss(o, right)) == 0.0


def test_softmax_loss_matches_optax():
    """optax.softmax_cross_entropy is an independent implementation of −yᵀ log softmax(o)."""
    with jax.enable_x64(True):

        @jax.jit
        def both(logits, Y):
            return SOFTMAX.loss(logits, Y), optax.softmax_cross_entropy(logits, Y)

        rng = np.random.default_rng(0)
        for k in (2, 3, 10):
            logits = 4 * rng.standard_normal((16, k))
            onehot = np.eye(k)[rng.integers(0, k, 16)]
            probs = rng.dirichlet(np.ones(k), 16)  # soft labels
            for Y in (onehot, probs):
                ours, theirs = both(logits, Y)
                assert ours.dtype == jnp.float64
                np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)


def test_logistic_loss_matches_optax():
    with jax.enable_x64(True):
        rng = np.random.default_rng(1)
        o = 4 * rng.standard_normal((32, 1))
        y = rng.choice([-1.0, 1.0], (32, 1))
        ours, theirs = jax.jit(
            lambda o, y: (LOGISTIC.loss(o, y), optax.sigmoid_binary_cross_entropy(o, (y + 1) / 2))
        )(o, y)
        np.testing.assert_allclose(ours, theirs[:, 0], rtol=1e-12)


# ---- gradients through the network at huge logits ---------------------------------


def _huge_logit_problem(head: str, big: float, dtype):
    """d = 2, M = 2, identity σ; W chosen so that o = ±big for x = (1, 1)."""
    net = jaxbp.Net(activation="identity", head=head)
    V = jnp.array([[0.5, 0.5], [0.25, -0.5]], dtype)  # a = (1, −0.25)
    x = jnp.ones((2,), dtype)
    if head == "logistic":
        W = jnp.array([[big, 0.0]], dtype)  # o = big
        y = jnp.array([-1.0], dtype)  # confidently wrong: δ = 1
    else:
        W = jnp.array([[big, 0.0], [-big, 0.0], [0.0, 1.0]], dtype)  # o = (big, −big, −0.25)
        y = jnp.array([0.0, 1.0, 0.0], dtype)  # confidently wrong: δ = (1, −1, 0)
    return net, jaxbp.Params(V, W), x, y


def _routes(net, params, x, y):
    """The forward cache and every route to the gradient, for one sample (as a batch of 2)."""
    X, Y = jnp.stack([x, x]), jnp.stack([y, y])
    return jaxbp.forward_cache(net, params, x, y), {
        "manual": jaxbp.manual_grad(net, params, x, y),
        "matrix": jaxbp.batch_grad(net, params, X, Y),
        "vmap": jaxbp.batch_grad(net, params, X, Y, method="vmap"),
        "autodiff": jaxbp.autodiff_grad(net, params, X, Y),
        "autodiff_single": jax.grad(jaxbp.loss, argnums=1)(net, params, x, y),
    }


@pytest.mark.parametrize(
    ("dtype", "bigs"),
    [(jnp.float64, (1e4,)), (jnp.float32, (80.0, 1e4))],
    ids=["float64", "float32"],
)
def test_gradients_finite_and_equal_autodiff(dtype, bigs):
    """Both heads, all magnitudes of a dtype in one compiled call."""
    with jax.enable_x64(dtype == jnp.float64):
        problems = {
            (head, big): _huge_logit_problem(head, big, dtype)
            for head in ("logistic", "softmax")
            for big in bigs
        }
        results = jax.jit(lambda ps: {k: _routes(*p) for k, p in ps.items()})(problems)
    for (head, big), (cache, grads) in results.items():
        assert float(np.max(np.abs(np.asarray(cache.o)))) == pytest.approx(big)
        assert float(cache.loss) == pytest.approx(2 * big if head == "softmax" else big, rel=1e-6)
        for name, g in grads.items():
            for leaf in jax.tree.leaves(g):
                assert leaf.dtype == dtype
                assert np.isfinite(leaf).all(), f"{head} {big}: {name} is not finite"
        # By hand: δ = (1, −1, 0) or 1, z = a = (1, −0.25): ∂ℓ/∂W = δ zᵀ.
        delta = np.array([1.0] if head == "logistic" else [1.0, -1.0, 0.0])
        # (e^(−big) terms, e.g. softmax(o)₃ = e^(−80.25) in float32, are below atol.)
        want_W = np.outer(delta, [1.0, -0.25])
        np.testing.assert_allclose(grads["manual"].W, want_W, rtol=1e-6, atol=1e-30)
        for name, g in grads.items():
            for field in ("V", "W"):  # every route, every leaf, against autodiff
                np.testing.assert_allclose(
                    getattr(g, field),
                    getattr(grads["autodiff"], field),
                    rtol=1e-6,
                    atol=1e-30,
                    err_msg=f"{head} {big}: {name}.{field}",
                )


def test_per_sample_grad_norms_finite_at_huge_logits():
    with jax.enable_x64(True):
        net, params, x, y = _huge_logit_problem("softmax", 1e4, jnp.float64)
        X, Y = jnp.stack([x, -x]), jnp.stack([y, y])
        norms, g = jax.jit(
            lambda p: (
                jaxbp.per_sample_grad_norms(net, p, X, Y),
                jaxbp.per_sample_grads(net, p, X, Y),
            )
        )(params)
        assert np.isfinite(norms).all()
        want = np.sqrt(np.asarray(jnp.sum(g.V**2, (1, 2)) + jnp.sum(g.W**2, (1, 2))))
        np.testing.assert_allclose(norms, want, rtol=1e-12)
