"""The hand-written backward pass: per-sample gradients and norms, jit, vmap, chex variants.

Shapes are shared with the other core test modules (d = 3, M = 4, n = 5; K = 2 for
squared, 1 for logistic, 3 for softmax) so that compiled operations are reused.
"""

from __future__ import annotations

import functools
import inspect

import chex
import jax
import jax.numpy as jnp
import numpy as np
import problems
import pytest

import jaxbp
from jaxbp import activations, backprop, gradients, heads

D, M, N = problems.D, problems.M, problems.N
K = {"squared": 2, "logistic": 1, "softmax": 3}


def problem(activation="tanh", head="softmax", *, bias=False, dtype=np.float32, seed=0):
    """A net, θ (random offsets when bias) and a batch (X, Y) in rows form."""
    return problems.problem(activation, head, K=K[head], bias=bias, dtype=dtype, seed=seed)


def rel_err(g1, g2) -> float:
    """‖g₁ − g₂‖₂ / max(‖g₁‖₂, ‖g₂‖₂) over all leaves, as ``jaxbp.oracle.relative_error``.

    In NumPy, so that checking costs no compilation (``test_oracle.py`` tests that the two agree).
    """
    v1 = np.concatenate([np.ravel(g) for g in jax.tree.leaves(g1)])
    v2 = np.concatenate([np.ravel(g) for g in jax.tree.leaves(g2)])
    scale = max(np.linalg.norm(v1), np.linalg.norm(v2))
    return float(np.linalg.norm(v1 - v2) / scale) if scale > 0 else 0.0


def assert_grads_close(g1, g2, tol):
    chex.assert_trees_all_equal_structs(g1, g2)
    chex.assert_trees_all_equal_shapes_and_dtypes(g1, g2)
    err = rel_err(g1, g2)
    assert err <= tol, f"relative error {err:.3g} > {tol:g}"


# ---- per-sample gradients, norms and the methods, float64, one compiled call -------------

SAMPLES = (0, N - 1)
# every head, and with and without offsets (each configuration costs compile time)
CONFIGS = [("squared", False), ("logistic", True), ("softmax", False), ("softmax", True)]
CONFIG_IDS = [f"{head}-{'bias' if bias else 'no-bias'}" for head, bias in CONFIGS]


def _all_routes(net, params, X, Y):
    """Everything the float64 tests below compare, for one configuration."""
    return {
        "per_sample": jaxbp.per_sample_grads(net, params, X, Y),
        "norms": jaxbp.per_sample_grad_norms(net, params, X, Y),
        "manual": {i: jaxbp.manual_grad(net, params, X[i], Y[i]) for i in SAMPLES},
        "methods": {m: jaxbp.batch_grad(net, params, X, Y, method=m) for m in gradients.METHODS},
        "autodiff_grad": jaxbp.autodiff_grad(net, params, X, Y),
    }


@pytest.fixture(scope="module")
def f64():
    """Per configuration: (θ, routes), compiled together (compiling dominates the cost)."""
    with jax.enable_x64(True):
        problems = {c: problem("gelu", c[0], bias=c[1], dtype=np.float64) for c in CONFIGS}
        out = jax.jit(lambda ps: {c: _all_routes(*p) for c, p in ps.items()})(problems)
        return {c: (problems[c][1], out[c]) for c in CONFIGS}


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_per_sample_grad_norms_equal_norms_of_per_sample_grads(config, f64):
    _, r = f64[config]
    grads, norms = r["per_sample"], r["norms"]
    chex.assert_shape(norms, (N,))
    assert norms.dtype == jnp.float64
    # ‖∇ℓᵢ‖ over V, W (and b, c): the Euclidean norm of the flattened per-sample gradient.
    leaves = [np.asarray(g).reshape(N, -1) for g in jax.tree.leaves(grads)]
    want = np.sqrt(sum((g**2).sum(axis=1) for g in leaves))
    np.testing.assert_allclose(norms, want, rtol=1e-10)
    assert np.min(want) > 0


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_per_sample_grads_shapes(config, f64):
    params, r = f64[config]
    grads = r["per_sample"]
    assert isinstance(grads, jaxbp.Params)
    chex.assert_trees_all_equal_structs(grads, params)
    for g, p in zip(jax.tree.leaves(grads), jax.tree.leaves(params), strict=True):
        chex.assert_shape(g, (N, *p.shape))
    assert (grads.b is None) == (params.b is None)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_per_sample_grads_are_manual_grads_and_average_to_batch_grad(config, f64):
    _, r = f64[config]
    grads = r["per_sample"]
    grads = jax.tree.map(np.asarray, grads)
    for i in SAMPLES:
        row = jax.tree.map(lambda g, i=i: g[i], grads)
        assert_grads_close(row, r["manual"][i], 1e-14)
    mean = jax.tree.map(lambda g: g.mean(0), grads)
    assert_grads_close(mean, r["methods"]["matrix"], 1e-12)
    assert_grads_close(mean, r["autodiff_grad"], 1e-12)


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_methods_agree_with_autodiff(config, f64):
    _, r = f64[config]
    oracle = r["autodiff_grad"]
    assert_grads_close(r["methods"]["autodiff"], oracle, 1e-14)  # both are jax.grad
    for method in ("matrix", "vmap"):
        assert_grads_close(r["methods"][method], oracle, 1e-12)


