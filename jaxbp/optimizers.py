"""Optimizers and step-size schedules μ_k by name, all from optax.

The lecture's θ_{k+1} = θ_k − μ_k ∇L(θ_k) is ``sgd`` with a schedule; the others
are the "Adagrad and Adam family" it points to next.
"""

from __future__ import annotations

import optax

OPTIMIZERS: tuple[str, ...] = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
SCHEDULES: tuple[str, ...] = ("constant", "cosine", "exponential", "inverse-time")


def schedule(name: str, lr: float, *, steps_per_epoch: int, epochs: int) -> optax.Schedule:
    """μ_k for step k (counted over minibatches).

    - ``constant``:     μ_k = μ₀
    - ``cosine``:       μ_k = μ₀ · ½(1 + cos(π k / T)), T = all steps of the run
    - ``exponential``:  μ_k = μ₀ · 0.95^(k / steps_per_epoch) (5% less per epoch)
    - ``inverse-time``: μ_k = μ₀ / (1 + k / steps_per_epoch)
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


def make(
    name: str,
    lr: float | optax.Schedule,
    *,
    weight_decay: float = 0.0,
) -> optax.GradientTransformation:
    """An optax optimizer by name; ``lr`` may be a number or a schedule.

    ``adamw`` takes ``weight_decay`` as its decoupled decay; for the others pass it to
    ``jaxbp.fit`` as an L2 penalty instead.
    """
    if name == "sgd":
        return optax.sgd(lr)
    if name == "momentum":
        return optax.sgd(lr, momentum=0.9)
    if name == "nesterov":
        return optax.sgd(lr, momentum=0.9, nesterov=True)
    if name == "adagrad":
        return optax.adagrad(lr)
    if name == "rmsprop":
        return optax.rmsprop(lr)
    if name == "adam":
        return optax.adam(lr)
    if name == "adamw":
        return optax.adamw(lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
