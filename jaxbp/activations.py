"""Activations σ and their hand-written derivatives σ′, in one registry.

Every entry pairs σ with σ′ written out by hand; the manual backward pass uses
only σ′ from here and never calls ``jax.grad``. The oracle tests check each σ′
against ``jax.grad(σ)`` elementwise (``tests/test_activations.py``).

Example:
    >>> import jax.numpy as jnp
    >>> from jaxbp import activations
    >>> act = activations.get("tanh")
    >>> act.grad(jnp.array(0.0))
    Array(1., dtype=float32, weak_type=True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import erfc

from jaxbp import names

Array = jax.Array


class Activation(NamedTuple):
    """An activation σ with its derivative σ′ (both elementwise)."""

    name: str
    fn: Callable[[Array], Array]
    grad: Callable[[Array], Array]


def _sigmoid_grad(a):
    """σ′(a) = σ(a)(1 − σ(a)) for the logistic sigmoid."""
    s = jax.nn.sigmoid(a)
    return s * (1 - s)


def _relu_grad(a):
    """σ′(a) = 1[a > 0]; σ′(0) = 0, as ``jax.nn.relu`` defines it."""
    return (a > 0).astype(a.dtype)


def _silu_grad(a):
    """σ(a) = a·s(a) ⇒ σ′(a) = s(a)(1 + a(1 − s(a))), s the logistic sigmoid."""
    s = jax.nn.sigmoid(a)
    return s * (1 + a * (1 - s))


def _tanh_grad(a):
    """σ′(a) = 1 − tanh²(a)."""
    return 1 - jnp.tanh(a) ** 2


def _identity_grad(a):
    """σ′(a) = 1."""
    return jnp.ones_like(a)


def _softplus_grad(a):
    """σ(a) = log(1 + eᵃ) ⇒ σ′(a) = 1 / (1 + e⁻ᵃ), the logistic sigmoid."""
    return jax.nn.sigmoid(a)


def _elu_grad(a):
    """σ(a) = a for a > 0, eᵃ − 1 otherwise ⇒ σ′(a) = 1 for a > 0, eᵃ otherwise."""
    return jnp.where(a > 0, 1.0, jnp.exp(jnp.minimum(a, 0))).astype(a.dtype)


_GELU_C = math.sqrt(2 / math.pi)


def _gelu_tanh(a):
    """σ(a) = ½ a (1 + tanh(√(2/π)(a + 0.044715 a³)))."""
    return jax.nn.gelu(a, approximate=True)


def _gelu_tanh_grad(a):
    """σ′(a) = ½(1 + t) + ½ a (1 − t²) √(2/π)(1 + 3·0.044715 a²).

    Here t = tanh(√(2/π)(a + 0.044715 a³)).
    """
    t = jnp.tanh(_GELU_C * (a + 0.044715 * a**3))
    return 0.5 * (1 + t) + 0.5 * a * (1 - t**2) * _GELU_C * (1 + 3 * 0.044715 * a**2)


def _gelu_exact(a):
    """σ(a) = a Φ(a), Φ the standard normal CDF."""
    return jax.nn.gelu(a, approximate=False)


def _gelu_exact_grad(a):
    """σ′(a) = Φ(a) + a φ(a), with Φ(a) = ½ erfc(−a/√2) and φ(a) = e^(−a²/2)/√(2π).

    erfc keeps Φ's relative precision far out on the negative side, where
    ½(1 + erf(a/√2)) would cancel.
    """
    cdf = 0.5 * erfc(-a / math.sqrt(2))
    pdf = jnp.exp(-0.5 * a**2) / math.sqrt(2 * math.pi)
    return cdf + a * pdf


def leaky_relu(negative_slope: float) -> Activation:
    """σ(a) = a for a ≥ 0, αa otherwise; σ′(a) = 1 for a ≥ 0, α otherwise (α = ``negative_slope``).

    σ′(0) = 1, as ``jax.grad(jax.nn.leaky_relu)`` gives.
    """

    def fn(a):
        return jax.nn.leaky_relu(a, negative_slope)

    def grad(a):
        return jnp.where(a >= 0, 1.0, negative_slope).astype(a.dtype)

    return Activation("leaky_relu", fn, grad)


_REGISTRY: dict[str, Activation] = {
    act.name: act
    for act in [
        Activation("sigmoid", jax.nn.sigmoid, _sigmoid_grad),
        Activation("relu", jax.nn.relu, _relu_grad),
        Activation("silu", jax.nn.silu, _silu_grad),
        Activation("tanh", jnp.tanh, _tanh_grad),
        Activation("identity", lambda a: a, _identity_grad),
        Activation("softplus", jax.nn.softplus, _softplus_grad),
        leaky_relu(0.01),
        Activation("elu", jax.nn.elu, _elu_grad),
        Activation("gelu", _gelu_tanh, _gelu_tanh_grad),
        Activation("gelu_exact", _gelu_exact, _gelu_exact_grad),
    ]
}

NAMES: tuple[str, ...] = names.ACTIVATIONS
assert tuple(_REGISTRY) == NAMES, "jaxbp.names.ACTIVATIONS is out of date"


def get(name: str, *, negative_slope: float = 0.01) -> Activation:
    """Look up σ and σ′ by name; ``negative_slope`` is used by ``leaky_relu`` only.

    Raises:
        ValueError: if ``name`` is not one of :data:`NAMES`.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(NAMES)}")
    if name == "leaky_relu":
        return leaky_relu(negative_slope)
    return _REGISTRY[name]
