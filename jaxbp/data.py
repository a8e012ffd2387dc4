"""Data sets: the embedded digits, synthetic problems drawn with ``jax.random``, and user files.

Every loader returns a :class:`Dataset`: a fixed train/test split (stratified for
classification) whose inputs are standardised with a mean and std fitted on the
train part only,

    X ← (X − mean_train) / std_train      (constant features: std taken as 1, so they become 0)

and labels ready for a head: class ids 0..C−1 (int64) for ``softmax``, floats (n,)
or (n, K) for ``squared``. The scaler is kept, so new inputs are transformed the
same way (:meth:`Dataset.transform`).

Sources:

- ``digits``: scikit-learn's bundled 8×8 digits (1797 × 64, 10 classes, no download).
- ``moons``, ``circles``, ``spirals``, ``xor``, ``blobs``: 2-D classification.
- ``sine`` (and any g via :func:`regression_1d`): 1-D regression y = g(x) + noise.
- ``teacher``: regression on the outputs of a random two-layer teacher network.
- :func:`from_csv`, :func:`from_npz`: your own data; :func:`load` picks by name or path.

Problems a user can fix (missing file, unknown column, non-numeric cell, a single
class...) raise :class:`DataError`, whose message says what was expected and where.

Example:
    >>> import jax
    >>> from jaxbp import data
    >>> ds = data.moons(jax.random.key(0), n=100)
    >>> ds.X_train.shape, ds.y_train.shape, ds.n_classes
    ((80, 2), (80,), 2)
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from jaxbp.model import Net, forward
from jaxbp.params import Params, init

MIN_SAMPLES = 4
TEST_FRACTION = 0.2
MAX_CLASSES = 20  # task inference: at most this many distinct integer labels means classes


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
        x = np.asarray(x, dtype=np.float32)
        if self.scaler is None:
            return x
        mean, std = self.scaler
        return ((x - mean) / std).astype(np.float32)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, task={self.task!r}, n_train={len(self.X_train)}, "
            f"n_test={len(self.X_test)}, d={self.d}, n_outputs={self.n_outputs})"
        )


SYNTHETIC = ("moons", "circles", "spirals", "xor", "blobs", "sine", "teacher")
NAMES = ("digits", *SYNTHETIC)


# ---------------------------------------------------------------------------
# Split and standardise


def _as_key(key) -> jax.Array:
    """A JAX PRNG key; an int is taken as a seed, ``jax.random.key(seed)``."""
    if isinstance(key, int | np.integer) and not isinstance(key, bool):
        return jax.random.key(key)
    return key


def _check_n(n, minimum: int = MIN_SAMPLES) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < minimum:
        raise DataError(f"n must be an integer >= {minimum} (number of samples), got {n!r}")


def _check_nonnegative(**values: float) -> None:
    for name, value in values.items():
        if not value >= 0:
            raise DataError(f"{name} must be >= 0, got {value!r}")


def _seed(key) -> int:
    """An integer seed for the train/test split, drawn from a JAX key."""
    return int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max))


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
) -> Dataset:
    """Return a :class:`Dataset` from raw inputs X (n, d) and labels y: split, then standardise.

    ``n_classes`` not ``None`` means classification with class ids y in 0..C−1.
    The split is fixed by ``seed`` (and stratified for classification); the scaler
    is fitted on the train part and applied to both parts.
    """
    X = np.asarray(X, dtype=np.float64)
    if len(X) < MIN_SAMPLES:
        raise DataError(f"{name}: needs at least {MIN_SAMPLES} samples, got {len(X)}")
    classification = n_classes is not None
    y = np.asarray(y, dtype=np.int64 if classification else np.float32)
    X_train, X_test, y_train, y_test = _split(X, y, classification, seed, test_fraction)
    mean, std = fit_scaler(X_train)

    def scale(A):
        return ((A - mean) / std).astype(np.float32)

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
        scaler=(mean, std),
        classes=classes,
    )


# ---------------------------------------------------------------------------
# Embedded


def digits(test_fraction: float = TEST_FRACTION) -> Dataset:
    """Return scikit-learn's 8×8 handwritten digits: 1797 samples, 64 features, 10 classes.

    Bundled with scikit-learn (no download). The split is fixed (stratified,
    ``random_state=0``), so two calls return identical arrays.
    """
    bunch = load_digits()
    return make_dataset(
        "digits", bunch.data, bunch.target, n_classes=10, seed=0, test_fraction=test_fraction
    )


# ---------------------------------------------------------------------------
# Synthetic data. Randomness comes from jax.random, drawn in the same few shapes for
# every generator (one compilation each, shared), and is shaped into data with NumPy.


def _draw(key, n: int, width: int = 2) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (u, z, seed): u ~ U[0, 1) and z ~ N(0, 1), both (n, width), and a split seed."""
    k_u, k_z, k_split = jax.random.split(_as_key(key), 3)
    u = np.asarray(jax.random.uniform(k_u, (n, width)), dtype=np.float64)
    z = np.asarray(jax.random.normal(k_z, (n, width)), dtype=np.float64)
    return u, z, _seed(k_split)