manual_grad_jit = jax.jit(jaxbp.manual_grad)
autodiff_grad_jit = jax.jit(jaxbp.autodiff_grad)


def test_manual_grad_by_hand():
    """Scalars d = M = K = 1, identity σ, squared loss: ℓ = (y − wvx)².

    ∂ℓ/∂w = 2(wvx − y)·vx and ∂ℓ/∂v = 2(wvx − y)·w·x; with offsets (f = w(vx + b) + c),
    ∂ℓ/∂c = 2(f − y), ∂ℓ/∂b = 2(f − y)·w, ∂ℓ/∂w = 2(f − y)(vx + b).
    """
    net = jaxbp.Net(activation="identity", head="squared")
    v, w, x, y, b, c = 2.0, -3.0, 0.5, 1.0, 0.25, -1.0
    params = jaxbp.Params(jnp.array([[v]]), jnp.array([[w]]))
    g = manual_grad_jit(net, params, jnp.array([x]), jnp.array([y]))
    r = w * v * x - y  # f − y = −4
    np.testing.assert_allclose(g.W, [[2 * r * v * x]])
    np.testing.assert_allclose(g.V, [[2 * r * w * x]])
    assert g.b is None and g.c is None
    params = jaxbp.Params(params.V, params.W, jnp.array([b]), jnp.array([c]))
    g = manual_grad_jit(net, params, jnp.array([x]), jnp.array([y]))
    r = w * (v * x + b) + c - y
    np.testing.assert_allclose(g.W, [[2 * r * (v * x + b)]], rtol=1e-6)
    np.testing.assert_allclose(g.V, [[2 * r * w * x]], rtol=1e-6)
    np.testing.assert_allclose(g.b, [2 * r * w], rtol=1e-6)
    np.testing.assert_allclose(g.c, [2 * r], rtol=1e-6)


def test_manual_grad_accepts_class_ids_and_compact_labels():
    net, params, X, Y = problem("tanh", "softmax", bias=True)
    ids = np.argmax(np.asarray(Y), axis=1)
    chex.assert_trees_all_close(
        jaxbp.manual_grad(net, params, X[0], ids[0]), jaxbp.manual_grad(net, params, X[0], Y[0])
    )
    chex.assert_trees_all_close(
        jaxbp.batch_grad(net, params, X, ids), jaxbp.batch_grad(net, params, X, Y)
    )
    net, params, X, Y = problem("tanh", "logistic", bias=True)
    compact, rows = jax.jit(
        lambda X, Y: (
            jaxbp.batch_grad(net, params, X, Y[:, 0]),
            jaxbp.batch_grad(net, params, X, Y),
        )
    )(X, Y)
    chex.assert_trees_all_close(compact, rows)


def test_unknown_method():
    net, params, X, Y = problem("tanh", "softmax", bias=True)
    with pytest.raises(
        ValueError, match=r"unknown gradient method 'adjoint'.*matrix, vmap, autodiff"
    ):
        jaxbp.batch_grad(net, params, X, Y, method="adjoint")
    with pytest.raises(ValueError, match="unknown gradient method 'adjoint'"):
        jax.jit(functools.partial(jaxbp.batch_grad, method="adjoint"))(net, params, X, Y)


