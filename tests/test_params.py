"""Params (a pytree) and init: shapes, dtypes, offsets, and the variance of each scheme."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxbp
from jaxbp import params as params_module

SQUARED = jaxbp.Net(activation="relu", head="squared")


@pytest.mark.parametrize("scheme", params_module.SCHEMES)
def test_init_shapes(scheme):
    p = jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2, scheme=scheme)
    assert isinstance(p, jaxbp.Params)
    assert p.V.shape == (4, 3) and p.W.shape == (2, 4)
    assert p.b is None and p.c is None
    assert p.V.dtype == jnp.float32 and p.W.dtype == jnp.float32
    assert float(jnp.abs(p.V).max()) > 0 and float(jnp.abs(p.W).max()) > 0


def test_init_bias_zeros():
    p = jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2, bias=True)
    assert p.b.shape == (4,) and p.c.shape == (2,)
    assert p.b.dtype == p.c.dtype == jnp.float32
    np.testing.assert_array_equal(p.b, np.zeros(4))
    np.testing.assert_array_equal(p.c, np.zeros(2))


def test_params_is_a_pytree():
    p = jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2)
    assert len(jax.tree.leaves(p)) == 2  # None offsets are empty subtrees
    pb = jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2, bias=True)
    assert len(jax.tree.leaves(pb)) == 4
    doubled = jax.tree.map(lambda a: 2 * a, pb)
    assert isinstance(doubled, jaxbp.Params)
    np.testing.assert_allclose(doubled.V, 2 * pb.V)
    assert jaxbp.Params._fields == ("V", "W", "b", "c")
    assert jaxbp.Params(1, 2) == jaxbp.Params(V=1, W=2, b=None, c=None)


def test_init_is_deterministic_in_the_key():
    a = jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2)
    b = jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2)
    c = jaxbp.init(SQUARED, jax.random.key(1), d=3, hidden=4, out=2)
    np.testing.assert_array_equal(a.V, b.V)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.allclose(a.V, c.V)
    assert not np.allclose(a.V[:2, :2], a.W[:, :2])  # V and W use different keys


def test_init_float64_with_x64():
    with jax.enable_x64(True):
        p = jaxbp.init(
            SQUARED, jax.random.key(0), d=3, hidden=4, out=2, bias=True, dtype=jnp.float64
        )
        assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(p))


def test_init_float64_without_x64_is_an_error():
    assert not jax.config.jax_enable_x64
    with pytest.raises(ValueError, match=r"dtype=float64 needs 64-bit JAX.*jax_enable_x64"):
        jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2, dtype=jnp.float64)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_])
def test_init_non_float_dtype(dtype):
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2, dtype=dtype)


# Large matrices: V (M, d) = (400, 600), W (K, M) = (500, 400); 2.4e5 and 2e5 entries
# estimate the std to ~0.15% (1/√(2n)), so 2% is > 10 standard errors.
D_BIG, M_BIG, K_BIG = 600, 400, 500
STDS = {
    "he": (np.sqrt(2 / D_BIG), np.sqrt(2 / M_BIG)),
    "glorot": (np.sqrt(2 / (D_BIG + M_BIG)), np.sqrt(2 / (M_BIG + K_BIG))),
    "lecun": (np.sqrt(1 / D_BIG), np.sqrt(1 / M_BIG)),
    "normal": (1.0, 1.0),
}


@pytest.mark.parametrize("scale", [1.0, 0.5])
@pytest.mark.parametrize("scheme", params_module.SCHEMES)
def test_init_std_matches_scheme(scheme, scale):
    assert set(STDS) == set(params_module.SCHEMES)
    p = jaxbp.init(
        SQUARED, jax.random.key(3), d=D_BIG, hidden=M_BIG, out=K_BIG, scheme=scheme, scale=scale
    )
    for matrix, want in zip((p.V, p.W), STDS[scheme], strict=True):
        values = np.asarray(matrix, np.float64)
        assert abs(values.mean()) < 0.02 * want * scale
        np.testing.assert_allclose(values.std(), want * scale, rtol=0.02)
        # plain normal, not truncated: some entries lie beyond 2 std
        assert (np.abs(values) > 2 * want * scale).mean() == pytest.approx(0.0455, abs=0.005)


def test_unknown_scheme():
    with pytest.raises(
        ValueError, match=r"unknown init scheme 'xavier'.*he, glorot, lecun, normal"
    ):
        jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2, scheme="xavier")


@pytest.mark.parametrize("name", ["d", "hidden", "out"])
@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3", None])
def test_bad_dimensions(name, bad):
    dims = {"d": 3, "hidden": 4, "out": 2, name: bad}
    with pytest.raises(ValueError, match=f"{name} must be a positive integer, got {bad!r}"):
        jaxbp.init(SQUARED, jax.random.key(0), **dims)


def test_init_checks_the_head_width():
    with pytest.raises(ValueError, match="head='logistic' needs K=1 output, but out=2"):
        jaxbp.init(jaxbp.Net(head="logistic"), jax.random.key(0), d=3, hidden=4, out=2)
    with pytest.raises(ValueError, match="head='softmax' needs K>=2 outputs, but out=1"):
        jaxbp.init(jaxbp.Net(head="softmax"), jax.random.key(0), d=3, hidden=4, out=1)


def test_init_keyword_only():
    with pytest.raises(TypeError):
        jaxbp.init(SQUARED, jax.random.key(0), 3, 4, 2)


def test_numpy_integer_dimensions_are_accepted():
    """Sizes often come from NumPy (``out = labels.max() + 1``); np.int64(3) is positive."""
    p = jaxbp.init(SQUARED, jax.random.key(0), d=np.int64(3), hidden=np.int32(4), out=np.int64(2))
    assert p.V.shape == (4, 3) and p.W.shape == (2, 4)


# --- init refuses bad arguments with errors naming them ----------------------------------


@pytest.mark.parametrize("net", [None, "relu", 3])
def test_init_net_must_be_a_net(net):
    with pytest.raises(TypeError, match=r"net must be a jaxbp\.Net"):
        jaxbp.init(net, jax.random.key(0), d=3, hidden=4, out=2)


@pytest.mark.parametrize(
    ("scale", "error"),
    [
        (float("nan"), ValueError),
        (-1.0, ValueError),
        (float("inf"), ValueError),
        ("1", TypeError),
        (None, TypeError),
        (True, TypeError),
    ],
)
@pytest.mark.parametrize("scheme", ["he", "normal"])
def test_init_scale_must_be_finite_and_non_negative(scale, error, scheme):
    with pytest.raises(error, match="scale must be"):
        jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2, scheme=scheme, scale=scale)


def test_init_accepts_numpy_scale_and_zero_scale():
    p = jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2, scale=np.float32(0.5))
    assert bool(jnp.isfinite(p.V).all())
    p = jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2, scale=0)
    assert float(jnp.abs(p.V).max()) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"key": 5}, TypeError, "key must be a JAX PRNG key"),
        ({"key": None}, TypeError, "key must be a JAX PRNG key"),
        ({"bias": "yes"}, TypeError, "bias must be True or False"),
        ({"dtype": "nope"}, TypeError, "dtype must be a floating dtype"),
        ({"scheme": 5}, TypeError, "scheme must be a name"),
    ],
)
def test_init_refuses_bad_key_bias_dtype_scheme(kwargs, error, match):
    kw = {"key": jax.random.key(0), "d": 3, "hidden": 4, "out": 2} | kwargs
    with pytest.raises(error, match=match):
        jaxbp.init(SQUARED, **kw)


def test_init_accepts_a_raw_uint32_key():
    p = jaxbp.init(SQUARED, jax.random.PRNGKey(0), d=3, hidden=4, out=2)
    assert p.V.shape == (4, 3)


def test_init_stays_float32_under_x64_unless_dtype_is_given():
    with jax.enable_x64(True):
        p = jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2)
        assert p.V.dtype == jnp.float32
        p = jaxbp.init(SQUARED, jax.random.key(0), d=3, hidden=4, out=2, dtype=jnp.float64)
        assert p.V.dtype == jnp.float64
    assert "float32 even when ``jax_enable_x64`` is on" in jaxbp.init.__doc__


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"scales": [1.0, float("nan")]}, ValueError, "scales"),
        ({"scales": [1.0, -1.0]}, ValueError, "scales"),
        ({"scales": "a"}, TypeError, "scales must be real numbers"),
        ({"scales": [1.0]}, ValueError, r"scales must have shape \(2,\)"),
        ({"scale": float("nan")}, ValueError, "scale must be"),
    ],
)
def test_init_many_refuses_bad_scales(kwargs, error, match):
    keys = jax.random.split(jax.random.key(0), 2)
    with pytest.raises(error, match=match):
        jaxbp.init_many(SQUARED, keys, d=3, hidden=4, out=2, **kwargs)


@pytest.mark.parametrize("keys", [5, None, jax.random.key(0), np.zeros((2, 3), np.uint32)])
def test_init_many_keys_must_be_m_keys(keys):
    with pytest.raises(TypeError, match="keys must be m PRNG keys"):
        jaxbp.init_many(SQUARED, keys, d=3, hidden=4, out=2)


def test_init_many_accepts_raw_uint32_keys():
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    assert jaxbp.init_many(SQUARED, keys, d=3, hidden=4, out=2).V.shape == (3, 4, 3)


def test_init_many_net_must_be_a_net():
    with pytest.raises(TypeError, match=r"net must be a jaxbp\.Net"):
        jaxbp.init_many(None, jax.random.split(jax.random.key(0), 2), d=3, hidden=4, out=2)