def _balanced_labels(n: int, C: int) -> np.ndarray:
    """Class ids arange(n) % C: every class gets n // C or n // C + 1 samples."""
    return np.arange(n) % C


def _polar(r, angle) -> np.ndarray:
    """Points (n, 2) at radius r and angle (radians)."""
    return np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)


def moons(key, n: int = 1000, noise: float = 0.1) -> Dataset:
    """Return two interleaved half circles in 2-D, classes 0 (upper) and 1 (lower).

    Class 0: (cos t, sin t); class 1: (1 − cos t, 1/2 − sin t), t ~ U[0, π], plus
    Gaussian noise of std ``noise``.
    """
    _check_n(n)
    _check_nonnegative(noise=noise)
    u, z, seed = _draw(key, n)
    y = _balanced_labels(n, 2)
    upper = _polar(1.0, np.pi * u[:, 0])
    lower = np.array([1.0, 0.5]) - upper
    X = np.where(y[:, None] == 0, upper, lower) + noise * z
    return make_dataset("moons", X, y, n_classes=2, seed=seed)


def circles(key, n: int = 1000, noise: float = 0.05, factor: float = 0.5) -> Dataset:
    """Return two concentric circles in 2-D: class 0 radius 1, class 1 radius ``factor``.

    Angles ~ U[0, 2π); Gaussian noise of std ``noise``.
    """
    _check_n(n)
    _check_nonnegative(noise=noise)
    if not 0 < factor < 1:
        raise DataError(f"factor (inner radius) must be in (0, 1), got {factor!r}")
    u, z, seed = _draw(key, n)
    y = _balanced_labels(n, 2)
    X = _polar(np.where(y == 0, 1.0, factor), 2 * np.pi * u[:, 0]) + noise * z
    return make_dataset("circles", X, y, n_classes=2, seed=seed)


def spirals(key, n: int = 1000, noise: float = 0.2, turns: float = 1.5) -> Dataset:
    """Return two interleaved Archimedean spirals in 2-D, classes 0 and 1.

    Arm c: radius θ/π at angle θ + cπ, θ = 2π·turns·√u with u ~ U[0, 1] (about
    uniform along the arm), so neighbouring arms of the two classes lie 1 apart;
    Gaussian noise of std ``noise``.
    """
    _check_n(n)
    _check_nonnegative(noise=noise)
    if not turns > 0:
        raise DataError(f"turns must be > 0, got {turns!r}")
    u, z, seed = _draw(key, n)
    y = _balanced_labels(n, 2)
    theta = 2 * np.pi * turns * np.sqrt(u[:, 0])
    X = _polar(theta / np.pi, theta + np.pi * y) + noise * z
    return make_dataset("spirals", X, y, n_classes=2, seed=seed)


def xor(key, n: int = 1000, noise: float = 0.1) -> Dataset:
    """Return the XOR problem in 2-D: points in [−1, 1]², class 1 where the signs differ.

    Class 0 fills quadrants I and III, class 1 quadrants II and IV (before the
    Gaussian noise of std ``noise``, which blurs the axes).
    """
    _check_n(n)
    _check_nonnegative(noise=noise)
    u, z, seed = _draw(key, n)
    y = _balanced_labels(n, 2)
    x0 = 2 * u[:, 0] - 1  # U[−1, 1]
    x1 = np.abs(2 * u[:, 1] - 1) * np.where(x0 < 0, -1, 1) * (1 - 2 * y)  # y = 1: other sign
    X = np.stack([x0, x1], axis=1) + noise * z
    return make_dataset("xor", X, y, n_classes=2, seed=seed)


