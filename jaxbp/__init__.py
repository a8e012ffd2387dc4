"""jaxbp: a two-layer network f(x) = h(W σ(Vx)) with hand-written backpropagation.

The lecture's BP equations as pure JAX functions, checked against ``jax.grad``.
"""

from jaxbp.backprop import manual_grad, per_sample_grad_norms, per_sample_grads
from jaxbp.evaluation import class_probabilities, evaluate, predict
from jaxbp.gradients import batch_grad
from jaxbp.many import fit_many, init_many
from jaxbp.model import Cache, Net, forward, forward_cache, loss
from jaxbp.oracle import GradCheck, autodiff_grad, gradcheck
from jaxbp.params import Params, init
from jaxbp.train import FitResult, Interrupted, TrainState, fit
from jaxbp.validate import check_data

__all__ = [
    "Cache",
    "FitResult",
    "GradCheck",
    "Interrupted",
    "Net",
    "Params",
    "TrainState",
    "autodiff_grad",
    "batch_grad",
    "check_data",
    "class_probabilities",
    "evaluate",
    "fit",
    "fit_many",
    "forward",
    "forward_cache",
    "gradcheck",
    "init",
    "init_many",
    "loss",
    "manual_grad",
    "per_sample_grad_norms",
    "per_sample_grads",
    "predict",
]

__version__ = "0.1.0"
