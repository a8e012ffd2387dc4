"""The :class:`Dataset` type, :class:`DataError`, the train/test split and the scaler.

Every loader ends in :func:`make_dataset`: split (stratified for classification),
then standardise with a mean and std fitted on the train part only,

    X ← (X − mean_train) / std_train      (constant features: std taken as 1, so they become 0)

The argument checks that the generators and the file readers share live here too.
scikit-learn is imported only when a split is made, so importing this module is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

MIN_SAMPLES = 4
TEST_FRACTION = 0.2


class DataError(ValueError):
    """A data problem a user can fix (missing file, bad column...). Message says what and where."""


class Dataset(NamedTuple):
    """A train/test split with standardised inputs and head-ready labels.

    Fields:
        name: the data set's name (for files, the file name without extension).
        X_train, X_test: float32 (n, d), standardised with the train part's scaler.
        y_train, y_test: classification: int64 class ids (n,) in 0..C−1;
            regression: float32 (n,) or (n, K).
        task: ``"classification"`` or ``"regression"``.
        n_classes: C for classification, ``None`` for regression.
        target: for 1-D regression, the noiseless g (acting on raw, unstandardised x).
        scaler: (mean, std), float32 (d,): ``X = (x − mean) / std``.
        classes: the original label of each class id (sorted), ``None`` for regression.
        w_train, w_test: sample weights (n,) of the two parts (a CSV's weight column), or None.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    task: str
    n_classes: int | None
    target: Callable[[np.ndarray], np.ndarray] | None = None
    scaler: tuple[np.ndarray, np.ndarray] | None = None
    classes: np.ndarray | None = None
    w_train: np.ndarray | None = None
    w_test: np.ndarray | None = None

    @property
    def d(self) -> int:
        """The number of input features d."""
        return self.X_train.shape[1]

    @property
    def n_outputs(self) -> int:
        """The output size K a network needs: C for classification, else y's width."""
        if self.task == "classification":
            return self.n_classes
        return 1 if self.y_train.ndim == 1 else self.y_train.shape[1]

    def transform(self, x) -> np.ndarray:
        """Raw inputs x (n, d) standardised as the training inputs were, as float32."""
        return standardise(np.asarray(x, dtype=np.float32), self.scaler)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, n_train={len(self.X_train)}, "
            f"n_test={len(self.X_test)}, d={self.d}, n_outputs={self.n_outputs})"
        )


# ---------------------------------------------------------------------------
# Shared checks


def as_key(key) -> jax.Array:
    """A JAX PRNG key; an int is taken as a seed, ``jax.random.key(seed)``."""
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return jax.random.key(key)
    return key


def check_n(n, minimum: int = MIN_SAMPLES) -> None:
    """DataError unless ``n`` (a number of samples) is an integer >= ``minimum``."""
    if not isinstance(n, int) or isinstance(n, bool) or n < minimum:
        raise DataError(f"n must be an integer >= {minimum} (number of samples), got {n!r}")


def check_nonnegative(**values: float) -> None:
    """DataError naming the first keyword argument that is not >= 0 (NaN included)."""
    for name, value in values.items():
        if not value >= 0:
            raise DataError(f"{name} must be >= 0, got {value!r}")


def split_seed(key) -> int:
    """An integer seed for the train/test split, drawn from a JAX key."""
    return int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max))


# ---------------------------------------------------------------------------
# Split and standardise


def fit_scaler(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (mean, std) of the columns of X, float32 (d,); std is 1 for constant columns.

    A constant column gets mean = its value and std = 1, so it standardises to
    exactly 0 with no division by zero.
    """
    X = np.asarray(X, dtype=np.float64)
    constant = X.max(axis=0) == X.min(axis=0)
    mean = np.where(constant, X[0], X.mean(axis=0))
    std = np.where(constant, 1.0, X.std(axis=0))
    return mean.astype(np.float32), std.astype(np.float32)


def standardise(X, scaler, dtype=np.float32) -> np.ndarray:
    """X standardised with ``scaler = (mean, std)``: ``(X − mean) / std`` as ``dtype``.

    ``scaler=None`` leaves the values as they are. The one forward scaler: the data
    sets, :meth:`Dataset.transform` and a run's ``standardise`` call it.
    """
    if scaler is None:
        return np.asarray(X).astype(dtype)
    mean, std = scaler
    return ((X - mean) / std).astype(dtype)


def unstandardise(X, scaler):
    """Standardised X back in raw units, ``X · std + mean`` (X itself for ``scaler=None``)."""
    if scaler is None:
        return X
    mean, std = scaler
    return X * std + mean


def _split(X, y, classification: bool, seed: int, test_fraction: float):
    """Return (X_train, X_test, y_train, y_test): stratified when every class allows it."""
    n = len(X)
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    n_test = math.ceil(test_fraction * n)
    if n - n_test < 1:
        raise DataError(f"test_fraction={test_fraction} leaves no training samples out of n={n}")
    stratify = None
    if classification:
        counts = np.bincount(y)
        if counts.min() >= 2 and min(n_test, n - n_test) >= len(counts):
            stratify = y
    from sklearn.model_selection import train_test_split  # lazy: slow to import

    return train_test_split(
        X, y, test_size=n_test, random_state=seed, shuffle=True, stratify=stratify
    )


def make_dataset(
    name: str,
    X,
    y,
    *,
    n_classes: int | None,
    seed: int = 0,
    test_fraction: float = TEST_FRACTION,
    target: Callable | None = None,
    classes: np.ndarray | None = None,
    split: tuple[np.ndarray, np.ndarray] | None = None,
    weights: np.ndarray | None = None,
) -> Dataset:
    """Return a :class:`Dataset` from raw inputs X (n, d) and labels y: split, then standardise.

    ``n_classes`` not ``None`` means classification with class ids y in 0..C−1.
    The split is fixed by ``seed`` (and stratified for classification), or given
    as row indices ``split=(train_index, test_index)``; the scaler is fitted on
    the train part and applied to both parts. ``weights`` (n,), the samples' weights, are
    split with their rows (``w_train``, ``w_test``).
    """
    X = np.asarray(X, dtype=np.float64)
    if weights is not None:  # a last column of X while splitting: the weights keep their rows
        X = np.column_stack([X, np.asarray(weights, np.float64)])
    if len(X) < MIN_SAMPLES:
        raise DataError(f"{name}: needs at least {MIN_SAMPLES} samples, got {len(X)}")
    classification = n_classes is not None
    y = np.asarray(y, dtype=np.int64 if classification else np.float32)
    if split is None:
        X_train, X_test, y_train, y_test = _split(X, y, classification, seed, test_fraction)
    else:
        train_index, test_index = split
        X_train, X_test, y_train, y_test = (
            X[train_index],
            X[test_index],
            y[train_index],
            y[test_index],
        )
    w_train = w_test = None
    if weights is not None:
        w_train, w_test = X_train[:, -1], X_test[:, -1]
        X_train, X_test = X_train[:, :-1], X_test[:, :-1]
    scaler = fit_scaler(X_train)

    def scale(A):
        return standardise(A, scaler)

    if classification and classes is None:
        classes = np.arange(n_classes)
    return Dataset(
        name=name,
        X_train=scale(X_train),
        y_train=y_train,
        X_test=scale(X_test),
        y_test=y_test,
        task="classification" if classification else "regression",
        n_classes=n_classes,
        target=target,
        scaler=scaler,
        classes=classes,
        w_train=w_train,
        w_test=w_test,
    )