def blobs(key, n: int = 1000, centers: int = 3, std: float = 0.5) -> Dataset:
    """Return ``centers`` Gaussian blobs in 2-D, one class each.

    Centres lie evenly on a circle, adjacent ones 4 apart (radius 2 / sin(π/C));
    each blob is isotropic with standard deviation ``std``.
    """
    _check_n(n)
    _check_nonnegative(std=std)
    if not isinstance(centers, int) or isinstance(centers, bool) or not 2 <= centers <= n // 2:
        raise DataError(f"centers must be an integer in [2, n/2 = {n // 2}], got {centers!r}")
    _, z, seed = _draw(key, n)
    y = _balanced_labels(n, centers)
    means = _polar(2 / np.sin(np.pi / centers), 2 * np.pi * np.arange(centers) / centers)
    X = means[y] + std * z
    return make_dataset("blobs", X, y, n_classes=centers, seed=seed)


# ---------------------------------------------------------------------------
# Regression


def regression_1d(
    key,
    fn: Callable[[np.ndarray], np.ndarray],
    n: int = 512,
    low: float = -3,
    high: float = 3,
    noise: float = 0.05,
    name: str = "function",
) -> Dataset:
    """Return 1-D regression data y = g(x) + ε, x ~ U[low, high], ε ~ N(0, noise²).

    ``fn`` is g, applied elementwise to a NumPy array of raw x; it becomes
    ``Dataset.target`` (for plotting the noiseless curve: it takes raw, not
    standardised, inputs). Labels y have shape (n,).
    """
    _check_n(n)
    _check_nonnegative(noise=noise)
    if not low < high:
        raise DataError(f"need low < high, got low={low!r}, high={high!r}")
    u, z, seed = _draw(key, n)
    x = low + (high - low) * u[:, 0]
    g = np.asarray(fn(x), dtype=np.float64)
    if g.shape != x.shape:
        raise DataError(f"{name}: fn must map x of shape {x.shape} elementwise, returned {g.shape}")
    y = g + noise * z[:, 0]
    return make_dataset(name, x[:, None], y, n_classes=None, seed=seed, target=fn)


def sine(key, n: int = 512, noise: float = 0.05) -> Dataset:
    """Return y = sin(x) + ε on x ∈ [−3, 3] (see :func:`regression_1d`); target is ``np.sin``."""
    return regression_1d(key, np.sin, n=n, noise=noise, name="sine")


def teacher_net(
    key, d: int = 10, hidden: int = 16, out: int = 1, activation: str = "tanh"
) -> tuple[Net, Params]:
    """Return the (net, params) of the random two-layer teacher that :func:`teacher` uses.

    Called with the same ``key`` and sizes as :func:`teacher`, it returns that
    teacher: ``jaxbp.forward(net, params, ds.X_train)`` gives ``ds.y_train``
    (as (n, out); exactly when noise = 0).
    """
    net = Net(activation=activation, head="squared")
    return net, init(net, _as_key(key), d=d, hidden=hidden, out=out)


def teacher(
    key,
    n: int = 2000,
    d: int = 10,
    hidden: int = 16,
    out: int = 1,
    activation: str = "tanh",
    noise: float = 0.0,
) -> Dataset:
    """Return teacher–student regression data: x ~ N(0, I_d), y = f_teacher(x) + ε.

    The teacher is ``jaxbp.Net(activation, head="squared")`` with He-initialised
    θ = (V, W) of shapes (hidden, d) and (out, hidden), from :func:`teacher_net`
    with this ``key``. Labels are computed on the *standardised* inputs, so a
    student of the same architecture fits the data exactly when noise = 0.
    y has shape (n,) when out = 1, else (n, out).
    """
    _check_n(n)
    _check_nonnegative(noise=noise)
    key = _as_key(key)
    net, params = teacher_net(key, d=d, hidden=hidden, out=out, activation=activation)
    k_x, k_noise, k_split = jax.random.split(jax.random.fold_in(key, 1), 3)
    X = jax.random.normal(k_x, (n, d))
    ds = make_dataset("teacher", X, np.zeros(n), n_classes=None, seed=_seed(k_split))
    Y = np.asarray(forward(net, params, np.concatenate([ds.X_train, ds.X_test])))
    if noise:
        Y = Y + noise * np.asarray(jax.random.normal(k_noise, Y.shape))
    Y = (Y[:, 0] if out == 1 else Y).astype(np.float32)
    n_train = len(ds.X_train)
    return ds._replace(y_train=Y[:n_train], y_test=Y[n_train:])


