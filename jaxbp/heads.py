"""Output heads: the output map h, the per-sample loss ℓ and δ = ∂ℓ/∂o, in stable forms.

With o = Wz the output pre-activation (logits) and y the target row:

=========  ===  ================  ===============================  ======================
head       K    h                 ℓ                                δ = ∂ℓ/∂o
=========  ===  ================  ===============================  ======================
squared    ≥ 1  any σ (identity)  ‖y − h(o)‖²                      2(h(o) − y) ⊙ h′(o)
logistic   1    logistic sigmoid  −log σ(y·o) = softplus(−y·o)     −y · σ(−y·o)
softmax    ≥ 2  softmax           logsumexp(o) − yᵀo               softmax(o) − y
=========  ===  ================  ===============================  ======================

The naive forms ``log(sigmoid(t))`` and ``log(softmax(o))`` overflow for large
logits; the forms above stay finite and exact for logits of ±10⁴
(``tests/test_numerics.py``). All functions work on one row (K,) or a batch
(n, K) and reduce over the last axis only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxbp import activations

Array = jax.Array


class Head(NamedTuple):
    """An output head: ``h(o)``, ``loss(o, y)`` (summed over K) and ``delta(o, y)``."""

    name: str
    h: Callable[[Array], Array]
    loss: Callable[[Array, Array], Array]
    delta: Callable[[Array, Array], Array]


def squared(output: activations.Activation) -> Head:
    """The lecture's regression head with output map h = ``output`` (identity by default)."""

    def loss(o, y):
        """ℓ = ‖y − h(o)‖²."""
        return jnp.sum((y - output.fn(o)) ** 2, axis=-1)

    def delta(o, y):
        """δ = 2(h(o) − y) ⊙ h′(o)."""
        return 2 * (output.fn(o) - y) * output.grad(o)

    return Head("squared", output.fn, loss, delta)


def _logistic_loss(o, y):
    """ℓ = −log σ(y·o) = softplus(−y·o), finite for any o."""
    return jnp.sum(jax.nn.softplus(-y * o), axis=-1)


def _logistic_delta(o, y):
    """δ = −y · σ(−y·o)."""
    return -y * jax.nn.sigmoid(-y * o)


def _softmax_loss(o, y):
    """ℓ = logsumexp(o) − yᵀo, computed as logsumexp(o − yᵀo) (equal when Σy = 1).

    Shifting by yᵀo first keeps the small losses of confident, correct
    predictions accurate instead of cancelling two large numbers.
    """
    return jax.nn.logsumexp(o - jnp.sum(y * o, axis=-1, keepdims=True), axis=-1)


def _softmax_delta(o, y):
    """δ = softmax(o) − y."""
    return jax.nn.softmax(o, axis=-1) - y


LOGISTIC = Head("logistic", jax.nn.sigmoid, _logistic_loss, _logistic_delta)
SOFTMAX = Head("softmax", lambda o: jax.nn.softmax(o, axis=-1), _softmax_loss, _softmax_delta)

NAMES: tuple[str, ...] = ("squared", "logistic", "softmax")
CLASSIFICATION: tuple[str, ...] = ("logistic", "softmax")


def get(name: str, output: str | None = None, *, negative_slope: float = 0.01) -> Head:
    """Look up a head by name; ``output`` names the squared head's output map h.

    Raises:
        ValueError: for an unknown head or output name, or an ``output`` given to a
            head whose output map is fixed (logistic, softmax).
    """
    if name == "squared":
        if output is not None and output not in activations.NAMES:
            raise ValueError(
                f"unknown output map output={output!r} for head='squared'; expected one of "
                f"{', '.join(activations.NAMES)}"
            )
        return squared(activations.get(output or "identity", negative_slope=negative_slope))
    if name not in NAMES:
        raise ValueError(f"unknown head {name!r}; expected one of {', '.join(NAMES)}")
    if output is not None:
        raise ValueError(
            f"output={output!r} was given, but the {name} head's output map is fixed; "
            "output= applies to head='squared' only"
        )
    return LOGISTIC if name == "logistic" else SOFTMAX
