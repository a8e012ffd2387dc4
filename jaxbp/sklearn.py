"""scikit-learn estimators on the hand-written BP: :class:`BPClassifier`, :class:`BPRegressor`.

Thin estimators over :func:`jaxbp.init`, :func:`jaxbp.fit`, :func:`jaxbp.evaluate` and
the predictions of ``jaxbp.evaluation``: they convert scikit-learn's inputs (arrays,
DataFrames, string labels, sample and class weights), call the library, and keep what it
returns in attributes ending in ``_``. The network is f(x) = h(W σ(Vx + b) + c), trained
on the weighted loss L(θ) = Σᵢ sᵢ ℓᵢ(θ) / Σᵢ sᵢ, whose gradient the matrix-form BP
computes with Δ's rows sᵢ δᵢ / Σ s.

This module is imported only explicitly (``from jaxbp.sklearn import BPClassifier``);
``import jaxbp`` never imports scikit-learn.

Example:
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from jaxbp.sklearn import BPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(StandardScaler(), BPClassifier(hidden=16, epochs=50,
    ...                     learning_rate=1e-2, random_state=0)).fit(X, y)
    >>> clf.score(X, y) > 0.9
    True
"""

from __future__ import annotations

import functools
import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import optax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

import jaxbp
from jaxbp import model, optimizers
from jaxbp.evaluation import class_probabilities, predict_classes
from jaxbp.validate import check_positive_int, check_real, check_sample_weight

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)


__all__ = ["BPClassifier", "BPRegressor"]

# Checks of scikit-learn's ``check_estimator`` that these estimators are expected to fail,
# with the reason (``expected_failed_checks`` of ``parametrize_with_checks``).
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "minibatch SGD: a weight k is one sample counted k times within its minibatch, while k "
        "copies spread over several minibatches and shuffles (the full-batch gradient is the "
        "same; tests/test_sample_weight.py checks it)"
    ),
}


@functools.lru_cache(maxsize=64)
def _optimizer(name: str, learning_rate, weight_decay: float) -> optax.GradientTransformation:
    """``jaxbp.optimizers.make``, one object per configuration: ``jaxbp.fit`` caches its
    compiled epoch by optimizer object, so repeated fits (cross-validation, grid search,
    scikit-learn's checks) reuse the compilation instead of compiling again."""
    return optimizers.make(name, learning_rate, weight_decay=weight_decay)


@functools.partial(jax.jit, static_argnums=0)
def _logits(net, params, X):
    return model.logits(net, params, X)


def _in_float64(fn, net, params, X) -> np.ndarray:
    """``fn(net, θ, X)`` with θ and X cast to float64 (64-bit mode on for the call).

    Predictions in float32 depend on the batch they are computed in (XLA picks its matrix
    product kernels by shape), by a few units in the 7th digit; in float64 a sample's
    prediction is the same alone, in a subset or in another order (scikit-learn's
    invariance checks).
    """
    with jax.enable_x64(True):
        params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        return np.asarray(fn(net, params, jnp.asarray(X, jnp.float64)))


def _float_dtype():
    """float64 when JAX's 64-bit mode is on, else float32: the dtype of θ."""
    return jax.dtypes.canonicalize_dtype(np.float64)