# ---- jit and vmap (float32, one configuration, shared by the tests below) -----------------


def test_jit_manual_grad_without_static_argnums():
    net, params, X, Y = problem("tanh", "softmax", bias=True)
    traced = []

    def manual_grad(net, params, x, y):  # counts the traces (compilations)
        traced.append(net)
        return jaxbp.manual_grad(net, params, x, y)

    jitted = jax.jit(manual_grad)
    for i in range(2):
        chex.assert_trees_all_close(
            jitted(net, params, X[i], Y[i]),
            jaxbp.manual_grad(net, params, X[i], Y[i]),
            rtol=1e-6,
            atol=1e-7,
        )
    # An equal Net is a cache hit; a different configuration compiles anew, correctly.
    jitted(jaxbp.Net(activation="tanh", head="softmax"), params, X[0], Y[0])
    assert traced == [net]
    other = jaxbp.Net(activation="relu", head="softmax")
    g = jitted(other, params, X[0], Y[0])
    assert traced == [net, other]
    chex.assert_trees_all_close(
        g, jaxbp.manual_grad(other, params, X[0], Y[0]), rtol=1e-6, atol=1e-7
    )
    assert float(jnp.abs(g.V - jitted(net, params, X[0], Y[0]).V).max()) > 0


@pytest.mark.parametrize("method", gradients.METHODS)
def test_jit_batch_grad_with_partial(method):
    net, params, X, Y = problem("tanh", "softmax", bias=True)
    jitted = jax.jit(functools.partial(jaxbp.batch_grad, method=method))
    chex.assert_trees_all_close(
        jitted(net, params, X, Y), autodiff_grad_jit(net, params, X, Y), rtol=1e-5, atol=1e-6
    )


def test_vmap_over_manual_grad():
    net, params, X, Y = problem("tanh", "softmax", bias=True)
    grads = jax.jit(jax.vmap(jaxbp.manual_grad, in_axes=(None, None, 0, 0)))(net, params, X, Y)
    chex.assert_shape(grads.V, (N, M, D))
    for i in (0, N - 1):
        chex.assert_trees_all_close(
            jax.tree.map(lambda g, i=i: g[i], grads),
            manual_grad_jit(net, params, X[i], Y[i]),
            rtol=1e-6,
            atol=1e-7,
        )


def test_vmap_over_an_ensemble_of_params():
    """Net is static, so vmapping over stacked θ (an ensemble) needs no special handling."""
    net, _, X, Y = problem("tanh", "softmax", bias=True)
    members = [problem("tanh", "softmax", bias=True, seed=s)[1] for s in range(3)]
    ensemble = jax.tree.map(lambda *leaves: jnp.stack(leaves), *members)
    grads = jax.jit(jax.vmap(jaxbp.batch_grad, in_axes=(None, 0, None, None)))(net, ensemble, X, Y)
    chex.assert_shape(ensemble.V, (3, M, D))
    chex.assert_shape(grads.V, (3, M, D))
    assert float(jnp.abs(ensemble.V[0] - ensemble.V[1]).max()) > 0
    for j in (0, 2):
        member = jax.tree.map(lambda a, j=j: a[j], ensemble)
        chex.assert_trees_all_close(
            jax.tree.map(lambda g, j=j: g[j], grads),
            autodiff_grad_jit(net, member, X, Y),
            rtol=1e-5,
            atol=1e-6,
        )


def test_per_sample_norms_under_jit():
    net, params, X, Y = problem("tanh", "softmax", bias=True)
    jitted = jax.jit(jaxbp.per_sample_grad_norms)(net, params, X, Y)
    per_sample = jax.jit(jaxbp.per_sample_grads)(net, params, X, Y)
    want = np.sqrt(sum((np.asarray(g).reshape(N, -1) ** 2).sum(1) for g in per_sample))
    np.testing.assert_allclose(jitted, want, rtol=1e-5)


