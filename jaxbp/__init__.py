"""jaxbp: a two-layer network f(x) = h(W σ(Vx)) with hand-written backpropagation.

The lecture's BP equations as pure JAX functions, checked against ``jax.grad``.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
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


# Where each public name lives. ``import jaxbp`` imports none of them (nor JAX): the first
# use of any public name imports them all, so that `jaxbp --help` and `jaxbp.names` are fast.
_MODULE_OF = {
    "manual_grad": "backprop", "per_sample_grad_norms": "backprop",
    "per_sample_grads": "backprop", "class_probabilities": "evaluation",
    "evaluate": "evaluation", "predict": "evaluation", "batch_grad": "gradients",
    "fit_many": "many", "init_many": "many", "Cache": "model", "Net": "model",
    "forward": "model", "forward_cache": "model", "loss": "model", "GradCheck": "oracle",
    "autodiff_grad": "oracle", "gradcheck": "oracle", "Params": "params", "init": "params",
    "FitResult": "train", "Interrupted": "train", "TrainState": "train", "fit": "train",
    "check_data": "validate",
}  # fmt: skip


def _load() -> None:
    import importlib

    for name, module in _MODULE_OF.items():
        globals()[name] = getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __getattr__(name: str):
    if name in _MODULE_OF:
        _load()
        return globals()[name]
    if not name.startswith("_"):  # a submodule, e.g. `import jaxbp; jaxbp.train`
        import importlib
        import importlib.util

        if importlib.util.find_spec(f"{__name__}.{name}") is not None:
            return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
