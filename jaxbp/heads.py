"""Output heads: everything that depends on the head, in one place.

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
(``tests/test_numerics.py``). ``h``, ``loss`` and ``delta`` work on one row (K,) or
a batch (n, K) and reduce over the last axis only.

Beside its loss, each head owns what its labels mean (micrograd keeps each local
derivative beside its operation; a head keeps everything about itself beside its loss):

- which output width K it allows (:meth:`Head.check_width`) and which K a data set
  with C classes needs (:meth:`Head.width_for`);
- how labels become the float rows ℓ and δ take (:meth:`Head.encode`), and which
  label values are valid (:meth:`Head.check_labels`, :meth:`Head.check_rows`);
- how class ids 0..C−1 become labels (:meth:`Head.labels_from_classes`), how logits
  become predictions (:meth:`Head.predict`), class ids (:meth:`Head.classes`) and
  class probabilities (:meth:`Head.probabilities`), and what counts as correct
  (:meth:`Head.correct`);
- how to draw random targets (:meth:`Head.random_targets`) and the formula strings
  ``jaxbp explain`` prints.

A new head is a subclass here plus an entry in :data:`NAMES` and :func:`get`; no other
module compares head names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxbp import activations, names

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Head:
    """An output head: ``h(o)``, ``loss(o, y)`` (summed over K) and ``delta(o, y)``.

    Subclasses add the label semantics; the base class describes a real-valued head.
    """

    name: str
    h: Callable[[Array], Array]
    loss: Callable[[Array, Array], Array]
    delta: Callable[[Array, Array], Array]
    loss_formula: str = ""
    delta_formula: str = ""

    classifier = False

    @property
    def takes_output_map(self) -> bool:
        """Whether the output map h is chosen (``output=``, ``--output``): squared only; the
        classifiers' maps are fixed. Read from :data:`jaxbp.names.OUTPUT_MAP_HEADS`, which
        the command line checks without importing JAX."""
        return self.name in names.OUTPUT_MAP_HEADS

    # -- widths -------------------------------------------------------------------------
    def check_width(self, K: int, name: str = "K") -> None:
        """Raise ``ValueError`` if this head cannot have K outputs (``name`` says whose K)."""

    def nearest_width(self, K: int) -> int:
        """The allowed output width nearest to K (for the demos: explain, gradcheck)."""
        return K

    def width_for(self, n_classes: int, where: str = "the data", called: str = "head='{}'") -> int:
        """The K a network needs for data with ``n_classes`` classes.

        ``called`` formats the head's name in the error (the CLI says ``--head {}``).
        """
        raise ValueError(
            f"{called.format(self.name)} is for regression, but {where} has classes; "
            "use softmax or logistic"
        )

    # -- labels -------------------------------------------------------------------------
    def encode(self, y: Array, K: int, *, compact: bool, name: str, dtype) -> Array:
        """Targets as float rows (…, K); ``compact`` when y lacks the K axis (one label each)."""
        if compact and K != 1:
            raise ValueError(
                f"{name} must have shape {(*y.shape, K)} for K={K} outputs, got {y.shape}"
            )
        return (y[..., None] if compact else y).astype(dtype)

    def check_labels(self, values: np.ndarray, K: int, name: str) -> None:
        """Value checks of concrete labels as given (before :meth:`encode`)."""

    def check_rows(self, rows: np.ndarray, name: str) -> None:
        """Value checks of encoded rows (n, K)."""

    def labels_from_classes(self, ids: np.ndarray) -> np.ndarray:
        """Class ids 0..C−1 as the labels this head's loss takes."""
        raise ValueError(f"head='{self.name}' takes real targets, not classes")

    def targets(self, y: np.ndarray) -> np.ndarray:
        """A data set's labels as this head's loss takes them: class ids 0..C−1 through
        :meth:`labels_from_classes` for a classifier, real targets unchanged otherwise.

        The one label → loss-label conversion: the CLI, the playground and the
        estimators call it.
        """
        return self.labels_from_classes(y) if self.classifier else y

    # -- outputs ------------------------------------------------------------------------
    def predict(self, o: Array) -> Array:
        """The prediction for logits o: f = h(o)."""
        return self.h(o)

    def classes(self, o: Array) -> Array:
        """Class ids 0..C−1 predicted from logits o (classifiers only)."""
        raise ValueError(f"head='{self.name}' predicts values, not classes")

    def probabilities(self, o: Array) -> Array:
        """P(class c | x) for c = 0..C−1, shape (…, C) (classifiers only)."""
        raise ValueError(f"head='{self.name}' predicts values, not class probabilities")

    def correct(self, o: Array, Y: Array) -> Array:
        """Per-sample 1/0: whether the prediction from o matches the encoded target Y."""
        return jnp.zeros(o.shape[:-1], o.dtype)

    def random_targets(self, key: Array, shape: tuple[int, ...], K: int, dtype) -> Array:
        """Random labels of the form :meth:`encode` accepts, one per entry of ``shape``."""
        return jax.random.normal(key, (*shape, K), dtype)