class VariantsTest(chex.TestCase):
    """forward, loss, manual_grad and batch_grad, with and without jax.jit."""

    def setUp(self):
        super().setUp()
        self.net, self.params, self.X, self.Y = problem("tanh", "softmax", bias=True)
        self.oracle = autodiff_grad_jit(self.net, self.params, self.X, self.Y)

    @chex.variants(with_jit=True, without_jit=True)
    def test_forward(self):
        F = self.variant(jaxbp.forward)(self.net, self.params, self.X)
        chex.assert_shape(F, (N, K["softmax"]))
        p = jax.tree.map(np.asarray, self.params)
        logits = np.tanh(np.asarray(self.X) @ p.V.T + p.b) @ p.W.T + p.c
        want = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        chex.assert_trees_all_close(F, want, rtol=1e-5, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_loss(self):
        L = self.variant(jaxbp.loss)(self.net, self.params, self.X, self.Y)
        chex.assert_shape(L, ())
        F = np.asarray(jaxbp.forward(self.net, self.params, self.X))
        want = -np.mean(np.sum(np.asarray(self.Y) * np.log(F), axis=-1))
        chex.assert_trees_all_close(L, want, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_manual_grad(self):
        grads = [
            self.variant(jaxbp.manual_grad)(self.net, self.params, self.X[i], self.Y[i])
            for i in range(N)
        ]
        mean = jax.tree.map(lambda *g: sum(g) / N, *grads)
        chex.assert_trees_all_close(mean, self.oracle, rtol=1e-5, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_batch_grad(self):
        # (every method under jit: test_jit_batch_grad_with_partial; eagerly: gradcheck)
        for method in ("matrix", "vmap"):
            fn = self.variant(functools.partial(jaxbp.batch_grad, method=method))
            g = fn(self.net, self.params, self.X, self.Y)
            chex.assert_trees_all_close(g, self.oracle, rtol=1e-5, atol=1e-6)


# ---- no autodiff in the hand-written backward pass ------------------------------------------

_AUTODIFF = ("jax.grad", "value_and_grad", "jax.vjp", "jax.jvp", "jacfwd", "jacrev", "linearize")


@pytest.mark.parametrize(
    "fn",
    [
        backprop.manual_grad,
        backprop.backward_rows,
        backprop.matrix_grad,
        backprop.vmap_grad,
        backprop.vmapped_manual_grad,
        backprop.per_sample_grad_norms,
    ],
    ids=lambda f: f.__name__,
)
def test_backward_pass_source_does_not_call_autodiff(fn):
    source = inspect.getsource(fn)
    body = source.split('"""')[-1] if '"""' in source else source  # skip the docstring
    for name in _AUTODIFF:
        assert name not in body, f"{fn.__name__} calls {name}"
    assert "grad(" not in body.replace("sigma.grad(", "").replace("manual_grad(", "")


def test_activation_and_head_derivatives_do_not_call_autodiff():
    for name in activations.NAMES:
        source = inspect.getsource(activations.get(name).grad)
        assert not any(a in source for a in _AUTODIFF), name
    for fn in (heads._logistic_delta, heads._softmax_delta, heads.squared):
        assert not any(a in inspect.getsource(fn) for a in _AUTODIFF), fn.__name__


def test_backward_pass_runs_with_autodiff_disabled(monkeypatch):
    """With jax.grad, jax.vjp and friends replaced by traps, the manual routes still run."""

    def trap(*args, **kwargs):
        raise AssertionError("autodiff was called by the hand-written backward pass")

    net, params, X, Y = problem("tanh", "softmax", bias=True)
    oracle = autodiff_grad_jit(net, params, X, Y)
    for name in ("grad", "value_and_grad", "vjp", "jvp", "jacfwd", "jacrev", "linearize"):
        monkeypatch.setattr(jax, name, trap)
    with pytest.raises(AssertionError, match="autodiff was called"):
        jaxbp.autodiff_grad(net, params, X, Y)  # the trap works
    g = jaxbp.manual_grad(net, params, X[0], Y[0])
    chex.assert_trees_all_equal_shapes(g, params)
    for method in ("matrix", "vmap"):
        chex.assert_trees_all_close(
            jaxbp.batch_grad(net, params, X, Y, method=method), oracle, rtol=1e-5, atol=1e-6
        )
    jaxbp.per_sample_grads(net, params, X, Y)
    jaxbp.per_sample_grad_norms(net, params, X, Y)
