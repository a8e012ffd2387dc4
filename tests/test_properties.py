"""Property tests: every route to ∇L(θ) agrees, for random shapes, activations and heads.

Routes to the gradient of L(θ) = (1/n) Σᵢ ℓᵢ(θ):

- ``loop``: the mean of ``jaxbp.manual_grad`` over the samples, one at a time
  (a sequential ``jax.lax.map`` loop; float64 only);
- ``matrix``, ``vmap``, ``autodiff``: ``jaxbp.batch_grad`` with each method; the
  last is ``jax.grad`` of the loss, the oracle the others are compared with
  (``tests/test_backprop.py`` checks it equals ``jaxbp.autodiff_grad``).

The error between two gradients g₁, g₂ (``Params``) is relative over the whole
flattened gradient (all of V, W, b, c raveled into one vector),

    ‖g₁ − g₂‖₂ / max(‖g₁‖₂, ‖g₂‖₂)            (``jaxbp.oracle.relative_error``),

and must be ≤ 1e-10 in float64 and ≤ 1e-5 in float32. Against central finite
differences (``jaxbp.gradcheck``, float64) the bound is 1e-6.

Hypothesis draws the activation, head, output map, bias, init scheme, shapes
(d, M, K, n in 1..16, K = 1 for logistic and K ≥ 2 for softmax), the label form
and a seed for θ and the data; every example compiles once, so the examples are few
(the ``slow`` profile, ``pytest --slow``, runs many more).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, note, settings
from hypothesis import strategies as st

import jaxbp
from jaxbp import activations, heads, params
from jaxbp.oracle import relative_error

MAX_DIM = 16
TOL = {np.float64: 1e-10, np.float32: 1e-5}
FD_TOL = 1e-6


def _examples(share: float) -> int:
    """A share of the loaded profile's max_examples (25 by default, 300 with --slow)."""
    return max(3, round(settings().max_examples * share))


@dataclasses.dataclass(frozen=True)
class Problem:
    activation: str
    head: str
    output: str | None
    negative_slope: float
    bias: bool
    scheme: str
    d: int
    M: int
    K: int
    n: int
    labels: str  # "rows" (n, K), "compact" (n,): class ids for softmax, ±1/reals when K = 1
    seed: int

    @property
    def net(self) -> jaxbp.Net:
        return jaxbp.Net(
            activation=self.activation,
            head=self.head,
            output=self.output,
            negative_slope=self.negative_slope,
        )