# ---------------------------------------------------------------------------
# User data: labels, CSV, NPZ


def _encode_labels(y: np.ndarray, task: str | None, where: str):
    """Return (labels, task, n_classes, classes) for raw labels y (numbers or strings).

    Task inference (``task=None``): strings → classification; numbers → classification
    when integer-valued with at most 20 distinct values and fewer than n/2, else
    regression. Class labels map to ids 0..C−1 in sorted order.
    """
    if task not in (None, "classification", "regression"):
        raise DataError(f"task must be 'classification', 'regression' or None, got {task!r}")
    if y.dtype == bool:
        y = y.astype(np.int64)
    numeric = np.issubdtype(y.dtype, np.number)
    if numeric:
        y = y.astype(np.float64)
        integral = bool(np.all(y == np.round(y)))
    if task is None:
        if not numeric:
            task = "classification"
        else:
            distinct = len(np.unique(y))
            few = y.ndim == 1 and integral and distinct <= MAX_CLASSES and distinct < len(y) / 2
            task = "classification" if few else "regression"
    if task == "regression":
        if not numeric:
            raise DataError(
                f"{where}: regression needs numeric labels, got {y.dtype} values "
                f"such as {y.flat[0].item()!r}"
            )
        return y.astype(np.float32), task, None, None
    if y.ndim != 1:
        raise DataError(
            f"{where}: classification needs one label per sample, shape (n,); got {y.shape}"
        )
    if numeric and not integral:
        bad = y[y != np.round(y)][0]
        raise DataError(
            f"{where}: classification needs integer or string labels, found {bad.item()!r} "
            "(use task='regression' for real-valued targets)"
        )
    classes, ids = np.unique(y, return_inverse=True)
    if numeric:
        classes = classes.astype(np.int64)
    if len(classes) < 2:
        raise DataError(
            f"{where}: only one class ({classes[0].item()!r}) in the labels; "
            "classification needs at least 2"
        )
    return ids.astype(np.int64), task, len(classes), classes


def _existing(path) -> Path:
    """``path`` as a Path, or DataError if no such file."""
    path = Path(os.fspath(path))
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "not found"
        raise DataError(f"data file {str(path)!r} {what}")
    return path


def _as_number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _read_csv(path) -> tuple[Path, list[str], list[tuple[int, list[str]]]]:
    """Return (path, header, rows) of a CSV file: rows as (line number, stripped cells).

    Blank lines are skipped. The header is required and must name every column.
    """
    path = _existing(path)
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for cells in reader:
                cells = [c.strip() for c in cells]
                if any(cells):
                    rows.append((reader.line_num, cells))
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not a UTF-8 text (CSV) file ({err.reason})") from err
    except csv.Error as err:
        raise DataError(f"{path}: malformed CSV ({err})") from err
    if not rows:
        raise DataError(f"{path}: the file is empty; expected a header row and data rows")
    (_, header), rows = rows[0], rows[1:]
    if all(_as_number(c) is not None for c in header):
        raise DataError(
            f"{path}: the first row {','.join(header)!r} looks like data; "
            "a header row naming the columns is required"
        )
    for j, name in enumerate(header):
        if not name:
            raise DataError(f"{path}: header column {j + 1} has no name")
        if header.count(name) > 1:
            raise DataError(f"{path}: column name {name!r} appears more than once in the header")
    for line, cells in rows:
        if len(cells) != len(header):
            raise DataError(
                f"{path}, line {line}: {len(cells)} fields, but the header has {len(header)}"
            )
    return path, header, rows


def _missing_cell(cell: str) -> bool:
    value = _as_number(cell)
    return cell == "" or (value is not None and not math.isfinite(value))


def _csv_column(path: Path, rows, j: int, name: str, *, numeric: bool) -> np.ndarray:
    """Column j as float64 (``numeric``) or, if any cell is not a number, as strings.

    Raises DataError for an empty or NaN/inf cell, and (``numeric``) for a
    non-numeric one, naming the column, the line and the value.
    """
    cells = [cells[j] for _, cells in rows]
    for (line, _), cell in zip(rows, cells, strict=True):
        if _missing_cell(cell):
            shown = "an empty cell" if cell == "" else f"the value {cell!r}"
            raise DataError(
                f"{path}, line {line}: column {name!r} has {shown}; missing or non-finite "
                "values are not supported (remove or fill those rows)"
            )
    values = [_as_number(c) for c in cells]
    if all(v is not None for v in values):
        return np.array(values, dtype=np.float64)
    if numeric:
        line, cell = next(
            (line, c) for (line, _), c, v in zip(rows, cells, values, strict=True) if v is None
        )
        raise DataError(
            f"{path}, line {line}: feature column {name!r} must be numeric, found {cell!r}"
        )
    return np.array(cells, dtype=str)