@dataclasses.dataclass(frozen=True)
class Logistic(Head):
    """Binary classification with labels ±1 and one logit: P(y | x) = σ(y·o)."""

    classifier = True

    def check_width(self, K, name="K"):
        if K != 1:
            raise ValueError(f"head='logistic' needs K=1 output, but {name}={K}")

    def nearest_width(self, K):
        return 1

    def width_for(self, n_classes, where="the data", called="head='{}'"):
        if n_classes != 2:
            raise ValueError(
                f"{called.format(self.name)} needs 2 classes, but {where} has {n_classes}; "
                "use softmax"
            )
        return 1

    def encode(self, y, K, *, compact, name, dtype):
        return super().encode(y, 1, compact=compact, name=name, dtype=dtype)

    def check_labels(self, values, K, name):
        bad = values[(values != 1) & (values != -1)]
        if bad.size:
            first = bad.flat[0].item()
            raise ValueError(
                f"{name} must hold labels +1 or -1 for head='logistic', found {first!r}"
                + (" (0/1 labels? map them with 2*y - 1)" if first == 0 else "")
            )

    def labels_from_classes(self, ids):
        return 2 * np.asarray(ids) - 1  # class 0 → −1, class 1 → +1

    def predict(self, o):
        return jnp.where(o[..., 0] >= 0, 1, -1)  # sign(o), with sign(0) = +1

    def classes(self, o):
        return (o[..., 0] >= 0).astype(jnp.int32)

    def probabilities(self, o):
        p = jax.nn.sigmoid(o)  # P(+1 | x) = σ(o)
        return jnp.concatenate([1 - p, p], axis=-1)

    def correct(self, o, Y):
        return (jnp.where(o[..., 0] >= 0, 1.0, -1.0) == Y[..., 0]).astype(o.dtype)

    def random_targets(self, key, shape, K, dtype):
        return jnp.where(jax.random.bernoulli(key, shape=shape), 1, -1).astype(dtype)


@dataclasses.dataclass(frozen=True)
class Softmax(Head):
    """Classification into K ≥ 2 classes: one-hot rows or integer class ids."""

    classifier = True

    def check_width(self, K, name="K"):
        if K < 2:
            raise ValueError(f"head='softmax' needs K>=2 outputs, but {name}={K}")

    def nearest_width(self, K):
        return max(K, 2)

    def width_for(self, n_classes, where="the data", called="head='{}'"):
        return n_classes

    def encode(self, y, K, *, compact, name, dtype):
        if not compact:
            return y.astype(dtype)
        if not jnp.issubdtype(y.dtype, jnp.integer):
            raise TypeError(
                f"{name} of shape {y.shape} must hold integer class ids for head='softmax', "
                f"got dtype {y.dtype} (or pass one-hot rows of shape {(*y.shape, K)})"
            )
        return jax.nn.one_hot(y, K, dtype=dtype)

    def check_labels(self, values, K, name):
        if jnp.issubdtype(values.dtype, jnp.integer):
            low, high = values.min(), values.max()
            if low < 0 or high >= K:
                bad = low if low < 0 else high
                raise ValueError(
                    f"{name} holds class id {bad}, but the softmax head has K={K} classes"
                )

    def check_rows(self, rows, name):
        bad_rows = (rows < 0).any(-1) | ~np.isclose(rows.sum(-1), 1, atol=1e-6)
        if bad_rows.any():
            bad = int(np.argmax(bad_rows))
            raise ValueError(
                f"{name} row {bad} is not a one-hot (or probability) row summing to 1: "
                f"{rows[bad].tolist()}"
            )

    def labels_from_classes(self, ids):
        return np.asarray(ids)

    def predict(self, o):
        return jnp.argmax(o, -1)

    def classes(self, o):
        return jnp.argmax(o, -1)

    def probabilities(self, o):
        return jax.nn.softmax(o, axis=-1)

    def correct(self, o, Y):
        return (jnp.argmax(o, -1) == jnp.argmax(Y, -1)).astype(o.dtype)

    def random_targets(self, key, shape, K, dtype):
        return jax.random.randint(key, shape, 0, K)


def squared(output: activations.Activation) -> Head:
    """The lecture's regression head with output map h = ``output`` (identity by default)."""

    def loss(o, y):
        """ℓ = ‖y − h(o)‖²."""
        return jnp.sum((y - output.fn(o)) ** 2, axis=-1)

    def delta(o, y):
        """δ = 2(h(o) − y) ⊙ h′(o)."""
        return 2 * (output.fn(o) - y) * output.grad(o)

    return Head("squared", output.fn, loss, delta, "ℓ = ‖y − f‖²", "δ = 2(h(Wz) − y) ⊙ h′(Wz)")


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


def _softmax(o):
    return jax.nn.softmax(o, axis=-1)


LOGISTIC = Logistic(
    "logistic", jax.nn.sigmoid, _logistic_loss, _logistic_delta,
    "ℓ = −log σ(y·Wz) = softplus(−y·Wz)", "δ = −y · σ(−y·Wz)",
)  # fmt: skip
SOFTMAX = Softmax(
    "softmax", _softmax, _softmax_loss, _softmax_delta,
    "ℓ = logsumexp(Wz) − yᵀWz", "δ = softmax(Wz) − y",
)  # fmt: skip

NAMES: tuple[str, ...] = names.HEADS


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
    fixed = {"logistic": LOGISTIC, "softmax": SOFTMAX}
    if name not in fixed:
        raise ValueError(f"unknown head {name!r}; expected one of {', '.join(NAMES)}")
    if output is not None and not fixed[name].takes_output_map:
        raise ValueError(
            f"output={output!r} was given, but the {name} head's output map is fixed; "
            "output= applies to head='squared' only"
        )
    return fixed[name]


def for_task(
    requested: str | None, n_classes: int | None, where: str = "the data",
    called: str = "head='{}'",
) -> str:  # fmt: skip
    """The head name for a data set: the requested one if it fits, else the default.

    ``n_classes`` is None for regression (default ``squared``), C for classes
    (default ``softmax``). Raises ``ValueError`` naming ``where`` when they do not fit.
    """
    if n_classes is None:
        if requested is not None and get(requested).classifier:
            raise ValueError(
                f"{called.format(requested)} is for classes, but {where} is a regression problem"
            )
        return "squared"
    head = get(requested or "softmax")
    head.width_for(n_classes, where, called)
    return head.name
