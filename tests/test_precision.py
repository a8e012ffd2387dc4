"""Mixed precision: bfloat16 matrix products with float32 parameters and accumulation."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import optax
import pytest

import jaxbp
from jaxbp import data
from jaxbp.oracle import relative_error


def _problem(matmul_dtype):
    net = jaxbp.Net(activation="relu", head="softmax", matmul_dtype=matmul_dtype)
    params = jaxbp.init(net, jax.random.key(0), d=64, hidden=128, out=10, bias=True)
    X = jax.random.normal(jax.random.key(1), (256, 64))
    Y = jax.random.randint(jax.random.key(2), (256,), 0, 10)
    return net, params, X, Y


def test_bf16_matmuls_are_used_and_params_stay_float32():
    net, params, X, Y = _problem("bfloat16")
    jaxpr = str(jax.make_jaxpr(jaxbp.batch_grad)(net, params, X, Y))
    assert "bf16" in jaxpr and "preferred_element_type=float32" in jaxpr
    g = jaxbp.batch_grad(net, params, X, Y)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(g))


def test_bf16_gradient_is_close_to_float32_but_not_equal():
    net16, params, X, Y = _problem("bfloat16")
    net32 = jaxbp.Net(activation="relu", head="softmax")
    err = float(
        relative_error(jaxbp.batch_grad(net16, params, X, Y), jaxbp.batch_grad(net32, params, X, Y))
    )
    assert 0 < err < 2e-2  # bfloat16 keeps 8 bits of mantissa: ~0.4% per rounding


def test_bf16_digits_accuracy_within_half_a_point_of_float32():
    ds = data.digits()
    accuracy = {}
    for dtype in (None, "bfloat16"):
        net = jaxbp.Net(activation="relu", head="softmax", matmul_dtype=dtype)
        params = jaxbp.init(net, jax.random.key(0), d=64, hidden=64, out=10, bias=True)
        result = jaxbp.fit(
            net, params, ds.X_train, ds.y_train, optimizer=optax.adam(1e-3), epochs=30,
            batch_size=32, key=jax.random.key(1), progress=False,
        )  # fmt: skip
        accuracy[dtype] = jaxbp.evaluate(net, result.params, ds.X_test, ds.y_test)["accuracy"]
    assert accuracy[None] >= 0.95
    assert abs(accuracy["bfloat16"] - accuracy[None]) <= 0.005


def test_unknown_matmul_dtype():
    with pytest.raises(ValueError, match="matmul_dtype must be one of"):
        jaxbp.Net(matmul_dtype="float16")


@pytest.mark.parametrize("matmul_dtype", [None, "bfloat16"])
def test_column_layout_matches_the_row_layout(matmul_dtype):
    """matrix_grad (samples as columns) = matrix_grad_rows (as the equations are written)."""
    from jaxbp import backprop

    net, params, X, Y = _problem(matmul_dtype)
    Y = jax.nn.one_hot(Y, 10)
    cols, cache_c = backprop.matrix_grad(net, params, X, Y)
    rows, cache_r = backprop.matrix_grad_rows(net, params, X, Y)
    assert float(relative_error(cols, rows)) < 1e-5  # same roundings, other summation order
    for field in cache_c._fields:
        a, b = getattr(cache_c, field), getattr(cache_r, field)
        assert a.shape == b.shape and a.dtype == b.dtype, field
        assert float(jnp.max(jnp.abs(a - b))) < 1e-5, field


def test_bf16_fit_many_runs_the_column_layout_under_vmap():
    net, _, X, Y = _problem("bfloat16")
    keys = jax.random.split(jax.random.key(3), 2)
    many = jaxbp.init_many(net, keys, d=64, hidden=16, out=10, bias=True)
    result = jaxbp.fit_many(
        net, many, X, Y, optimizer=optax.adam(1e-3), epochs=1, batch_size=100, key=keys,
        progress=False,
    )  # fmt: skip
    assert result.status == ["completed"] * 2


def _large_dot_operand_types(fn, *args, min_flops: int) -> list[tuple[str, str]]:
    """(lhs, rhs) element types of every dot in ``fn``'s optimised HLO doing ≥ min_flops."""
    hlo = jax.jit(fn).lower(*args).compile().as_text()
    types = dict(re.findall(r"%([\w.\-]+) = (\w+)\[", hlo))
    shapes = dict(re.findall(r"%([\w.\-]+) = \w+\[([\d,]*)\]", hlo))
    dot = (
        r"= \w+\[([\d,]*)\]\{[\d,]*\} dot\(%([\w.\-]+), %([\w.\-]+)\), lhs_contracting_dims=\{(\d+)"
    )
    found = []
    for out, lhs, rhs, contracting in re.findall(dot, hlo):
        k = int(shapes[lhs].split(",")[int(contracting)])
        flops = 2 * k * math.prod(int(s) for s in out.split(","))
        if flops >= min_flops:
            found.append((types[lhs], types[rhs]))
    return found


def test_bf16_gradient_runs_both_large_products_as_bf16_dots():
    """In the compiled gradient, the O(nMd) dots Aᵀ = V Xᵀ and GᵀX read bfloat16 operands.

    XLA CPU converts the operands of a bfloat16 dot that reads a transposed operand back
    to float32; the control below shows the check sees that conversion when Xᵀ is left
    as a transposed view.
    """
    from jaxbp import backprop

    n, d, M, K = 512, 256, 384, 10
    net = jaxbp.Net(activation="relu", head="softmax", matmul_dtype="bfloat16")
    params = jaxbp.init(net, jax.random.key(0), d=d, hidden=M, out=K)
    X = jax.random.normal(jax.random.key(1), (n, d))
    Y = jax.nn.one_hot(jnp.arange(n) % K, K)
    large = 2 * n * M * d

    def grad(p, X, Y):
        return backprop.matrix_grad(net, p, X, Y)[0]

    dots = _large_dot_operand_types(grad, params, X, Y, min_flops=large)
    assert dots == [("bf16", "bf16")] * 2

    def view(V, X):  # the same product without the row-major copy of Xᵀ
        return jnp.matmul(
            V.astype(jnp.bfloat16), X.astype(jnp.bfloat16).T, preferred_element_type=jnp.float32
        )

    if jax.default_backend() == "cpu":
        assert _large_dot_operand_types(view, params.V, X, min_flops=large) == [("f32", "f32")]