def _names(columns: list[str]) -> str:
    """Column names for a message: 'a', 'b', 'c'."""
    return ", ".join(repr(c) for c in columns)


def csv_columns(path) -> list[str]:
    """Return the column names in the header row of a CSV file."""
    return _read_csv(path)[1]


def from_csv(
    path, target: str, *, task: str | None = None, test_fraction: float = TEST_FRACTION
) -> Dataset:
    """Return a :class:`Dataset` from a CSV file with a header row.

    The column named ``target`` holds the labels; every other column is a feature
    and must be numeric. With ``task=None`` the task is inferred: string labels, or
    integer labels with at most 20 distinct values (and fewer than n/2), mean
    classification (ids 0..C−1 in the sorted order of the labels, kept in
    ``Dataset.classes``); anything else is regression. The split is fixed
    (``random_state=0``, stratified for classification).

    Example:
        ``from_csv("iris.csv", target="species")``
    """
    path, header, rows = _read_csv(path)
    if target is None:
        raise DataError(
            f"{path}: name the label column with target= (--target COLUMN); "
            f"columns are: {_names(header)}"
        )
    if target not in header:
        raise DataError(f"{path}: no column named {target!r}; columns are: {_names(header)}")
    features = [name for name in header if name != target]
    if not features:
        raise DataError(f"{path}: only the target column {target!r}; no feature columns")
    if len(rows) < MIN_SAMPLES:
        raise DataError(f"{path}: needs at least {MIN_SAMPLES} data rows, got {len(rows)}")
    X = np.stack(
        [_csv_column(path, rows, header.index(c), c, numeric=True) for c in features], axis=1
    )
    raw = _csv_column(path, rows, header.index(target), target, numeric=False)
    y, task, n_classes, classes = _encode_labels(raw, task, f"{path}: target column {target!r}")
    return make_dataset(
        path.stem, X, y, n_classes=n_classes, seed=0, test_fraction=test_fraction, classes=classes
    )


