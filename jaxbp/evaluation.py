"""How good is θ: predictions, class probabilities, loss and accuracy or MSE.

What a prediction is and what counts as correct belong to the head
(``jaxbp.heads``); this module applies them to a batch. Each function checks
its inputs, then runs one compiled computation (``net`` static), so a call
costs one compilation per shape rather than one per operation.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from jaxbp.model import Cache, Net, forward_pass, logits, weighted_mean
from jaxbp.params import Params
from jaxbp.validate import (
    check_batch,
    check_inputs,
    check_nonempty,
    check_params,
    check_sample_weight,
)

Array = jax.Array


def batch_metrics(net: Net, cache: Cache, Y: Array, sample_weight=None) -> tuple[Array, Array]:
    """(Σᵢ ℓᵢ, Σᵢ correctᵢ) over a batch from its forward cache; the second is 0 for regression.

    With ``sample_weight`` s: (Σᵢ sᵢ ℓᵢ, Σᵢ sᵢ correctᵢ).
    """
    correct = net.loss_head.correct(cache.o, Y)
    if sample_weight is None:
        return cache.loss.sum(), correct.sum()
    return (sample_weight * cache.loss).sum(), (sample_weight * correct).sum()


def predict(net: Net, params: Params, X) -> Array:
    """Predictions: class ids (softmax), ±1 labels (logistic), f(X) (squared).

    Example:
        >>> import jax, jax.numpy as jnp, jaxbp
        >>> net = jaxbp.Net(head="softmax")
        >>> params = jaxbp.init(net, jax.random.key(0), d=3, hidden=4, out=2)
        >>> jaxbp.predict(net, params, jnp.ones((5, 3))).shape
        (5,)
    """
    return _from_logits(net, "predict", params, X)


def predict_classes(net: Net, params: Params, X) -> Array:
    """Class ids 0..C−1 (classifiers only): argmax for softmax, 1[o ≥ 0] for logistic."""
    return _from_logits(net, "classes", params, X)


def class_probabilities(net: Net, params: Params, X) -> Array:
    """P(class c | x) for every class c = 0..C−1, shape (n, C) (classifiers only).

    softmax: softmax(o); logistic: (1 − σ(o), σ(o)) for the classes −1 and +1.
    """
    return _from_logits(net, "probabilities", params, X)


def check_finite_inputs(X, name: str = "X") -> None:
    """Refuse NaN or inf in concrete inputs, naming the first row and column (0-based).

    One reduction where X lives (a single boolean comes back); the position is looked
    up on the host only when something is wrong.
    """
    if isinstance(X, jax.core.Tracer) or not jnp.issubdtype(jnp.result_type(X), jnp.inexact):
        return
    if bool(jnp.isfinite(X).all()):
        return
    import numpy as np

    values = np.asarray(X)
    where = tuple(int(i) for i in np.argwhere(~np.isfinite(values))[0])
    at = f"row {where[0]}, column {where[1]}" if len(where) == 2 else f"entry {where}"
    raise ValueError(f"{name} holds {values[where]} at {at}; inputs must be finite")


def _from_logits(net: Net, method: str, params: Params, X) -> Array:
    """The head's ``method`` (predict, classes, probabilities) of o = W σ(Vx), X checked."""
    check_params(net, params)
    X = check_inputs(params, X, name="X")
    check_finite_inputs(X)
    return _head_of_logits(net, method, params, X)


@partial(jax.jit, static_argnums=(0, 1))
def _head_of_logits(net: Net, method: str, params: Params, X: Array) -> Array:
    return getattr(net.loss_head, method)(logits(net, params, X))


def evaluate(net: Net, params: Params, X, Y, sample_weight=None) -> dict[str, float]:
    """``{"loss": L(θ), "accuracy": …}`` (classifiers) or ``{"loss": L(θ), "mse": …}``.

    MSE is the mean over samples and outputs of (f(x) − y)², so loss = K · MSE. With
    ``sample_weight`` s every mean is the weighted one, Σᵢ sᵢ (…)ᵢ / Σᵢ sᵢ.
    """
    X, Y = check_batch(net, params, X, Y, kind="batch")
    check_nonempty(X)
    check_finite_inputs(X)
    s = check_sample_weight(sample_weight, X.shape[0], X.dtype)
    loss, score = _metrics(net, params, X, Y, s)
    return {"loss": float(loss), "accuracy" if net.is_classifier else "mse": float(score)}


@partial(jax.jit, static_argnums=0)
def _metrics(net: Net, params: Params, X: Array, Y: Array, s=None) -> tuple[Array, Array]:
    """(L(θ), accuracy) for a classifier, (L(θ), MSE) otherwise; means weighted by s if given."""
    cache = forward_pass(net, params, X, Y)
    if net.is_classifier:
        score = weighted_mean(net.loss_head.correct(cache.o, Y), s)
    else:
        squares = (cache.f - Y) ** 2
        score = jnp.mean(squares) if s is None else weighted_mean(jnp.mean(squares, -1), s)
    return weighted_mean(cache.loss, s), score