class _BPBase(BaseEstimator):
    """What both estimators share: parameters, the network, ``fit`` and ``partial_fit``."""

    def _check_params(self):
        for name in ("hidden", "epochs", "n_iter_no_change"):
            check_positive_int(getattr(self, name), name)
        check_positive_int(self.batch_size, "batch_size", none_ok=True)
        if not isinstance(self.optimizer, str | optax.GradientTransformation):
            raise TypeError(
                f"optimizer must be a name ({', '.join(optimizers.OPTIMIZERS)}) or an optax "
                f"GradientTransformation, got {type(self.optimizer).__name__}"
            )

    def _optimizer_and_decay(self):
        """(optimizer, weight decay left for ``fit``): names are built once and cached."""
        if isinstance(self.optimizer, str):
            lr = self.learning_rate
            if not callable(lr):  # a schedule μ_k may be given; a number must be > 0
                lr = check_real(lr, "learning_rate", low=0.0, low_ok=False)
            decay = optimizers.check_weight_decay(self.weight_decay)
            try:
                return _optimizer(self.optimizer, lr, decay), 0.0
            except TypeError:  # an unhashable schedule: built each time (compiled each time)
                return optimizers.make(self.optimizer, lr, weight_decay=decay), 0.0
        return self.optimizer, self.weight_decay

    def _net(self, head: str, output: str | None = None) -> jaxbp.Net:
        return jaxbp.Net(activation=self.activation, head=head, output=output)

    def _train(self, X, Y, s, *, epochs: int, incremental: bool):
        """Run ``jaxbp.fit`` (from scratch, or one more epoch from the fitted state)."""
        optimizer, weight_decay = self._optimizer_and_decay()
        early = self.early_stopping and not incremental
        state = None
        if incremental:
            state = jaxbp.TrainState(self.params_, self.opt_state_, self.n_iter_, self.history_)
        result = jaxbp.fit(
            self.net_, self.params_, X, Y, optimizer=optimizer, epochs=epochs,
            batch_size=self.batch_size, key=jax.random.key(self._seed), grad=self.grad,
            validation_fraction=self.validation_fraction if early else None,
            early_stopping=self.n_iter_no_change if early else None,
            weight_decay=weight_decay, progress=bool(self.verbose), state=state,
            sample_weight=s,
        )  # fmt: skip
        self.params_, self.opt_state_ = result.params, result.opt_state
        self.history_, self.n_iter_, self.status_ = result.history, result.epoch, result.status
        self.loss_curve_ = list(result.history["loss"])
        val = result.history["val_loss"]
        self.validation_scores_ = None if not val or val[0] is None else self._scores(result)
        self.best_loss_ = min(self.loss_curve_) if self.loss_curve_ else None
        if result.status == "diverged":
            warnings.warn(
                f"{type(self).__name__}: training diverged (the loss became NaN or inf); "
                f"params_ are the last finite ones, after {result.epoch} epochs. "
                "Try a smaller learning_rate or scaled inputs.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _init_params(self, d: int, out: int):
        self._seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        self.params_ = jaxbp.init(
            self.net_, jax.random.key(self._seed), d=d, hidden=int(self.hidden), out=out,
            bias=self.bias, dtype=_float_dtype(),
        )  # fmt: skip
        self.opt_state_, self.n_iter_, self.history_ = None, 0, None

    def _X(self, X, reset: bool):
        return validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])

    def _weights(self, sample_weight, X, per_class=None):
        """Sample weights s (n,) times class weights, or None when they are all equal.

        Equal weights do not change L(θ) = Σ sᵢℓᵢ / Σ sᵢ, so they are dropped: a fit with
        ``sample_weight=np.ones(n)`` is the unweighted fit, bit for bit.
        """
        s = None
        if sample_weight is not None:
            if isinstance(sample_weight, numbers.Real):  # one weight for every sample
                sample_weight = np.full(X.shape[0], float(sample_weight))
            # jaxbp's checks first (shape, NaN, < 0, all 0: messages naming sample_weight)
            check_sample_weight(np.asarray(sample_weight), X.shape[0], _float_dtype())
            s = np.asarray(_check_sample_weight(sample_weight, X, dtype=np.float64))
        if per_class is not None:
            s = per_class if s is None else s * per_class
        if s is not None and not (s > 0).any():
            raise ValueError(
                "sample_weight (with class_weight) is all zero: every sample would weigh 0"
            )
        if s is not None and np.all(s == s[0]):
            return None
        return s

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class BPClassifier(ClassifierMixin, _BPBase):
    """A two-layer network f(x) = h(W σ(Vx + b) + c) trained by jaxbp's hand-written BP.

    The scikit-learn estimator for classification, like ``MLPClassifier`` with one hidden
    layer. Binary problems use the logistic head (one output, P(classes_[1] | x) = σ(o))
    unless ``head="softmax"``; more classes use the softmax head.

    Args:
        hidden: M, the number of hidden units (``hidden_layer_sizes=(M,)``).
        activation: σ, any of ``jaxbp.activations.NAMES`` (relu, tanh, sigmoid, ...).
        head: ``"auto"`` (logistic for 2 classes, softmax otherwise) or ``"softmax"``.
        optimizer: a name (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw) or an
            optax ``GradientTransformation`` (then ``learning_rate`` is not used).
        learning_rate: μ of the named optimizer (``learning_rate_init``).
        batch_size: minibatch size (capped at n); None for full-batch steps.
        epochs: passes over the data (``max_iter``; every epoch is run, no ``tol``).
        early_stopping: hold out ``validation_fraction`` and stop when the validation loss
            has not improved for ``n_iter_no_change`` epochs, restoring the best θ.
        validation_fraction, n_iter_no_change: see ``early_stopping``.
        weight_decay: λ of the L2 penalty (λ/2)(‖V‖² + ‖W‖²) (an optax link; ``alpha``).
        bias: whether the network has the offsets b, c (``MLPClassifier`` always has).
        grad: ``"matrix"`` (hand-written BP), ``"vmap"`` or ``"autodiff"`` (``jax.grad``).
        class_weight: None, ``"balanced"`` or a dict {label: weight}; multiplies
            ``sample_weight`` in the loss Σ sᵢℓᵢ / Σ sᵢ.
        random_state: seed of the initialisation and the shuffles (int, RandomState, None).
        verbose: show a progress bar.

    Attributes:
        classes_, n_features_in_, feature_names_in_ (from a DataFrame), loss_curve_ (the
        training loss per epoch), validation_scores_ (validation accuracy per epoch with
        early stopping, else None), n_iter_ (epochs run), best_loss_, params_ (the jaxbp
        ``Params``), net_ (the ``jaxbp.Net``), opt_state_, history_ (``FitResult.history``),
        status_.
    """

    def __init__(
        self,
        hidden=100,
        activation="relu",
        head="auto",
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=200,
        epochs=200,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        weight_decay=0.0,
        bias=True,
        grad="matrix",
        class_weight=None,
        random_state=None,
        verbose=False,
    ):
        self.hidden = hidden
        self.activation = activation
        self.head = head
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.weight_decay = weight_decay
        self.bias = bias
        self.grad = grad
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y, sample_weight=None):
        """Train from a fresh initialisation on (X, y) for ``epochs`` epochs."""
        self._check_params()
        X, y = validate_data(self, X, y, reset=True, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, ids = np.unique(y, return_inverse=True)
        return self._fit_ids(X, ids, sample_weight, epochs=self.epochs, incremental=False)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch on (X, y), continuing θ and the optimizer state of earlier calls.

        ``classes`` (all the labels) is required on the first call, as in scikit-learn.
        """
        first = not hasattr(self, "params_")
        self._check_params()
        X, y = validate_data(self, X, y, reset=first, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        if first:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit")
            self.classes_ = np.unique(np.asarray(classes))
        elif classes is not None and not np.array_equal(self.classes_, np.unique(classes)):
            raise ValueError(
                f"classes={classes!r} differs from the classes of the first partial_fit call, "
                f"{self.classes_.tolist()}"
            )
        unknown = np.setdiff1d(y, self.classes_)
        if unknown.size:
            raise ValueError(
                f"y holds labels {unknown.tolist()[:5]} that are not in classes "
                f"{self.classes_.tolist()}"
            )
        ids = np.searchsorted(self.classes_, y)
        return self._fit_ids(X, ids, sample_weight, epochs=1, incremental=not first)

    def _fit_ids(self, X, ids, sample_weight, *, epochs: int, incremental: bool):
        C = len(self.classes_)
        if C < 2:
            raise ValueError(
                f"BPClassifier needs samples of at least 2 classes, got 1 class: "
                f"{self.classes_.tolist()}"
            )
        per_class = None
        if self.class_weight is not None:
            weights = compute_class_weight(
                self.class_weight, classes=self.classes_, y=self.classes_[ids]
            )
            weights = np.asarray(weights, np.float64)
            if not (np.isfinite(weights).all() and (weights >= 0).all()):
                raise ValueError(
                    f"class_weight must give finite weights >= 0, got {weights.tolist()} for "
                    f"classes {self.classes_.tolist()}"
                )
            per_class = weights[ids]
        s = self._weights(sample_weight, X, per_class)
        if s is not None and np.unique(ids[s > 0]).size < 2 and not incremental:
            raise ValueError(
                "sample_weight (with class_weight) is positive on samples of only one class; "
                "a classifier needs at least 2 classes"
            )
        if not incremental:
            if self.head not in ("auto", "softmax"):
                raise ValueError(f"head must be 'auto' or 'softmax', got {self.head!r}")
            head = "logistic" if self.head == "auto" and C == 2 else "softmax"
            self.net_ = self._net(head)
            self._init_params(X.shape[1], self.net_.loss_head.width_for(C))
        Y = self.net_.loss_head.labels_from_classes(ids)
        return self._train(X, Y, s, epochs=epochs, incremental=incremental)

    def _scores(self, result):
        return list(result.history["val_accuracy"])

    def decision_function(self, X):
        """The logits o = W σ(Vx + b) + c: (n,) for two classes (positive → classes_[1])."""
        check_is_fitted(self)
        o = _in_float64(_logits, self.net_, self.params_, self._X(X, False))
        if len(self.classes_) == 2:
            return o[:, 0] if o.shape[1] == 1 else o[:, 1] - o[:, 0]
        return o

    def predict(self, X):
        """The predicted labels (from ``classes_``)."""
        check_is_fitted(self)
        ids = _in_float64(predict_classes, self.net_, self.params_, self._X(X, False))
        return self.classes_[ids]

    def predict_proba(self, X):
        """P(class | x), shape (n, len(classes_)), columns in the order of ``classes_``."""
        check_is_fitted(self)
        return _in_float64(class_probabilities, self.net_, self.params_, self._X(X, False))

    def predict_log_proba(self, X):
        """log P(class | x)."""
        return np.log(self.predict_proba(X))


class BPRegressor(RegressorMixin, _BPBase):
    """A two-layer network f(x) = h(W σ(Vx + b) + c) with the squared head, trained by BP.

    The scikit-learn estimator for regression, like ``MLPRegressor`` with one hidden layer;
    y may be (n,) or (n, K) (several outputs). The loss is ℓ = ‖y − f(x)‖² (no ½). The
    parameters are those of :class:`BPClassifier` without ``head`` and ``class_weight``,
    plus ``output``: the output map h (an activation name; identity when None).

    Attributes:
        n_features_in_, feature_names_in_, loss_curve_, validation_scores_ (minus the
        validation loss per epoch with early stopping, so higher is better; else None),
        n_iter_, best_loss_, params_, net_, opt_state_, history_, status_.
    """

    def __init__(
        self,
        hidden=100,
        activation="relu",
        output=None,
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=200,
        epochs=200,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        weight_decay=0.0,
        bias=True,
        grad="matrix",
        random_state=None,
        verbose=False,
    ):
        self.hidden = hidden
        self.activation = activation
        self.output = output
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.weight_decay = weight_decay
        self.bias = bias
        self.grad = grad
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y, sample_weight=None):
        """Train from a fresh initialisation on (X, y) for ``epochs`` epochs."""
        return self._fit(X, y, sample_weight, epochs=self.epochs, first=True)

    def partial_fit(self, X, y, sample_weight=None):
        """One epoch on (X, y), continuing θ and the optimizer state of earlier calls."""
        return self._fit(X, y, sample_weight, epochs=1, first=not hasattr(self, "params_"))

    def _fit(self, X, y, sample_weight, *, epochs: int, first: bool):
        self._check_params()
        X, y = validate_data(
            self, X, y, reset=first, dtype=[np.float64, np.float32], multi_output=True,
            y_numeric=True,
        )  # fmt: skip
        Y = np.asarray(y, np.float64)
        Y = Y[:, None] if Y.ndim == 1 else Y
        if first:
            self._y_1d = np.ndim(y) == 1
            self.net_ = self._net("squared", self.output)
            self._init_params(X.shape[1], Y.shape[1])
        elif Y.shape[1] != self.params_.W.shape[0]:
            raise ValueError(
                f"y has {Y.shape[1]} outputs but the fitted network has {self.params_.W.shape[0]}"
            )
        s = self._weights(sample_weight, X)
        return self._train(X, Y, s, epochs=epochs, incremental=not first)

    def _scores(self, result):
        return [-v for v in result.history["val_loss"]]

    def predict(self, X):
        """f(X): (n,) when fitted on a 1-D y, else (n, K)."""
        check_is_fitted(self)
        f = _in_float64(jaxbp.predict, self.net_, self.params_, self._X(X, False))
        return f[:, 0] if self._y_1d else f

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