def _first_bad(a: np.ndarray) -> str:
    """The index of the first non-finite entry of a, as text ``[i, j]``."""
    index = np.argwhere(~np.isfinite(a))[0]
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def _read_npz(path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Return (path, X, y) from a .npz file, loaded without pickle."""
    path = _existing(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: not a readable .npz file ({err})") from err
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single .npy array, not an .npz archive of arrays X and y")
    with archive:
        names = list(archive.files)
        for name in ("X", "y"):
            if name not in names:
                raise DataError(
                    f"{path}: no array named {name!r} (the file holds: "
                    f"{', '.join(names) or 'nothing'}); expected X (n, d) and y (n,)"
                )
        try:
            return path, archive["X"], archive["y"]
        except ValueError as err:  # object arrays need pickle
            raise DataError(
                f"{path}: holds object arrays, which need pickle ({err}); save X and y "
                "as numeric (or, for y, string) arrays"
            ) from err


def _npz_features(path: Path, X: np.ndarray) -> np.ndarray:
    """X of a .npz as float64 (n, d): numeric, finite; a 1-D X is one feature."""
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise DataError(f"{path}: X must have shape (n, d), got {X.shape}")
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == bool):
        raise DataError(
            f"{path}: X must be numeric, got dtype {X.dtype} (e.g. {X.flat[0].item()!r})"
        )
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise DataError(f"{path}: X{_first_bad(X)} is NaN or inf; missing values are not supported")
    return X


def read_features(path, *, drop: str | None = None) -> np.ndarray:
    """Raw (unstandardised) inputs X (n, d) for prediction, as float64.

    From a CSV with a header: every column except ``drop`` (e.g. the training
    target, when present). From a .npz: the array ``X`` (``y`` is not needed).
    """
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix == ".csv":
        path, header, rows = _read_csv(path)
        columns = [name for name in header if name != drop]
        if not rows or not columns:
            raise DataError(f"{path}: no feature rows or columns to predict on")
        return np.stack(
            [_csv_column(path, rows, header.index(c), c, numeric=True) for c in columns], axis=1
        )
    if suffix == ".npz":
        path = _existing(path)
        try:
            with np.load(path, allow_pickle=False) as archive:
                if "X" not in archive.files:
                    raise DataError(
                        f"{path}: no array named 'X' (holds: {', '.join(archive.files)})"
                    )
                X = archive["X"]
        except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as err:
            if isinstance(err, DataError):
                raise
            raise DataError(f"{path}: not a readable .npz file of numeric arrays ({err})") from err
        return _npz_features(path, X)
    raise DataError(f"input {os.fspath(path)!r}: expected a .csv or .npz file")


def from_npz(path, *, task: str | None = None, test_fraction: float = TEST_FRACTION) -> Dataset:
    """Return a :class:`Dataset` from a .npz file holding arrays ``X`` (n, d) and ``y``.

    ``y`` is (n,) (class labels, numbers or strings, or real targets) or (n, K)
    (regression). A 1-D ``X`` is read as one feature. Task inference, label
    mapping and split are those of :func:`from_csv`.

    Example:
        ``np.savez("data.npz", X=X, y=y); from_npz("data.npz")``
    """
    path, X, y = _read_npz(path)
    X = _npz_features(path, X)
    if y.ndim == 0 or y.ndim > 2:
        raise DataError(f"{path}: y must have shape (n,) or (n, K), got {y.shape}")
    if len(y) != len(X):
        raise DataError(f"{path}: X has {len(X)} samples (rows) but y has {len(y)}")
    if len(X) < MIN_SAMPLES:
        raise DataError(f"{path}: needs at least {MIN_SAMPLES} samples, got {len(X)}")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if np.issubdtype(y.dtype, np.number) and not np.isfinite(y).all():
        raise DataError(f"{path}: y{_first_bad(y)} is NaN or inf; missing values are not supported")
    y, task, n_classes, classes = _encode_labels(y, task, f"{path}: y")
    return make_dataset(
        path.stem, X, y, n_classes=n_classes, seed=0, test_fraction=test_fraction, classes=classes
    )


# ---------------------------------------------------------------------------
# By name


_GENERATORS: dict[str, Callable[..., Dataset]] = {
    "moons": moons,
    "circles": circles,
    "spirals": spirals,
    "xor": xor,
    "blobs": blobs,
    "sine": sine,
    "teacher": teacher,
}


def load(spec: str, *, key=None, target: str | None = None, n: int | None = None) -> Dataset:
    """Return the data set named ``spec``: one of :data:`NAMES`, or a .csv / .npz path.

    Args:
        spec: ``digits``, a synthetic name (:data:`SYNTHETIC`), or a file path
            ending in ``.csv`` (needs ``target``) or ``.npz``.
        key: JAX key for the synthetic sets (default ``jax.random.key(0)``).
        target: the label column of a CSV file.
        n: number of samples of a synthetic set (its default when ``None``).

    Example:
        >>> from jaxbp import data
        >>> data.load("digits").X_train.shape
        (1437, 64)
    """
    spec = os.fspath(spec)
    if spec in NAMES:
        if target is not None:
            raise DataError(f"target= names a CSV column; it does not apply to {spec!r}")
        if spec == "digits":
            if n is not None:
                raise DataError("n= sets the size of a synthetic set; 'digits' has 1797 samples")
            return digits()
        key = jax.random.key(0) if key is None else key
        return _GENERATORS[spec](key) if n is None else _GENERATORS[spec](key, n=n)
    suffix = Path(spec).suffix.lower()
    if suffix in (".csv", ".npz") and n is not None:
        raise DataError(f"n= sets the size of a synthetic set; it does not apply to {spec!r}")
    if suffix == ".csv":
        if target is None:
            raise DataError(
                f"{spec}: name the label column with target= (--target COLUMN); "
                f"columns are: {_names(csv_columns(spec))}"
            )
        return from_csv(spec, target)
    if suffix == ".npz":
        if target is not None:
            raise DataError(f"{spec}: target= is for CSV files; a .npz holds arrays X and y")
        return from_npz(spec)
    raise DataError(
        f"unknown data set {spec!r}: expected one of {', '.join(NAMES)}, "
        "or a path to a file ending in .csv or .npz"
    )