@st.composite
def problems(draw, max_dim: int = MAX_DIM) -> Problem:
    head = draw(st.sampled_from(heads.NAMES))
    dim = st.integers(1, max_dim)
    K = {"logistic": st.just(1), "softmax": st.integers(2, max_dim), "squared": dim}[head]
    K = draw(K)
    compact_ok = head == "softmax" or K == 1
    return Problem(
        activation=draw(st.sampled_from(activations.NAMES)),
        head=head,
        output=draw(st.sampled_from((None, *activations.NAMES))) if head == "squared" else None,
        negative_slope=draw(st.sampled_from([0.01, 0.2])),
        bias=draw(st.booleans()),
        scheme=draw(st.sampled_from(params.SCHEMES)),
        d=draw(dim),
        M=draw(dim),
        K=K,
        n=draw(dim),
        labels=draw(st.sampled_from(["rows", "compact"])) if compact_ok else "rows",
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def data(p: Problem, dtype):
    """Inputs X (n, d) and labels Y in the problem's form, drawn with NumPy (no compiling)."""
    rng = np.random.default_rng(p.seed)
    X = rng.standard_normal((p.n, p.d)).astype(dtype)
    if p.head == "softmax":
        ids = rng.integers(0, p.K, p.n)
        Y = ids if p.labels == "compact" else np.eye(p.K, dtype=dtype)[ids]
    elif p.head == "logistic":
        Y = rng.choice(np.array([1.0, -1.0], dtype), (p.n, 1))
    else:
        Y = rng.standard_normal((p.n, p.K)).astype(dtype)
    if p.labels == "compact" and p.head != "softmax":
        Y = Y[:, 0]
    return jnp.asarray(X), jnp.asarray(Y)


def init(p: Problem, dtype) -> jaxbp.Params:
    """θ from ``jaxbp.init`` with the problem's seed and scheme, cut to the problem's shapes.

    ``jaxbp.init`` draws at the largest size (M = d = 16, and K = 16 unless logistic) and
    V, W are cut to (M, d), (K, M): compiling ``jax.random`` for every drawn shape would
    cost more than the rest of the test (``tests/test_params.py`` checks ``init`` itself).
    Offsets, when present, are random (``init`` starts them at zero) so that they matter.
    """
    big = jaxbp.init(
        p.net,
        jax.random.key(p.seed),
        d=MAX_DIM,
        hidden=MAX_DIM,
        out=1 if p.head == "logistic" else MAX_DIM,
        scheme=p.scheme,
        dtype=dtype,
    )
    V, W = np.asarray(big.V)[: p.M, : p.d], np.asarray(big.W)[: p.K, : p.M]
    if not p.bias:
        return jaxbp.Params(jnp.asarray(V), jnp.asarray(W))
    rng = np.random.default_rng(p.seed + 1)
    b, c = (0.5 * rng.standard_normal(n).astype(dtype) for n in (p.M, p.K))
    return jaxbp.Params(*(jnp.asarray(a) for a in (V, W, b, c)))


def routes(net: jaxbp.Net, theta: jaxbp.Params, X, Y, loop: bool) -> dict[str, jaxbp.Params]:
    """Every route to ∇L(θ) (see the module docstring); ``loop`` adds the sample loop."""

    def one_sample(xy):
        return jaxbp.manual_grad(net, theta, *xy)

    grads = {
        "matrix": jaxbp.batch_grad(net, theta, X, Y),
        "vmap": jaxbp.batch_grad(net, theta, X, Y, method="vmap"),
        "autodiff": jaxbp.batch_grad(net, theta, X, Y, method="autodiff"),
    }
    if loop:
        grads["loop"] = jax.tree.map(lambda g: g.mean(0), jax.lax.map(one_sample, (X, Y)))
    return grads


@functools.partial(jax.jit, static_argnames="loop")
def routes_and_errors(net: jaxbp.Net, theta: jaxbp.Params, X, Y, loop: bool):
    """All routes and their errors against autodiff, compiled as one call per example."""
    grads = routes(net, theta, X, Y, loop)
    return grads, {name: relative_error(g, grads["autodiff"]) for name, g in grads.items()}


def _check_routes(p: Problem, dtype, loop: bool):
    note(repr(p))
    with jax.enable_x64(dtype == np.float64):
        theta = init(p, dtype)
        grads, errors = routes_and_errors(p.net, theta, *data(p, dtype), loop=loop)
        for name, g in grads.items():
            assert jax.tree.structure(g) == jax.tree.structure(theta), name
            for leaf, want in zip(jax.tree.leaves(g), jax.tree.leaves(theta), strict=True):
                assert leaf.shape == want.shape and leaf.dtype == dtype, name
                assert np.isfinite(leaf).all(), name
            err = float(errors[name])
            note(f"{name}: {err:.3g}")
            assert err <= TOL[dtype], f"{name} vs autodiff: relative error {err:.3g}"


@settings(max_examples=_examples(0.2))
@given(problems())
def test_routes_agree_float64(p):
    _check_routes(p, np.float64, loop=True)


@settings(max_examples=_examples(0.12))
@given(problems())
def test_routes_agree_float32(p):
    _check_routes(p, np.float32, loop=False)  # (the sample loop: float64 only, to save time)


# Fixed small shapes (those of test_oracle.py): gradcheck runs eagerly, and repeated
# shapes reuse compiled operations.
@settings(max_examples=_examples(0.12))
@given(problems(max_dim=2))
def test_gradcheck_finite_differences(p):
    p = dataclasses.replace(p, d=3, M=4, n=5, K=1 if p.head == "logistic" else 3)
    if p.head == "squared":
        p = dataclasses.replace(p, labels="rows")
    note(repr(p))
    with jax.enable_x64(True):
        theta = init(p, jnp.float64)
        X, Y = data(p, np.float64)
    result = jaxbp.gradcheck(p.net, theta, X, Y)
    note(repr(result))
    assert isinstance(result, jaxbp.GradCheck)
    assert result.manual_vs_autodiff <= TOL[np.float64]
    assert result.manual_vs_fd <= FD_TOL
    assert result.autodiff_vs_fd <= FD_TOL
