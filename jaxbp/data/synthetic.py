"""Built-in data sets: the embedded digits and synthetic problems drawn with ``jax.random``.

- ``digits``: scikit-learn's 8×8 digits (1797 × 64, 10 classes), shipped in ``digits.npz``.
- ``moons``, ``circles``, ``spirals``, ``xor``, ``blobs``: 2-D classification.
- ``sine`` (and any g via :func:`regression_1d`): 1-D regression y = g(x) + noise.
- ``teacher``: regression on the outputs of a random two-layer teacher network.

Each returns a :class:`~jaxbp.data.dataset.Dataset` made by
:func:`~jaxbp.data.dataset.make_dataset`. scikit-learn is imported only to split
a synthetic set or a file (and digits with a non-default ``test_fraction``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from jaxbp import names
from jaxbp.data.dataset import (
    TEST_FRACTION,
    DataError,
    Dataset,
    as_key,
    check_n,
    check_nonnegative,
    make_dataset,
    split_seed,
)
from jaxbp.model import Net, forward
from jaxbp.params import Params, init

_DIGITS = Path(__file__).with_name("digits.npz")
SYNTHETIC = names.SYNTHETIC_DATA  # the one list of names, in the dependency-free jaxbp.names
NAMES = names.DATA


# ---------------------------------------------------------------------------
# Embedded


def digits(test_fraction: float = TEST_FRACTION) -> Dataset:
    """Return scikit-learn's 8×8 handwritten digits: 1797 samples, 64 features, 10 classes.

    The pixels (0..16) and labels ship with jaxbp (``digits.npz``, a copy of
    ``sklearn.datasets.load_digits()``), so no download and no import of
    scikit-learn. The split is fixed: scikit-learn's stratified
    ``train_test_split(random_state=0)``, stored for the default ``test_fraction``
    and computed for any other, so two calls return identical arrays.
    """
    with np.load(_DIGITS, allow_pickle=False) as f:
        X, y = f["X"], f["y"]
        split = (f["train_index"], f["test_index"]) if test_fraction == TEST_FRACTION else None
    return make_dataset(
        "digits", X, y, n_classes=10, seed=0, test_fraction=test_fraction, split=split
    )


# ---------------------------------------------------------------------------
# Synthetic data. Randomness comes from jax.random, drawn in the same few shapes for
# every generator (one compilation each, shared), and is shaped into data with NumPy.


def _draw(key, n: int, width: int = 2) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (u, z, seed): u ~ U[0, 1) and z ~ N(0, 1), both (n, width), and a split seed."""
    k_u, k_z, k_split = jax.random.split(as_key(key), 3)
    u = np.asarray(jax.random.uniform(k_u, (n, width)), dtype=np.float64)
    z = np.asarray(jax.random.normal(k_z, (n, width)), dtype=np.float64)
    return u, z, split_seed(k_split)


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
    check_n(n)
    check_nonnegative(noise=noise)
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
    check_n(n)
    check_nonnegative(noise=noise)
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
    check_n(n)
    check_nonnegative(noise=noise)
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
    check_n(n)
    check_nonnegative(noise=noise)
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
    check_n(n)
    check_nonnegative(std=std)
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
    check_n(n)
    check_nonnegative(noise=noise)
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
    return net, init(net, as_key(key), d=d, hidden=hidden, out=out)


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
    check_n(n)
    check_nonnegative(noise=noise)
    key = as_key(key)
    net, params = teacher_net(key, d=d, hidden=hidden, out=out, activation=activation)
    k_x, k_noise, k_split = jax.random.split(jax.random.fold_in(key, 1), 3)
    X = jax.random.normal(k_x, (n, d))
    ds = make_dataset("teacher", X, np.zeros(n), n_classes=None, seed=split_seed(k_split))
    Y = np.asarray(forward(net, params, np.concatenate([ds.X_train, ds.X_test])))
    if noise:
        Y = Y + noise * np.asarray(jax.random.normal(k_noise, Y.shape))
    Y = (Y[:, 0] if out == 1 else Y).astype(np.float32)
    n_train = len(ds.X_train)
    return ds._replace(y_train=Y[:n_train], y_test=Y[n_train:])
