"""Optimizers, step-size schedules μ_k and weight decay, by name, all from optax.

The lecture's θ_{k+1} = θ_k − μ_k ∇L(θ_k) is ``sgd`` with a schedule; the others
are the "Adagrad and Adam family" it points to next. Weight decay is one more link
in the optax chain (as optax's own ``adamw`` is built), never a flag in the loop.
"""

from __future__ import annotations

import math
import numbers

import optax

from jaxbp import names
from jaxbp.params import Params

OPTIMIZERS: tuple[str, ...] = names.OPTIMIZERS
SCHEDULES: tuple[str, ...] = names.SCHEDULES


def schedule(name: str, lr: float, *, steps_per_epoch: int, epochs: int) -> optax.Schedule:
    """μ_k for step k (counted over minibatches).

    - ``constant``:     μ_k = μ₀
    - ``cosine``:       μ_k = μ₀ · ½(1 + cos(π k / T)), T = steps_per_epoch · epochs
    - ``exponential``:  μ_k = μ₀ · 0.95^(k / steps_per_epoch) (5% less per epoch)
    - ``inverse-time``: μ_k = μ₀ / (1 + k / steps_per_epoch)

    ``steps_per_epoch`` should be what ``fit`` runs: ``jaxbp.train.steps_per_epoch``.
    """
    if name == "constant":
        return optax.constant_schedule(lr)
    if name == "cosine":
        return optax.cosine_decay_schedule(lr, decay_steps=max(1, steps_per_epoch * epochs))
    if name == "exponential":
        return optax.exponential_decay(lr, transition_steps=steps_per_epoch, decay_rate=0.95)
    if name == "inverse-time":
        return lambda k: lr / (1 + k / steps_per_epoch)
    raise ValueError(f"unknown schedule {name!r}; expected one of {', '.join(SCHEDULES)}")


def check_weight_decay(weight_decay) -> float:
    """λ as a float: a finite real number ≥ 0 (``weight_decay`` is named in the error)."""
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real):
        raise TypeError(
            f"weight_decay must be a number >= 0, got {type(weight_decay).__name__} "
            f"{weight_decay!r}"
        )
    if not (math.isfinite(weight_decay) and weight_decay >= 0):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    return float(weight_decay)


def _weights_only(params: Params) -> Params:
    """The mask of the decayed leaves: V and W, not the offsets b, c."""

    def no(offset):
        return None if offset is None else False

    return Params(True, True, no(params.b), no(params.c))


def with_weight_decay(optimizer: optax.GradientTransformation, weight_decay: float):
    """``optimizer`` preceded by the gradient λθ of the L2 penalty (λ/2)(‖V‖² + ‖W‖²).

    The offsets b, c are not decayed. With λ = 0 the optimizer is returned unchanged.
    """
    weight_decay = check_weight_decay(weight_decay)
    if not weight_decay:
        return optimizer
    decay = optax.masked(optax.add_decayed_weights(weight_decay), _weights_only)
    return optax.chain(decay, optimizer)


def make(
    name: str,
    lr: float | optax.Schedule,
    *,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """An optax optimizer by name, with weight decay λ built in; ``lr`` may be a schedule.

    ``adamw`` takes λ as its decoupled decay; every other optimizer gets the L2
    penalty's gradient λθ chained in front (:func:`with_weight_decay`).
    """
    weight_decay = check_weight_decay(weight_decay)
    plain = {
        "sgd": lambda: optax.sgd(lr),
        "momentum": lambda: optax.sgd(lr, momentum=0.9),
        "nesterov": lambda: optax.sgd(lr, momentum=0.9, nesterov=True),
        "adagrad": lambda: optax.adagrad(lr),
        "rmsprop": lambda: optax.rmsprop(lr),
        "adam": lambda: optax.adam(lr),
    }
    if name == "adamw":
        return optax.adamw(lr, weight_decay=weight_decay)
    if name not in plain:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return with_weight_decay(plain[name](), weight_decay)
